"""The command line's garbage-collector handling (cli.entry / cli.loaded)."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import gc, json, sys
import cli, cli.experiments as E, ml.models as M, ml.runner as R
seen = {}
def probe(name, f):
    def g(*a, **k):
        seen[name] = [gc.isenabled(), gc.get_freeze_count() > 0]
        raise SystemExit(0)
    return g
R.run_experiment = probe("run_experiment", R.run_experiment)
E.cmd_list = probe("runs list", E.cmd_list)
import atexit
atexit.register(lambda: print(json.dumps(seen)))
sys.argv = ["almanac", *sys.argv[1:]]
if sys.argv[1] == "train":  # the spec's checks pass (noting the collector's state), then the runner is reached
    M.check_params = lambda *a, **k: seen.setdefault("check_params", [gc.isenabled(), gc.get_freeze_count() > 0])
    import almanac.spec as S
    S.validate_against_store = lambda *a, **k: None
    E.validate_against_store = S.validate_against_store
sys.exit(cli.entry())
"""


def probe(*argv, home) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True,
                         env={"ALMANAC_HOME": str(home), "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_train_loads_with_the_collector_off_then_freezes(tmp_path):
    seen = probe("train", "--config", str(ROOT / "configs" / "es-rest-of-day-lgbm.yaml"), home=tmp_path)
    assert seen["check_params"] == [False, False]   # the heavy imports happen with the collector off
    assert seen["run_experiment"] == [True, True]   # the run itself: on, with the loaded modules frozen


def test_other_commands_run_with_the_collector_on(tmp_path):
    assert probe("runs", "list", home=tmp_path) == {"runs list": [True, True]}


def test_main_in_process_leaves_the_collector_alone(tmp_path, monkeypatch, capsys):
    from cli import main

    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path))
    frozen = gc.get_freeze_count()
    assert main(["runs", "list"]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen
