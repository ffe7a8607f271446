"""The /train page without a browser: job state (status files, run, cancel), form → spec,
and the callbacks as plain functions."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from dash import no_update

from almanac.errors import SpecError
from pages._components import jobs

TOKEN = "0123456789abcdef0123456789abcdef"


# ----------------------------------------------------------------------------- job ids and status files
def test_job_id_is_token_and_click_and_refuses_anything_else():
    assert jobs.job_id_for(TOKEN, 3) == f"{TOKEN}-3"
    assert jobs.job_id_for(TOKEN.upper(), 1) == f"{TOKEN}-1"
    for bad in ("../../etc", "", "xyz", TOKEN + "/.."):
        with pytest.raises(Exception):
            jobs.job_id_for(bad, 1)
    with pytest.raises(Exception):
        jobs.status_path("../evil-1")


def test_status_folder_is_private_and_inside_the_home(home):
    path = jobs.status_path(f"{TOKEN}-1")
    assert path.parent == home / "jobs" / "status"
    assert (path.parent.stat().st_mode & 0o777) == 0o700


def test_queued_status_never_overwrites_the_jobs_own_status(home):
    job = f"{TOKEN}-1"
    assert jobs.create_status(job) is True
    assert jobs.read_status(job)["state"] == "queued"
    assert jobs.create_status(job) is False  # second submit of the same click: no change
    jobs.write_status(job, state="running", stage="fold 1 of 5: fitting", pid=os.getpid())
    assert jobs.create_status(job) is False
    status = jobs.read_status(job)
    assert (status["state"], status["stage"]) == ("running", "fold 1 of 5: fitting")
    assert sorted(p.name for p in (home / "jobs" / "status").iterdir()) == [f"{job}.json"]  # no temp files left


def test_unknown_job_reads_as_none(home):
    assert jobs.read_status(None) is None
    assert jobs.read_status(f"{TOKEN}-9") is None
    assert jobs.read_status("not-an-id") is None


# ----------------------------------------------------------------------------- run_job
def test_run_job_reports_every_new_stage_and_records_the_run(home):
    job = f"{TOKEN}-1"
    seen = []

    def runner(spec, progress):
        for i, stage in enumerate(["building features", "fold 1 of 2: fitting", "fold 2 of 2: fitting"]):
            progress(i / 3, stage)
            seen.append({k: jobs.read_status(job)[k] for k in ("state", "stage", "fraction", "pid")})
        return {"run_id": "20261122-081500-es-rest-of-day-lightgbm-1a2b3c", "spec": spec}

    final = jobs.run_job(job, runner, {"x": 1})
    assert seen == [{"state": "running", "stage": "building features", "fraction": 0.0, "pid": os.getpid()},
                    {"state": "running", "stage": "fold 1 of 2: fitting", "fraction": 1 / 3, "pid": os.getpid()},
                    {"state": "running", "stage": "fold 2 of 2: fitting", "fraction": 2 / 3, "pid": os.getpid()}]
    assert final["state"] == "done" and final["fraction"] == 1.0
    assert final["run_id"] == "20261122-081500-es-rest-of-day-lightgbm-1a2b3c"
    assert jobs.read_status(job) == final
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))
    assert signal.getsignal(signal.SIGTERM) is not jobs._on_sigterm  # handler restored


def test_run_job_throttles_repeated_stage_writes(home, monkeypatch):
    job = f"{TOKEN}-1"
    writes = []
    real = jobs.write_status
    monkeypatch.setattr(jobs, "write_status", lambda *a, **k: writes.append(k.get("stage")) or real(*a, **k))

    def runner(progress):
        for i in range(200):  # 200 calls with one stage inside 0.25 s: one write
            progress(i / 200, "fold 1 of 5: fitting")
        return {"run_id": "r"}

    jobs.run_job(job, runner)
    assert writes == ["starting", "fold 1 of 5: fitting", "done"]


def test_run_job_failures_become_one_line_statuses(home, caplog):
    def refuses(progress):
        raise SpecError("walk-forward min_train 5000 leaves no rows to test (2,400 days): lower min_train")

    def crashes(progress):
        progress(0.1, "building features")
        raise ZeroDivisionError("boom")

    s = jobs.run_job(f"{TOKEN}-1", refuses)
    assert (s["state"], s["error_kind"]) == ("failed", "SpecError")
    assert s["error"] == "walk-forward min_train 5000 leaves no rows to test (2,400 days): lower min_train"
    caplog.set_level("ERROR")
    s = jobs.run_job(f"{TOKEN}-2", crashes)
    assert (s["state"], s["error_kind"], s["stage"]) == ("failed", "internal", "building features")
    assert s["error"].startswith("an unexpected ZeroDivisionError stopped the training")
    assert "Traceback" not in s["error"]
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)


def test_job_cancelled_before_it_started_does_not_run(home):
    job = f"{TOKEN}-1"
    jobs.create_status(job)
    assert jobs.cancel_job(job)["state"] == "cancelled"
    ran = []
    assert jobs.run_job(job, lambda progress: ran.append(1) or {"run_id": "r"})["state"] == "cancelled"
    assert ran == []


# ----------------------------------------------------------------------------- liveness
def test_running_status_of_a_dead_process_reads_as_failed(home):
    job = f"{TOKEN}-1"
    dead = subprocess.Popen(["true"])
    dead.wait()
    jobs.write_status(job, state="running", stage="fold 2 of 5: fitting", pid=dead.pid)
    status = jobs.read_status(job)
    assert status["state"] == "failed" and status["error_kind"] == "lost"
    assert "ended without a result" in status["error"]
    assert json.loads(jobs.status_path(job).read_text())["state"] == "running"  # the reader writes nothing


def test_a_reused_pid_is_not_the_job(home):
    import psutil

    job = f"{TOKEN}-1"
    me = psutil.Process()
    jobs.write_status(job, state="running", pid=me.pid, pid_started=me.create_time())
    assert jobs.read_status(job)["state"] == "running"
    jobs.write_status(job, pid_started=me.create_time() - 100.0)  # same pid, another process start
    assert jobs.read_status(job)["state"] == "failed"


# ----------------------------------------------------------------------------- cancel (a real forked job)
def _slow_runner(runs_dir: str, ignore_term: bool = False):
    """Like the pipeline runner: builds in runs/.tmp-<id>, removes it on any exception."""
    def runner(progress):
        if ignore_term:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        tmp = Path(runs_dir) / ".tmp-20261122-000000-es-rest-of-day-lightgbm-1a2b3c"
        tmp.mkdir(parents=True)
        try:
            for i in range(600):
                progress(i / 600, f"fold {1 + i // 120} of 5: fitting")
                time.sleep(0.05)
            (tmp.parent / "20261122-000000-test").mkdir()
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return {"run_id": "20261122-000000-test"}
    return runner


def _start_forked_job(job: str, home: Path, ignore_term: bool = False):
    import multiprocess

    ctx = multiprocess.get_context("fork")
    proc = ctx.Process(target=jobs.run_job, args=(job, _slow_runner(str(home / "runs"), ignore_term)),
                       kwargs={"home": home})
    proc.start()
    deadline = time.monotonic() + 30
    while (jobs.read_status(job, home) or {}).get("stage", "").startswith("fold") is False:
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.02)
    return proc


@pytest.mark.parametrize("ignore_term", [False, True], ids=["graceful", "killed"])
def test_cancel_terminates_the_job_process_and_leaves_no_run(home, ignore_term):
    import psutil

    job = f"{TOKEN}-1"
    jobs.create_status(job, home)
    proc = _start_forked_job(job, home, ignore_term)
    pid = jobs.read_status(job, home)["pid"]
    assert pid == proc.pid
    # graceful: the runner's own clean-up removes its folder; killed: the cleanup callback does
    cleanup = (lambda s: jobs.remove_tmp_runs(home / "runs", s["started_at"], "es-rest-of-day-lightgbm")) \
        if ignore_term else None
    status = jobs.cancel_job(job, home, grace=0.5, cleanup=cleanup)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert status["state"] == "cancelled"
    assert jobs.read_status(job, home)["state"] == "cancelled"
    assert sorted(p.name for p in (home / "runs").iterdir()) == []  # no run, no .tmp- folder
    assert jobs.cancel_job(job, home)["state"] == "cancelled"  # a second cancel changes nothing


def test_remove_tmp_runs_only_takes_the_jobs_own_leftovers(tmp_path):
    runs = tmp_path / "runs"
    (runs / "20261122-000000-es-rest-of-day-lightgbm-aaaaaa").mkdir(parents=True)  # a complete run
    old = runs / ".tmp-20261121-000000-es-rest-of-day-lightgbm-bbbbbb"  # before the job started
    old.mkdir()
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    start = pd.Timestamp.now(tz="UTC").isoformat()
    (runs / ".tmp-20261122-000001-es-rest-of-day-lightgbm-cccccc").mkdir()  # the job's
    (runs / ".tmp-20261122-000001-es-direction-xgboost-dddddd").mkdir()  # another job's spec
    removed = jobs.remove_tmp_runs(runs, start, "es-rest-of-day-lightgbm")
    assert [p.name for p in removed] == [".tmp-20261122-000001-es-rest-of-day-lightgbm-cccccc"]
    assert sorted(p.name for p in runs.iterdir()) == [
        ".tmp-20261121-000000-es-rest-of-day-lightgbm-bbbbbb", ".tmp-20261122-000001-es-direction-xgboost-dddddd",
        "20261122-000000-es-rest-of-day-lightgbm-aaaaaa"]


# ----------------------------------------------------------------------------- the app-level poller
def test_poller_updates_the_store_only_on_change_and_stops_when_the_job_ends(home):
    job = f"{TOKEN}-1"
    assert jobs.next_status(None, None) == (no_update, True)
    jobs.create_status(job)
    status, disabled = jobs.next_status({"job_id": job}, None)
    assert status["state"] == "queued" and disabled is False
    assert jobs.next_status({"job_id": job}, status) == (no_update, False)
    jobs.write_status(job, state="done", run_id="r1", fraction=1.0)
    status, disabled = jobs.next_status({"job_id": job}, status)
    assert (status["state"], status["run_id"], disabled) == ("done", "r1", True)


# ============================================================================= the page
@pytest.fixture(scope="module")
def train(page_module):
    """pages.train (registered by importing ``app``)."""
    return page_module("train")


def default_form(train) -> tuple[dict, dict]:
    return dict(train.DEFAULTS), {k: train.default_param_values(k) for k in train.MODEL_PARAMS}


def test_default_form_is_the_documented_default_spec(train):
    fields, params = default_form(train)
    spec = train.build_spec(fields, params)
    assert spec.to_dict() == {
        "name": "es-rest-of-day-lightgbm",
        "data": {"symbol": "ES", "start": None, "end": None},
        "features": {"sets": ["early_session", "cross_asset", "regime"], "cutoff": "10:15",
                     "cross_assets": ["VIX", "CL"]},
        "label": {"kind": "rest_of_day"},
        "model": {"kind": "lightgbm", "params": {"n_estimators": 200, "learning_rate": 0.03, "num_leaves": 15}},
        "validation": {"scheme": "expanding", "n_splits": 5, "gap": 1, "min_train": 250, "train_size": None},
        "backtest": {"threshold": 0.55, "cost_bps": 1.0, "long_only": False},
        "seed": 0, "timeout_s": None,
    }
    # the YAML view is that spec, and reads back to it (what `almanac train --config` gets)
    from almanac.spec import spec_from_yaml

    text, problem = train.check_form(fields, params)
    assert problem is None and spec_from_yaml(text).to_dict() == spec.to_dict()
    assert train.yaml_filename(fields) == "es-rest-of-day-lightgbm.yaml"


def test_form_fields_map_to_spec_sections(train):
    fields, params = default_form(train)
    fields.update(symbol=" es ", start="2012-01-03", end="2018-06-29T00:00:00", cutoff="10:45",
                  sets=["regime", "early_session"], cross_assets=["VIX"], label="forward_return",
                  kind="logistic", scheme="rolling", n_splits=4.0, gap=2, min_train=300, train_size=500,
                  threshold=0.6, cost_bps=2.5, long_only=["long_only"])
    params["logistic"] = {"C": 0.5, "alpha": 3.0}
    d = train.form_to_dict(fields, params)
    assert d["data"] == {"symbol": "ES", "start": "2012-01-03", "end": "2018-06-29"}
    # no cross_asset set -> no cross symbols; sets in canonical order
    assert d["features"] == {"sets": ["early_session", "regime"], "cutoff": "10:45", "cross_assets": []}
    # forward_return is a regression: the logistic kind is a ridge, so alpha (not C) is passed
    assert d["model"] == {"kind": "logistic", "params": {"alpha": 3.0}}
    assert d["validation"] == {"scheme": "rolling", "n_splits": 4, "gap": 2, "min_train": 300, "train_size": 500}
    assert d["backtest"] == {"threshold": 0.6, "cost_bps": 2.5, "long_only": True}
    # expanding scheme: the rolling window is dropped; blank parameters are left to the factory
    fields.update(scheme="expanding", label="direction", kind="random_forest")
    params["random_forest"] = {"n_estimators": 50, "max_depth": None}
    d = train.form_to_dict(fields, params)
    assert d["validation"]["train_size"] is None
    assert d["model"] == {"kind": "random_forest", "params": {"n_estimators": 50}}
    assert train.model_params("logistic", "binary", {"C": "0.25", "alpha": 9}) == {"C": 0.25}
    assert train.model_params("xgboost", "binary", {"n_estimators": 10, "max_depth": 3, "learning_rate": 0.1}) \
        == {"n_estimators": 10, "max_depth": 3, "learning_rate": 0.1}


@pytest.mark.parametrize("change, message", [
    ({"start": "2018-06-01", "end": "2017-01-31"},
     "spec field data.start: start 2018-06-01 is after end 2017-01-31: choose a start on or before the end"),
    ({"cutoff": "9:00"}, "spec field features.cutoff: "),
    ({"sets": []}, "spec field features.sets: "),
    ({"n_splits": 2.5}, "splits must be a whole number, got 2.5"),
    ({"threshold": 0.4}, "spec field backtest.threshold: 0.4 is out of range: use at least 0.5"),
    ({"cross_assets": ["ES"]}, "spec field features.cross_assets: ES is the target symbol itself"),
    ({"name": "two\nlines"}, "spec field name: use a short one-line name"),
    ({"notes": "x" * 2001}, "the notes have 2,001 characters, more than the 2,000 allowed: shorten it"),
])
def test_invalid_forms_give_one_line_messages(train, change, message):
    fields, params = default_form(train)
    fields.update(change)
    text, problem = train.check_form(fields, params)
    assert text is None and problem.startswith(message) and "\n" not in problem
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    feedback, yaml_text, ok, no_download, draft = train.validate_form(list(fields.values()), pvals, ids, pids)
    assert ok is False and no_download is True and yaml_text == "" and problem in str(feedback)
    assert draft is no_update  # /studies keeps the last valid spec


def test_name_goes_to_the_spec_and_notes_stay_out_of_it(train):
    fields, params = default_form(train)
    fields.update(name="  early only ", notes="first try\nwith VIX")
    d = train.form_to_dict(fields, params)
    assert d["name"] == "early only" and "notes" not in d
    text, problem = train.check_form(fields, params)
    assert problem is None and text.startswith("name: early only\n") and "first try" not in text


def test_validate_form_callback_on_defaults(train):
    fields, params = default_form(train)
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    feedback, text, ok, no_download, draft = train.validate_form(list(fields.values()), pvals, ids, pids)
    assert feedback is None and ok is True and no_download is False and draft == text
    assert text.startswith("name: es-rest-of-day-lightgbm\n")


def test_progress_view_says_stage_and_fold(train):
    assert train.progress_view(None)["visible"] is False
    v = train.progress_view({"state": "running", "fraction": 0.462, "stage": "fold 3 of 5: SHAP"})
    assert (v["value"], v["label"], v["stage"], v["animated"]) == (46, "46%", "Training: fold 3 of 5: SHAP", True)
    assert train.progress_view({"state": "done", "fraction": 1.0})["stage"] == "Finished"
    assert train.progress_view({"state": "cancelled", "fraction": 0.3})["stage"].startswith("Cancelled")
    assert train.progress_view({"state": "failed", "stage": "labels"})["color"] == "danger"


def test_show_job_disables_train_while_running_or_invalid(train):
    running = {"state": "running", "fraction": 0.2, "stage": "fold 1 of 5: fitting"}
    out = train.show_job(running, True)
    assert out[:2] == (True, False)  # Train disabled, Cancel enabled
    assert out[2] == {"display": "block"} and out[9] == "Training: fold 1 of 5: fitting"
    assert out[4:7] == (20, "20%", True)  # value, label, animated
    assert train.show_job({"state": "done", "fraction": 1.0}, True)[:2] == (False, True)
    assert train.show_job(None, False)[:2] == (True, True)  # invalid spec: Train disabled


def _run_record(run_id: str = "20261122-081500-es-rest-of-day-lightgbm-1a2b3c") -> dict:
    folds = [{"fold": i, "train_start": "2009-01-02", "train_end": f"201{i}-12-30",
              "test_start": f"201{i + 1}-01-03", "test_end": f"201{i + 1}-12-30", "n_train": 250 + 100 * i,
              "n_test": 100, "roc_auc": 0.55 + 0.01 * i, "accuracy": 0.5 + 0.02 * i, "log_loss": 0.69,
              "brier": 0.25} for i in range(5)]
    return {"run_id": run_id, "status": "complete", "task": "binary", "n_rows": 1000, "folds": folds,
            "metrics": {"n": 500, "roc_auc": 0.5712, "accuracy": 0.54, "log_loss": 0.689},
            "backtest": {"sharpe": 0.8123}, "spec": {"data": {"symbol": "ES"}, "label": {"kind": "rest_of_day"}}}


def _find(component, cid):
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = _find(child, cid)
            if found is not None:
                return found
    return None


def test_result_view_charts_each_fold_and_links_the_run(train):
    run = _run_record()
    view = train.result_view(run)
    fig = _find(view, "cv-scores-graph").figure
    bar = fig.data[0]
    # points (not bars from zero) around the 0.5 line
    assert bar.type == "scatter" and bar.mode == "markers"
    assert list(bar.y) == pytest.approx([0.55, 0.56, 0.57, 0.58, 0.59])
    assert [x.split("<br>")[0] for x in bar.x] == ["Fold 1", "Fold 2", "Fold 3", "Fold 4", "Fold 5"]
    assert bar.x[0].endswith("2011-01-03 → 2011-12-30")
    assert fig.layout.title.text == "ROC AUC per fold"
    assert _find(view, "train-to-evaluate").href == f"/evaluate?run={run['run_id']}"
    assert _find(view, "train-to-backtest").href == f"/backtest?run={run['run_id']}"
    table = train.fold_table_frame(run["folds"], "binary")
    # the first three scores the folds hold, in CV_METRICS order (no balanced accuracy here)
    assert list(table.columns) == ["Fold", "Train", "Test", "Train days", "Test days", "ROC AUC", "accuracy",
                                   "log loss"]
    assert table.loc[2, "Test"] == "2013-01-03 → 2013-12-30" and table.loc[2, "ROC AUC"] == "0.5700"
    tiles = str(train.pooled_tiles(run))
    assert "0.5712" in tiles and "500" in tiles and "0.81" in tiles


WARNINGS = [{"code": "short_test_fold", "message": "fold 3 has 60 test days, fewer than 100: its scores are noisy"},
            {"code": "few_trades", "message": "the backtest made 12 trades, fewer than 30"}]
BASELINES = {
    "always_long": {"stats": {"sharpe": 0.4012, "trades": 500}, "params": {"cost_bps": 1.0}},
    "majority": {"metrics": {"accuracy": 0.532, "brier": 0.2490, "log_loss": 0.6912, "roc_auc": 0.5,
                             "base_rate": 0.532}},
    "prior_day": {"metrics": {"accuracy": 0.501, "roc_auc": 0.503, "brier": 0.2999, "log_loss": 0.8}},
    "lift": {"sharpe": {"value": 0.4111, "lo": -0.2, "hi": 1.05, "level": 0.95},
             "roc_auc": {"value": 0.0712, "lo": 0.021, "hi": 0.118, "level": 0.95},
             "bootstrap": {"method": "stationary", "block_days": 20, "resamples": 1000, "seed": 0}},
}


def test_result_view_shows_warnings_baselines_and_the_base_rate(train):
    run = _run_record()
    assert _find(train.result_view(run), "train-warnings") is None  # a run trained before warnings existed
    assert _find(train.result_view(run), "train-baselines") is None
    run["warnings"], run["baselines"] = WARNINGS, BASELINES
    run["metrics"]["base_rate"] = 0.532
    run["folds"][0]["base_rate"] = 0.51
    run.update(name="my idea", user_notes="trying the early session only")
    view = train.result_view(run)
    banner = _find(view, "train-warnings")
    assert banner.color == "warning" and len(banner.children) == 2  # one line per warning
    assert "fewer than 100" in str(banner.children[0]) and "12 trades" in str(banner.children[1])
    table = _find(view, "train-baselines-table")
    text = str(table)
    assert "Majority" in text and "Prior day" in text and "53.2%" in text and "50.1%" in text and "0.503" in text
    assert "always long 0.40" in str(_find(view, "train-baselines-sharpe"))
    lifts = str(_find(view, "train-baselines"))
    assert "Sharpe lift over always long: +0.411 (95% interval -0.200 … +1.050)" in lifts
    assert "ROC AUC lift over 0.5: +0.071 (95% interval +0.021 … +0.118)" in lifts
    tiles = str(train.pooled_tiles(run))
    assert "0.5320" in tiles and "base rate (up days)" in tiles
    assert list(train.fold_table_frame(run["folds"], "binary").columns)[6:8] == ["accuracy", "base rate"]
    assert _find(view, "train-run-name").children == "my idea"
    assert _find(view, "train-run-notes").children == "trying the early session only"


def test_status_result_for_each_state(train, home):
    assert "No run yet" in str(train.status_result(None))
    assert "Training" in str(train.status_result({"state": "running"}))
    assert "nothing was registered" in str(train.status_result({"state": "cancelled"}))
    failed = train.status_result({"state": "failed", "error": "spec field data.symbol: ZZ has no data"})
    assert failed.color == "danger" and "ZZ has no data" in str(failed)
    gone = train.status_result({"state": "done", "run_id": "20261122-000000-gone-000000"})
    assert gone.color == "danger" and "no run 20261122-000000-gone-000000" in str(gone)
    run = _run_record()
    folder = home / "runs" / run["run_id"]
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    shown = train.status_result({"state": "done", "run_id": run["run_id"]})
    assert _find(shown, "train-run-id").children == run["run_id"]


def test_follow_symbol_excludes_the_target_from_cross_assets(train, store):
    from bench.synthetic import synthetic_store

    synthetic_store(store, minute_start="2017-01-02", days=40)
    opts = [{"label": s, "value": s} for s in ("ES", "NQ", "VIX")]
    options, chosen, hint, lo, hi, *_ = train.follow_symbol("ES", opts, ["ES", "VIX"])
    assert [o["disabled"] for o in options] == [True, False, False] and chosen == ["VIX"]
    assert (lo, hi) == train.data_span("ES") and hint.startswith(f"ES data: {lo} → {hi}")
    assert train.data_span("VIX") == ("2017-01-02", "2017-02-24")  # 40 business days of daily closes
    assert train.data_span("NOPE") is None


def test_submit_queues_the_job_and_refuses_invalid_specs(train, home):
    fields, params = default_form(train)
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    assert train.submit(0, list(fields.values()), ids, pvals, pids, TOKEN) == (no_update, no_update)
    job, feedback = train.submit(2, list(fields.values()), ids, pvals, pids, TOKEN)
    assert job == {"job_id": f"{TOKEN}-2"} and feedback is None
    status = jobs.read_status(f"{TOKEN}-2")
    assert (status["state"], status["run_slug"]) == ("queued", "es-rest-of-day-lightgbm")
    fields["start"], fields["end"] = "2018-01-02", "2017-01-02"
    job, feedback = train.submit(3, list(fields.values()), ids, pvals, pids, TOKEN)
    assert job is no_update and "start 2018-01-02 is after end 2017-01-02" in str(feedback)
    assert jobs.read_status(f"{TOKEN}-3") is None
    fields["start"], fields["end"], fields["notes"] = "", "", "bad\x07bell"
    job, feedback = train.submit(4, list(fields.values()), ids, pvals, pids, TOKEN)
    assert job is no_update and "the notes hold a line break or control character" in str(feedback)
    assert jobs.read_status(f"{TOKEN}-4") is None
    assert train.cancel(0, {"job_id": f"{TOKEN}-2"}) is no_update  # page load: no click
    assert train.cancel(1, {"job_id": f"{TOKEN}-2"})["state"] == "cancelled"


def test_submit_says_when_redis_is_away(train, home, monkeypatch):
    """With ALMANAC_REDIS_URL set the job goes to a Celery worker: Redis not answering is a
    red alert naming the masked URL, and nothing is queued."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ALMANAC_REDIS_URL", f"redis://:secret-pw@127.0.0.1:{port}/0")
    fields, params = default_form(train)
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    job, feedback = train.submit(5, list(fields.values()), ids, pvals, pids, TOKEN)
    text = str(feedback)
    assert job is no_update and "danger" in text and f"redis://:***@127.0.0.1:{port}/0" in text
    assert "secret-pw" not in text and jobs.read_status(f"{TOKEN}-5") is None


