"""ml.ensemble and ``python -m almanac ensemble``: runs combined into a new run.

One small synthetic market (5-minute regular-session bars, 330 days) and a few tiny runs
trained once per module (three folds, few trees). Every number is checked against an
independent recomputation (numpy averages, scikit-learn's LogisticRegression and AUC).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from almanac import registry
from almanac.errors import AlmanacError
from almanac.store import Store
from cli import main
from ml import ensemble, persist
from ml.runner import run_experiment
from ml.trials import trial_sharpes
from tests.conftest import texts

ROOT = Path(__file__).resolve().parent.parent
BASE = {"name": "ens-lgbm", "data": {"symbol": "ES"},
        "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
        "label": {"kind": "rest_of_day"}, "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
        "validation": {"n_splits": 3, "gap": 1, "min_train": 150},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0}}


def variant(**changes) -> dict:
    spec = copy.deepcopy(BASE)
    for path, value in changes.items():
        section, _, key = path.partition("__")
        if key:
            spec[section][key] = value
        else:
            spec[section] = value
    return spec


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """(home, {name: run record}) of the runs every test combines."""
    from bench.synthetic import futures_minutes

    home = tmp_path_factory.mktemp("ens") / "home"
    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=330, seed=5, step=5, overnight=False),
                source="test")
    specs = {
        "lgbm": BASE,
        "logistic": variant(name="ens-logistic", model={"kind": "logistic", "params": {"C": 0.1}},
                            features__sets=["early_session"]),
        "direction": variant(name="ens-direction", label={"kind": "direction"}),
        "gap2": variant(name="ens-gap2", validation__gap=2),
        "reg_lgbm": variant(name="ens-reg-lgbm", label={"kind": "forward_return"}),
        "reg_logistic": variant(name="ens-reg-lin", label={"kind": "forward_return"},
                                model={"kind": "hist_gb", "params": {"max_iter": 20}}),
        "multi_lgbm": variant(name="ens-arch-lgbm", label={"kind": "archetype"}),
        "multi_logistic": variant(name="ens-arch-logistic", label={"kind": "archetype"},
                                  model={"kind": "logistic", "params": {"C": 0.1}}),
    }
    runs = {k: run_experiment(s, store=store) for k, s in specs.items()}
    return home, runs


def state(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def oof(run) -> pd.DataFrame:
    return pd.read_parquet(Path(run["path"]) / "oof.parquet")


def make(lab, *names, method="mean"):
    home, runs = lab
    return ensemble.make_ensemble([runs[n]["run_id"] for n in names], method=method, store=Store(home))


def test_an_ensemble_of_one_run_is_that_run(lab):
    home, runs = lab
    part = runs["lgbm"]
    ens = make(lab, "lgbm")
    assert ens["run_id"] != part["run_id"] and ens["kind"] == "ensemble"
    a, b = oof(part), oof(ens)  # the ensemble's oof also has its parts' regimes
    pd.testing.assert_frame_equal(a, b.drop(columns="regime"), check_exact=True)
    assert ens["metrics"] == part["metrics"]
    assert [{k: v for k, v in f.items()} for f in ens["folds"]] == part["folds"]
    for key in ("sharpe", "total_return", "trades", "max_drawdown", "win_rate", "days"):
        assert ens["backtest"][key] == part["backtest"][key], key
    assert ens["baselines"] == part["baselines"]
    # the same fold dates and seed, so the same regimes; the per-regime scores are the ensemble's own
    from ml import run_regimes

    part_run, part_oof = run_regimes.ensure(part["run_id"], home)  # fitted on first view (no hmm_regime)
    assert {k: v for k, v in ens["regimes"].items() if k not in ("scores", "backtest")} == part_run["regimes"]
    np.testing.assert_array_equal(b["regime"].to_numpy(), part_oof["regime"].to_numpy())
    assert sum(r["n"] for r in ens["regimes"]["scores"]) == (b["regime"] >= 0).sum()
    shutil_rm(ens)


def shutil_rm(run) -> None:
    registry.delete_run(run["run_id"], home=Path(run["path"]).parent.parent)


def test_mean_is_the_hand_average_and_scored_on_it(lab):
    home, runs = lab
    ens = make(lab, "lgbm", "logistic")
    a, b, e = oof(runs["lgbm"]), oof(runs["logistic"]), oof(ens)
    np.testing.assert_array_equal(e["prob"].to_numpy(), (a["prob"].to_numpy() + b["prob"].to_numpy()) / 2)
    assert ens["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(e["y"], e["prob"]), abs=1e-12)
    # the features of both parts, each once, the first part's first
    assert ens["feature_names"][:len(runs["lgbm"]["feature_names"])] == runs["lgbm"]["feature_names"]
    assert set(ens["feature_names"]) == set(runs["lgbm"]["feature_names"]) | set(runs["logistic"]["feature_names"])
    assert [p["run_id"] for p in ens["ensemble"]["parts"]] == [runs["lgbm"]["run_id"], runs["logistic"]["run_id"]]
    # the final model: the mean of the parts' final models on any day
    data = pd.read_parquet(Path(ens["path"]) / "dataset.parquet")
    rows = data[ens["feature_names"]].iloc[-5:]
    model = ensemble.EnsembleModel.load(Path(ens["path"]) / "model")
    want = np.mean([persist.load_model(Path(r["path"]) / "model", r["final_model"]).predict_proba(
        rows[r["feature_names"]])[:, 1] for r in (runs["lgbm"], runs["logistic"])], axis=0)
    np.testing.assert_allclose(model.predict_proba(rows)[:, 1], want, rtol=0, atol=1e-15)
    shutil_rm(ens)


def test_regression_parts_are_averaged_and_stacking_them_is_refused(lab):
    home, runs = lab
    ens = make(lab, "reg_lgbm", "reg_logistic")
    a, b, e = oof(runs["reg_lgbm"]), oof(runs["reg_logistic"]), oof(ens)
    np.testing.assert_array_equal(e["pred"].to_numpy(), (a["pred"].to_numpy() + b["pred"].to_numpy()) / 2)
    assert ens["backtest"] is not None and ens["task"] == "regression"
    shutil_rm(ens)
    before = state(home)
    with pytest.raises(AlmanacError, match=r"^stacking needs a classification label; forward_return is "
                                           r"regression: use --method mean$"):
        make(lab, "reg_lgbm", "reg_logistic", method="stack")
    assert state(home) == before


def test_each_folds_stacker_learns_only_from_days_before_its_test_start_minus_the_gap(lab):
    home, runs = lab
    ens = make(lab, "lgbm", "logistic", method="stack")
    folds = ens["folds"]
    record = ens["ensemble"]["folds"]
    a, b, e = oof(runs["lgbm"]), oof(runs["logistic"]), oof(ens)
    dates = pd.DatetimeIndex(e["date"])
    assert record[0]["method"] == "mean" and record[0]["n_rows"] == 0
    np.testing.assert_array_equal(e["prob"][e["fold"] == 0], ((a["prob"] + b["prob"]) / 2)[e["fold"] == 0])
    P = np.column_stack([a["prob"], b["prob"]])
    y = e["y"].to_numpy()
    stacked = [r for r in record if r["method"] == "stack"]
    assert [r["fold"] for r in stacked] == [1, 2]
    for r in stacked:
        f = folds[r["fold"]]
        # the stacker's last day lies before the fold's test start, `gap` (1) trading days before it at least
        assert pd.Timestamp(r["last_day"]) <= pd.Timestamp(f["train_end"]) < pd.Timestamp(f["test_start"])
        n_before_test = int((dates < pd.Timestamp(f["test_start"])).sum())
        assert r["n_rows"] == n_before_test - 1  # gap 1: the last out-of-fold day before the test is purged
        # an independent fit on those rows reproduces the fold's predictions
        rows = np.asarray(dates <= pd.Timestamp(f["train_end"]))
        z = np.log(np.clip(P, 1e-6, 1 - 1e-6) / (1 - np.clip(P, 1e-6, 1 - 1e-6)))
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(z[rows], y[rows].astype(int))
        test = (e["fold"] == r["fold"]).to_numpy()
        np.testing.assert_allclose(e["prob"][test], lr.predict_proba(z[test])[:, 1], rtol=0, atol=1e-12)
        # leakage: rewriting every outcome from the purged day on leaves the fold's predictions unchanged
        future = ~rows
        y_changed = y.copy()
        y_changed[future] = 1 - y_changed[future]
        out, _ = ensemble.stacked_oof(list(P.T), y_changed, e["fold"].to_numpy(), dates, folds)
        np.testing.assert_array_equal(out[test], e["prob"].to_numpy()[test])
    assert ens["ensemble"]["stacker"]["coef"] == pytest.approx(
        list(LogisticRegression(C=1.0, max_iter=1000).fit(np.log(np.clip(P, 1e-6, 1 - 1e-6) / (1 - np.clip(P, 1e-6, 1 - 1e-6))),
                                           y.astype(int)).coef_[0]), abs=1e-9)
    assert "first fold" in ens["ensemble"]["note"]
    shutil_rm(ens)


def test_json_shape_and_the_trial_count(lab, monkeypatch, capsys):
    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    before = len(trial_sharpes("ES", "rest_of_day", home))
    assert main(["runs", "show", "--json", runs["lgbm"]["run_id"]]) == 0
    train_keys = set(json.loads(capsys.readouterr().out))
    ids = f"{runs['lgbm']['run_id']},{runs['logistic']['run_id']}"
    assert main(["ensemble", "--runs", ids, "--method", "stack", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) - train_keys == {"kind", "ensemble"} and train_keys <= set(out)
    assert len(trial_sharpes("ES", "rest_of_day", home)) == before + 1
    assert out["backtest"]["n_trials"] == before + 1
    assert [f["fold"] for f in out["folds"]] == [1, 2, 3]
    assert main(["runs", "list", "--json"]) == 0
    listed = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed[out["run_id"]]["model"] == "ensemble"
    assert main(["runs", "show", out["run_id"]]) == 0
    assert f"\nensemble stack of {runs['lgbm']['run_id']}, {runs['logistic']['run_id']}\n" in capsys.readouterr().out
    registry.delete_run(out["run_id"], home=home)


REFUSALS = {
    "label": ("lgbm", "direction", "differ in label (rest_of_day vs direction)"),
    "fold dates": ("lgbm", "gap2", "differ in fold 1 test_start ("),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_incompatible_runs_are_refused_in_one_line_and_nothing_is_written(lab, monkeypatch, capsys, case):
    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    a, b, text = REFUSALS[case]
    before = state(home)
    code = main(["ensemble", "--runs", f"{runs[a]['run_id']},{runs[b]['run_id']}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: runs {runs[a]['run_id']} and {runs[b]['run_id']} {text}")
    assert err.rstrip().endswith("an ensemble needs runs with the same symbol, label, cutoff and fold dates")
    assert state(home) == before


def test_other_refusals(lab, monkeypatch, capsys):
    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    rid = runs["lgbm"]["run_id"]
    ens = make(lab, "lgbm")
    before = state(home)
    cases = {
        f"{rid},{rid}": f"error: run {rid} is listed twice: list each part once",
        f"{rid},nope-1": f"error: no run nope-1 in {home / 'runs'}: list the runs with `python -m almanac runs list`",
        f"{rid},../x": "error: '../x' is not a run id",
        f"{ens['run_id']},{rid}": f"error: run {ens['run_id']} is an ensemble: build the new ensemble from its "
                                  f"parts ({rid})",
        ",": "error: no runs given: pass --runs A,B",
        ",".join(f"r{i}" for i in range(14)): "error: 14 runs given: an ensemble combines at most 13 (its bundle "
                                              "holds each part's model); choose fewer",
    }
    for runs_arg, message in cases.items():
        code = main(["ensemble", "--runs", runs_arg])
        out, err = capsys.readouterr()
        assert code == 2 and out == "" and len(err.splitlines()) == 1, err
        assert err.startswith(message), err
    assert state(home) == before
    shutil_rm(ens)


def test_a_refusal_is_fast_and_small_in_a_subprocess(lab):
    home, runs = lab
    before = state(home)
    rss = home.parent / "rss.txt"
    cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m", "almanac", "ensemble", "--runs",
           f"{runs['lgbm']['run_id']},{runs['direction']['run_id']}", "--method", "stack"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "ALMANAC_HOME": str(home)})
    assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and "differ in label" in out.stderr
    assert int(rss.read_text().split()[-1]) / 1024 < 600
    assert state(home) == before


def test_the_bundle_holds_the_parts_and_predicts_what_the_final_model_does(lab, tmp_path, monkeypatch):
    from ml.export import export_run, load_bundle, predictions
    from ml.serving import load_served

    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    ens = make(lab, "lgbm", "logistic", method="stack")
    path = export_run(ens["run_id"], tmp_path)
    import zipfile

    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        card = zf.read("README.md").decode()
    assert names == {"metadata.json", "README.md", "MANIFEST.sha256", "model/ensemble.json",
                     "model/part-1-model.txt", "model/part-2-model.skops"}
    assert "## Parts (an ensemble)" in card and runs["logistic"]["run_id"] in card
    bundle = load_bundle(path)
    assert bundle.metadata["ensemble"]["stacker"] == ens["ensemble"]["stacker"]
    data = pd.read_parquet(Path(ens["path"]) / "dataset.parquet")
    rows = data[ens["feature_names"]].iloc[-4:]
    final = ensemble.load_final(Path(ens["path"]) / "model", ens["final_model"])
    want = final.predict_proba(rows)[:, 1]
    got = predictions(bundle, rows.reset_index())
    np.testing.assert_allclose(got["prob"].to_numpy(), want, rtol=0, atol=1e-12)
    # by hand: the final stacker on the logit of the two parts' final models' P(up)
    st = ens["ensemble"]["stacker"]
    z = st["intercept"] + sum(c * np.log(np.clip(p, 1e-6, 1 - 1e-6) / (1 - np.clip(p, 1e-6, 1 - 1e-6)))
                              for c, p in zip(st["coef"], [
                                  persist.load_model(Path(r["path"]) / "model", r["final_model"]).predict_proba(
                                      rows[r["feature_names"]])[:, 1] for r in (runs["lgbm"], runs["logistic"])]))
    np.testing.assert_allclose(want, 1 / (1 + np.exp(-z)), rtol=0, atol=1e-12)
    # the prediction service loads an ensemble run too
    served = load_served(ens["run_id"], home)
    np.testing.assert_allclose(served.bundle.predictor.predict_proba_up(rows).to_numpy(), want, rtol=0, atol=1e-15)
    shutil_rm(ens)


def test_multiclass_parts_are_averaged_class_by_class(lab):
    home, runs = lab
    ens = make(lab, "multi_lgbm", "multi_logistic")
    cols = [f"prob_{c}" for c in runs["multi_lgbm"]["classes"]]
    a, b, e = oof(runs["multi_lgbm"]), oof(runs["multi_logistic"]), oof(ens)
    np.testing.assert_array_equal(e[cols].to_numpy(), (a[cols].to_numpy() + b[cols].to_numpy()) / 2)
    np.testing.assert_allclose(e[cols].sum(axis=1), 1.0, atol=1e-12)
    assert ens["backtest"] is None and ens["backtest_note"] == runs["multi_lgbm"]["backtest_note"]
    assert ens["metrics"]["accuracy"] == pytest.approx(
        float((e[cols].to_numpy().argmax(axis=1) == e["y"].to_numpy()).mean()), abs=1e-12)
    shutil_rm(ens)


def test_models_page_makes_an_ensemble_or_says_in_red_which_field_differs(lab, page_module, monkeypatch):
    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    page = page_module("models")
    rows = [{"run_id": runs["lgbm"]["run_id"]}, {"run_id": runs["logistic"]["run_id"]}]
    assert page.ensemble_state(rows[:1]) is True and page.ensemble_state(rows) is False
    before = {r["run_id"] for r in registry.list_runs(home)}
    alert, rev = page.make_ensemble(1, rows, "stack", 3)
    made = {r["run_id"] for r in registry.list_runs(home)} - before
    assert rev == 4 and len(made) == 1 and alert.color == "success"
    rid = made.pop()
    assert rid in texts(alert) and "stack of 2 runs, AUC" in texts(alert)
    registry.delete_run(rid, home=home)
    state_before = state(home)
    alert, rev = page.make_ensemble(1, [rows[0], {"run_id": runs["direction"]["run_id"]}], "mean", 3)
    assert alert.color == "danger" and rev is dash_no_update()
    assert "differ in label" in texts(alert)
    assert state(home) == state_before


def dash_no_update():
    from dash import no_update

    return no_update


def test_permutation_importance_of_an_ensemble_of_one_is_the_parts(lab, monkeypatch):
    from ml.explain import run_permutation_importance

    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    ens = make(lab, "logistic")
    assert ens["permutation"]["model"]["kind"] == "ensemble"
    assert {k: v for k, v in ens["permutation"].items() if k not in ("model", "folder")} == \
        {k: v for k, v in runs["logistic"]["permutation"].items() if k not in ("model", "folder")}
    got = run_permutation_importance(ens["run_id"], home=home).set_index("feature").sort_index()
    want = run_permutation_importance(runs["logistic"]["run_id"], home=home).set_index("feature").sort_index()
    pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-12, rtol=0)
    assert "permutation importance: the last fold's ensemble" in ens["importance_note"]
    shutil_rm(ens)


def test_multiclass_stacking_is_multinomial_per_fold_and_the_bundle_agrees(lab, tmp_path, monkeypatch):
    from ml.export import export_run, load_bundle, predictions

    home, runs = lab
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    ens = make(lab, "multi_lgbm", "multi_logistic", method="stack")
    classes = runs["multi_lgbm"]["classes"]
    cols = [f"prob_{c}" for c in classes]
    a, b, e = oof(runs["multi_lgbm"]), oof(runs["multi_logistic"]), oof(ens)
    dates = pd.DatetimeIndex(e["date"])
    X = np.hstack([np.log(np.clip(f[cols].to_numpy(), 1e-6, 1)) for f in (a, b)])  # log-probabilities, part by part
    y = e["y"].to_numpy().astype(int)
    for r in ens["ensemble"]["folds"]:
        test = (e["fold"] == r["fold"]).to_numpy()
        f = ens["folds"][r["fold"]]
        rows = np.asarray(dates <= pd.Timestamp(f["train_end"]))
        if r["method"] == "mean":
            np.testing.assert_array_equal(e.loc[test, cols].to_numpy(),
                                          (a.loc[test, cols].to_numpy() + b.loc[test, cols].to_numpy()) / 2)
            continue
        assert pd.Timestamp(r["last_day"]) < pd.Timestamp(f["test_start"])
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(X[rows], y[rows])
        np.testing.assert_allclose(e.loc[test, cols].to_numpy(), lr.predict_proba(X[test]), rtol=0, atol=1e-9)
    assert ens["ensemble"]["folds"][0]["method"] == "mean"
    path = export_run(ens["run_id"], tmp_path)
    bundle = load_bundle(path)
    data = pd.read_parquet(Path(ens["path"]) / "dataset.parquet")
    rows = data[ens["feature_names"]].iloc[-3:]
    want = ensemble.load_final(Path(ens["path"]) / "model", ens["final_model"]).predict_proba(rows)
    got = predictions(bundle, rows.reset_index())
    np.testing.assert_allclose(got[cols].to_numpy(), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(want.sum(axis=1), 1.0, atol=1e-12)
    shutil_rm(ens)
