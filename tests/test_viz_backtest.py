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


def _frame(n=300, seed=8):
    rng = np.random.default_rng(seed)
    cutoff = 4000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=n), "prob": rng.uniform(0.3, 0.7, n),
                         "cutoff_price": cutoff, "close": cutoff * (1 + rng.normal(0, 0.005, n)),
                         "prev_close": cutoff * (1 + rng.normal(0, 0.004, n))})


def test_always_long_trace_is_the_hand_computed_equity():
    from ml.replay import always_long

    frame = _frame()
    frame.loc[7, ["cutoff_price", "prob"]] = np.nan  # a day that cannot be traded stays flat
    model = backtest(frame, threshold=0.55, cost_bps=1.5)
    fig = vb.equity_figure(model.daily, baseline=always_long(frame, 1.5).daily)
    move = (frame["close"] / frame["cutoff_price"] - 1).fillna(0).to_numpy()
    net = np.where(np.arange(len(frame)) == 7, 0.0, move - 2 * 1.5 / 1e4)
    assert np.allclose(_trace(fig, "always long").y, np.cumprod(1 + net), rtol=1e-13)
    assert [t.name for t in fig.data] == ["buy and hold", "always long", "strategy"]
    assert vb.equity_figure(model.daily).layout.yaxis.type == "linear"


def test_rolling_sharpe_figure_holds_the_window_sharpe():
    from ml import stats

    daily = backtest(_frame(), threshold=0.52, cost_bps=0.0).daily
    rolling = stats.rolling_sharpe(daily["strategy_return"], 126)
    fig = vb.rolling_sharpe_figure(daily, rolling, 126, 0.5)
    y = np.asarray(fig.data[0].y)
    assert list(fig.data[1].y) == [0.5, 0.5]
    assert np.isnan(y[:125]).all()
    window = daily["strategy_return"].iloc[200 - 125:201]
    assert y[200] == pytest.approx(stats.sharpe(window), rel=1e-9)
    assert "Fewer than 126 days" in vb.rolling_sharpe_figure(daily.iloc[:50], rolling.iloc[:50]).layout.annotations[0].text


def test_grid_figure_cells_equal_backtest():
    from ml.backtester import sharpe_grid

    frame = _frame()
    grid = sharpe_grid(frame, [0.5, 0.55, 0.6], [0.0, 2.0], long_only=True)
    fig = vb.sharpe_grid_figure(grid, 0.55, 2.0)
    z_s, z_d = np.asarray(fig.data[0].z), np.asarray(fig.data[1].z)
    for i, t in enumerate((0.5, 0.55, 0.6)):
        for j, c in enumerate((0.0, 2.0)):
            s = backtest(frame, threshold=t, cost_bps=c, long_only=True).stats
            assert z_s[i, j] == pytest.approx(s["sharpe"], rel=1e-10)
            assert z_d[i, j] == pytest.approx(s["dsr"], rel=1e-10)  # one trial: DSR = PSR
    marks = [t for t in fig.data if t.name == "on screen"]
    assert len(marks) == 2 and marks[0].x == ("2",) and marks[0].y == ("0.55",)


def test_decile_means_and_counts_by_hand():
    from ml.replay import decile_returns

    pred = np.arange(25, dtype=float)[::-1]  # 24 .. 0
    y = np.arange(25, dtype=float) * 0.001  # y falls as pred rises
    table = decile_returns(pred, np.r_[y[:-1], np.nan], n=10)  # the NaN row is left out: 24 rows
    assert table["decile"].tolist() == list(range(1, 11)) and set(table["count"]) == {2, 3}
    assert table["count"].sum() == 24
    # decile 1 = lowest predictions: pred 1, 2, 3 (pred 0 had y NaN) -> y 0.023, 0.022, 0.021
    assert table["mean"].iloc[0] == pytest.approx(0.022)
    fig = vb.decile_figure(table)
    assert list(fig.data[0].y) == pytest.approx(table["mean"].tolist())
    assert fig.data[0].text[0] == f"n={table['count'].iloc[0]}"


def test_trace_updates_are_the_new_y_values_as_float32():
    import base64

    from ml import stats
    from ml.replay import always_long

    frame = _frame()
    model = backtest(frame, threshold=0.6, cost_bps=2.0)
    base = always_long(frame, 2.0)
    rolling = stats.rolling_sharpe(model.daily["strategy_return"], 126)
    up = vb.trace_updates(model.daily, base.daily, rolling, model.stats["sharpe"])

    def decode(spec):
        return np.frombuffer(base64.b64decode(spec["bdata"]), dtype=spec["dtype"])

    full = vb.equity_figure(model.daily, baseline=base.daily)
    assert full.data[vb.EQUITY_STRATEGY].name == "strategy" and full.data[vb.EQUITY_ALWAYS_LONG].name == "always long"
    assert np.allclose(decode(up["equity"][vb.EQUITY_STRATEGY]), model.daily["equity"], rtol=1e-6)
    assert np.allclose(decode(up["equity"][vb.EQUITY_ALWAYS_LONG]), base.daily["equity"], rtol=1e-6)
    assert np.allclose(decode(up["drawdown"][0]), model.daily["drawdown"], rtol=1e-6, atol=1e-7)
    assert np.allclose(decode(up["rolling"][0]), rolling, rtol=1e-5, equal_nan=True)
    assert decode(up["rolling"][1])[0] == pytest.approx(model.stats["sharpe"], rel=1e-6)


def test_monthly_updates_equal_the_figure_cells(result):
    table = monthly_returns(result.daily)
    fig = vb.monthly_returns_figure(table)
    up = vb.monthly_updates(table)
    z = np.array([[np.nan if v is None else v for v in row] for row in up["z"]], dtype=float)
    assert np.allclose(z, np.asarray(fig.data[0].z, dtype=float), atol=1e-6, equal_nan=True)
    assert up["text"] == np.asarray(fig.data[0].text).tolist()
    assert (up["zmin"], up["zmax"]) == (fig.data[0].zmin, fig.data[0].zmax)
