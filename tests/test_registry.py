"""almanac.registry: listing, paths, deletion, trials, active models, artifacts."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone

import pandas as pd
import pytest

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError


def fake_run(home, run_id, created, symbol="ES", label="rest_of_day", sharpe=1.0, status="complete",
             backtest=True) -> dict:
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    run = {"run_id": run_id, "name": run_id[:10], "created_at": created, "status": status,
           "spec": {"data": {"symbol": symbol}, "label": {"kind": label}, "model": {"kind": "lightgbm"}},
           "task": "binary", "n_rows": 100, "metrics": {"roc_auc": 0.55},
           "backtest": {"sharpe": sharpe, "dsr": 0.4, "n_trials": 1} if backtest else None}
    (folder / "run.json").write_text(json.dumps(run))
    return run


@pytest.fixture
def three(home):
    fake_run(home, "r-old", "2026-01-01T10:00:00+00:00", sharpe=0.5)
    fake_run(home, "r-mid", "2026-01-02T10:00:00+00:00", sharpe=None)
    fake_run(home, "r-new", "2026-01-03T10:00:00+00:00", label="direction", sharpe=2.0)
    return home


def test_list_runs_newest_first_and_ignores_incomplete(three):
    home = three
    (home / "runs" / ".tmp-r-crashed").mkdir()                     # a run being built / killed
    (home / "runs" / ".tmp-r-crashed" / "run.json").write_text("{}")
    (home / "runs" / "no-record").mkdir()                          # a folder without run.json
    fake_run(home, "r-failed", "2026-01-04T00:00:00+00:00", status="running")
    runs = registry.list_runs()
    assert [r["run_id"] for r in runs] == ["r-new", "r-mid", "r-old"]
    new = runs[0]
    assert (new["symbol"], new["label"], new["model"], new["sharpe"], new["dsr"]) == \
        ("ES", "direction", "lightgbm", 2.0, 0.4)
    assert new["metrics"] == {"roc_auc": 0.55} and new["active"] is False
    assert new["path"] == str(home / "runs" / "r-new")


def test_list_runs_empty_home(home):
    assert registry.list_runs() == []
    assert registry.active_runs() == []


def test_get_run_and_run_path(three):
    run = registry.get_run("r-old")
    assert run["run_id"] == "r-old" and run["path"] == str(three / "runs" / "r-old")
    for bad in ("../r-old", "r-old/../r-mid", "a/b", ".tmp-x", "..", "", "/etc"):
        with pytest.raises(AlmanacError, match="is not a run id"):
            registry.run_path(bad)
    with pytest.raises(NotFoundError, match="no run r-gone in .*runs list"):
        registry.get_run("r-gone")


def test_delete_run_is_atomic_and_clears_active(three):
    registry.set_active("r-old")
    registry.delete_run("r-old")
    assert [r["run_id"] for r in registry.list_runs()] == ["r-new", "r-mid"]
    assert sorted(p.name for p in (three / "runs").iterdir() if p.name.startswith(".trash")) == []
    assert registry.active_runs() == []
    with pytest.raises(NotFoundError):
        registry.delete_run("r-old")


def test_trial_sharpes_same_symbol_and_label(three, home):
    fake_run(home, "r-nq", "2026-01-05T00:00:00+00:00", symbol="NQ", sharpe=3.0)
    fake_run(home, "r-arch", "2026-01-06T00:00:00+00:00", label="rest_of_day", backtest=False)
    got = registry.trial_sharpes("ES", "rest_of_day")
    assert len(got) == 2 and got[0] == 0.5 and math.isnan(got[1])  # oldest first; undefined -> NaN
    assert registry.trial_sharpes("ES", "direction") == [2.0]
    assert registry.trial_sharpes("NQ", "rest_of_day") == [3.0]
    assert registry.trial_sharpes("CL", "rest_of_day") == []


def test_active_one_per_symbol_and_label(three, home):
    fake_run(home, "r-old2", "2026-01-07T00:00:00+00:00")
    registry.set_active("r-old")
    registry.set_active("r-new")
    registry.set_active("r-old2")  # replaces r-old: same ES / rest_of_day
    act = registry.active_runs()
    assert [(a["symbol"], a["label"], a["run_id"]) for a in act] == \
        [("ES", "direction", "r-new"), ("ES", "rest_of_day", "r-old2")]
    stored = json.loads((home / "runs" / "active.json").read_text())["active"]
    assert {k: v["run_id"] for k, v in stored.items()} == {"ES/direction": "r-new", "ES/rest_of_day": "r-old2"}
    assert {r["run_id"]: r["active"] for r in registry.list_runs()}["r-old2"] is True
    with pytest.raises(NotFoundError):
        registry.set_active("r-gone")


def test_read_artifact(three):
    folder = three / "runs" / "r-old"
    pd.DataFrame({"date": pd.to_datetime(["2020-01-02", "2020-01-03"]), "prob": [0.4, 0.7]}).to_parquet(
        folder / "oof.parquet")
    (folder / "drift.json").write_text(json.dumps({"psi": {"0": {"a": 0.1}}}))
    oof = registry.read_artifact("r-old", "oof.parquet", columns=["prob"])
    assert list(oof.columns) == ["prob"] and oof["prob"].tolist() == [0.4, 0.7]
    assert registry.read_artifact("r-old", "drift.json") == {"psi": {"0": {"a": 0.1}}}
    with pytest.raises(NotFoundError, match="has no shap.parquet"):
        registry.read_artifact("r-old", "shap.parquet")
    with pytest.raises(AlmanacError, match="is not a run artifact"):
        registry.read_artifact("r-old", "../../catalog.json")


def test_new_run_id_format_and_uniqueness():
    now = datetime(2026, 11, 22, 8, 15, 0, tzinfo=timezone.utc)
    ids = {registry.new_run_id("ES", "rest_of_day", "lightgbm", now) for _ in range(50)}
    assert len(ids) == 50
    for rid in ids:
        assert re.fullmatch(r"20261122-081500-es-rest-of-day-lightgbm-[0-9a-f]{6}", rid)
        assert registry.check_run_id(rid) == rid


def _tree(home) -> dict:
    import hashlib

    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def test_update_run_labels_sets_name_and_notes_atomically(three, home):
    run = registry.update_run_labels("r-old", name="  early session only ", notes="tried VIX\nnext: CL")
    assert run["name"] == "early session only" and run["user_notes"] == "tried VIX\nnext: CL"
    stored = registry.get_run("r-old")
    assert stored["name"] == "early session only" and stored["user_notes"] == "tried VIX\nnext: CL"
    assert stored["spec"] == {"data": {"symbol": "ES"}, "label": {"kind": "rest_of_day"},
                              "model": {"kind": "lightgbm"}}  # the recipe stays as trained
    assert [r["user_notes"] for r in registry.list_runs() if r["run_id"] == "r-old"] == ["tried VIX\nnext: CL"]
    registry.update_run_labels("r-old", notes="")  # notes can be cleared; None leaves the name
    assert registry.get_run("r-old")["name"] == "early session only"
    assert not list((home / "runs" / "r-old").glob("*.tmp*"))


@pytest.mark.parametrize("kw, message", [
    ({"name": "two\nlines"}, "the run name holds a line break or control character ('\\n'): use one line of "
                             "printable text"),
    ({"name": "x" * 101}, "the run name has 101 characters, more than the 100 allowed: shorten it"),
    ({"name": "   "}, "the run name is empty: give the run a short one-line name"),
    ({"notes": "a\x00b"}, "the notes hold a line break or control character ('\\x00'): remove the control "
                          "characters"),
    ({"notes": "y" * 2001}, "the notes have 2,001 characters, more than the 2,000 allowed: shorten it"),
])
def test_update_run_labels_refuses_and_changes_nothing(three, home, kw, message):
    before = _tree(home)
    with pytest.raises(AlmanacError) as err:
        registry.update_run_labels("r-old", **{"name": "fine", **kw} if "notes" in kw else kw)
    assert err.value.message == message and "\n" not in err.value.message
    assert _tree(home) == before
    with pytest.raises(NotFoundError):
        registry.update_run_labels("r-gone", name="x")
