"""ml.backtester on a hand-computed six-day frame."""
import json
import math

import numpy as np
import pandas as pd
import pytest

from almanac.errors import DataError, SpecError
from ml import stats
from ml.backtester import backtest, monthly_returns


@pytest.fixture
def frame():
    """Six days across a month end. ``open`` is there to prove it is never used:
    on day 1 and day 5 open->close and cutoff->close have opposite signs."""
    return pd.DataFrame({
        "date": pd.to_datetime(["2024-01-29", "2024-01-30", "2024-01-31",
                                "2024-02-01", "2024-02-02", "2024-02-05"]),
        "prob": [0.55, 0.45, 0.50, np.nan, 0.70, 0.20],
        "open": [103.0, 102.0, 99.0, 100.0, 98.0, 99.0],
        "cutoff_price": [100.0, 101.0, 99.0, 100.0, 100.0, 99.0],
        "close": [102.0, 98.98, 100.0, 101.0, 99.0, 99.99],
        "prev_close": [np.nan, 102.0, 98.98, 100.0, 101.0, 99.0],
    })


# cutoff->close moves: +2%, -2%, +1.0101%, +1%, -1%, +1%
# signals at 0.55: long (prob == threshold), short (prob == 1 - threshold), flat, flat
# (no prediction), long, short -> strategy returns +2%, +2%, 0, 0, -1%, -1%
RETURNS = [0.02, 0.02, 0.0, 0.0, -0.01, -0.01]


def test_signals_returns_equity_drawdown(frame):
    res = backtest(frame, threshold=0.55)
    d = res.daily
    assert list(d.columns) == ["date", "prob", "signal", "position", "strategy_return",
                               "equity", "benchmark_equity", "drawdown"]
    assert d["signal"].tolist() == [1, -1, 0, 0, 1, -1]
    np.testing.assert_allclose(d["strategy_return"], RETURNS, atol=1e-12)
    np.testing.assert_allclose(d["equity"], [1.02, 1.0404, 1.0404, 1.0404, 1.029996, 1.01969604],
                               atol=1e-12)
    np.testing.assert_allclose(d["drawdown"], [0, 0, 0, 0, -0.01, 1.01969604 / 1.0404 - 1],
                               atol=1e-12)
    # buy and hold close to close; day 1 has no prev_close -> 0 return
    np.testing.assert_allclose(d["benchmark_equity"],
                               [1.0, 98.98 / 102, 100 / 102, 101 / 102, 99 / 102, 99.99 / 102],
                               rtol=1e-12)


def test_earns_cutoff_to_close_never_open_to_close(frame):
    d = backtest(frame, threshold=0.55).daily
    # day 1: long; open->close = 102/103 - 1 < 0 but cutoff->close = +2%
    assert 102 / 103 - 1 < 0
    assert d["strategy_return"].iloc[0] == pytest.approx(0.02, abs=1e-12)
    # day 5: long; open->close = 99/98 - 1 > 0 but cutoff->close = -1%
    assert 99 / 98 - 1 > 0
    assert d["strategy_return"].iloc[4] == pytest.approx(-0.01, abs=1e-12)


def test_trades_and_trade_stats(frame):
    res = backtest(frame, threshold=0.55)
    t = res.trades
    assert t["date"].dt.strftime("%m-%d").tolist() == ["01-29", "01-30", "02-02", "02-05"]
    assert t["side"].tolist() == ["long", "short", "long", "short"]
    assert t["entry"].tolist() == [100.0, 101.0, 100.0, 99.0]
    assert t["exit"].tolist() == [102.0, 98.98, 99.0, 99.99]
    np.testing.assert_allclose(t["gross_return"], [0.02, 0.02, -0.01, -0.01], atol=1e-12)
    np.testing.assert_allclose(t["net_return"], t["gross_return"], atol=0)
    s = res.stats
    assert s["trades"] == 4 and s["days"] == 6
    assert s["win_rate"] == 0.5
    assert s["exposure"] == pytest.approx(4 / 6)
    assert s["total_return"] == pytest.approx(1.01969604 - 1, abs=1e-12)


