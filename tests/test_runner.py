"""ml.runner: a complete run folder whose numbers agree with independent recomputation.

One small synthetic market (regular-session bars every 5 minutes) is written once per
module; runs use few trees and three folds so the whole file takes seconds.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from almanac import registry
from almanac.errors import AlmanacError, SpecError
from almanac.sessions import Session
from almanac.spec import spec_from_dict
from almanac.store import Store
from ml import drift, persist, stats
from ml.backtester import backtest
from ml.models import make_model
from ml.runner import RunTimeout, run_experiment

ROOT = Path(__file__).resolve().parent.parent
DAYS = 360
NO_WINDOW = pd.to_datetime(["2019-03-05", "2019-06-12", "2019-09-17"])  # days without bars before 10:15
SPEC = {
    "name": "tiny",
    "data": {"symbol": "ES"},
    "features": {"sets": ["early_session", "cross_asset", "regime"], "cutoff": "10:15", "cross_assets": ["VIX"]},
    "label": {"kind": "rest_of_day"},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 25}},
    "validation": {"n_splits": 3, "gap": 2, "min_train": 150},
    "backtest": {"threshold": 0.52, "cost_bps": 1.0},
}
FILES = {"spec.yaml", "run.json", "dataset.parquet", "oof.parquet", "folds.parquet", "threshold_grid.json",
         "curves.json", "shap.parquet", "shap_base.parquet", "importance.parquet", "drift.json",
         "backtest.parquet", "trades.parquet", "model", "last_fold_model"}


def write_market(home: Path) -> Store:
    from bench.synthetic import futures_minutes

    store = Store(home)
    bars = futures_minutes("2018-07-02", days=DAYS, seed=3, step=5, overnight=False)
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    drop = local.dt.tz_localize(None).dt.normalize().isin(NO_WINDOW) & (local.dt.hour * 60 + local.dt.minute < 615)
    store.write("ES", "1min", bars[~drop.to_numpy()].reset_index(drop=True), source="test")
    rng = np.random.default_rng(4)
    dates = pd.bdate_range("2018-01-02", periods=DAYS + 150)
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": 15 * np.exp(np.cumsum(rng.normal(0, .05, len(dates))))}),
                source="test")
    return store


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return write_market(tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def first(market):
    seen = []
    run = run_experiment(SPEC, store=market, progress=lambda f, s: seen.append((f, s)))
    return run, seen


def names_of(run):
    return run["feature_names"]


def test_layout_and_record(first, market):
    run, _ = first
    folder = Path(run["path"])
    assert folder.parent == market.home / "runs" and folder.name == run["run_id"]
    assert {p.name for p in folder.iterdir()} == FILES
    assert json.loads((folder / "run.json").read_text()) == {k: v for k, v in run.items() if k != "path"}
    for key in ("run_id", "name", "created_at", "status", "spec", "data_hashes", "versions", "code_revision", "task",
                "classes", "feature_names", "lineage", "notes", "n_rows", "metrics", "folds", "backtest",
                "timings", "final_model"):
        assert key in run
    assert run["status"] == "complete" and run["task"] == "binary" and run["classes"] == ["down", "up"]
    assert set(run["data_hashes"]) == {"ES 1min", "VIX 1d"}
    assert run["data_hashes"]["ES 1min"] == market.entry("ES", "1min").sha256
    assert run["spec"] == spec_from_dict(SPEC).to_dict()
    assert [p.name for p in (market.home / "runs").iterdir()] == [run["run_id"]]  # no temporary folder left


def test_labels_from_raw_bars_and_nan_labels_dropped(first, market):
    """y = close > price at the cutoff, recomputed from the stored bars with plain pandas."""
    run, _ = first
    bars = market.read_bars("ES", "1min")
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    bars["day"] = local.dt.tz_localize(None).dt.normalize()
    before = bars[(local.dt.hour * 60 + local.dt.minute) < 615]
    cutoff_price = before.groupby("day")["close"].last()
    close = bars.groupby("day")["close"].last()
    y = (close > cutoff_price.reindex(close.index)).astype(float).where(cutoff_price.reindex(close.index).notna())
    y = y.dropna()
    ds = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    assert run["n_rows"] == len(ds) == DAYS - len(NO_WINDOW)
    assert not ds.index.isin(NO_WINDOW).any() and ds["y"].notna().all()
    assert ds["y"].to_numpy().tolist() == y.to_numpy().tolist()
    assert list(ds.columns) == [*names_of(run), "y", "open", "high", "low", "close", "cutoff_price", "prev_close"]


def test_folds_purged_and_oof_refit_on_train_only(first):
    run, _ = first
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    oof = pd.read_parquet(folder / "oof.parquet")
    dates = ds.index
    X, y = ds[names_of(run)], ds["y"].astype(int)
    assert len(run["folds"]) == 3 and sum(f["n_test"] for f in run["folds"]) == len(oof) == run["n_oof"]
    for f in run["folds"]:
        train_end, test_start = dates.get_loc(pd.Timestamp(f["train_end"])), dates.get_loc(pd.Timestamp(f["test_start"]))
        assert test_start - train_end - 1 == 2  # exactly gap rows purged
        tr = (dates >= pd.Timestamp(f["train_start"])) & (dates <= pd.Timestamp(f["train_end"]))
        te = (dates >= pd.Timestamp(f["test_start"])) & (dates <= pd.Timestamp(f["test_end"]))
        assert tr.sum() == f["n_train"] and te.sum() == f["n_test"]
        model = make_model("lightgbm", "binary", {"n_estimators": 25}, seed=0).fit(X[tr], y[tr])
        got = oof.loc[oof["fold"] == f["fold"], "prob"].to_numpy()
        np.testing.assert_array_equal(got, model.predict_proba(X[te])[:, 1])
        assert f["roc_auc"] == pytest.approx(roc_auc_score(y[te], got), abs=1e-12)
    assert run["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(oof["y"], oof["prob"]), abs=1e-12)
    assert run["metrics"]["accuracy"] == pytest.approx(accuracy_score(oof["y"], oof["prob"] >= 0.5), abs=1e-12)


def test_shap_matches_lightgbm_contributions_and_importance(first):
    run, _ = first
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    shap = pd.read_parquet(folder / "shap.parquet")
    base = pd.read_parquet(folder / "shap_base.parquet")
    names = names_of(run)
    last = run["folds"][-1]
    dates = ds.index
    tr = (dates >= pd.Timestamp(last["train_start"])) & (dates <= pd.Timestamp(last["train_end"]))
    te = (dates >= pd.Timestamp(last["test_start"])) & (dates <= pd.Timestamp(last["test_end"]))
    model = make_model("lightgbm", "binary", {"n_estimators": 25}, seed=0).fit(ds.loc[tr, names], ds.loc[tr, "y"].astype(int))
    contrib = model.booster_.predict(ds.loc[te, names].to_numpy(), pred_contrib=True)  # LightGBM's own TreeSHAP
    mine = shap[shap["fold"] == last["fold"]]
    np.testing.assert_allclose(mine[names].to_numpy(), contrib[:, :-1], atol=1e-10)
    np.testing.assert_allclose(base.loc[base["fold"] == last["fold"], "base_value"], contrib[:, -1], atol=1e-10)
    assert len(shap) == run["n_oof"] and run["shap_output"] == "log_odds"
    imp = pd.read_parquet(folder / "importance.parquet").set_index("feature")
    assert set(imp.index) == set(names)
    np.testing.assert_allclose(imp.loc[names, "mean_abs_shap"], shap[names].abs().mean(), rtol=1e-12)
    assert "last fold" in run["importance_note"]
    psi = json.loads((folder / "drift.json").read_text())["psi"]
    col = names[0]
    assert psi[str(last["fold"])][col] == pytest.approx(drift.psi(ds.loc[tr, col], ds.loc[te, col]), abs=1e-12)


def test_backtest_agrees_with_backtester_and_hand_returns(first):
    run, _ = first
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    oof = pd.read_parquet(folder / "oof.parquet").set_index("date")
    rows = ds.loc[oof.index]
    frame = pd.DataFrame({"date": oof.index, "prob": oof["prob"].to_numpy(), "cutoff_price": rows["cutoff_price"].to_numpy(),
                          "close": rows["close"].to_numpy(), "prev_close": rows["prev_close"].to_numpy()})
    again = backtest(frame, threshold=0.52, cost_bps=1.0)
    bt = run["backtest"]
    assert bt["sharpe"] == pytest.approx(again.stats["sharpe"], abs=1e-12) and bt["n_trials"] == 1
    pos = np.where(oof["prob"] >= 0.52, 1, np.where(oof["prob"] <= 0.48, -1, 0))
    ret = pos * (rows["close"] / rows["cutoff_price"] - 1).to_numpy() - np.abs(pos) * 2e-4
    daily = pd.read_parquet(folder / "backtest.parquet")
    np.testing.assert_allclose(daily["strategy_return"], ret, atol=1e-15)
    assert bt["sharpe"] == pytest.approx(ret.mean() / ret.std(ddof=1) * math.sqrt(252), rel=1e-10)
    assert bt["trades"] == int((pos != 0).sum()) == len(pd.read_parquet(folder / "trades.parquet"))


def test_final_model_refit_on_all_rows(first):
    run, _ = first
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    X, y = ds[names_of(run)], ds["y"].astype(int)
    loaded = persist.load_model(folder / "model", run["final_model"])
    fresh = make_model("lightgbm", "binary", {"n_estimators": 25}, seed=0).fit(X, y)
    np.testing.assert_array_equal(loaded.predict_proba(X), fresh.predict_proba(X))
    assert run["final_model"]["format"] == "lightgbm-text" and run["final_model"]["n_rows"] == len(ds)


def test_progress_stages(first):
    _, seen = first
    fr = [f for f, _ in seen]
    assert fr[0] == 0.0 and fr[-1] == 1.0 and all(a <= b for a, b in zip(fr, fr[1:]))
    stages = [s for _, s in seen]
    for want in ("labels", "fold 1 of 3: fitting", "fold 3 of 3: SHAP", "backtest", "final model", "writing", "done"):
        assert want in stages
    assert any(s.startswith("features: ") for s in stages)


def test_rerun_identical_and_trials_counted(first, market):
    run1, _ = first
    run2 = run_experiment(SPEC, store=market)
    run3 = run_experiment({**SPEC, "backtest": {"threshold": 0.5, "cost_bps": 1.0}}, store=market)
    assert run2["run_id"] != run1["run_id"]
    for key in ("metrics", "folds", "n_rows", "feature_names", "data_hashes"):
        assert run2[key] == run1[key]
    frozen = ("dsr", "n_trials", "dsr_at_training", "n_trials_at_training")
    same = {k: v for k, v in run1["backtest"].items() if k not in frozen}
    assert {k: v for k, v in run2["backtest"].items() if k not in frozen} == same
    assert run2["baselines"] == run1["baselines"]  # seeded bootstrap: identical intervals
    for name in ("oof.parquet", "shap.parquet", "backtest.parquet", "importance.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(Path(run1["path"]) / name), pd.read_parquet(Path(run2["path"]) / name))
    # DSR of run 3 deflates against the three trials on ES / rest_of_day: s1, s1 (the rerun), s3
    bt = run3["backtest"]
    s1, s3 = run1["backtest"]["sharpe"], bt["sharpe"]
    assert bt["n_trials"] == 3 and run2["backtest"]["n_trials"] == 2
    assert (bt["n_trials_at_training"], bt["dsr_at_training"]) == (bt["n_trials"], bt["dsr"])  # frozen copy
    assert registry.trial_sharpes("ES", "rest_of_day", home=market.home) == [s1, s1, s3]  # oldest first
    assert [r["run_id"] for r in registry.list_runs(home=market.home)] == [run3["run_id"], run2["run_id"],
                                                                           run1["run_id"]]
    var = np.var([s1, s1, s3], ddof=1)
    want = stats.deflated_sharpe_ratio(s3 / math.sqrt(252), bt["days"], bt["skew"], bt["kurtosis"], 3, var / 252)
    assert bt["dsr"] == pytest.approx(want, abs=1e-12)
    for r in (run2, run3):
        registry.delete_run(r["run_id"], home=market.home)


@pytest.fixture
def small(tmp_path):
    return write_market(tmp_path / "home")


def test_multiclass_archetype_has_no_backtest(small):
    run = run_experiment({**SPEC, "label": "archetype", "features": {"sets": ["early_session", "regime"]},
                          "model": {"kind": "random_forest", "params": {"n_estimators": 20}}}, store=small)
    folder = Path(run["path"])
    assert run["task"] == "multiclass" and run["backtest"] is None and "no backtest" in run["backtest_note"]
    assert not (folder / "backtest.parquet").exists() and not (folder / "threshold_grid.json").exists()
    oof = pd.read_parquet(folder / "oof.parquet")
    cols = [f"prob_{c}" for c in ("TrendUp", "TrendDown", "Range", "Reversal")]
    np.testing.assert_allclose(oof[cols].sum(axis=1), 1.0, atol=1e-12)
    assert run["metrics"]["accuracy"] == pytest.approx(accuracy_score(oof["y"], oof[cols].to_numpy().argmax(1)))
    shap = pd.read_parquet(folder / "shap.parquet")
    assert sorted(shap["class"].unique()) == [0, 1, 2, 3] and len(shap) == 4 * len(oof)  # index into classes
    assert run["classes"] == [c[5:] for c in cols]
    assert registry.trial_sharpes("ES", "archetype", home=small.home) == []


def test_regression_trades_the_sign_of_the_prediction(small):
    run = run_experiment({**SPEC, "label": "forward_return", "model": {"kind": "hist_gb", "params": {"max_iter": 30}}},
                         store=small)
    folder = Path(run["path"])
    oof = pd.read_parquet(folder / "oof.parquet")
    daily = pd.read_parquet(folder / "backtest.parquet")
    np.testing.assert_array_equal(daily["position"].to_numpy(), np.sign(oof["pred"].to_numpy()))
    assert {"mae", "rmse", "r2", "ic"} <= set(run["metrics"]) and run["backtest"]["n_trials"] == 1
    assert "sign of the predicted return" in run["backtest_note"]


def test_direction_logistic_days_without_cutoff_price_are_kept_but_not_traded(small):
    run = run_experiment({**SPEC, "label": "direction", "model": {"kind": "logistic", "params": {"C": 0.1}}},
                         store=small)
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    assert run["n_rows"] == DAYS and ds.index.isin(NO_WINDOW).sum() == 3  # the label needs open and close only
    daily = pd.read_parquet(folder / "backtest.parquet").set_index("date")
    assert NO_WINDOW.isin(daily.index).all()
    assert (daily.loc[NO_WINDOW, "position"] == 0).all() and daily.loc[NO_WINDOW, "prob"].isna().all()
    # LinearExplainer: SHAP = coef * (x - mean of the training rows), both in the fold's
    # imputed and scaled space (pipeline fitted on the training rows only)
    names, last = names_of(run), run["folds"][-1]
    tr = (ds.index >= pd.Timestamp(last["train_start"])) & (ds.index <= pd.Timestamp(last["train_end"]))
    te = (ds.index >= pd.Timestamp(last["test_start"])) & (ds.index <= pd.Timestamp(last["test_end"]))
    pipe = make_model("logistic", "binary", {"C": 0.1}).fit(ds.loc[tr, names], ds.loc[tr, "y"].astype(int))
    pre, coef = pipe[:-1], pipe[-1].coef_[0]
    want = coef * (pre.transform(ds.loc[te, names]) - pre.transform(ds.loc[tr, names]).mean(axis=0))
    shap = pd.read_parquet(folder / "shap.parquet")
    np.testing.assert_allclose(shap.loc[shap["fold"] == last["fold"], names].to_numpy(), want, atol=1e-9)
    assert run["final_model"]["format"] == "skops"


def home_state(home: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``home``."""
    import hashlib

    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("change, message", [
    ({"model": {"kind": "lightgbm", "params": {"bogus": 1}}}, "unknown parameter(s) bogus"),
    ({"model": {"kind": "lightgbm", "params": {"learning_rate": -1}}},
     "spec field model.params.learning_rate: -1 is refused by LightGBM"),
    ({"model": {"kind": "xgboost", "params": {"max_depth": -1}}},
     "spec field model.params.max_depth: -1 is refused by XGBoost"),
    ({"model": {"kind": "logistic", "params": {"C": -1}}}, "spec field model.params.C: -1 is refused by scikit-learn"),
    ({"data": {"symbol": "VIX"}, "features": {"sets": ["regime"]}},
     "spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, which needs 1-minute bars"),
    ({"data": {"symbol": "VIX"}, "label": "direction", "features": {"sets": ["early_session", "regime"]}},
     "spec field features.sets: early_session features need 1-minute bars; VIX has only 1d"),
])
def test_bad_specs_are_refused_before_anything_is_written(small, change, message):
    before = home_state(small.home)
    with pytest.raises(AlmanacError) as exc:
        run_experiment({**SPEC, **change}, store=small)
    assert exc.value.message.startswith(message)
    assert home_state(small.home) == before  # no feature cache, no runs/
    assert not (small.home / "runs").exists() and not (small.home / "cache").exists()


