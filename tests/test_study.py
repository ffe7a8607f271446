"""Studies (ml.study, almanac.study_spec, cli/study.py) on a tiny random-walk market.

The market is a seeded random walk (bench.synthetic.futures_minutes): no feature can
predict the rest of the day, so whatever the best cross-validated score of a search,
its holdout score must be noise around 0.5 and its DSR low. Trials use few trees and
three folds so each takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from almanac import registry
from almanac.errors import SpecError
from almanac.store import Store
from almanac.study_spec import OBJECTIVE_METRICS, ablation_combinations, study_from_dict, subset_choices

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "name": "tiny",
    "data": {"symbol": "ES", "start": "2018-07-02", "end": "2019-12-31"},
    "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
    "label": {"kind": "rest_of_day"},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
    "validation": {"n_splits": 3, "gap": 1, "min_train": 120},
    "backtest": {"threshold": 0.52, "cost_bps": 1.0},
}
SEARCH = {
    "name": "tiny-search", "kind": "search", "spec": BASE,
    "objective": {"metric": "roc_auc"}, "budget": {"n_trials": 4},
    "holdout": {"start": "2019-08-01"},
    "pruner": {"kind": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
    "search": {"model.kind": {"choice": ["lightgbm", "logistic"]},
               "model.params.learning_rate": {"float": [0.02, 0.3], "log": True},
               "features.sets": {"subsets": ["early_session", "regime"]},
               "backtest.threshold": {"float": [0.5, 0.6]}},
}


def write_market(home: Path) -> Store:
    from bench.synthetic import futures_minutes

    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=390, seed=11, step=5, overnight=False),
                source="test")
    return store


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One search of 4 trials (aggressive pruning) in its own home."""
    from ml.study import run_study

    home = tmp_path_factory.mktemp("home")
    store = write_market(home)
    seen = []
    report = run_study(SEARCH, store, progress=lambda f, s: seen.append((f, s)))
    return home, store, report, seen


def tree(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def cli(home: Path, *args: str, cwd: Path = ROOT, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "almanac", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "ALMANAC_HOME": str(home), **env}, timeout=300)


# ---------------------------------------------------------------------- the study spec


def test_objective_metrics_are_the_ones_the_runner_records():
    from ml.evaluation import scores

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    binary = set(scores("binary", y, rng.random(50))) - {"n", "base_rate", "mean_predicted"}
    assert set(OBJECTIVE_METRICS["binary"]) == binary | {"sharpe"}
    proba = rng.dirichlet([1, 1, 1, 1], 50)
    assert set(OBJECTIVE_METRICS["multiclass"]) == set(scores("multiclass", rng.integers(0, 4, 50), proba)) - {"n"}
    assert set(OBJECTIVE_METRICS["regression"]) == set(scores("regression", rng.normal(size=50),
                                                              rng.normal(size=50))) - {"n"} | {"sharpe"}


def test_subsets_and_ablation_combinations():
    assert subset_choices(["regime", "early_session"]) == ["early_session", "regime", "early_session+regime"]
    assert ablation_combinations(["early_session", "cross_asset", "regime"]) == [
        ["early_session"], ["cross_asset"], ["regime"], ["cross_asset", "regime"], ["early_session", "regime"],
        ["early_session", "cross_asset"], ["early_session", "cross_asset", "regime"]]
    assert ablation_combinations(["early_session", "regime"]) == [["early_session"], ["regime"],
                                                                  ["early_session", "regime"]]


