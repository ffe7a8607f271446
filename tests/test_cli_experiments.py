"""Command line: train, runs list|show|delete, export, predict, report -- exit codes,
stdout and one-line errors on stderr."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cli import main
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
    from bench.synthetic import futures_minutes

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
    # three folds of about 60 test days: the run is registered, with a warning line on stderr
    warns = [line for line in trained.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warns) == 1 and re.match(r"warning: fold 1 \(\d+ days\), fold 2 \(\d+ days\), fold 3 \(\d+ days\) "
                                        r"tested fewer than 100 days: ", warns[0])
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


def test_runs_show_json_counts_the_trials_now_and_numbers_folds_from_1(trained, cli):
    from almanac.registry import get_run
    from ml.trials import deflated

    first = trained.stdout.strip()
    code, out, err = cli("train", "--config", _cfg(cli), "--json")  # one more run on ES / rest_of_day
    assert code == 0, err
    second = json.loads(out)
    assert [w["code"] for w in second["warnings"]] == ["short_test_fold"]
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == \
        [f"warning: {w['message']}" for w in second["warnings"]]
    code, out, _ = cli("runs", "list", "--json")
    n_runs = sum(r["label"] == "rest_of_day" and r["symbol"] == "ES" for r in json.loads(out))
    assert n_runs >= 2
    code, out, _ = cli("runs", "show", first, "--json")
    shown = json.loads(out)
    now = deflated(get_run(first))
    assert shown["backtest"]["n_trials"] == now["n_trials"] == n_runs
    assert shown["backtest"]["dsr"] == pytest.approx(now["dsr"], abs=1e-15)
    assert shown["backtest"]["n_trials_at_training"] == 1  # frozen when it was trained
    assert second["backtest"]["n_trials"] == n_runs  # the newest run counts the same trials
    assert [f["fold"] for f in shown["folds"]] == [1, 2, 3]
    assert set(shown["baselines"]) == {"always_long", "majority", "prior_day", "lift"}
    listed = {r["run_id"]: r for r in json.loads(cli("runs", "list", "--json")[1])}
    assert (listed[first]["n_trials"], listed[first]["dsr"]) == (n_runs, shown["backtest"]["dsr"])
    code, text, _ = cli("runs", "show", first)
    assert "\n  1: train " in text and "\n  3: train " in text and "\n  0: train " not in text
    assert f"n_trials {n_runs}" in text and "always_long      sharpe " in text and "lift     Sharpe minus" in text
    assert "\nwarning  fold 1 (" in text


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
    start, end = f"{ds.index.min():%Y-%m-%d}", f"{ds.index.max():%Y-%m-%d}"  # every row was trained on
    assert err.splitlines() == [f"warning: {len(ds)} rows fall inside the model's training period "
                                f"({start} → {end}): in-sample"]
    later = feats.assign(date=feats["date"] + pd.Timedelta(days=3650))  # all after the training period
    later.iloc[:5, 0] = ds.index[-5:]  # but five of them inside it
    later.to_parquet(tmp_path / "later.parquet", index=False)
    code, _, err = cli("predict", "--bundle", str(tmp_path / "model.zip"), "--input",
                       str(tmp_path / "later.parquet"), "--out", str(tmp_path / "later-pred.parquet"))
    assert code == 0 and err == f"warning: 5 rows fall inside the model's training period ({start} → {end}): in-sample\n"
    later.iloc[5:].to_parquet(tmp_path / "new.parquet", index=False)
    code, _, err = cli("predict", "--bundle", str(tmp_path / "model.zip"), "--input",
                       str(tmp_path / "new.parquet"), "--out", str(tmp_path / "new-pred.parquet"))
    assert code == 0 and err == ""  # out-of-sample days: no warning
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    np.testing.assert_array_equal(pred["prob"].to_numpy(), model.predict_proba(ds[run["feature_names"]])[:, 1])
    code, out, err = cli("report", run_id, "--out", str(tmp_path / "report.html"))
    assert code == 0, err
    assert (tmp_path / "report.html").read_text().lstrip().lower().startswith("<!doctype html")


@pytest.mark.parametrize("change, message", [
    ({"model": {"kind": "lgbm"}},
     "error: spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, xgboost, knn, minirocket"),
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


# ---------------------------------------------------------------- issue 17: refused before any work

def home_state(home: Path) -> dict[str, str]:
    """{relative path: sha256} of every file under ``home``."""
    import hashlib

    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sample_home(tmp_path_factory):
    """The lab's sample data (ES 1min 2009-2018 + ES 1d, VIX and CL daily closes) plus NQ as
    a daily-only OHLC symbol (a copy of ES 1d)."""
    from almanac.sample import ensure_sample_data

    home = tmp_path_factory.mktemp("sample") / "home"
    store = Store(home)
    ensure_sample_data(store)
    store.write("NQ", "1d", store.read_bars("ES", "1d"), source="test: ES 1d as a daily-only symbol")
    return home


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ndata: {{symbol: ES}}\nlabel: rest_of_day\nfeatures: {{sets: *l{levels - 1}}}\n"


def spec_text(data="{symbol: ES}", label="rest_of_day", sets="[regime]", model="lightgbm", params="{}",
              extra="") -> str:
    return (f"data: {data}\nfeatures: {{sets: {sets}}}\nlabel: {label}\n"
            f"model: {{kind: {model}, params: {params}}}\n{extra}")


TIME = Path("/usr/bin/time")


def train_cli(home: Path, cfg: Path, tmp_path: Path, timeout: float = 120):
    """``python -m almanac train --config cfg`` in a subprocess: (result, seconds, peak MB or None)."""
    cmd = [sys.executable, "-m", "almanac", "train", "--config", str(cfg)]
    rss = tmp_path / "rss.txt"
    if TIME.exists():
        cmd = [str(TIME), "-f", "%M", "-o", str(rss), *cmd]
    import time

    t = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "ALMANAC_HOME": str(home)})
    spent = time.perf_counter() - t
    peak = int(rss.read_text().split()[-1]) / 1024 if rss.exists() else None
    return out, spent, peak


REFUSALS = {
    "alias-bomb": (laughs(), "error: spec file alias-bomb.yaml expands to more than 10000 values (aliases "
                             "included) at line "),
    "one-line-3.85MB": ('name: "' + "a" * 3_850_000 + '"\n',
                        "error: spec file one-line-3.85MB.yaml is 3.67 MB, more than the 256 KB a spec may have "
                        "(ALMANAC_MAX_YAML_KB)"),
    "duplicate-key": ("data: {symbol: ES}\nlabel: direction\nlabel: rest_of_day\n",
                      "error: spec file duplicate-key.yaml has the key 'label' twice in one mapping (line 2, "
                      "column 1 and line 3, column 1): keep one"),
    "list-document": ("- data\n- label\n", "error: a spec must be a mapping of sections"),
    "bad-date": (spec_text(data="{symbol: ES, start: 2018-02-30}"),
                 "error: spec field data.start: '2018-02-30' is not a date (day value is outside expected range): "
                 "use YYYY-MM-DD"),
    "learning-rate": (spec_text(params="{learning_rate: -1}"),
                      "error: spec field model.params.learning_rate: -1 is refused by LightGBM: Check failed: "
                      "(learning_rate) > (0.0); change or remove it"),
    "num-leaves": (spec_text(params="{num_leaves: 1}"),
                   "error: spec field model.params.num_leaves: 1 is refused by LightGBM: Check failed: (num_leaves) "
                   "> (1); change or remove it"),
    "n-estimators-abc": (spec_text(params="{n_estimators: abc}"),
                         "error: spec field model.params.n_estimators: 'abc' is not a number (LightGBM's default "
                         "is 100): write a number without quotes"),
    "n-estimators-1e9": (spec_text(params="{n_estimators: 1000000000}"),
                         "error: spec field model.params.n_estimators: 1000000000 is outside the lab's bounds for "
                         "n_estimators (1..20000): choose a value in 1..20000"),
    "logistic-C": (spec_text(model="logistic", params="{C: -1}"),
                   "error: spec field model.params.C: -1 is refused by scikit-learn: The 'C' parameter of "
                   "LogisticRegression must be a float in the range (0.0, inf]. Got -1 instead"),
    "logistic-max-iter": (spec_text(model="logistic", params="{max_iter: 0}"),
                          "error: spec field model.params.max_iter: 0 is outside the lab's bounds for max_iter "
                          "(1..20000)"),
    "hist-gb-max-iter": (spec_text(model="hist_gb", params="{max_iter: 0}"),
                         "error: spec field model.params.max_iter: 0 is outside the lab's bounds for max_iter "),
    "xgboost-max-depth": (spec_text(model="xgboost", params="{max_depth: -1}"),
                          "error: spec field model.params.max_depth: -1 is refused by XGBoost: value -1 for "
                          "Parameter max_depth should be greater equal to 0"),
    "unknown-param": (spec_text(params="{learning_rat: 0.1}"),
                      "error: unknown parameter(s) learning_rat for model 'lightgbm' (binary) (did you mean "
                      "learning_rate?)"),
    "vix-rest-of-day": (spec_text(data="{symbol: VIX}"),
                        "error: spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, which "
                        "needs 1-minute bars; VIX has only 1d bars with closes only (date, close), so not one day "
                        "can be labelled: import VIX 1-minute bars or use VIX as a cross-asset symbol"),
    "cl-forward-return": (spec_text(data="{symbol: CL}", label="forward_return"),
                          "error: spec field label.kind: forward_return starts at the price at the cutoff 10:15, "
                          "which needs 1-minute bars; CL has only 1d bars with closes only (date, close), so not one "
                          "day can be labelled"),
    "daily-only-early-session": (spec_text(data="{symbol: NQ}", label="direction", sets="[early_session, regime]"),
                                 "error: spec field features.sets: early_session features need 1-minute bars; NQ has "
                                 "only 1d: import NQ 1-minute bars or remove early_session, e.g. sets: [regime]"),
    "daily-only-rest-of-day": (spec_text(data="{symbol: NQ}"),
                               "error: spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, "
                               "which needs 1-minute bars; NQ has only 1d bars (it would silently run from the open "
                               "instead): import NQ 1-minute bars or use label direction"),
    "cross-asset-no-overlap": (spec_text(data="{symbol: ES, start: 2009-01-01, end: 2012-12-31}",
                                         sets="[regime, cross_asset], cross_assets: [VIX]"),
                               "error: spec field features.cross_assets: VIX data covers 2014-01-03 .. 2019-01-03, "
                               "which does not overlap the experiment's days 2009-01-02 .. 2012-12-31, so its "
                               "features would all be empty: choose dates inside both or remove VIX"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_before_any_work_exit_2_one_line_home_unchanged(sample_home, tmp_path, case):
    text, message = REFUSALS[case]
    cfg = tmp_path / f"{case}.yaml"
    cfg.write_text(text)
    before = home_state(sample_home)
    out, spent, peak = train_cli(sample_home, cfg, tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(message), out.stderr
    assert len(out.stderr.strip()) <= len("error: ") + 300
    assert home_state(sample_home) == before  # byte-identical: no feature cache, no runs/
    assert not (sample_home / "runs").exists() and not (sample_home / "cache").exists()
    # generous bounds (measured, whole process with imports: ~1-3 s, ~130-420 MB)
    assert spent < 30
    assert peak is None or peak < 600


def test_timeout_s_stops_a_run_with_one_line_and_no_run_folder(sample_home, tmp_path):
    cfg = tmp_path / "slow.yaml"
    cfg.write_text(spec_text(data="{symbol: ES, start: 2017-01-01}", label="direction",
                             params="{n_estimators: 20000, learning_rate: 0.001, min_child_samples: 5}",
                             extra="validation: {n_splits: 2, min_train: 250}\ntimeout_s: 2\n"))
    out, spent, _ = train_cli(sample_home, cfg, tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    last = out.stderr.splitlines()[-1]  # above it: the progress lines
    assert last.startswith("error: run exceeded timeout_s=2: stopped at ") and "nothing was registered" in last
    assert [p.name for p in (sample_home / "runs").iterdir()] == []  # not even runs/.tmp-*
    assert spent < 60
    shutil.rmtree(sample_home / "runs")  # the other tests want no runs/ folder at all
    shutil.rmtree(sample_home / "cache", ignore_errors=True)