def test_validation_order_params_before_data(small, monkeypatch):
    """The parameter check needs no data: it runs before the store is read."""
    import ml.runner

    def no_reads(*a, **k):
        raise AssertionError("the store was read before the parameters were checked")
    monkeypatch.setattr(ml.runner, "validate_against_store", no_reads)
    with pytest.raises(SpecError, match="num_leaves"):
        run_experiment({**SPEC, "model": {"kind": "lightgbm", "params": {"num_leaves": 1}}}, store=small)


def test_timeout_stops_the_run_and_registers_nothing(small):
    spec = {**SPEC, "model": {"kind": "lightgbm", "params": {"n_estimators": 20000, "learning_rate": 0.001,
                                                             "min_child_samples": 5}},
            "timeout_s": 1.0}
    seen = []
    t = time.perf_counter()
    with pytest.raises(RunTimeout) as exc:
        run_experiment(spec, store=small, progress=lambda f, s: seen.append(s))
    spent = time.perf_counter() - t
    assert exc.value.message.startswith("run exceeded timeout_s=1: stopped at ")
    assert exc.value.message.endswith("nothing was registered; raise timeout_s or make the run smaller (fewer "
                                      "trees, folds or days)")
    assert spent < 30  # the clock is read inside boosting, not only between folds
    assert list((small.home / "runs").iterdir()) == []  # the temporary folder is gone too
    assert registry.list_runs(home=small.home) == []


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_the_clock_is_read_after_each_boosting_round(kind):
    from ml.runner import _Deadline, _fit

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, 8)), columns=[f"f{i}" for i in range(8)])
    y = (X["f0"] + rng.normal(size=2000) > 0).astype("int64").to_numpy()
    model = make_model(kind, "binary", {"n_estimators": 20000, "learning_rate": 0.001})
    with pytest.raises(RunTimeout, match=r"stopped at boosting round \d+ after") as stopped:
        _fit(model, kind, X, y, _Deadline(0.3, time.perf_counter()))
    assert int(re.search(r"boosting round (\d+)", stopped.value.message).group(1)) < 20000  # stopped inside
    assert model.get_params().get("callbacks") is None  # the model keeps no reference to the run


