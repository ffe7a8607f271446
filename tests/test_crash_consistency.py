"""kill -9 at every step of every operation that writes the data home.

Each case runs the real command in a subprocess with ``ALMANAC_FAULT=<step>``: the
process SIGKILLs itself at that step (:mod:`almanac.faults`), exactly like a ``kill -9``
or a power cut there. The test then checks what a reader sees: the catalog names files
whose content hash it records, and the home is in the state before the operation or
after it, never between. Then the start-up sweep must remove every leftover, and a
feature build served from the cache must equal one computed from the data on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from almanac.atomic import TMP_MARK
from almanac.recovery import sweep
from almanac.store import Store, file_sha256

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"name": "crash", "data": {"symbol": "ES"},
        "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
        "label": {"kind": "rest_of_day"}, "model": {"kind": "logistic", "params": {"C": 1.0}},
        "validation": {"n_splits": 2, "gap": 1, "min_train": 100},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0}}


def cli(home: Path, *argv: str, fault: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_THREADS": "1"}
    env.pop("ALMANAC_FAULT", None)
    if fault:
        env["ALMANAC_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "almanac", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def daily_csv(path: Path, seed: int, days: int = 300) -> Path:
    rng = np.random.default_rng(seed)
    close = 2500 * np.exp(np.cumsum(rng.normal(0, 0.01, days)))
    dates = pd.bdate_range("2018-07-02", periods=days)
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": close * 0.999, "High": close * 1.01,
                  "Low": close * 0.99, "Close": close, "Volume": 1000.0}).to_csv(path, index=False)
    return path


def state(home: Path) -> dict:
    """What a reader sees, after checking that the catalog matches the files it names."""
    store = Store(home)
    datasets = {}
    for e in store.catalog():
        path = store.file_of(e)
        assert path.is_file(), f"catalog names {e.file}, which is missing"
        assert file_sha256(path) == e.sha256, f"{e.file} does not hold the content the catalog records"
        assert pq.ParquetFile(path).metadata.num_rows == e.rows
        datasets[f"{e.symbol} {e.freq}"] = e.sha256
    runs = home / "runs"
    complete = sorted(p.name for p in runs.iterdir() if not p.name.startswith(".")
                      and (p / "run.json").is_file()) if runs.is_dir() else []
    for name in complete:
        assert json.loads((runs / name / "run.json").read_text())["status"] == "complete"
    return {"datasets": datasets, "runs": complete}


def leftovers(home: Path) -> list[str]:
    """Anything a finished, uninterrupted operation would not have left."""
    found = [str(p.relative_to(home)) for p in home.rglob("*")
             if (TMP_MARK in p.name or p.name.startswith(".trash-")) and "jobs" not in p.parts]
    store = Store(home)
    named = {store.file_of(e).name for e in store.catalog()}
    found += [f"market/{p.name}" for p in (home / "market").glob("*.parquet") if p.name not in named]
    cache = home / "cache" / "features"
    if cache.is_dir():
        found += [str(p.relative_to(home)) for p in cache.glob("*.parquet") if not p.with_suffix(".json").exists()]
    return found


def assert_cache_honest(home: Path) -> None:
    from features import build_features

    cached = build_features("ES", sets=["early_session", "regime"], store=Store(home))
    fresh = build_features("ES", sets=["early_session", "regime"], store=Store(home), use_cache=False)
    pd.testing.assert_frame_equal(cached.frame, fresh.frame)
    assert cached.data_hashes == fresh.data_hashes == {
        f"{e.symbol} {e.freq}": e.sha256 for e in Store(home).catalog()}


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A data home with ES minute and daily bars, cached features and one complete run."""
    from bench.synthetic import futures_minutes

    root = tmp_path_factory.mktemp("crash")
    home = root / "home"
    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=260, seed=3, step=5, overnight=False),
                source="test")
    cfg = root / "spec.yaml"
    cfg.write_text(yaml.safe_dump(SPEC))
    done = cli(home, "data", "import", str(daily_csv(root / "old.csv", seed=1)), "--symbol", "ES", "--freq", "1d")
    assert done.returncode == 0, done.stderr
    trained = cli(home, "train", "--config", str(cfg), "--json")
    assert trained.returncode == 0, trained.stderr
    daily_csv(root / "new.csv", seed=2)
    return root