def test_train_job_runs_the_experiment_and_records_the_run(train, store, home):
    """The background callback's body, in-process, on a small synthetic market."""
    from almanac import registry
    from bench.synthetic import synthetic_store

    synthetic_store(store, minute_start="2017-01-02", days=320)
    fields, params = default_form(train)
    fields.update(cross_assets=["VIX"], n_splits=3, min_train=150, name="small one", notes="from the form\nok")
    params["lightgbm"] = {"n_estimators": 20, "learning_rate": 0.1, "num_leaves": 7}
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    args = (list(fields.values()), ids, pvals, pids, TOKEN)
    assert train.train_job(0, *args) is no_update
    job, _ = train.submit(1, *args)
    final = train.train_job(1, *args)
    assert final["state"] == "done" and jobs.read_status(job["job_id"]) == final
    runs = registry.list_runs()
    assert [r["run_id"] for r in runs] == [final["run_id"]]
    run = registry.get_run(final["run_id"])
    assert run["spec"]["model"]["params"] == {"n_estimators": 20, "learning_rate": 0.1, "num_leaves": 7}
    assert (run["name"], run["user_notes"]) == ("small one", "from the form\nok")  # name in the spec, notes after
    fig = _find(train.status_result(final), "cv-scores-graph").figure
    assert list(fig.data[0].y) == pytest.approx([f["roc_auc"] for f in run["folds"]]) and len(fig.data[0].y) == 3
    # a spec the data cannot serve fails the job with the runner's one-line reason
    fields["min_train"] = 5000
    final = train.train_job(2, list(fields.values()), ids, pvals, pids, TOKEN)
    assert final["state"] == "failed" and "lower min_train or n_splits" in final["error"]
    assert len(registry.list_runs()) == 1