def test_exception_mid_run_removes_the_temporary_folder(small):
    def boom(fraction, stage):
        if stage == "fold 2 of 3: SHAP":
            assert any(p.name.startswith(".tmp-") for p in (small.home / "runs").iterdir())
            raise KeyboardInterrupt  # what a cancel or Ctrl-C looks like inside the run
    with pytest.raises(KeyboardInterrupt):
        run_experiment(SPEC, store=small, progress=boom)
    assert list((small.home / "runs").iterdir()) == []


_CHILD = """
import json, sys, time
from pathlib import Path
from almanac.store import Store
from ml.runner import run_experiment
home, spec, stop_at = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
def progress(f, s):
    if s == stop_at:
        (home / "reached").write_text(s)
        time.sleep(120)
print(run_experiment(spec, store=Store(home), progress=progress)["run_id"])
"""


def _child(home: Path, stop_at: str = "") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(home), json.dumps(SPEC), stop_at], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "ALMANAC_HOME": str(home)})


def test_killed_run_lists_nothing_and_the_next_run_works(small):
    proc = _child(small.home, stop_at="fold 2 of 3: fitting")
    deadline = time.monotonic() + 120
    while not (small.home / "reached").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [p.name[:5] for p in (small.home / "runs").iterdir()] == [".tmp-"]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert registry.list_runs(home=small.home) == []
    assert registry.trial_sharpes("ES", "rest_of_day", home=small.home) == []
    run = run_experiment(SPEC, store=small)
    assert [r["run_id"] for r in registry.list_runs(home=small.home)] == [run["run_id"]]
    assert run["backtest"]["n_trials"] == 1


