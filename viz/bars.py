"""Price bars as a figure: candlesticks (or a close line) over a volume panel.

:func:`bars_figure` is pure: a frame of bars in, a plotly ``Figure`` out; it reads no
files and keeps no state.

Input frame (the store's canonical schema):

* minute bars: ``timestamp`` (timezone-aware, bar start), ``open``, ``high``, ``low``,
  ``close``, ``volume``;
* daily bars: ``date`` (naive local date) and ``close``, optionally ``open``, ``high``,
  ``low``, ``volume``.

With ``open``, ``high`` and ``low`` present the price panel shows candlesticks,
otherwise a line of ``close``. With ``volume`` present a second panel (a quarter of the
height) shows volume bars, coloured like their candle: "up" when ``close >= open``
(for a close-only series: when the close is at or above the previous close; the first
bar counts as up).

Minute timestamps are shown as wall-clock time in ``tz`` (the exchange's time zone),
so a 09:30 New York open reads 09:30 in winter and in summer. Non-trading time is cut
out of the time axis: weekends for daily bars; weekends and the hours outside
``session`` for minute bars that span more than one day.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.theme import COLORS, TEMPLATE

PRICE_COLUMNS = ("open", "high", "low", "close")
FREQ_TEXT = {"1min": "1-minute bars", "5min": "5-minute bars", "15min": "15-minute bars",
             "30min": "30-minute bars", "1h": "1-hour bars", "1d": "daily bars"}
FEW_DAYS = 10  # daily charts with at most this many bars get one tick label per bar (no sub-day ticks)


def _hours(wall: str) -> float:
    hh, mm = wall.split(":")
    return int(hh) + int(mm) / 60


def _local_times(bars: pd.DataFrame, tz: str | None) -> tuple[pd.Series, str]:
    """The x values (naive wall-clock times) and the x-axis title."""
    if "timestamp" in bars.columns:
        ts = pd.to_datetime(bars["timestamp"])
        if ts.dt.tz is not None:
            zone = tz or str(ts.dt.tz)
            return ts.dt.tz_convert(zone).dt.tz_localize(None), f"Time ({zone})"
        return ts, f"Time ({tz})" if tz else "Time"
    if "date" in bars.columns:
        return pd.to_datetime(bars["date"]), "Date"
    raise ValueError(f"bars need a 'timestamp' or 'date' column, got {list(bars.columns)}")


def _default_title(symbol: str, freq: str, x: pd.Series, sample: bool) -> str:
    first, last = x.iloc[0], x.iloc[-1]
    what = FREQ_TEXT.get(freq, f"{freq} bars")
    if first.normalize() == last.normalize():
        span = f"{first:%a %Y-%m-%d}"
    else:
        span = f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
    n = len(x)
    tag = " (sample data)" if sample else ""
    return f"{symbol} {what}{tag} · {span} · {n:,} bar{'s' if n != 1 else ''}"


def bars_figure(bars: pd.DataFrame, symbol: str, freq: str, tz: str | None = None, *,
                session: tuple[str, str] | None = None, title: str | None = None,
                sample: bool = False, price_label: str = "Price",
                volume_label: str = "Volume", height: int = 560) -> go.Figure:
    """Candlesticks (or a close line) with a volume panel for one symbol's bars.

    ``bars`` is time-ordered (see the module docstring for its columns); ``tz`` is the
    time zone minute timestamps are shown in; ``session`` = ``("09:30", "16:00")`` cuts
    the hours outside the regular session from a multi-day minute axis. Raises
    ``ValueError`` for an empty frame or one without ``close``.
    """
    if bars is None or len(bars) == 0:
        raise ValueError(f"no {symbol} {freq} bars to plot: choose another date or range")
    if "close" not in bars.columns:
        raise ValueError(f"bars need a 'close' column, got {list(bars.columns)}")
    x, x_title = _local_times(bars, tz)
    close = bars["close"].to_numpy(dtype="float64")
    has_ohlc = all(c in bars.columns for c in PRICE_COLUMNS)
    has_volume = "volume" in bars.columns

    if has_volume:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                            row_heights=[0.76, 0.24])
    else:
        fig = go.Figure()
    cell = dict(row=1, col=1) if has_volume else {}

    if has_ohlc:
        opens = bars["open"].to_numpy(dtype="float64")
        fig.add_trace(go.Candlestick(
            x=x, open=opens, high=bars["high"].to_numpy(dtype="float64"),
            low=bars["low"].to_numpy(dtype="float64"), close=close, name=symbol,
            increasing=dict(line=dict(color=COLORS["up"], width=1), fillcolor=COLORS["up"]),
            decreasing=dict(line=dict(color=COLORS["down"], width=1), fillcolor=COLORS["down"]),
            whiskerwidth=0.2, showlegend=False,
        ), **cell)
        up = close >= opens
    else:
        fig.add_trace(go.Scatter(x=x, y=close, mode="lines", name=f"{symbol} close",
                                 line=dict(color=COLORS["ink"], width=1.6), showlegend=False,
                                 hovertemplate="close %{y:,.2f}<extra></extra>"), **cell)
        up = np.r_[True, close[1:] >= close[:-1]]

    if has_volume:
        fig.add_trace(go.Bar(
            x=x, y=bars["volume"].to_numpy(dtype="float64"), name="volume", showlegend=False,
            marker=dict(color=np.where(up, COLORS["volume_up"], COLORS["volume_down"]).tolist(),
                        line=dict(width=0)),
            hovertemplate="volume %{y:,.0f}<extra></extra>",
        ), row=2, col=1)
        fig.update_yaxes(title_text=volume_label, row=2, col=1, rangemode="tozero", nticks=4)
        fig.update_xaxes(title_text=x_title, row=2, col=1)
        fig.update_yaxes(title_text=price_label, row=1, col=1, tickformat=",.2f")
    else:
        fig.update_yaxes(title_text=price_label, tickformat=",.2f")
        fig.update_xaxes(title_text=x_title)

    breaks = []
    multi_day = x.iloc[0].normalize() != x.iloc[-1].normalize()
    if freq == "1d" or multi_day:
        breaks.append(dict(bounds=["sat", "mon"]))
    if freq != "1d" and multi_day and session is not None:
        breaks.append(dict(bounds=[_hours(session[1]), _hours(session[0])], pattern="hour"))
    fig.update_xaxes(rangeslider_visible=False, rangebreaks=breaks or None)
    if freq == "1d" and len(x) <= FEW_DAYS:  # label each day, never sub-day ticks (12:00, 00:00...)
        fig.update_xaxes(tickmode="array", tickvals=list(x), ticktext=[f"{d:%b %d}<br>{d:%Y}" for d in x])
    fig.update_layout(
        template=TEMPLATE, height=height, bargap=0.15, hovermode="x unified",
        title=dict(text=title or _default_title(symbol, freq, x, sample)),
    )
    return fig


__all__ = ["bars_figure"]
