"""What the pages offer of the user's own features and data (plain callback functions, no browser),
and that the web server's process never executes a plugin."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from almanac.errors import NotFoundError, SpecError
from bench.synthetic import synthetic_store
from cli import main

MARKER_PLUGIN = '''
from pathlib import Path
from almanac.plugins import feature

Path({marker!r}).write_text("executed")


@feature(name="win_last", description="the window's last close")
def win_last(window, daily):
    return window.groupby("date")["close"].last()
'''


@pytest.fixture
def market(store):
    synthetic_store(store, days=90, minute_start="2017-03-01")
    return store


def test_train_form_builds_a_table_spec_and_says_there_is_no_backtest(page_module, home):
    train = page_module("train")
    fields = {**train.DEFAULTS, "symbol": "table:spx_option_delta", "target": "delta", "kind": "hist_gb"}
    d = train.form_to_dict(fields, {"hist_gb": {"max_iter": 300}})
    assert d["data"] == {"table": "spx_option_delta", "target": "delta", "start": None, "end": None}
    assert d["label"] == {"kind": "column"} and "backtest" not in d and "features" not in d
    text, problem = train.check_form(fields, {})
    assert problem is None and "table: spx_option_delta" in text
    _, problem = train.check_form({**fields, "target": ""}, {})
    assert problem.startswith("spec field data.target: a table dataset needs the column to predict")
    shown, note, target, bars, label, hint, table_label, rules = train.follow_table("table:spx_option_delta", "")
    assert shown == note == table_label == {"display": "block"} and target == "delta"
    assert bars == label == hint == rules == {"display": "none"}
    assert train.follow_table("ES", "x")[:4] == ({"display": "none"}, {"display": "none"}, "x", {"display": "block"})
    assert train.NO_TABLE_BACKTEST == "A table dataset has no backtest: its rows are samples, not trading days to trade."
    values = [o["value"] for o in train.table_choices()]
    assert values == ["table:spx_option_delta"]
    assert train.yaml_filename(fields) == "table-spx-option-delta-rest-of-day-hist-gb.yaml"


def test_train_result_of_a_table_run_has_no_backtest_button(page_module, home, tmp_path):
    from almanac import registry
    from almanac.tables import import_dataset_table
    from ml.runner import run_experiment

    train = page_module("train")
    rng = np.random.default_rng(0)
    dates = np.repeat(pd.bdate_range("2016-01-04", periods=200), 3)
    x = rng.normal(size=len(dates))
    pd.DataFrame({"date": dates, "x": x, "y": 3 * x}).to_csv(tmp_path / "t.csv", index=False)
    import_dataset_table(tmp_path / "t.csv", "small", time="date")
    rec = run_experiment({"data": {"table": "small", "target": "y"}, "label": {"kind": "column"},
                          "model": {"kind": "hist_gb", "params": {"max_iter": 20}},
                          "validation": {"n_splits": 2, "min_train": 100}})
    view = str(train.result_view(registry.get_run(rec["run_id"])))
    assert "train-no-backtest" in view and train.NO_TABLE_BACKTEST in view and "train-to-backtest" not in view


def test_features_page_lists_user_sets_and_never_runs_a_plugin(page_module, market, tmp_path):
    features = page_module("features")
    from features.build import user_sets

    assert user_sets(market.home) == []
    csv = tmp_path / "m.csv"
    pd.DataFrame({"date": ["2017-03-01"], "v": [1.0]}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "macro", "--known-at", "16:00"]) == 0
    marker = tmp_path / "ran.txt"
    plugin = tmp_path / "last.py"
    plugin.write_text(textwrap.dedent(MARKER_PLUGIN.format(marker=str(marker))))
    assert main(["plugins", "add", str(plugin)]) == 0
    assert marker.read_text() == "executed"  # the audit ran it (in this command's process)
    assert user_sets(market.home) == ["tables", "plugins"]
    hint = str(features.user_set_hint())
    assert "macro (v; known at 16:00 on the row's date, exchange time)" in hint and "last (win_last" in hint
    assert features.PLUGIN_WARNING in hint and "never in the web server" in features.PLUGIN_WARNING
    marker.unlink()
    config = {"symbol": "ES", "cutoff": "10:15", "sets": ["regime", "plugins"], "cross_assets": [], "start": None,
              "end": None}
    with pytest.raises(SpecError, match="not in the feature cache, and plugins run only in a build job"):
        features.load_table(config)  # a cache miss in the server's process: refused, not run
    config["cutoff"] = "10:45"
    with pytest.raises(SpecError, match="plugin last must be audited again"):
        features.load_table(config)  # an audit is needed: refused, not run
    assert not marker.exists()
    from features import build_features

    ft = build_features("ES", sets="regime,plugins")  # the build job's call: runs it, caches the table
    assert marker.exists() and "win_last" in ft.frame.columns
    marker.unlink()
    config["cutoff"] = "10:15"
    assert "win_last" in features.load_table(config).frame.columns and not marker.exists()  # from the cache


def test_runs_refuse_empty_user_sets_before_writing(market):
    from ml.runner import run_experiment

    spec = {"data": {"symbol": "ES"}, "features": {"sets": ["regime", "tables"]}, "label": {"kind": "direction"},
            "validation": {"n_splits": 2, "min_train": 20}}
    with pytest.raises(NotFoundError, match="spec field features.sets: no feature table imported yet"):
        run_experiment(spec, store=market)
    spec["features"]["sets"] = ["plugins"]
    with pytest.raises(NotFoundError, match="spec field features.sets: no plugin added yet"):
        run_experiment(spec, store=market)
    assert not (market.home / "runs").exists() or not any((market.home / "runs").iterdir())


def test_run_pages_show_a_table_run(page_module, home, tmp_path):
    """/evaluate, /backtest and /models lay out a table run (no symbol, no backtest) without an error."""
    from almanac import registry
    from almanac.tables import import_dataset_table
    from ml.runner import run_experiment

    rng = np.random.default_rng(1)
    dates = np.repeat(pd.bdate_range("2016-01-04", periods=160), 2)
    x = rng.normal(size=len(dates))
    pd.DataFrame({"date": dates, "x": x, "y": 2 * x + 1}).to_csv(tmp_path / "t.csv", index=False)
    import_dataset_table(tmp_path / "t.csv", "tiny", time="date")
    rec = run_experiment({"data": {"table": "tiny", "target": "y"}, "label": {"kind": "column"},
                          "model": {"kind": "hist_gb", "params": {"max_iter": 10}},
                          "validation": {"n_splits": 2, "min_train": 60}})
    assert registry.list_runs()[0]["symbol"] == "table:tiny"
    assert registry.set_active(rec["run_id"])["symbol"] == "table:tiny"
    for name in ("evaluate", "backtest", "models"):
        page = page_module(name)
        tree = repr(page.layout(run=rec["run_id"]))
        assert rec["run_id"] in tree
    out = page_module("evaluate").setup_run(rec["run_id"])
    assert "table:tiny · label column (regression)" in repr(out[9])
    bt = page_module("backtest")
    out = bt.setup_run(rec["run_id"])
    assert bt.NO_TABLE_BACKTEST in repr(out[4]) and out[7] == bt.HIDDEN and out[8] == bt.HIDDEN
    rendered = bt.render_backtest(rec["run_id"], 0.55, [], 1.0)
    assert bt.NO_TABLE_BACKTEST in repr(rendered[7]) and bt.render_grid(rec["run_id"], []) is None


def test_data_page_lists_the_tables_and_flags_the_sample(page_module, home, tmp_path):
    from almanac.sample_options import ensure_option_sample

    data = page_module("data")
    assert "No tables yet." in repr(data.tables_section())
    ensure_option_sample(home)
    pd.DataFrame({"date": ["2017-03-01"], "v": [1.0]}).to_csv(tmp_path / "m.csv", index=False)
    assert main(["data", "import-features", str(tmp_path / "m.csv"), "--name", "macro", "--known-at", "16:00"]) == 0
    rows = data.table_rows()
    assert [(r["table"], r["kind"], r["rows"]) for r in rows] == [("macro", "feature table", "1"),
                                                                 ("spx_option_delta", "dataset", "62,850")]
    assert rows[0]["rule"] == "known at 16:00 on the row's date, exchange time"
    assert rows[1]["rule"] == "time date, group contract" and rows[1]["source"].startswith("sample: ")
    assert "data-tables-table" in repr(data.layout())