@pytest.fixture
def lab(template, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(template / "home", home)
    return home, template


def _after_import(lab) -> dict:
    home, root = lab
    other = home.parent / "after"
    shutil.copytree(home, other)
    done = cli(other, "data", "import", str(root / "new.csv"), "--symbol", "ES", "--freq", "1d")
    assert done.returncode == 0, done.stderr
    return state(other)


IMPORT_STEPS = ["store.write:staged", "store.write:renamed", "catalog:tmp-written", "catalog:replaced",
                "store.write:cataloged", "store.write:old-removed"]


@pytest.mark.parametrize("step", IMPORT_STEPS)
def test_import_killed_at_each_step_leaves_before_or_after(lab, step):
    home, root = lab
    before, after = state(home), _after_import(lab)
    assert before != after
    killed = cli(home, "data", "import", str(root / "new.csv"), "--symbol", "ES", "--freq", "1d", fault=step)
    assert killed.returncode == -signal.SIGKILL, f"the step {step} was never reached: {killed.stderr}"
    seen = state(home)
    assert seen in (before, after)
    assert seen == (before if step in IMPORT_STEPS[:3] else after)
    sweep(home, min_age_s=0)
    assert leftovers(home) == [] and state(home) == seen
    assert_cache_honest(home)  # the cache built before the kill is not served for other bytes


FEATURE_STEPS = ["cache.parquet:tmp-written", "cache.parquet:replaced", "cache.json:tmp-written",
                 "cache.json:replaced"]


@pytest.mark.parametrize("step", FEATURE_STEPS)
def test_features_build_killed_leaves_no_usable_half_entry(lab, step):
    home, root = lab
    before = state(home)
    killed = cli(home, "features", "build", "--symbol", "ES", "--sets", "early_session,regime",
                 "--cutoff", "10:30", "--out", str(root / f"f-{step}.parquet"), fault=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert state(home) == before
    sweep(home, min_age_s=0)
    assert leftovers(home) == []
    assert_cache_honest(home)


@pytest.mark.parametrize("step", ["run:folds-fitted", "run:final-fitted", "run:written", "run:published"])
def test_train_killed_registers_a_complete_run_or_none(lab, step):
    home, root = lab
    before = state(home)
    killed = cli(home, "train", "--config", str(root / "spec.yaml"), fault=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    seen = state(home)
    if step == "run:published":
        assert len(seen["runs"]) == len(before["runs"]) + 1  # after: complete and listed
        listed = cli(home, "runs", "list", "--json")
        assert len(json.loads(listed.stdout)) == len(seen["runs"])
    else:
        assert seen == before
    assert any((home / "runs").glob(".tmp-*")) == (step != "run:published")
    sweep(home, min_age_s=0)
    assert leftovers(home) == [] and state(home) == seen


@pytest.mark.parametrize("step", ["run.delete:renamed", "run.delete:deactivated"])
def test_run_delete_killed_is_all_or_nothing(lab, step):
    from almanac import registry

    home, _ = lab
    run_id = state(home)["runs"][0]
    registry.set_active(run_id, home)
    killed = cli(home, "runs", "delete", run_id, fault=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert run_id not in state(home)["runs"]  # the rename is the deletion: after
    assert cli(home, "runs", "show", run_id).returncode == 2
    assert registry.active_runs(home) == []
    sweep(home, min_age_s=0)
    assert leftovers(home) == []


@pytest.mark.parametrize("step", ["export:tmp-written", "export:replaced"])
def test_export_killed_leaves_no_bundle_or_a_whole_one(lab, step):
    home, root = lab
    from ml.export import load_bundle

    run_id = state(home)["runs"][0]
    out = home.parent / "out" / "model.zip"
    out.parent.mkdir()
    killed = cli(home, "export", run_id, "--out", str(out), fault=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if step == "export:replaced":
        assert load_bundle(out).feature_names  # whole and verified
    else:
        assert not out.exists()
    assert state(home)["runs"] == [run_id]


@pytest.mark.parametrize("step", ["catalog:tmp-written", "store.delete:cataloged"])
def test_dataset_delete_killed_is_all_or_nothing(lab, step):
    home, _ = lab
    before = state(home)
    code = "from almanac.store import Store; Store().delete('ES', '1d')"
    env = {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_FAULT": step}
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    seen = state(home)
    expected_after = {k: v for k, v in before["datasets"].items() if k != "ES 1d"}
    assert seen["datasets"] == (before["datasets"] if step == "catalog:tmp-written" else expected_after)
    sweep(home, min_age_s=0)
    assert leftovers(home) == []


def test_sample_data_is_written_all_or_none(tmp_path):
    home = tmp_path / "home"
    code = "from almanac.sample import ensure_sample_data; ensure_sample_data()"
    env = {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_FAULT": "store.write:staged#3"}
    killed = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert Store(home).catalog() == []  # two files staged, none cataloged: the next start writes all four
    sweep(home, min_age_s=0)
    assert leftovers(home) == [] and not list((home / "market").glob("*.parquet"))


def test_cli_start_sweeps_old_leftovers_and_says_so(lab):
    home, _ = lab
    stray = home / "market" / f".ES_1min.parquet{TMP_MARK}999999-deadbeef"
    stray.write_bytes(b"half a file")
    orphan = home / "market" / "ES_1min.0123456789abcdef.parquet"
    orphan.write_bytes(b"PAR1")
    half_run = home / "runs" / ".tmp-20200101-000000-es-x-abcdef"
    half_run.mkdir()
    old = time.time() - 3600
    for p in (stray, orphan, half_run):
        os.utime(p, (old, old))
    fresh = home / "market" / f".ES_1d.parquet{TMP_MARK}{os.getpid()}-cafebabe"  # a live writer's file
    fresh.write_bytes(b"in progress")
    before = state(home)
    listed = cli(home, "data", "list")
    assert listed.returncode == 0
    note = [line for line in listed.stderr.splitlines() if line.startswith("note: cleaned up")]
    assert len(note) == 1 and "3 leftover(s)" in note[0], listed.stderr
    assert not stray.exists() and not orphan.exists() and not half_run.exists()
    assert fresh.exists()  # young and owned by a live process: left alone
    assert state(home) == before


def test_a_running_experiment_folder_is_never_swept(lab):
    home, root = lab
    env = {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "almanac", "train", "--config", str(root / "spec.yaml")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list((home / "runs").glob(".tmp-*")) and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        tmp = list((home / "runs").glob(".tmp-*"))
        assert tmp, "the run never started"
        removed = sweep(home, min_age_s=0)
        assert not [r for r in removed if r.startswith("runs/.tmp-")]
        proc.send_signal(signal.SIGTERM)  # SIGTERM cleans up like Ctrl-C
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (0, 143), err
    if proc.returncode == 143:
        assert err.strip().splitlines()[-1] == "terminated"
    assert not list((home / "runs").glob(".tmp-*"))


def test_legacy_catalog_is_checked_and_moved_to_content_names(tmp_path):
    """A data home from before content addressing, with the damage the audit reproduced:
    the file was replaced, the catalog still describes the old data."""
    home = tmp_path / "home"
    store = Store(home)
    daily_csv(tmp_path / "a.csv", seed=1)
    from almanac.importer import read_bars_file

    old, _, _ = read_bars_file(tmp_path / "a.csv", "ES", freq="1d")
    entry = store.write("ES", "1d", old, source="a.csv")
    legacy = home / "market" / "ES_1d.parquet"
    os.replace(store.file_of(entry), legacy)
    new = old.assign(close=old["close"] * 1.01, high=old["high"] * 1.01, open=old["open"] * 1.01,
                     low=old["low"] * 1.01)
    Store(tmp_path / "scratch").write("ES", "1d", new.iloc[:200], source="b")
    shutil.copy(Store(tmp_path / "scratch").path("ES", "1d"), legacy)
    raw = json.loads(store.catalog_path.read_text())
    raw["datasets"][0]["file"] = "market/ES_1d.parquet"
    store.catalog_path.write_text(json.dumps(raw))
    removed = sweep(home, min_age_s=0)
    assert any("did not match its file" in r for r in removed)
    e = Store(home).entry("ES", "1d")
    assert e.rows == 200 and e.file.startswith("market/ES_1d.") and not legacy.exists()
    assert state(home)["datasets"] == {"ES 1d": file_sha256(Store(home).file_of(e))}
    assert sweep(home, min_age_s=0) == []  # once


def test_app_start_sweeps_old_leftovers(lab, caplog, monkeypatch):
    import logging

    import app

    home, _ = lab
    stray = home / "cache" / "features" / f".x.parquet{TMP_MARK}999999-0badf00d"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"half")
    os.utime(stray, (time.time() - 3600, time.time() - 3600))
    monkeypatch.setenv("ALMANAC_HOME", str(home))
    with caplog.at_level(logging.INFO, logger="almanac.app"):
        app.prepare_data()
    assert not stray.exists()
    assert any("cleaned up 1 leftover(s)" in r.getMessage() for r in caplog.records)