def test_threshold_boundaries_and_tight_threshold(frame):
    # at 0.7 only prob >= 0.7 (day 5) and prob <= 0.3 (day 6) trade
    assert backtest(frame, threshold=0.7).daily["signal"].tolist() == [0, 0, 0, 0, 1, -1]
    # at 0.5 everything with a prediction trades; prob exactly 0.5 is long
    assert backtest(frame, threshold=0.5).daily["signal"].tolist() == [1, -1, 1, 0, 1, -1]
    # at 1.0 only certainty trades
    assert backtest(frame, threshold=1.0).stats["trades"] == 0


def test_long_only(frame):
    res = backtest(frame, threshold=0.55, long_only=True)
    assert res.daily["signal"].tolist() == [1, 0, 0, 0, 1, 0]
    np.testing.assert_allclose(res.daily["strategy_return"], [0.02, 0, 0, 0, -0.01, 0], atol=1e-12)
    assert res.trades["side"].tolist() == ["long", "long"]
    assert res.stats["exposure"] == pytest.approx(2 / 6)
    assert res.stats["total_return"] == pytest.approx(1.02 * 0.99 - 1, abs=1e-12)


def test_costs_charged_on_entry_and_exit(frame):
    res = backtest(frame, threshold=0.55, cost_bps=10)  # 2 * 10 bp = 0.002 per traded day
    np.testing.assert_allclose(res.daily["strategy_return"],
                               [0.018, 0.018, 0, 0, -0.012, -0.012], atol=1e-12)
    np.testing.assert_allclose(res.trades["net_return"], [0.018, 0.018, -0.012, -0.012], atol=1e-12)
    np.testing.assert_allclose(res.trades["gross_return"], [0.02, 0.02, -0.01, -0.01], atol=1e-12)
    assert res.stats["total_return"] == pytest.approx(1.018**2 * 0.988**2 - 1, abs=1e-12)
    # a cost larger than the gain turns a winner into a loser
    assert backtest(frame, threshold=0.55, cost_bps=150).stats["win_rate"] == 0.0


def test_stats_equal_ml_stats_and_dsr(frame):
    r = pd.Series(RETURNS)
    s = backtest(frame, threshold=0.55).stats
    for name in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar",
                 "skew", "kurtosis"):
        assert s[name] == pytest.approx(getattr(stats, name)(r), rel=1e-9, abs=1e-12), name
    sr_day = stats.sharpe(r) / math.sqrt(252)
    psr = stats.probabilistic_sharpe_ratio(sr_day, 6, stats.skew(r), stats.kurtosis(r))
    assert s["psr"] == pytest.approx(psr, rel=1e-9)
    assert s["n_trials"] == 1 and s["dsr"] == pytest.approx(psr, rel=1e-12)  # one trial: DSR = PSR

    trials = [s["sharpe"], 0.5, 1.0, -0.2]
    s4 = backtest(frame, threshold=0.55, trial_sharpes=trials).stats
    var_daily = np.var(trials, ddof=1) / 252
    want = stats.deflated_sharpe_ratio(sr_day, 6, stats.skew(r), stats.kurtosis(r), 4, var_daily)
    assert s4["n_trials"] == 4
    assert s4["dsr"] == pytest.approx(want, rel=1e-9)
    assert s4["dsr"] < s4["psr"]


def test_input_order_and_extra_columns_do_not_matter(frame):
    shuffled = frame.iloc[[3, 0, 5, 1, 4, 2]].drop(columns="open")
    a, b = backtest(frame), backtest(shuffled)
    pd.testing.assert_frame_equal(a.daily, b.daily)
    assert a.stats == pytest.approx(b.stats, nan_ok=True)


