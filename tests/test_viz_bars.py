"""viz.bars.bars_figure and the "almanac" plotly template, without a browser."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.io as pio
import pytest

from viz.bars import bars_figure
from viz.theme import COLORS, TEMPLATE, build_template


def minute_bars(day: str, utc_open: str, n: int = 4) -> pd.DataFrame:
    ts = pd.date_range(f"{day} {utc_open}", periods=n, freq="1min", tz="UTC")
    return pd.DataFrame({
        "timestamp": ts,
        "open": [100.0, 101.0, 100.5, 100.0][:n],
        "high": [101.5, 101.5, 101.0, 100.8][:n],
        "low": [99.5, 100.2, 99.9, 99.0][:n],
        "close": [101.0, 100.5, 100.0, 100.6][:n],
        "volume": [10.0, 20.0, 30.0, 40.0][:n],
    })


def test_template_is_registered_once_with_the_lab_palette():
    assert TEMPLATE == "almanac" and TEMPLATE in pio.templates
    t = pio.templates[TEMPLATE]
    assert t.layout.colorway[:2] == ("#2C3E50", "#18BC9C")
    assert "Lato" in t.layout.font.family and t.layout.font.size == 13
    assert t.layout.hovermode == "x unified"
    # starts from plotly_white: white plot area, not plotly's default blue-grey
    assert t.layout.plot_bgcolor == "white"
    # every property is a valid plotly property (registration skips validation for speed)
    assert build_template(validate=True).to_plotly_json() == t.to_plotly_json()


def test_minute_candles_are_shown_in_exchange_time_across_dst():
    # 14:30 UTC is 09:30 in New York in winter (EST, UTC-5); 13:30 UTC is 09:30 in summer (EDT, UTC-4)
    winter = bars_figure(minute_bars("2018-12-31", "14:30"), "ES", "1min", tz="America/New_York")
    summer = bars_figure(minute_bars("2018-07-02", "13:30"), "ES", "1min", tz="America/New_York")
    for fig, day in ((winter, "2018-12-31"), (summer, "2018-07-02")):
        x = pd.to_datetime(fig.data[0].x)
        assert list(x.strftime("%Y-%m-%d %H:%M")) == [f"{day} 09:3{i}" for i in range(4)]
        assert fig.layout.xaxis2.title.text == "Time (America/New_York)"


def test_candles_and_volume_carry_the_input_numbers():
    bars = minute_bars("2018-12-31", "14:30")
    fig = bars_figure(bars, "ES", "1min", tz="America/New_York", sample=True)
    candle, volume = fig.data
    assert candle.type == "candlestick" and volume.type == "bar"
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(candle, col), bars[col].to_numpy())
    np.testing.assert_array_equal(volume.y, [10.0, 20.0, 30.0, 40.0])
    # volume coloured like its candle: close >= open is up (101>=100, 100.5<101, 100<100.5, 100.6>=100)
    assert list(volume.marker.color) == [COLORS["volume_up"], COLORS["volume_down"],
                                         COLORS["volume_down"], COLORS["volume_up"]]
    assert candle.increasing.line.color == COLORS["up"] and candle.decreasing.line.color == COLORS["down"]
    assert fig.layout.yaxis.title.text == "Price" and fig.layout.yaxis2.title.text == "Volume"
    assert fig.layout.title.text == "ES 1-minute bars (sample data) · Mon 2018-12-31 · 4 bars"
    assert fig.layout.template.layout.colorway == pio.templates[TEMPLATE].layout.colorway
    assert fig.layout.xaxis.rangeslider.visible is False
    assert not fig.layout.xaxis.rangebreaks  # one day: nothing to cut


def test_close_only_daily_series_is_a_line_without_volume_panel():
    daily = pd.DataFrame({"date": pd.to_datetime(["2019-01-02", "2019-01-03", "2019-01-04"]),
                          "close": [23.2, 25.4, 21.4]})
    fig = bars_figure(daily, "VIX", "1d")
    assert len(fig.data) == 1 and fig.data[0].type == "scatter" and fig.data[0].mode == "lines"
    np.testing.assert_array_equal(fig.data[0].y, [23.2, 25.4, 21.4])
    assert fig.layout.xaxis.title.text == "Date" and fig.layout.yaxis.title.text == "Price"
    assert fig.layout.title.text == "VIX daily bars · 2019-01-02 to 2019-01-04 · 3 bars"
    # weekends are cut from a daily axis; a few bars get one tick per bar
    assert [b.bounds for b in fig.layout.xaxis.rangebreaks] == [("sat", "mon")]
    assert list(fig.layout.xaxis.ticktext) == ["Jan 02<br>2019", "Jan 03<br>2019", "Jan 04<br>2019"]


def test_close_only_volume_colour_follows_the_previous_close():
    daily = pd.DataFrame({"date": pd.to_datetime(["2019-01-02", "2019-01-03", "2019-01-04"]),
                          "close": [10.0, 9.0, 9.0], "volume": [1.0, 2.0, 3.0]})
    fig = bars_figure(daily, "X", "1d")
    # first bar counts as up; 9 < 10 down; 9 >= 9 up
    assert list(fig.data[1].marker.color) == [COLORS["volume_up"], COLORS["volume_down"], COLORS["volume_up"]]


def test_multi_day_minute_axis_cuts_nights_and_weekends():
    bars = pd.concat([minute_bars("2018-12-28", "14:30", 2), minute_bars("2018-12-31", "14:30", 2)])
    fig = bars_figure(bars, "ES", "1min", tz="America/New_York", session=("09:30", "16:00"))
    assert [tuple(b.bounds) for b in fig.layout.xaxis.rangebreaks] == [("sat", "mon"), (16.0, 9.5)]
    assert fig.layout.xaxis.rangebreaks[1].pattern == "hour"
    assert fig.layout.title.text.endswith("2018-12-28 to 2018-12-31 · 4 bars")


def test_empty_or_closeless_frames_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="no ES 1min bars to plot"):
        bars_figure(minute_bars("2018-12-31", "14:30").iloc[:0], "ES", "1min")
    with pytest.raises(ValueError, match="'close'"):
        bars_figure(pd.DataFrame({"date": pd.to_datetime(["2019-01-02"]), "open": [1.0]}), "X", "1d")


def test_template_covers_every_trace_type_the_lab_draws():
    """The template keeps defaults for TRACE_TYPES only: every go.<Trace>( in viz/ and pages/
    must be one of them, or its charts would lose the lab's look."""
    import re
    from pathlib import Path

    from viz.theme import TRACE_TYPES, template_dict

    root = Path(__file__).resolve().parents[1]
    used = set()
    for folder in ("viz", "pages"):
        for path in (root / folder).rglob("*.py"):
            used |= {m.lower() for m in re.findall(r"\bgo\.([A-Z][A-Za-z]*)\b(?!\.)", path.read_text())
                     if m not in ("Figure", "FigureWidget")}
    assert used and used <= set(TRACE_TYPES), used - set(TRACE_TYPES)
    assert set(template_dict()["data"]) <= set(TRACE_TYPES)  # plotly_white has no candlestick defaults
    assert {"bar", "heatmap", "histogram", "scatter", "scattergl"} <= set(template_dict()["data"])
