"""Leakage audits: the whole pipeline (features -> labels -> folds -> backtest) on minute
bars with known properties.

* On a pure random walk nothing after the cutoff is predictable, so the rest-of-day
  out-of-fold AUC must be ~0.5 -- even with a cross-asset DAILY series that IS the
  target's same-day session close among the inputs (it may only enter from D-1).
* On a pure random walk the direction label (close > open) is partly known at the
  cutoff (the move open -> cutoff is in the features), so the model scores well, but a
  position taken at the cutoff earns only cutoff -> close, which is pure noise: the
  backtest Sharpe must be ~0.
* A planted effect (the rest of the day drifts in the direction of the overnight gap on
  two days out of three) must be found.

Bars: 390 one-minute bars per day (09:30-16:00 New York), written with Store.write into a
temporary ALMANAC_HOME; 1300 weekdays.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from almanac.sessions import Session
from almanac.store import Store
from ml.runner import run_experiment

DAYS = 1300
MINUTES = 390
CUTOFF_BAR = 45  # bars 0..44 start before 10:15; the price at the cutoff is bar 44's close
SIGMA = 0.0004   # per-minute log-return standard deviation
GAP_SIGMA = 0.004
MODEL = {"kind": "lightgbm", "params": {"n_estimators": 100}}
VALIDATION = {"scheme": "expanding", "n_splits": 4, "gap": 1, "min_train": 250}


def minute_walk(seed: int, planted: float = 0.0) -> tuple[pd.DataFrame, np.ndarray]:
    """Random-walk minute bars and each day's session close.

    Day d opens at the previous close times exp(gap_d), gap_d ~ N(0, GAP_SIGMA); minute
    log-returns ~ N(0, SIGMA). With ``planted`` > 0, each minute after the cutoff drifts
    by ``planted * s_d`` with s_d = sign(gap_d) on a random 2/3 of the days and
    -sign(gap_d) on the others.
    """
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2012-01-02", periods=DAYS)
    r = rng.normal(0.0, SIGMA, (DAYS, MINUTES))
    gap = rng.normal(0.0, GAP_SIGMA, DAYS)
    if planted:
        follow = rng.random(DAYS) < 2 / 3
        r[:, CUTOFF_BAR:] += (planted * np.sign(gap) * np.where(follow, 1.0, -1.0))[:, None]
    day_close = 3.0 + np.cumsum(gap + r.sum(axis=1))          # log close of each day (log 20 ~ 3.0)
    day_open = day_close - r.sum(axis=1)
    close = np.exp(day_open[:, None] + np.cumsum(r, axis=1))
    open_ = np.exp(np.concatenate([day_open[:, None], np.log(close[:, :-1])], axis=1))
    wick = np.abs(rng.normal(0.0, SIGMA * 0.3, (2, DAYS, MINUTES)))
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    stamps = Session().opens(dates).as_unit("us").asi8[:, None] + np.arange(MINUTES) * 60_000_000
    bars = pd.DataFrame({
        "timestamp": pd.DatetimeIndex(stamps.ravel().astype("datetime64[us]")).tz_localize("UTC"),
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(), "close": close.ravel(),
        "volume": rng.integers(50, 500, DAYS * MINUTES).astype("float64")})
    return bars, close[:, -1], dates


def make_store(home, seed: int, planted: float = 0.0, leak: bool = False) -> Store:
    store = Store(home)
    bars, session_close, dates = minute_walk(seed, planted)
    store.write("ES", "1min", bars, source="audit random walk")
    if leak:  # a DAILY series whose value on date D is the target's own session close of D
        store.write("LEAK", "1d", pd.DataFrame({"date": dates, "close": session_close}), source="audit leak")
        # the same closes stamped one trading day early: a data error that DOES leak
        store.write("EARLY", "1d", pd.DataFrame({"date": dates[:-1], "close": session_close[1:]}),
                    source="audit misdated")
    return store


def spec(label: str, sets: list[str], cross: list[str] = (), cost_bps: float = 0.0) -> dict:
    return {"data": {"symbol": "ES"}, "label": {"kind": label},
            "features": {"sets": sets, "cutoff": "10:15", "cross_assets": list(cross)},
            "model": MODEL, "validation": VALIDATION,
            "backtest": {"threshold": 0.55, "cost_bps": cost_bps, "long_only": False}}


def test_random_walk_rest_of_day_is_unpredictable_even_with_same_day_close_series(tmp_path):
    store = make_store(tmp_path / "home", seed=11, leak=True)
    run = run_experiment(spec("rest_of_day", ["early_session", "cross_asset", "regime"], ["LEAK"]), store=store)
    assert {"LEAK_ret_1d", "LEAK_z20"} <= set(run["feature_names"])
    # Out-of-fold rows: 1300 - 250 - 1 = 1049. Under no skill the AUC's standard error is
    # about sqrt((n+ + n- + 1) / (12 n+ n-)) = 0.018; 0.06 is more than three of them. If the
    # same-day close entered day D's features, rest-of-day would be known exactly (AUC ~ 1).
    assert run["n_oof"] == DAYS - 250 - 1
    assert abs(run["metrics"]["roc_auc"] - 0.5) < 0.06
    assert all(abs(f["roc_auc"] - 0.5) < 0.12 for f in run["folds"])  # ~262 rows per fold: SE ~0.036
    # The audit has power: the same closes stamped one day early do reach day D's features
    # (EARLY_ret_1d = close(D) / close(D-1) - 1) and the pipeline then "predicts" the rest of the day.
    leaked = run_experiment(spec("rest_of_day", ["early_session", "cross_asset"], ["EARLY"]), store=store)
    assert leaked["metrics"]["roc_auc"] > 0.8


def test_random_walk_direction_backtest_earns_nothing(tmp_path):
    store = make_store(tmp_path / "home", seed=12)
    run = run_experiment(spec("direction", ["early_session", "regime"]), store=store)
    # The label is partly known at the cutoff (open -> 10:15 is in or_return_pct): real skill.
    assert run["metrics"]["roc_auc"] > 0.6
    bt = run["backtest"]
    # A position taken at the cutoff earns only cutoff -> close: a pure random walk, mean 0.
    # The annualized Sharpe of T zero-mean daily returns has standard error about
    # sqrt(252 / T) (Lo 2002, SR ~ 0): T = 1049 -> 0.49. |Sharpe| < 1.5 is three standard
    # errors; a backtest that let the position earn the open -> cutoff move it was chosen
    # on would show a Sharpe of about 4 (checked below on the same predictions).
    se = math.sqrt(252 / bt["days"])
    assert bt["days"] == DAYS - 251 and bt["trades"] > 300
    assert abs(bt["sharpe"]) < 3 * se
    from almanac.registry import read_artifact

    daily = read_artifact(run["run_id"], "backtest.parquet", home=store.home)
    ds = read_artifact(run["run_id"], "dataset.parquet", home=store.home).loc[pd.DatetimeIndex(daily["date"])]
    leaky = daily["position"].to_numpy() * (ds["close"] / ds["open"] - 1).to_numpy()
    assert leaky.mean() / leaky.std(ddof=1) * math.sqrt(252) > 3.0


def test_planted_gap_effect_is_found(tmp_path):
    # Drift of 4e-5 per minute over the 345 minutes after the cutoff: 1.38 % against a noise
    # standard deviation of 0.0004 * sqrt(345) = 0.74 %, so the rest-of-day direction follows
    # the drift on Phi(1.86) = 97 % of the days and the gap on about 2/3 * 0.97 + 1/3 * 0.03
    # = 66 % of them: the best possible AUC is about 0.66, no skill is 0.5 (SE 0.018).
    store = make_store(tmp_path / "home", seed=13, planted=4e-5)
    run = run_experiment(spec("rest_of_day", ["early_session", "regime"]), store=store)
    assert run["metrics"]["roc_auc"] > 0.58
    assert all(f["roc_auc"] > 0.55 for f in run["folds"])
    from almanac.registry import read_artifact

    imp = read_artifact(run["run_id"], "importance.parquet", home=store.home)
    assert imp.iloc[0]["feature"] == "gap_pct"  # the planted driver has the largest mean |SHAP| ...
    from ml.explain import run_permutation_importance

    perm = run_permutation_importance(run["run_id"], home=store.home)
    assert perm.set_index("feature")["perm_importance_mean"].idxmax() == "gap_pct"  # ... and permutation importance


@pytest.mark.parametrize("seed", [11])
def test_generator_is_a_random_walk(seed):
    """The bars are what the audits assume: continuous within the day, no drift."""
    bars, session_close, _ = minute_walk(seed)
    c = bars["close"].to_numpy().reshape(DAYS, MINUTES)
    o = bars["open"].to_numpy().reshape(DAYS, MINUTES)
    np.testing.assert_allclose(o[:, 1:], c[:, :-1], rtol=1e-12)
    np.testing.assert_array_equal(c[:, -1], session_close)
    rest = np.log(c[:, -1] / c[:, CUTOFF_BAR - 1])
    assert abs(rest.mean()) < 3 * SIGMA * math.sqrt(MINUTES - CUTOFF_BAR) / math.sqrt(DAYS)