def test_monthly_returns(frame):
    table = monthly_returns(backtest(frame, threshold=0.55).daily)
    assert table.index.tolist() == [2024] and table.columns.tolist() == list(range(1, 13))
    assert table.loc[2024, 1] == pytest.approx(1.02 * 1.02 - 1, abs=1e-12)   # 0.0404
    assert table.loc[2024, 2] == pytest.approx(0.99 * 0.99 - 1, abs=1e-12)   # -0.0199
    assert table.loc[2024, 3:].isna().all()
    daily = pd.DataFrame({"date": pd.to_datetime(["2023-12-28", "2023-12-29", "2024-01-02"]),
                          "strategy_return": [0.10, 0.10, -0.10]})
    t2 = monthly_returns(daily)
    assert t2.index.tolist() == [2023, 2024]
    assert t2.loc[2023, 12] == pytest.approx(0.21) and t2.loc[2024, 1] == pytest.approx(-0.10)
    assert np.isnan(t2.loc[2023, 1]) and np.isnan(t2.loc[2024, 12])


def test_json_dict_no_trades(frame):
    res = backtest(frame, threshold=1.0)
    out = res.to_json_dict()
    text = json.dumps(out, allow_nan=False)
    assert json.loads(text)["stats"]["win_rate"] is None
    assert out["stats"]["trades"] == 0 and out["stats"]["total_return"] == 0.0
    assert out["stats"]["sharpe"] is None  # zero volatility
    assert out["params"] == {"threshold": 1.0, "cost_bps": 0.0, "long_only": False}


@pytest.mark.parametrize("kwargs, words", [
    ({"threshold": 0.49}, "between 0.5 and 1"),
    ({"threshold": 1.01}, "between 0.5 and 1"),
    ({"cost_bps": -1}, "cost_bps must be a number >= 0"),
    ({"trial_sharpes": []}, "trial_sharpes is empty"),
])
def test_bad_parameters(frame, kwargs, words):
    with pytest.raises(SpecError, match=words):
        backtest(frame, **kwargs)


def test_bad_frames(frame):
    with pytest.raises(SpecError, match="lacks column.*cutoff_price.*provide"):
        backtest(frame.drop(columns="cutoff_price"))
    with pytest.raises(SpecError, match="repeated date"):
        backtest(pd.concat([frame, frame.iloc[[0]]]))
    with pytest.raises(SpecError, match=r"probabilities in \[0, 1\]"):
        backtest(frame.assign(prob=frame["prob"] * 2))
    bad = frame.copy()
    bad.loc[4, "cutoff_price"] = np.nan  # a traded day without its entry price
    with pytest.raises(DataError, match="first 2024-02-02"):
        backtest(bad)
    bad.loc[4, "prob"] = np.nan  # no prediction -> no trade -> price not needed
    assert backtest(bad).stats["trades"] == 3


def test_volatility_turnover_and_cost_drag_by_hand():
    """volatility: annualized std of the daily returns; turnover: 252 × mean |position
    change| per day, entry and exit each counting (a traded day = 2); cost drag: 252 ×
    mean daily cost (a fraction per year)."""
    dates = pd.bdate_range("2022-01-03", periods=5)
    frame = pd.DataFrame({"date": dates, "prob": [0.7, 0.3, 0.5, 0.9, np.nan],
                          "cutoff_price": [100.0, 101, 102, 103, 104], "close": [101.0, 100, 103, 102, 105],
                          "prev_close": [99.0, 101, 100, 103, 102]})
    s = backtest(frame, threshold=0.6, cost_bps=2.5).stats
    r = np.array([0.01 - 5e-4, 1 / 101 - 5e-4, 0.0, 102 / 103 - 1 - 5e-4, 0.0])
    assert s["volatility"] == pytest.approx(np.std(r, ddof=1) * np.sqrt(252), rel=1e-12)
    assert s["turnover"] == pytest.approx(252 * 2 * 3 / 5)  # 3 traded days of 5
    assert s["cost_drag"] == pytest.approx(252 * 3 * 2 * 2.5e-4 / 5)
    assert backtest(frame, threshold=0.6, cost_bps=0.0).stats["cost_drag"] == 0.0