def test_study_keeps_its_base_file_and_direction(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    s = study_from_dict({"name": "x", "base": "configs/es-rest-of-day-lgbm.yaml",
                         "objective": {"metric": "log_loss"},
                         "search": {"model.params.num_leaves": {"int": [4, 64], "log": True}}})
    assert s.objective.direction == "minimize" and s.spec.name == "es-rest-of-day-lgbm"
    assert study_from_dict(s.to_dict()).fingerprint() == s.fingerprint()


# ---------------------------------------------------------------------- a search


def test_every_trial_is_counted(searched):
    home, store, r, seen = searched
    assert r["n_trials"] == 4 and r["n_complete"] + r["n_pruned"] + r["n_failed"] == 4
    assert r["n_pruned"] >= 1  # n_startup_trials 1, no warm-up: some trial is below the median
    complete = [t for t in r["trials"] if t["state"] == "complete"]
    runs = {s["run_id"]: s for s in registry.list_runs(home)}
    assert {t["run_id"] for t in complete} == set(runs)  # every complete trial is a run, nothing else is
    for t in complete:
        run = registry.get_run(t["run_id"], home)
        assert (run["study_id"], run["trial"]) == (r["study_id"], t["number"])
        assert (runs[t["run_id"]]["study_id"], runs[t["run_id"]]["trial"]) == (r["study_id"], t["number"])
        assert t["value"] == pytest.approx(run["metrics"]["roc_auc"], rel=1e-12)
    for t in r["trials"]:
        if t["state"] == "pruned":
            assert t["run_id"] is None and 1 <= len(t["intermediate"]) < 3  # stopped before the last fold
    # the DSR of every run on ES / rest_of_day counts every trial of the study, pruned ones included
    from ml.trials import current_trials, deflated

    run = registry.get_run(complete[0]["run_id"], home)
    trials = current_trials(run, home)
    assert len(trials) == 4 and sum(math.isnan(x) for x in trials) >= r["n_pruned"]
    assert deflated(run, home)["n_trials"] == 4
    ledger = sorted(json.loads(p.read_text())["state"] for p in (Path(r["path"]) / "trials").glob("*.json"))
    assert ledger == sorted(t["state"] for t in r["trials"])
    assert r["best"]["value"] == max(t["value"] for t in complete)
    assert any("trial 4/4 · best" in s for _, s in seen)


def test_searched_parameters_reach_the_trials_spec(searched):
    home, _, r, _ = searched
    for t in r["trials"]:
        if t["state"] != "complete":
            continue
        spec = registry.get_run(t["run_id"], home)["spec"]
        p = t["params"]
        assert spec["model"]["kind"] == p["model.kind"]
        assert spec["features"]["sets"] == p["features.sets"].split("+")
        assert spec["backtest"]["threshold"] == pytest.approx(p["backtest.threshold"])
        assert spec["data"]["end"] == "2019-07-31"  # no trial sees the holdout
        lr = spec["model"]["params"].get("learning_rate")
        assert lr == (pytest.approx(p["model.params.learning_rate"]) if p["model.kind"] == "lightgbm" else None)
        # the base spec's own parameters stay where the model kind has them
        assert spec["model"]["params"].get("n_estimators") == (20 if p["model.kind"] == "lightgbm" else None)


def test_no_signal_holdout_is_noise_and_dsr_low(searched):
    home, store, r, _ = searched
    h = r["holdout"]
    assert (h["start"], h["metric"], h["n_trials"]) == ("2019-08-01", "roc_auc", 4)
    assert h["cv_value"] == r["best"]["value"] and h["train_end"] < "2019-08-01"
    # independent check: refit the winner's spec on the days before the holdout, score with sklearn
    from ml.runner import holdout_predictions
    from ml.study import trial_spec
    from almanac.study_spec import study_from_dict as sfd

    d, _ = trial_spec(sfd(SEARCH), r["best"]["params"], 0)
    d["data"]["end"] = "2019-12-31"
    out = holdout_predictions(d, "2019-08-01", store)
    y = out["rows"]["y"].to_numpy()
    assert h["value"] == pytest.approx(roc_auc_score(y, out["pred"]), rel=1e-12) and h["days"] == len(y)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    se = math.sqrt((0.25 + (n1 - 1) * (1 / 12) + (n0 - 1) * (1 / 12)) / (n1 * n0))  # Hanley-McNeil at AUC 0.5
    assert abs(h["value"] - 0.5) < 3 * se
    assert h["dsr"] is not None and h["dsr"] < 0.5


def test_rerun_resumes_the_same_study_and_proposes_the_same_trials(searched, tmp_path):
    from ml.study import run_study

    home, store, r, _ = searched
    again = run_study(SEARCH, store)  # same name, same data: resumed, budget already spent
    assert again["study_id"] == r["study_id"] and again["n_trials"] == 4
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in r["trials"]]
    # a larger budget extends the same study
    more = run_study({**SEARCH, "budget": {"n_trials": 5}}, store)
    assert more["study_id"] == r["study_id"] and more["n_trials"] == 5
    # another home, same data: the seeded sampler proposes the same first trials
    other = write_market(tmp_path / "other")
    fresh = run_study({**SEARCH, "budget": {"n_trials": 2}}, other)
    assert [t["params"] for t in fresh["trials"]] == [t["params"] for t in r["trials"][:2]]