def test_two_concurrent_runs_both_complete_and_register(small):
    procs = [_child(small.home), _child(small.home)]
    out = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], out
    ids = sorted(o[0].strip() for o in out)
    assert len(set(ids)) == 2
    assert sorted(r["run_id"] for r in registry.list_runs(home=small.home)) == ids
    runs = [registry.get_run(i, home=small.home) for i in ids]
    assert runs[0]["metrics"] == runs[1]["metrics"]  # same spec, same data: same numbers


# ---------------------------------------------------------------- issue 9: warnings and baselines

TWO_FOLDS = {"n_splits": 2, "gap": 2, "min_train": 150}  # two test folds of about 100 days each


def test_a_sound_run_has_no_warnings_and_every_baseline(small):
    run = run_experiment({**SPEC, "validation": TWO_FOLDS}, store=small)
    assert run["warnings"] == [] and run["dropped_features"] == []
    assert all(f["n_test"] >= 100 for f in run["folds"]) and run["backtest"]["trades"] >= 30
    base = run["baselines"]
    assert set(base) == {"always_long", "majority", "prior_day", "lift"}
    # always_long: the backtest of prob 1 on every tradeable out-of-fold day, same cost, same code
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    oof = pd.read_parquet(folder / "oof.parquet").set_index("date")
    rows = ds.loc[oof.index]
    along = backtest(pd.DataFrame({"date": oof.index, "prob": 1.0, "cutoff_price": rows["cutoff_price"].to_numpy(),
                                   "close": rows["close"].to_numpy(), "prev_close": rows["prev_close"].to_numpy()}),
                     threshold=0.5, cost_bps=1.0, long_only=True)
    assert base["always_long"]["stats"] == pytest.approx({k: v for k, v in along.stats.items()
                                                          if k not in ("dsr", "n_trials")}, rel=1e-12)
    assert base["always_long"]["params"] == {"cost_bps": 1.0, "threshold": None, "long_only": True}
    assert base["majority"]["metrics"]["roc_auc"] == 0.5
    assert {"accuracy", "roc_auc", "brier", "log_loss"} <= set(base["prior_day"]["metrics"])
    assert base["prior_day"]["stats"]["days"] == run["n_oof"]
    lift = base["lift"]
    assert lift["sharpe"]["value"] == pytest.approx(run["backtest"]["sharpe"] - along.stats["sharpe"], rel=1e-9)
    assert lift["roc_auc"]["value"] == pytest.approx(run["metrics"]["roc_auc"] - 0.5, abs=1e-12)
    for key in ("sharpe", "roc_auc"):
        assert lift[key]["lo"] <= lift[key]["value"] <= lift[key]["hi"] and lift[key]["level"] == 0.95
    assert lift["bootstrap"] == {"method": "stationary", "block_days": 20, "resamples": 1000, "seed": 0}


