"""Study trials on real Celery workers over a real Redis (issue 12).

Each test starts its own workers (bench.cluster) on a tiny random-walk market; the study
runs through the command line (``study run --json`` with ``ALMANAC_REDIS_URL`` set), as a
user runs it. Marked ``scale``: ``-m "not scale"`` leaves them out.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from almanac import registry
from bench.ui import free_port
from tests.scale.conftest import FAST_HEARTBEAT, write_market

pytestmark = pytest.mark.scale
ROOT = Path(__file__).resolve().parents[2]
BASE = {
    "name": "tiny",
    "data": {"symbol": "ES", "start": "2018-07-02", "end": "2019-12-31"},
    "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
    "label": {"kind": "rest_of_day"},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
    "validation": {"n_splits": 3, "gap": 1, "min_train": 120},
    "backtest": {"threshold": 0.52, "cost_bps": 1.0},
}


def study_file(tmp_path: Path, name: str, n_trials: int) -> tuple[Path, dict]:
    study = {"name": name, "kind": "search", "spec": BASE, "objective": {"metric": "roc_auc"},
             "budget": {"n_trials": n_trials}, "pruner": {"kind": "none"},
             "search": {"model.kind": {"choice": ["lightgbm", "logistic"]},
                        "model.params.learning_rate": {"float": [0.02, 0.3], "log": True}}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path, study


def cli_env(home: Path, url: str) -> dict:
    return {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_REDIS_URL": url, "PYTHONPATH": str(ROOT),
            **FAST_HEARTBEAT}


def study_run(home: Path, url: str, config: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "almanac", "study", "run", "--config", str(config), "--json"],
                          cwd=ROOT, env=cli_env(home, url), capture_output=True, text=True, timeout=600, **kw)


def tree(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def test_six_trials_over_two_workers_each_once(redis_server, workers, tiny_home, tmp_path):
    ws = workers(2, tiny_home)
    config, _ = study_file(tmp_path, "two-workers", 6)
    out = study_run(tiny_home, redis_server.url, config)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    trials = report["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4, 5]
    assert [t["state"] for t in trials] == ["complete"] * 6
    assert (report["n_trials"], report["n_complete"], report["n_failed"]) == (6, 6, 0)
    run_ids = [t["run_id"] for t in trials]
    assert len(set(run_ids)) == 6
    assert {r["run_id"] for r in registry.list_runs(tiny_home)} == set(run_ids)  # every trial exactly once
    worker_pids = {pid for w in ws for pid in w.pids()}
    used = {t["worker"] for t in trials}
    assert {int(w.rsplit(":", 1)[1]) for w in used} <= worker_pids
    owners = {next(w.name for w in ws if int(t["worker"].rsplit(":", 1)[1]) in w.pids()) for t in trials}
    assert owners == {w.name for w in ws}  # both workers ran trials
    for t in trials:  # the run records where it ran
        assert registry.get_run(t["run_id"], tiny_home)["worker"] == t["worker"]
    shown = subprocess.run([sys.executable, "-m", "almanac", "study", "show", report["study_id"], "--json"],
                           cwd=ROOT, env=cli_env(tiny_home, redis_server.url), capture_output=True, text=True,
                           timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert [t["worker"] for t in json.loads(shown.stdout)["trials"]] == [t["worker"] for t in trials]
    assert "on the queue" in out.stderr


def test_kill9_of_a_worker_mid_trial(redis_server, workers, tiny_home, tmp_path):
    from almanac.store import Store
    from almanac.study_spec import study_from_dict
    from ml import study as st

    ws = workers(2, tiny_home)
    config, spec = study_file(tmp_path, "kill-nine", 6)
    study = study_from_dict(spec)
    sid = st.study_id_for(study, st.data_hashes(study, Store(tiny_home)))
    proc = subprocess.Popen([sys.executable, "-m", "almanac", "study", "run", "--config", str(config), "--json"],
                            cwd=ROOT, env=cli_env(tiny_home, redis_server.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.environ["ALMANAC_REDIS_URL"] = redis_server.url
    try:
        victim, number = None, None
        end = time.monotonic() + 120
        while victim is None and time.monotonic() < end and proc.poll() is None:
            try:
                ost = st.load_optuna_study(sid, tiny_home)
            except Exception:  # noqa: BLE001 -- not created yet
                time.sleep(0.05)
                continue
            for t in ost.get_trials(deepcopy=False):
                if t.state.name == "RUNNING" and t.user_attrs.get("worker"):
                    pid = int(t.user_attrs["worker"].rsplit(":", 1)[1])
                    victim = next((w for w in ws if pid in w.pids()), None)
                    number = t.number
                    break
            time.sleep(0.02)
        assert victim is not None, "no trial was seen running"
        victim.kill9()
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        os.environ.pop("ALMANAC_REDIS_URL", None)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)
    assert (report["n_trials"], report["n_complete"]) == (6, 6)
    lost = [t for t in report["trials"] if t["number"] == number][0]
    assert lost["state"] == "interrupted" and lost["run_id"] is None
    assert "stopped answering (no heartbeat for 3 s)" in lost["error"]
    complete = [t for t in report["trials"] if t["state"] == "complete"]
    survivor = next(w for w in ws if w is not victim)
    assert {int(t["worker"].rsplit(":", 1)[1]) for t in complete if t["number"] > number} <= set(survivor.pids())
    assert {r["run_id"] for r in registry.list_runs(tiny_home)} == {t["run_id"] for t in complete}
    retried = [t for t in complete if t["params"] == lost["params"] and t["number"] > number]
    assert retried, "the lost trial's parameters were proposed again"


def test_worker_on_other_data_refuses(redis_server, workers, tiny_home, tmp_path, monkeypatch):
    from almanac.store import Store
    from almanac.study_spec import study_from_dict
    from ml import study as st

    config, spec = study_file(tmp_path, "other-data", 2)
    monkeypatch.setenv("ALMANAC_REDIS_URL", redis_server.url)
    sid, _ = st.prepare(study_from_dict(spec), Store(tiny_home))
    other = tmp_path / "other-home"
    other.mkdir()
    write_market(other, seed=12)  # same dataset names, other prices
    shutil.copytree(tiny_home / "studies", other / "studies")
    workers(1, other)
    out = study_run(tiny_home, redis_server.url, config)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("error: worker ") and f"reads different data in {other} for ES/1min" in lines[-1]
    report = st.study_report(sid, tiny_home)
    # each task the worker took (one or both) failed its trial with the reason, nothing computed
    assert report["n_failed"] == len(report["trials"])
    assert report["trials"] and all(t["state"] == "failed" and t["run_id"] is None and t["folds"] is None
                                    and "reads different data" in t["error"] for t in report["trials"])
    assert registry.list_runs(tiny_home) == [] and registry.list_runs(other) == []


def test_redis_down_is_one_line_with_the_password_masked(tiny_home, tmp_path):
    config, _ = study_file(tmp_path, "no-redis", 2)
    before = tree(tiny_home)
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    out = study_run(tiny_home, url, config)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"error: cannot reach Redis at {url.replace('hunter2', '***')}: start redis-server (or fix "
        "ALMANAC_REDIS_URL) and try again"]
    assert "hunter2" not in out.stderr + out.stdout
    assert tree(tiny_home) == before


def active_tasks(url: str) -> list:
    from ml.scale import client

    replies = client(url).control.inspect(timeout=2).active() or {}
    return [t for tasks in replies.values() for t in tasks]


def test_ctrl_c_revokes_the_queue_and_stops_running_trials(redis_server, workers, tiny_home, tmp_path):
    import signal

    from almanac.store import Store
    from almanac.study_spec import study_from_dict
    from ml import study as st

    workers(2, tiny_home)
    config, spec = study_file(tmp_path, "ctrl-c", 8)
    study = study_from_dict(spec)
    sid = st.study_id_for(study, st.data_hashes(study, Store(tiny_home)))
    proc = subprocess.Popen([sys.executable, "-m", "almanac", "study", "run", "--config", str(config)],
                            cwd=ROOT, env=cli_env(tiny_home, redis_server.url), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    os.environ["ALMANAC_REDIS_URL"] = redis_server.url
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and proc.poll() is None:
            try:
                ost = st.load_optuna_study(sid, tiny_home)
                if sum(t.state.name == "RUNNING" and "worker" in t.user_attrs
                       for t in ost.get_trials(deepcopy=False)) == 2:  # both trials inside the runner
                    break
            except Exception:  # noqa: BLE001 -- not created yet
                pass
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        report = st.study_report(sid, tiny_home)
    finally:
        os.environ.pop("ALMANAC_REDIS_URL", None)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "study interrupted: completed trials are kept" in stderr
    assert active_tasks(redis_server.url) == []  # nothing runs on the workers any more
    assert report["n_running"] == 0 and report["n_interrupted"] >= 1
    assert {r["run_id"] for r in registry.list_runs(tiny_home)} == {
        t["run_id"] for t in report["trials"] if t["state"] == "complete"}
    assert not list((tiny_home / "runs").glob(".tmp-*"))  # the terminated runs cleaned up


def test_train_queue_runs_on_a_worker(redis_server, workers, tiny_home, tmp_path):
    ws = workers(1, tiny_home)
    config = tmp_path / "spec.yaml"
    config.write_text(yaml.safe_dump(BASE))
    out = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(config), "--queue", "--json"],
                         cwd=ROOT, env=cli_env(tiny_home, redis_server.url), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    run = json.loads(out.stdout)
    assert int(run["worker"].rsplit(":", 1)[1]) in ws[0].pids()
    assert [r["run_id"] for r in registry.list_runs(tiny_home)] == [run["run_id"]]


def test_redis_restart_mid_study_resumes(tmp_path, tiny_home):
    from bench import cluster

    server = cluster.start_redis(tmp_path / "redis", persist=True)
    ws = []
    try:
        ws = cluster.start_workers(2, tiny_home, server.url, tmp_path / "logs", **FAST_HEARTBEAT)
        cluster.wait_workers(server.url, ws)
        config, _ = study_file(tmp_path, "restart", 8)
        proc = subprocess.Popen([sys.executable, "-m", "almanac", "study", "run", "--config", str(config), "--json"],
                                cwd=ROOT, env=cli_env(tiny_home, server.url), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        end = time.monotonic() + 120
        while not registry.list_runs(tiny_home) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.05)
        server.stop()  # Redis goes away mid-study (its append-only file keeps the queue and the journal)
        time.sleep(2)
        server = cluster.start_redis(tmp_path / "redis", port=server.port, persist=True)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        cluster.stop_workers(ws)
        server.stop()
    assert proc.returncode == 0, stderr[-3000:]
    assert f"waiting for Redis at {server.url} to come back" in stderr
    report = json.loads(stdout)
    assert (report["n_trials"], report["n_complete"]) == (8, 8)
    # every registered run is a complete trial's: none was left behind by the outage
    assert {r["run_id"] for r in registry.list_runs(tiny_home)} == {
        t["run_id"] for t in report["trials"] if t["state"] == "complete"}