def test_cli_show_list_json_and_runs_list(searched):
    home, _, r, _ = searched
    show = cli(home, "study", "show", r["study_id"], "--json")
    assert show.returncode == 0, show.stderr
    got = json.loads(show.stdout)
    for key in ("study_id", "path", "kind", "n_trials", "n_complete", "n_pruned", "n_failed", "best", "holdout",
                "trials"):
        assert key in got
    assert set(got["best"]) >= {"trial", "run_id", "value", "params"}
    assert set(got["holdout"]) >= {"start", "end", "metric", "value", "sharpe", "dsr", "n_trials"}
    assert {k for t in got["trials"] for k in t} >= {"number", "state", "value", "params", "run_id"}
    listed = json.loads(cli(home, "study", "list", "--json").stdout)
    assert [s["study_id"] for s in listed] == [r["study_id"]]
    runs = json.loads(cli(home, "runs", "list", "--json").stdout)
    assert {(x["study_id"], x["trial"]) for x in runs} == {(r["study_id"], t["number"]) for t in got["trials"]
                                                           if t["state"] == "complete"}
    assert {x["n_trials"] for x in runs} == {got["n_trials"]}


# ---------------------------------------------------------------------- refusals


def _study_file(tmp_path: Path, study: dict) -> Path:
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(study, sort_keys=False))
    return p


def _with(path: str, value) -> dict:
    s = json.loads(json.dumps(SEARCH))
    node = s
    *parents, last = path.split("/")
    for k in parents:
        node = node[k]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return s


BAD = [
    (_with("search/model.parms.learning_rate", {"float": [0.1, 0.2]}),
     "study field search.model.parms.learning_rate: 'model.parms.learning_rate' is not a path a search can vary"),
    (_with("search/model.params.num_levels", {"int": [2, 8]}),
     "study field search.model.params.num_levels: no model kind of this search (lightgbm, logistic) has a "
     "parameter 'num_levels'"),
    (_with("search/backtest.threshold", {"float": [0.7, 0.6]}),
     "study field search.backtest.threshold: low 0.7 is above high 0.6"),
    (_with("search/model.params.learning_rate", {"float": [0.0, 0.2], "log": True}),
     "study field search.model.params.learning_rate: log: true needs bounds above 0, got low 0.0"),
    (_with("search/features.cutoff", {"choice": []}), "study field search.features.cutoff: the choice is empty"),
    (_with("budget/n_trials", 0), "study field budget.n_trials: 0 is out of range: use at least 1"),
    (_with("holdout/start", "2019-01-15"), "study field holdout.start: 2019-01-15 leaves too few days before it"),
    (_with("objective/metric", "ic"), "study field objective.metric: 'ic' is not produced by the rest_of_day "
                                      "label (binary)"),
    (_with("search/features.cutoff", {"choice": ["10:15", "19:30"]}),
     "study field search.features.cutoff: the value '19:30' makes the base spec invalid"),
]


@pytest.mark.parametrize("study,message", BAD, ids=[m.split(":")[0][12:] + str(i) for i, (_, m) in enumerate(BAD)])
def test_bad_studies_are_refused_before_anything_is_written(tmp_path, study, message):
    home = tmp_path / "home"
    write_market(home)
    before = tree(home)
    p = _study_file(tmp_path, study)
    out = cli(home, "study", "run", "--config", str(p))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message), out.stderr
    assert tree(home) == before and not (home / "studies").exists()