def test_short_test_folds_warn(first):
    run, _ = first  # three folds of about 68 days
    assert [w["code"] for w in run["warnings"]] == ["short_test_fold"]
    msg = run["warnings"][0]["message"]
    assert msg.startswith("fold 1 (69 days), fold 2 (68 days), fold 3 (68 days) tested fewer than 100 days: ")
    assert "\n" not in msg and "use fewer splits" in msg


def test_few_trades_warn(small):
    run = run_experiment({**SPEC, "validation": TWO_FOLDS, "backtest": {"threshold": 0.9, "cost_bps": 1.0}},
                         store=small)
    assert [w["code"] for w in run["warnings"]] == ["few_trades"]
    assert run["warnings"][0]["message"].startswith(f"the backtest made only {run['backtest']['trades']} trade(s) "
                                                    "(fewer than 30): ")


def test_class_imbalance_warns(tmp_path):
    """Every session drifts up by 0.6 %: about nine days in ten close above their cutoff price."""
    from bench.synthetic import futures_minutes

    store = Store(tmp_path / "home")
    bars = futures_minutes("2018-07-02", days=DAYS, seed=3, step=5, overnight=False)
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    frac = ((local.dt.hour * 60 + local.dt.minute - 570) / 390).to_numpy()
    for c in ("open", "high", "low", "close"):
        bars[c] = bars[c] * np.exp(0.006 * frac)
    store.write("ES", "1min", bars, source="test")
    run = run_experiment({**SPEC, "features": {"sets": ["early_session", "regime"]}, "validation": TWO_FOLDS},
                         store=store)
    down = 1 - pd.read_parquet(Path(run["path"]) / "dataset.parquet")["y"].mean()
    assert down < 0.2
    imb = [w for w in run["warnings"] if w["code"] == "class_imbalance"]
    assert len(imb) == 1 and imb[0]["message"].startswith(
        f"class(es) below 20% of the {run['n_rows']} labelled days (down {down:.0%}): ")
    assert f"always 'up' scores {1 - down:.0%}" in imb[0]["message"]
    assert run["baselines"]["majority"]["metrics"]["accuracy"] > 0.8  # the baseline that accuracy must beat


