"""viz.backtest: equity, drawdown and monthly-return figures hold the backtest's numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.backtester import backtest, monthly_returns
from viz import backtest as vb


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2021-11-01", periods=120)
    cutoff = 4000 * np.exp(np.cumsum(rng.normal(0, 0.01, len(dates))))
    frame = pd.DataFrame({"date": dates, "prob": rng.uniform(0.3, 0.7, len(dates)),
                          "cutoff_price": cutoff, "close": cutoff * (1 + rng.normal(0, 0.005, len(dates))),
                          "prev_close": cutoff * (1 + rng.normal(0, 0.004, len(dates)))})
    return backtest(frame, threshold=0.55, cost_bps=1.0)


def _trace(fig, name):
    return next(t for t in fig.data if t.name == name)


def test_equity_traces_equal_input(result):
    daily = result.daily
    fig = vb.equity_figure(daily)
    assert np.array_equal(_trace(fig, "strategy").y, daily["equity"].to_numpy())
    assert np.array_equal(_trace(fig, "buy and hold").y, daily["benchmark_equity"].to_numpy())
    assert pd.DatetimeIndex(_trace(fig, "strategy").x).equals(pd.DatetimeIndex(daily["date"]))
    assert fig.layout.yaxis.title.text == "Growth of 1 (equity multiple)"
    assert vb.equity_figure(daily, log_scale=True).layout.yaxis.type == "log"


def test_drawdown_trace_is_fraction_shown_in_percent(result):
    daily = result.daily
    fig = vb.drawdown_figure(daily)
    y = np.asarray(fig.data[0].y)
    assert np.array_equal(y, daily["drawdown"].to_numpy())
    assert y.min() == pytest.approx(result.stats["max_drawdown"])  # deepest point = max drawdown
    assert fig.layout.yaxis.tickformat == ".0%"


def test_equity_with_drawdown_two_rows_sharing_dates(result):
    daily = result.daily
    fig = vb.equity_with_drawdown_figure(daily, title="Sharpe 1.23")
    assert np.array_equal(_trace(fig, "strategy").y, daily["equity"].to_numpy())
    dd = _trace(fig, "drawdown")
    assert np.array_equal(dd.y, daily["drawdown"].to_numpy())
    assert dd.yaxis == "y2" and _trace(fig, "strategy").yaxis == "y"
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"
    assert fig.layout.title.text == "Sharpe 1.23"


def test_monthly_heatmap_values_year_column_and_text(result):
    table = monthly_returns(result.daily)  # Nov 2021 .. Apr 2022
    fig = vb.monthly_returns_figure(table)
    hm = fig.data[0]
    z = np.asarray(hm.z, dtype="float64")
    assert np.array_equal(z[:, :12], table.to_numpy(), equal_nan=True)
    assert list(hm.y) == ["2021", "2022"] and list(hm.x)[-1] == "Year" and len(hm.x) == 13
    # the Year column compounds the months: equals the compounded daily returns of the year
    r = result.daily.set_index("date")["strategy_return"]
    for i, year in enumerate((2021, 2022)):
        assert z[i, 12] == pytest.approx((1 + r[r.index.year == year]).prod() - 1, rel=1e-12)
    nov = table.loc[2021, 11]
    assert hm.text[0][10] == f"{nov * 100:.1f}%" and hm.text[0][0] == ""  # Jan 2021 has no days
    assert hm.zmid == 0 and hm.zmin == -hm.zmax


def test_empty_and_bad_frames():
    assert vb.equity_figure(pd.DataFrame()).layout.annotations[0].text == "No backtest days to show"
    assert vb.monthly_returns_figure(pd.DataFrame()).layout.annotations[0].text == "No monthly returns to show"
    with pytest.raises(ValueError, match="lacks column.*equity"):
        vb.equity_figure(pd.DataFrame({"date": [pd.Timestamp("2020-01-02")], "x": [1.0]}))