def test_jobs_above_the_limit_are_refused(tmp_path):
    home = tmp_path / "home"
    write_market(home)
    before = tree(home)
    out = cli(home, "study", "run", "--config", str(_study_file(tmp_path, SEARCH)), "--jobs", "3",
              ALMANAC_MAX_STUDY_JOBS="2")
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: --jobs 3 is more than the 2 worker processes a study may use (ALMANAC_MAX_STUDY_JOBS): lower --jobs "
        "or raise ALMANAC_MAX_STUDY_JOBS")
    assert tree(home) == before


def test_archetype_has_no_sharpe_objective(tmp_path):
    s = _with("objective/metric", "sharpe")
    s["spec"] = {**BASE, "label": {"kind": "archetype"}}
    with pytest.raises(SpecError, match="'sharpe' is not produced by the archetype label"):
        study_from_dict(s)


def test_a_budget_above_the_limit_is_refused_quickly(tmp_path):
    home = tmp_path / "home"
    write_market(home)
    before = tree(home)
    p = _study_file(tmp_path, _with("budget/n_trials", 10**9))
    code = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            f"p = subprocess.run([sys.executable, '-m', 'almanac', 'study', 'run', '--config', {str(p)!r}], "
            "capture_output=True, text=True); "
            "print(p.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "print(p.stderr.strip())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_MAX_STUDY_TRIALS": "500"})
    first, err = out.stdout.strip().splitlines()
    rc, seconds, rss_kb = first.split()
    assert rc == "2" and err == ("error: study field budget.n_trials: 1000000000 is more than the 500 trials a "
                                 "study may run (ALMANAC_MAX_STUDY_TRIALS): lower n_trials or raise "
                                 "ALMANAC_MAX_STUDY_TRIALS")
    assert float(seconds) < 10 and int(rss_kb) < 600 * 1024
    assert tree(home) == before


# ---------------------------------------------------------------------- ablation, jobs, delete


def test_ablation_table(tmp_path):
    from ml.study import run_study

    store = write_market(tmp_path / "home")
    abl = {"name": "tiny-ablation", "kind": "ablation", "spec": BASE, "objective": {"metric": "roc_auc"}}
    r = run_study(abl, store)
    rows = r["ablation"]
    assert [a["sets"] for a in rows] == [["early_session"], ["regime"], ["early_session", "regime"]]
    assert r["n_complete"] == 3 and r["holdout"] is None
    full = rows[-1]
    assert full["delta_vs_full"] == 0.0
    for a in rows:
        oof = registry.read_artifact(a["run_id"], "oof.parquet", store.home)
        assert a["value"] == pytest.approx(roc_auc_score(oof["y"], oof["prob"]), rel=1e-9)
        assert a["ci_low"] <= a["value"] <= a["ci_high"]
        assert a["delta_vs_full"] == pytest.approx(a["value"] - full["value"], abs=1e-12)
        assert registry.get_run(a["run_id"], store.home)["spec"]["features"]["sets"] == a["sets"]


def test_two_jobs_share_the_study(tmp_path):
    from ml.study import run_study

    store = write_market(tmp_path / "home")
    s = {**SEARCH, "name": "tiny-jobs", "budget": {"n_trials": 3}, "pruner": {"kind": "none"}}
    r = run_study(s, store, jobs=2)
    assert r["n_trials"] == 3 and r["n_complete"] == 3  # the shared budget is not overshot
    assert sorted(t["number"] for t in r["trials"]) == [0, 1, 2]
    assert len(registry.list_runs(store.home)) == 3
    assert not list((store.home / "runs").glob(".tmp-*"))