def test_empty_features_are_dropped_with_a_warning(tmp_path):
    """VIX has ten daily closes inside the experiment: its 20-day z-score is never defined."""
    store = write_market(tmp_path / "home")
    dates = pd.bdate_range("2019-03-01", periods=10)
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": np.linspace(14, 16, 10)}), source="test")
    run = run_experiment({**SPEC, "validation": TWO_FOLDS}, store=store)
    assert run["dropped_features"] == ["VIX_z20"]
    assert "VIX_z20" not in run["feature_names"] and "VIX_ret_1d" in run["feature_names"]
    assert "VIX_z20" not in pd.read_parquet(Path(run["path"]) / "dataset.parquet").columns
    assert [w["code"] for w in run["warnings"]] == ["empty_features_dropped"]
    assert run["warnings"][0]["message"].startswith("1 feature(s) had no value on any labelled day and were dropped "
                                                    "(VIX_z20): ")


def test_multiclass_and_regression_baselines_fit_the_task(small):
    arch = run_experiment({**SPEC, "label": "archetype", "features": {"sets": ["early_session", "regime"]},
                           "validation": TWO_FOLDS, "model": {"kind": "random_forest", "params": {"n_estimators": 20}}},
                          store=small)
    assert set(arch["baselines"]) == {"majority", "lift"} and set(arch["baselines"]["lift"]) == {"roc_auc", "bootstrap"}
    assert arch["baselines"]["majority"]["metrics"]["class"] in arch["classes"]
    assert [w["code"] for w in arch["warnings"]] == ["class_imbalance"]  # Reversal days are rare
    reg = run_experiment({**SPEC, "label": "forward_return", "validation": TWO_FOLDS,
                          "model": {"kind": "hist_gb", "params": {"max_iter": 30}}}, store=small)
    assert set(reg["baselines"]) == {"always_long", "prior_day", "train_mean", "lift"}
    assert set(reg["baselines"]["lift"]) == {"sharpe", "bootstrap"} and reg["warnings"] == []


