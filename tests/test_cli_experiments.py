"""Command line: train, runs list|show|delete, export, predict, report -- exit codes,
stdout and one-line errors on stderr."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from almanac.cli import main
from almanac.store import Store
from ml import persist

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"name": "cli-tiny", "data": {"symbol": "ES"},
        "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
        "label": {"kind": "rest_of_day"}, "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
        "validation": {"n_splits": 3, "gap": 1, "min_train": 150},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0}}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from features.synthetic import futures_minutes

    home = tmp_path_factory.mktemp("cli") / "home"
    Store(home).write("ES", "1min", futures_minutes("2018-07-02", days=330, seed=5, step=5, overnight=False),
                      source="test")
    cfg = home.parent / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(SPEC))
    return home, cfg


@pytest.fixture
def cli(market, monkeypatch, capsys):
    home, cfg = market
    monkeypatch.setenv("ALMANAC_HOME", str(home))

    def run(*argv):
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture(scope="module")
def trained(market):
    """One run trained through ``python -m almanac train`` in a subprocess."""
    home, cfg = market
    return subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(cfg)], cwd=ROOT,
                          capture_output=True, text=True, env={**os.environ, "ALMANAC_HOME": str(home)})


def test_train_prints_the_run_id_and_progress_on_stderr(trained, cli):
    assert trained.returncode == 0, trained.stderr
    run_id = trained.stdout.strip()
    assert re.fullmatch(r"\d{8}-\d{6}-es-rest-of-day-lightgbm-[0-9a-f]{6}", run_id)
    assert "fold 1 of 3: fitting" in trained.stderr and "done" in trained.stderr
    code, out, _ = cli("runs", "list", "--json")
    assert code == 0 and run_id in [r["run_id"] for r in json.loads(out)]


def test_train_json_equals_runs_show_json(trained, cli):
    code, out, err = cli("train", "--config", _cfg(cli), "--json")
    assert code == 0, err
    record = json.loads(out)
    code, shown, _ = cli("runs", "show", record["run_id"], "--json")
    assert code == 0 and json.loads(shown) == record
    for key in ("run_id", "path", "spec", "metrics", "folds", "backtest"):
        assert key in record
    assert {"roc_auc", "accuracy", "balanced_accuracy", "log_loss", "brier"} <= set(record["metrics"])
    assert {"train_start", "train_end", "test_start", "test_end", "roc_auc"} <= set(record["folds"][0])
    assert {"sharpe", "sortino", "max_drawdown", "cagr", "calmar", "win_rate", "trades", "total_return", "psr",
            "dsr", "n_trials"} <= set(record["backtest"])
    # the first run (trained in a subprocess) is a trial of this one: same symbol and label
    assert record["backtest"]["n_trials"] == 2
    code, out, _ = cli("runs", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["run_id"] == record["run_id"] and len(listed) == 2  # newest first
    assert listed[0]["sharpe"] == record["backtest"]["sharpe"]


def _cfg(cli) -> str:
    return str(Path(os.environ["ALMANAC_HOME"]).parent / "tiny.yaml")


def test_runs_show_text_and_list_text(trained, cli):
    run_id = trained.stdout.strip()
    code, out, _ = cli("runs", "show", run_id)
    assert code == 0 and f"run      {run_id}" in out and "metrics  roc_auc " in out and "backtest sharpe " in out
    assert out.count("train 20") == 3  # one line per fold
    code, out, _ = cli("runs", "list")
    assert code == 0 and run_id in out and out.splitlines()[0].startswith("run id")


def test_export_predict_report(trained, cli, tmp_path):
    run_id = trained.stdout.strip()
    code, out, err = cli("export", run_id, "--out", str(tmp_path / "model.zip"))
    assert code == 0, err
    assert Path(out.strip()) == tmp_path / "model.zip" and (tmp_path / "model.zip").is_file()
    code, out, _ = cli("runs", "show", run_id, "--json")
    run = json.loads(out)
    ds = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    feats = ds[run["feature_names"]].reset_index()
    feats.to_parquet(tmp_path / "features.parquet", index=False)
    code, out, err = cli("predict", "--bundle", str(tmp_path / "model.zip"), "--input",
                         str(tmp_path / "features.parquet"), "--out", str(tmp_path / "pred.parquet"))
    assert code == 0, err
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    np.testing.assert_array_equal(pred["prob"].to_numpy(), model.predict_proba(ds[run["feature_names"]])[:, 1])
    code, out, err = cli("report", run_id, "--out", str(tmp_path / "report.html"))
    assert code == 0, err
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize("change, message", [
    ({"model": {"kind": "lgbm"}},
     "error: spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, xgboost"),
    ({"data": {"symbol": "NQ"}}, "error: spec field data.symbol: NQ has no data in the store (it holds ES): "
                                 "import NQ first or choose another symbol"),
    ({"model": {"kind": "lightgbm", "params": {"learning_rat": 0.1}}}, "error: unknown parameter(s) learning_rat"),
    ({"validation": {"n_splits": 3, "gap": 1, "min_train": 300}},
     "error: spec field data.start: ES has 330 trading days in 2018-07-02 .. 2019-10-04, fewer than the 361"),
])
def test_bad_specs_exit_2_with_one_line_and_write_nothing(cli, tmp_path, change, message, market):
    home, _ = market
    before = sorted(p.name for p in (home / "runs").iterdir()) if (home / "runs").exists() else []
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**SPEC, **change}))
    code, out, err = cli("train", "--config", str(cfg))
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith(message)
    after = sorted(p.name for p in (home / "runs").iterdir()) if (home / "runs").exists() else []
    assert after == before


def test_user_errors_exit_2(cli, tmp_path):
    for argv, start in [
        (("train", "--config", str(tmp_path / "missing.yaml")), "error: spec file "),
        (("runs", "show", "../../etc"), "error: '../../etc' is not a run id"),
        (("runs", "show", "20200101-000000-nothing-abcdef"), "error: no run 20200101-000000-nothing-abcdef in "),
        (("runs", "delete", "20200101-000000-nothing-abcdef"), "error: no run "),
        (("export", "20200101-000000-nothing-abcdef", "--out", str(tmp_path / "x.zip")), "error: no run "),
        (("report", "20200101-000000-nothing-abcdef", "--out", str(tmp_path / "x.html")), "error: no run "),
        (("predict", "--bundle", str(tmp_path / "none.zip"), "--input", str(tmp_path / "f.parquet"), "--out",
          str(tmp_path / "p.parquet")), "error: model bundle "),
        (("runs",), "python -m almanac runs: the following arguments are required"),
    ]:
        code, out, err = cli(*argv)
        assert code == 2 and len(err.splitlines()) == 1 and err.startswith(start), (argv, err)


def test_delete_then_show_fails(cli, market):
    code, out, err = cli("train", "--config", _cfg(cli))
    assert code == 0, err
    run_id = out.strip()
    code, out, _ = cli("runs", "delete", run_id)
    assert code == 0 and out.strip() == f"deleted {run_id}"
    code, _, err = cli("runs", "show", run_id)
    assert code == 2 and err.startswith(f"error: no run {run_id}")


def test_empty_home_list_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path))
    assert main(["runs", "list"]) == 0
    assert capsys.readouterr().out.startswith("no runs yet: train one with")
    assert main(["runs", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