def test_delete_asks_then_removes_the_study_and_its_runs(tmp_path):
    from ml.study import run_study

    store = write_market(tmp_path / "home")
    r = run_study({**SEARCH, "name": "tiny-delete", "budget": {"n_trials": 2}, "holdout": None,
                   "pruner": {"kind": "none"}}, store)
    home = store.home
    refused = cli(home, "study", "delete", r["study_id"])
    assert refused.returncode == 2 and "pass --yes" in refused.stderr
    assert len(registry.list_runs(home)) == 2
    ok = cli(home, "study", "delete", r["study_id"], "--yes")
    assert ok.returncode == 0 and ok.stdout.strip() == f"deleted {r['study_id']} and 2 run(s)"
    assert registry.list_runs(home) == [] and not Path(r["path"]).exists()


def test_interrupt_keeps_completed_trials_and_resume_finishes(tmp_path):
    import signal
    import time

    home = tmp_path / "home"
    write_market(home)
    s = {**SEARCH, "name": "tiny-interrupt", "budget": {"n_trials": 3}, "holdout": None, "pruner": {"kind": "none"}}
    p = _study_file(tmp_path, s)
    proc = subprocess.Popen([sys.executable, "-m", "almanac", "study", "run", "--config", str(p)], cwd=ROOT,
                            env={**os.environ, "ALMANAC_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while time.time() - t0 < 120 and not list(home.glob("studies/*/trials/0.json")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "completed trials are kept" in err, err
    assert not list((home / "runs").glob(".tmp-*"))
    kept = registry.list_runs(home)
    assert 1 <= len(kept) <= 3
    done = cli(home, "study", "run", "--config", str(p), "--json")
    assert done.returncode == 0, done.stderr
    r = json.loads(done.stdout)
    assert r["n_trials"] == 3 and r["n_complete"] == 3
    assert {x["run_id"] for x in kept} <= {t["run_id"] for t in r["trials"]}


@pytest.mark.parametrize("name", ["es-lgbm-search.yaml", "es-ablation.yaml"])
def test_the_shipped_study_files_are_valid(name, monkeypatch):
    from almanac.study_spec import load_study

    monkeypatch.chdir(ROOT)
    s = load_study(ROOT / "configs" / name)
    assert s.spec.name == "es-rest-of-day-lgbm" and s.holdout.start.isoformat() == "2017-01-01"
    assert s.trial_spec_dict()["data"]["end"] == "2016-12-31"


def test_a_close_whose_reply_was_lost_keeps_its_run(tmp_path, monkeypatch, caplog):
    """Redis went away after the trial's close reached it but before the reply came back (the
    scale test's outage, once in a while): tried again, the close finds its own trial complete with
    its run, keeps the run and writes the ledger, instead of taking itself for a stale trial."""
    import redis

    import ml.study as ms
    from ml import trials

    store = write_market(tmp_path / "home")
    real_close, lost = ms._close, []

    def close_then_lose_the_reply(*a, **k):
        out = real_close(*a, **k)
        if not lost:
            lost.append(out)
            (Path(a[2]) / trials.LEDGER_DIR / f"{a[3]}.json").unlink()  # the attempt broke before its ledger
            raise redis.exceptions.ConnectionError("Connection closed by server.")
        return out

    monkeypatch.setattr(ms, "_close", close_then_lose_the_reply)
    # the record step waits for Redis (ml.scale.while_away) as on a Redis study; the rest stays local
    monkeypatch.setattr(ms, "is_redis", lambda folder: sys._getframe(1).f_code.co_name == "_run_trial")
    r = ms.run_study({**SEARCH, "name": "tiny-lost-reply", "budget": {"n_trials": 1}, "holdout": None,
                      "pruner": {"kind": "none"}}, store)
    [t] = r["trials"]
    assert lost and lost[0]["state"] == "complete" and t["state"] == "complete"
    assert [x["run_id"] for x in registry.list_runs(store.home)] == [t["run_id"]] == [lost[0]["run_id"]]
    entry = json.loads((Path(r["path"]) / trials.LEDGER_DIR / "0.json").read_text())
    assert (entry["state"], entry["run_id"], entry["value"]) == ("complete", t["run_id"], t["value"])
    assert "failed as stale" not in caplog.text