def test_shap_rows_are_a_seeded_sorted_sample():
    from ml.runner import SHAP_ROWS_PER_FOLD, shap_rows

    a = shap_rows(400, 2, seed=7, per_fold=100)
    assert len(a) == 100 and len(set(a)) == 100 and (np.diff(a) > 0).all() and 0 <= a[0] and a[-1] < 400
    np.testing.assert_array_equal(a, shap_rows(400, 2, seed=7, per_fold=100))  # same seed and fold: same days
    assert not np.array_equal(a, shap_rows(400, 3, seed=7, per_fold=100))  # another fold: other days
    assert not np.array_equal(a, shap_rows(400, 2, seed=8, per_fold=100))
    np.testing.assert_array_equal(shap_rows(60, 0, seed=7, per_fold=100), np.arange(60))  # fewer: all of them
    assert SHAP_ROWS_PER_FOLD == 100


def test_default_run_records_its_shap_coverage(first):
    run, _ = first  # test folds of about 70 days: every one explained
    assert run["shap"] == {"rows_per_fold": 100, "rows": run["n_oof"], "seed": 0}
    assert "at most 100 sampled test days per fold" in run["importance_note"]


def test_shap_on_sampled_days_is_exact_and_recorded(small, monkeypatch):
    """With fewer SHAP days than a fold tests, each fold explains the seeded sample of its
    test days: LightGBM's own contributions on exactly those days (additivity holds on
    them), mean |SHAP| over them, and run.json says so."""
    import ml.runner
    from ml.runner import shap_rows

    monkeypatch.setattr(ml.runner, "SHAP_ROWS_PER_FOLD", 25)
    run = run_experiment({**SPEC, "seed": 5}, store=small)
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    shap = pd.read_parquet(folder / "shap.parquet")
    base = pd.read_parquet(folder / "shap_base.parquet")
    oof = pd.read_parquet(folder / "oof.parquet")
    names = names_of(run)
    assert run["shap"] == {"rows_per_fold": 25, "rows": 25 * len(run["folds"]), "seed": 5}
    assert "at most 25 sampled test days per fold (75 days, seed 5)" in run["importance_note"]
    for i, fold in enumerate(run["folds"]):
        days = oof.loc[oof["fold"] == fold["fold"], "date"].to_numpy()
        want = days[shap_rows(len(days), i, 5, per_fold=25)]
        mine = shap[shap["fold"] == fold["fold"]]
        np.testing.assert_array_equal(mine["date"].to_numpy(), want)
        dates = ds.index
        tr = (dates >= pd.Timestamp(fold["train_start"])) & (dates <= pd.Timestamp(fold["train_end"]))
        model = make_model("lightgbm", "binary", {"n_estimators": 25}, seed=5).fit(
            ds.loc[tr, names], ds.loc[tr, "y"].astype(int))
        rows = ds.loc[pd.DatetimeIndex(want), names]
        contrib = model.booster_.predict(rows.to_numpy(), pred_contrib=True)
        np.testing.assert_allclose(mine[names].to_numpy(), contrib[:, :-1], atol=1e-10)
        b = base.loc[base["fold"] == fold["fold"], "base_value"].to_numpy()
        np.testing.assert_allclose(mine[names].sum(axis=1).to_numpy() + b, model.predict(rows, raw_score=True),
                                   atol=1e-9)  # additivity on the sampled days
    imp = pd.read_parquet(folder / "importance.parquet").set_index("feature")
    np.testing.assert_allclose(imp.loc[names, "mean_abs_shap"], shap[names].abs().mean(), rtol=1e-12)
    again = run_experiment({**SPEC, "seed": 5}, store=small)
    pd.testing.assert_frame_equal(pd.read_parquet(Path(again["path"]) / "shap.parquet"), shap)  # deterministic