def test_old_status_files_are_pruned_when_a_job_is_queued(home):
    old, recent = f"{TOKEN}-1", f"{TOKEN}-2"
    jobs.write_status(old, state="done")
    jobs.write_status(recent, state="done")
    month_ago = time.time() - 31 * 86400
    os.utime(jobs.status_path(old), (month_ago, month_ago))
    jobs.create_status(f"{TOKEN}-3")
    assert jobs.read_status(old) is None and jobs.read_status(recent)["state"] == "done"


def test_refusals_of_issue_17_show_as_the_pages_red_alert(train, store, home):
    """The form's check (spec_from_dict: parameter bounds) and the job's (the runner's
    validation: library rules, impossible label/data pairs) give the CLI's one-line
    messages as red alerts, and write nothing."""
    from bench.synthetic import synthetic_store

    synthetic_store(store, minute_start="2017-01-02", days=320)
    fields, params = default_form(train)
    params["lightgbm"]["n_estimators"] = 1_000_000_000
    _, problem = train.check_form(fields, params)
    assert problem.startswith("spec field model.params.n_estimators: 1000000000 is outside the lab's bounds")
    values, ids, pvals, pids, _ = _form_args(train, fields, params)
    alert, *_ = train.validate_form(values, pvals, ids, pids)
    assert alert.color == "danger" and "outside the lab's bounds" in str(alert)

    before = {p.name: p.stat().st_mtime_ns for p in (home / "market").iterdir()}
    for change, pchange, message in [
        ({"symbol": "VIX", "sets": ["regime"]}, {},
         "spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, which needs 1-minute bars; "
         "VIX has only 1d bars with closes only"),
        ({"sets": ["regime"]}, {"learning_rate": 0},
         "spec field model.params.learning_rate: 0.0 is refused by LightGBM: Check failed: (learning_rate) > (0.0)"),
    ]:
        f, p = {**fields, **change}, {**params, "lightgbm": {**params["lightgbm"], "n_estimators": 20, **pchange}}
        final = train.train_job(1, *_form_args(train, f, p))
        assert final["state"] == "failed" and final["error"].startswith(message)
        shown = train.status_result(final)
        assert shown.color == "danger" and message in str(shown)
    assert not (home / "runs").exists() and not (home / "cache").exists()  # only the job's status was written
    assert {p.name: p.stat().st_mtime_ns for p in (home / "market").iterdir()} == before


def _form_args(train, fields: dict, params: dict) -> tuple:
    ids = [{"type": train.FIELD, "name": k} for k in fields]
    pids = [{"type": train.PARAM, "kind": k, "name": n} for k, ps in params.items() for n in ps]
    pvals = [params[i["kind"]][i["name"]] for i in pids]
    return list(fields.values()), ids, pvals, pids, TOKEN
