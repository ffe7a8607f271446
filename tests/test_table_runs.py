"""Any table as a dataset: import-table, the split by distinct time, table specs, runs (regression and
classification) and the option-delta sample (Black-Scholes checked independently, R^2 >= 0.99 out of fold)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from almanac.errors import NotFoundError, SpecError
from almanac.spec import load_spec, spec_from_dict
from cli import main
from ml.splits import TimeGroupSplit

ROOT = Path(__file__).resolve().parent.parent


def _digest(home):
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


def test_time_group_split_keeps_the_rows_of_one_time_together():
    # times 0..5 with 3, 2, 4, 1, 2, 3 rows
    t = pd.to_datetime(np.repeat(pd.date_range("2020-01-01", periods=6).to_numpy(), [3, 2, 4, 1, 2, 3]))
    splits = list(TimeGroupSplit(n_splits=2, gap=1, min_train=2).split(np.zeros(len(t)), groups=t))
    # distinct times: train 0-1, gap 2, tests [3, 4] and [5]; fold 2 trains on times 0..3
    assert [(tr.tolist(), te.tolist()) for tr, te in splits] == [
        ([0, 1, 2, 3, 4], [9, 10, 11]), ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [12, 13, 14])]
    for tr, te in splits:
        assert not set(t[tr]) & set(t[te])  # no time on both sides
        assert (t[te].min() - t[tr].max()).days >= 2  # one distinct time (the gap) purged between
    with pytest.raises(SpecError, match="need at least 9 distinct times .* the table has 6"):
        list(TimeGroupSplit(n_splits=2, gap=1, min_train=6).split(np.zeros(len(t)), groups=t))


def _chain(n_days=400, per_day=6, seed=0, kind="regression"):
    rng = np.random.default_rng(seed)
    dates = np.repeat(pd.bdate_range("2016-01-04", periods=n_days).to_numpy(), per_day)
    x1, x2 = rng.normal(size=len(dates)), rng.normal(size=len(dates))
    y = 2 * x1 - x2 + 0.05 * rng.normal(size=len(dates)) if kind == "regression" else (x1 + 0.3 * x2 > 0).astype(int)
    return pd.DataFrame({"date": pd.DatetimeIndex(dates).strftime("%Y-%m-%d"), "contract": [f"c{i % per_day}" for i in
                                                                                     range(len(dates))],
                         "x1": x1, "x2": x2, "noise": rng.normal(size=len(dates)), "y": y})


def test_import_table_validates_like_bars(home, tmp_path, capsys):
    frame = _chain(n_days=30)
    csv = tmp_path / "chain.csv"
    frame.iloc[::-1].to_csv(csv, index=False)  # reversed: sorted with a warning
    assert main(["data", "import-table", str(csv), "--name", "chain", "--time", "date", "--group", "contract"]) == 0
    out = capsys.readouterr()
    assert "rows were not in time order; sorted them" in out.err
    assert out.out.startswith("imported dataset table chain: 180 rows x 5 columns")
    main(["data", "tables", "--json"])
    entry = json.loads(capsys.readouterr().out)[0]
    assert entry["numeric"] == ["x1", "x2", "noise", "y"] and entry["group"] == "contract" and entry["key"] == "date"
    before = _digest(home)
    bad = frame.copy()
    bad.loc[7, "x2"] = np.nan
    bad.to_csv(csv, index=False)
    assert main(["data", "import-table", str(csv), "--name", "chain", "--time", "date"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: chain.csv, row 8, column 'x2': value is missing; fill or remove the row"
    bad = frame.copy()
    bad["date"] = bad["date"].astype(object)
    bad.loc[3, "date"] = "soon"
    bad.to_csv(csv, index=False)
    assert main(["data", "import-table", str(csv), "--name", "chain", "--time", "date"]) == 2
    assert "row 4, column 'date': 'soon' is not a date or time" in capsys.readouterr().err
    assert main(["data", "import-table", str(csv), "--name", "chain", "--time", "when"]) == 2
    assert "has no column 'when'" in capsys.readouterr().err
    assert _digest(home) == before


def _spec(**over):
    d = {"data": {"table": "chain", "target": "y"}, "label": {"kind": "column"},
         "model": {"kind": "hist_gb", "params": {"max_iter": 50}},
         "validation": {"n_splits": 3, "gap": 1, "min_train": 100}}
    d.update(over)
    return d


@pytest.mark.parametrize("over, message", [
    ({"data": {"symbol": "ES", "table": "chain", "target": "y"}}, "spec field data.symbol: name either a symbol"),
    ({"data": {"table": "chain"}}, "spec field data.target: a table dataset needs the column to predict"),
    ({"label": {"kind": "direction"}}, "spec field label.kind: a table dataset's label is its target column"),
    ({"data": {"symbol": "ES"}}, "spec field label.kind: label kind column predicts a table's column"),
    ({"features": {"columns": ["y"]}}, "spec field features.columns: y is the target"),
    ({"label": {"kind": "column", "task": "ordinal"}}, "spec field label.task: 'ordinal' is not one of binary"),
])
def test_table_spec_refusals(over, message):
    with pytest.raises(SpecError) as exc:
        spec_from_dict(_spec(**over))
    assert message in exc.value.message


def test_table_run_regression_splits_by_distinct_time(home, tmp_path):
    from almanac.tables import import_dataset_table
    from ml.runner import run_experiment

    csv = tmp_path / "chain.csv"
    _chain().to_csv(csv, index=False)
    import_dataset_table(csv, "chain", time="date", group="contract")
    with pytest.raises(SpecError, match="features.columns: 'contract' is text of table chain"):
        run_experiment(_spec(features={"columns": ["contract"]}))
    with pytest.raises(NotFoundError, match="spec field data.table: no dataset table 'other'"):
        run_experiment(_spec(data={"table": "other", "target": "y"}))
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    rec = run_experiment(_spec(features={"columns": ["x1", "x2"]}))
    assert rec["task"] == "regression" and rec["backtest"] is None
    assert rec["backtest_note"].startswith("no backtest: a table dataset has no trading day to trade")
    assert {"mae", "rmse", "r2"} <= set(rec["metrics"]) and rec["metrics"]["r2"] > 0.9
    assert rec["feature_names"] == ["x1", "x2"] and rec["data_hashes"].keys() == {"table chain"}
    oof = pd.read_parquet(Path(rec["path"]) / "oof.parquet")
    assert (oof.groupby("date")["fold"].nunique() == 1).all()  # one time, one fold
    assert (oof.groupby("date").size() == 6).all()  # and every row of it
    n_test = [f["n_test"] for f in rec["folds"]]
    assert sum(n_test) == (400 - 101) * 6 and all(n % 6 == 0 for n in n_test)
    assert (Path(rec["path"]) / "shap.parquet").exists() and rec["lineage"]["x1"]["set"] == "table"


def test_table_run_classification_task_from_the_target_and_overridable(home, tmp_path):
    from almanac.tables import import_dataset_table
    from ml.runner import run_experiment

    csv = tmp_path / "chain.csv"
    _chain(kind="binary").to_csv(csv, index=False)
    import_dataset_table(csv, "chain", time="date")
    rec = run_experiment(_spec(features={"columns": ["x1", "x2"]}))
    assert rec["task"] == "binary" and rec["classes"] == ["0", "1"] and rec["metrics"]["roc_auc"] > 0.9
    rec = run_experiment(_spec(features={"columns": ["x1", "x2"]}, label={"kind": "column", "task": "regression"}))
    assert rec["task"] == "regression" and "r2" in rec["metrics"]


def test_black_scholes_agrees_with_an_independent_computation():
    from almanac.sample_options import black_scholes

    n = NormalDist()
    s, k, t, v, r = 2700.0, 2835.0, 30 / 365, 0.17, 0.0194
    d1 = (np.log(s / k) + (r + v * v / 2) * t) / (v * np.sqrt(t))
    d2 = d1 - v * np.sqrt(t)
    call = s * n.cdf(d1) - k * np.exp(-r * t) * n.cdf(d2)
    price, delta = black_scholes([s, s], [k, k], [t, t], [v, v], [r, r], [1, 0])
    assert price[0] == pytest.approx(call, rel=1e-12) and delta[0] == pytest.approx(n.cdf(d1), rel=1e-12)
    assert price[1] == pytest.approx(call - s + k * np.exp(-r * t), rel=1e-10)  # put-call parity
    assert delta[1] == pytest.approx(delta[0] - 1, abs=1e-15)


def test_option_delta_sample_scores_r2_above_099_out_of_fold(home):
    from almanac.tables import Tables
    from ml.runner import run_experiment

    spec = load_spec(ROOT / "configs" / "spx-option-delta-histgb.yaml")
    rec = run_experiment(spec)
    entry = Tables(home).entry("spx_option_delta")
    assert entry.sample and entry.group == "contract" and entry.rows == 1257 * 50  # 5 strikes x 5 expiries x C/P
    assert rec["task"] == "regression" and rec["metrics"]["r2"] >= 0.99, rec["metrics"]
    assert all(f["r2"] >= 0.99 for f in rec["folds"])
    assert any("is sample data" in n for n in rec["notes"])


def test_a_table_spec_round_trips_without_bar_only_fields():
    s = spec_from_dict(_spec(features={"columns": ["x1"]}))
    d = s.to_dict()
    assert "backtest" not in d and d["features"] == {"columns": ["x1"]} and d["label"] == {"kind": "column"}
    assert d["data"] == {"table": "chain", "target": "y", "start": None, "end": None}
    from almanac.spec import spec_from_yaml

    assert spec_from_yaml(s.to_yaml()) == s
    assert "features" not in spec_from_dict(_spec()).to_dict()