def test_permutation_importance_is_sklearns_with_the_runs_shuffles(first):
    """The last fold's model on its test rows, PERMUTATION_REPEATS shuffles (named in the
    note): computed on demand from the saved last-fold model, the numbers of sklearn's
    permutation_importance with the run's seed on a refit of that fold; cached after."""
    from ml.explain import PERMUTATION_FILE, run_permutation_importance
    from sklearn.inspection import permutation_importance

    from ml.runner import PERMUTATION_REPEATS

    run, _ = first
    folder = Path(run["path"])
    ds = pd.read_parquet(folder / "dataset.parquet")
    names, last = names_of(run), run["folds"][-1]
    tr = (ds.index >= pd.Timestamp(last["train_start"])) & (ds.index <= pd.Timestamp(last["train_end"]))
    te = (ds.index >= pd.Timestamp(last["test_start"])) & (ds.index <= pd.Timestamp(last["test_end"]))
    model = make_model("lightgbm", "binary", {"n_estimators": 25}, seed=0).fit(ds.loc[tr, names],
                                                                             ds.loc[tr, "y"].astype(int))
    ref = permutation_importance(model, ds.loc[te, names], ds.loc[te, "y"].astype(int), scoring="roc_auc",
                                 n_repeats=PERMUTATION_REPEATS, random_state=0, n_jobs=1)
    assert "perm_importance_mean" not in pd.read_parquet(folder / "importance.parquet").columns
    assert not (folder / PERMUTATION_FILE).exists()  # nothing computed before it is asked for
    imp = run_permutation_importance(run["run_id"], home=folder.parent.parent).set_index("feature").loc[names]
    np.testing.assert_allclose(imp["perm_importance_mean"], ref.importances_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(imp["perm_importance_std"], ref.importances_std, rtol=1e-12, atol=1e-15)
    assert (folder / PERMUTATION_FILE).exists()
    again = run_permutation_importance(run["run_id"], home=folder.parent.parent).set_index("feature").loc[names]
    pd.testing.assert_frame_equal(again, imp)
    assert PERMUTATION_REPEATS == 2 and f"{PERMUTATION_REPEATS} shuffles per feature" in run["importance_note"]
    assert run["permutation"]["rows"] == int(te.sum()) and run["permutation"]["repeats"] == PERMUTATION_REPEATS


def test_a_one_core_run_gives_the_same_results(first, market):
    """A study's trial runs on one core (no worker thread): the same numbers and artifacts
    as a run that overlaps SHAP and the final refit with the next stages."""
    run1, _ = first
    run2 = run_experiment(SPEC, store=market, one_core=True)
    for key in ("metrics", "folds", "baselines", "feature_names", "shap"):
        assert run2[key] == run1[key], key
    for name in ("oof.parquet", "shap.parquet", "shap_base.parquet", "importance.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(Path(run1["path"]) / name),
                                      pd.read_parquet(Path(run2["path"]) / name))
    assert run2["final_model"]["sha256"] == run1["final_model"]["sha256"]
    assert run2["permutation"]["model"]["sha256"] == run1["permutation"]["model"]["sha256"]
