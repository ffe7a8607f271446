"""ml.export: bundles round-trip to the run's predictions and refuse any alteration.

``build_run`` writes a small but complete run folder per the pipeline contract (walk-
forward out-of-fold predictions, backtest, SHAP, final model) from seeded synthetic days,
using the lab's own ml pieces; test_report.py uses it too.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from almanac.errors import AlmanacError
from ml import evaluation, explain, persist
from ml.backtester import backtest
from ml.models import make_model
from ml.splits import WalkForwardSplit, fold_ids, fold_table

FEATURES = ["or_return_pct", "gap_pct", "or_range_atr", "vix_ret_1d", "rv_20d"]
SMALL = {"lightgbm": {"n_estimators": 40}, "xgboost": {"n_estimators": 40},
         "random_forest": {"n_estimators": 30}, "hist_gb": {"max_iter": 40}, "logistic": None}


def synthetic_days(n: int = 420, seed: int = 5) -> pd.DataFrame:
    """Trading days with features and session prices whose rest-of-day move depends on
    the first feature."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2019-01-02", periods=n)
    X = pd.DataFrame(rng.normal(size=(n, len(FEATURES))), columns=FEATURES, index=dates)
    X.iloc[::17, 2] = np.nan
    prev_close = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = prev_close * (1 + rng.normal(0, 0.003, n))
    cutoff = open_ * (1 + 0.004 * X["or_return_pct"].to_numpy())
    rest = 0.004 * X["or_return_pct"].to_numpy() + rng.normal(0, 0.006, n)
    close = cutoff * (1 + rest)
    sessions = pd.DataFrame({"open": open_, "high": np.maximum.reduce([open_, cutoff, close]) * 1.002,
                             "low": np.minimum.reduce([open_, cutoff, close]) * 0.998,
                             "close": close, "cutoff_price": cutoff, "prev_close": prev_close},
                            index=dates)
    out = pd.concat([X, sessions], axis=1)
    out.index.name = "date"
    return out


LABEL_OF_TASK = {"binary": "rest_of_day", "regression": "forward_return", "multiclass": "archetype"}


def build_run(home: Path, kind: str = "lightgbm", task: str = "binary",
              run_id: str = "20260101-000000-es-rest-of-day-lightgbm-abc123",
              threshold: float = 0.55) -> dict:
    """A complete run folder in ``home/runs/<run_id>`` and its run.json record (+ path).

    Binary runs hold ``prob``, regression ``pred``, multiclass ``prob_<class>`` out-of-fold
    columns; multiclass runs have no backtest and no SHAP values (as the runner's)."""
    from ml.labelers import label_spec, make_label

    days = synthetic_days()
    label = LABEL_OF_TASK[task]
    y = make_label(label, days.reset_index())
    classes = list(label_spec(label).classes) if task != "regression" else None
    X = days[FEATURES]
    run_dir = home / "runs" / run_id
    run_dir.mkdir(parents=True)
    splits = list(WalkForwardSplit(n_splits=4, min_train=200, gap=1).split(X))
    width = len(classes) if task == "multiclass" else 1
    pred = np.full((len(X), width), np.nan)
    shap_parts = []
    for k, (tr, te) in enumerate(splits):
        model = make_model(kind, task, SMALL[kind], seed=0).fit(X.iloc[tr], y.iloc[tr])
        if task == "regression":
            pred[te, 0] = model.predict(X.iloc[te])
        else:
            proba = model.predict_proba(X.iloc[te])
            pred[te] = proba[:, 1:2] if task == "binary" else proba
        if task != "multiclass":
            sv = explain.shap_values(model, X.iloc[te], background=X.iloc[tr]).values
            shap_parts.append(sv.reset_index().assign(fold=k))
    ids = fold_ids(len(X), splits)
    tested = ids >= 0
    cols = {"binary": ["prob"], "regression": ["pred"],
            "multiclass": [f"prob_{c}" for c in classes or []]}[task]
    oof = pd.DataFrame({"date": X.index[tested], "fold": ids[tested], "y": y.to_numpy()[tested]})
    oof[cols] = pred[tested]
    oof.to_parquet(run_dir / "oof.parquet", index=False)
    table = fold_table(X.index, splits)
    table.to_parquet(run_dir / "folds.parquet", index=False)
    p = oof[cols].to_numpy() if task == "multiclass" else oof[cols[0]].to_numpy()
    per_fold = evaluation.fold_scores(task, oof["y"], p, oof["fold"], threshold)
    folds = json.loads(table.merge(per_fold, on="fold").to_json(orient="records", date_format="iso"))
    metrics = evaluation.scores(task, oof["y"], p, threshold)
    if shap_parts:
        shap = pd.concat(shap_parts)[["date", "fold", *FEATURES]]
        shap.to_parquet(run_dir / "shap.parquet", index=False)
    stats = None
    if task != "multiclass":
        frame = days.loc[X.index[tested]].reset_index()
        prob = oof["prob"].to_numpy() if task == "binary" else np.nan
        bt = backtest(frame.assign(prob=prob), threshold=threshold, cost_bps=0.5)
        bt.daily.to_parquet(run_dir / "backtest.parquet", index=False)
        bt.trades.to_parquet(run_dir / "trades.parquet", index=False)
        stats = bt.to_json_dict()["stats"]

    days.assign(y=y).to_parquet(run_dir / "dataset.parquet")
    final = make_model(kind, task, SMALL[kind], seed=0).fit(X, y)
    saved = persist.save_model(final, kind, task, run_dir / "model")
    spec = {"name": f"ES {label} {kind}", "data": {"symbol": "ES", "start": "2019-01-02", "end": None},
            "features": {"sets": ["early_session", "cross_asset", "regime"], "cutoff": "10:15",
                         "cross_assets": ["VIX"]},
            "label": {"kind": label}, "model": {"kind": kind, "params": SMALL[kind] or {}},
            "validation": {"scheme": "expanding", "n_splits": 4, "gap": 1, "min_train": 200},
            "backtest": {"threshold": threshold, "cost_bps": 0.5, "long_only": False}}
    (run_dir / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    lineage = {f: {"datasets": ["ES 1min"], "window": "bars in [09:30, 10:15) of day D",
                   "known_as_of": "10:15 America/New_York on day D", "definition": f"test {f}",
                   "set": "early_session"} for f in FEATURES}
    run = {"run_id": run_id, "name": spec["name"], "created_at": "2026-01-01T00:00:00+00:00",
           "status": "complete", "spec": spec,
           "data_hashes": {"ES 1min": "ab" * 32, "VIX 1d": "cd" * 32},
           "versions": {"python": "3.11", "lightgbm": "4.7.0"}, "code_revision": "deadbeef",
           "task": task, "classes": classes, "feature_names": FEATURES, "lineage": lineage,
           "notes": [], "n_rows": len(X), "metrics": evaluation._json_safe(metrics),
           "folds": evaluation._json_safe(folds), "backtest": stats, "timings": {},
           "final_model": {k: saved[k] for k in ("kind", "file", "format")}}
    (run_dir / "run.json").write_text(json.dumps(run, indent=2))
    return {**run, "path": str(run_dir)}


@pytest.fixture
def runs(home):
    """An empty ALMANAC_HOME whose runs/ folder build_run fills (read by almanac.registry)."""
    return home


@pytest.fixture(scope="module")
def module_home(tmp_path_factory):
    """A data home shared by one test module (ALMANAC_HOME points at it while in use)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALMANAC_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def binary_bundle(module_home):
    """A lightgbm binary run (built once per module) and its exported bundle."""
    from ml.export import export_run

    run = build_run(module_home, "lightgbm", "binary")
    return run, export_run(run["run_id"], module_home / "bundle.zip")


def _final_model_predictions(run: dict, rows: pd.DataFrame) -> pd.Series:
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    return pd.Series(model.predict_proba(rows[FEATURES])[:, 1], index=rows.index)


def test_round_trip_binary_matches_run_model(binary_bundle, tmp_path):
    from ml.export import load_bundle, predict_bundle

    run, path = binary_bundle
    bundle = load_bundle(path)
    md = bundle.metadata
    assert md["feature_names"] == FEATURES
    assert [f["name"] for f in md["features"]] == FEATURES
    assert md["features"][0]["lineage"]["known_as_of"].startswith("10:15")
    assert md["training"] == {"start": "2019-01-02", "end": f"{pd.bdate_range('2019-01-02', periods=420)[-1]:%Y-%m-%d}",
                              "n_rows": 420}
    assert md["threshold"] == 0.55 and md["task"] == "binary" and md["classes"] == ["down", "up"]
    assert md["label"]["kind"] == "rest_of_day" and "cutoff" in md["label"]["description"]
    assert md["metrics"]["roc_auc"] == pytest.approx(run["metrics"]["roc_auc"])
    assert md["backtest"]["sharpe"] == pytest.approx(run["backtest"]["sharpe"])
    assert md["data_hashes"] == run["data_hashes"] and md["code_revision"] == "deadbeef"

    # predictions on the run's own rows: identical to the run's final model
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    inp = tmp_path / "features.parquet"
    data[FEATURES[::-1] + ["close"]].to_parquet(inp)  # other order + extra column: selected by name
    out = predict_bundle(bundle, inp, tmp_path / "pred.parquet")
    pred = pd.read_parquet(out)
    assert list(pred.columns) == ["date", "prob", "signal"]
    expected = _final_model_predictions(run, data)
    assert np.array_equal(pred["prob"].to_numpy(), expected.to_numpy())
    assert pd.DatetimeIndex(pred["date"]).equals(pd.DatetimeIndex(data.index))
    p = expected.to_numpy()
    want = np.where(p >= 0.55, 1, np.where(p <= 0.45, -1, 0))
    assert np.array_equal(pred["signal"].to_numpy(), want)
    assert set(np.unique(want)) == {-1, 0, 1}

    # the same from a bundle path, to CSV
    csv = pd.read_csv(predict_bundle(path, inp, tmp_path / "pred.csv"))
    assert np.allclose(csv["prob"], p, rtol=0, atol=1e-15)


@pytest.mark.parametrize("kind", ["xgboost", "random_forest"])
def test_round_trip_regression(runs, tmp_path, kind):
    from ml.export import export_run, load_bundle, predictions

    run = build_run(runs, kind, "regression", run_id=f"20260101-000000-es-fwd-{kind}-r")
    bundle = load_bundle(export_run(run["run_id"], tmp_path))  # a folder: <run_id>.zip inside
    assert bundle.path == tmp_path / f"{run['run_id']}.zip"
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    out = predictions(bundle, data.reset_index())
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    expected = model.predict(data[FEATURES])
    assert np.array_equal(out["pred"].to_numpy(), expected)
    assert np.array_equal(out["signal"].to_numpy(), np.sign(expected).astype("int8"))


def test_round_trip_multiclass(runs, tmp_path):
    from ml.export import export_run, load_bundle, predictions

    run = build_run(runs, "logistic", "multiclass", run_id="20260101-000000-es-arch-log-m")
    bundle = load_bundle(export_run(run["run_id"], tmp_path / "m.zip"))
    assert bundle.metadata["classes"] == ["TrendUp", "TrendDown", "Range", "Reversal"]
    assert bundle.metadata["backtest"] is None
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    out = predictions(bundle, data.reset_index())
    proba = persist.load_model(Path(run["path"]) / "model", run["final_model"]).predict_proba(data[FEATURES])
    names = bundle.metadata["classes"]
    assert list(out.columns) == ["date"] + [f"prob_{c}" for c in names] + ["pred"]
    assert np.array_equal(out[[f"prob_{c}" for c in names]].to_numpy(), proba)
    assert out["pred"].tolist() == [names[i] for i in proba.argmax(axis=1)]


def _rewrite(src: Path, dst: Path, change=None, add=None, drop=None, comment=None) -> Path:
    """Copy bundle ``src`` to ``dst`` with one member changed / added / dropped."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == drop:
                continue
            data = zin.read(info)
            if change and info.filename == change[0]:
                data = change[1](data)
            zout.writestr(info.filename, data)
        if add:
            zout.writestr(*add)
        zout.comment = zin.comment if comment is None else comment
    return dst


def _model_member(path: Path) -> str:
    with zipfile.ZipFile(path) as zf:
        return next(n for n in zf.namelist() if n.startswith("model/"))


def test_tampering_is_refused(binary_bundle, tmp_path):
    from ml.export import load_bundle

    _, path = binary_bundle
    model = _model_member(path)
    assert model == "model/model.txt"

    def flip(data: bytes) -> bytes:  # change one leaf value of the booster text
        i = data.index(b"leaf_value=") + len(b"leaf_value=")
        return data[:i] + (b"9" if data[i:i + 1] != b"9" else b"8") + data[i + 1:]

    def retitle(data: bytes) -> bytes:
        md = json.loads(data)
        md["threshold"] = 0.51
        return json.dumps(md).encode()

    cases = {
        "model.zip": (dict(change=(model, flip)), f"{model} does not match its SHA-256"),
        "meta.zip": (dict(change=("metadata.json", retitle)), "metadata.json does not match"),
        "readme.zip": (dict(change=("README.md", lambda d: d + b"\nextra")), "README.md does not match"),
        "added.zip": (dict(add=("model/extra.txt", "x")), "model/extra.txt is not in MANIFEST"),
        "removed.zip": (dict(drop="README.md"), "README.md is missing"),
        "nomanifest.zip": (dict(drop="MANIFEST.sha256"), "MANIFEST.sha256 is missing"),
        "comment.zip": (dict(comment=b"hello"), "no bundle comment"),
        "traversal.zip": (dict(add=("../evil.py", "x")), "refusing member '../evil.py'"),
        "absolute.zip": (dict(add=("/etc/evil", "x")), "unexpected folder or path"),
    }
    for name, (kw, message) in cases.items():
        bad = _rewrite(path, tmp_path / name, **kw)
        with pytest.raises(AlmanacError, match=message) as err:
            load_bundle(bad)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_consistent_rehash_of_metadata_still_needs_matching_files_map(binary_bundle, tmp_path):
    """Rewriting manifest + comment after adding a member still trips the metadata map."""
    import hashlib

    from ml.export import load_bundle

    _, path = binary_bundle
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members["notes.txt"] = b"extra"
    manifest = "".join(f"{hashlib.sha256(b).hexdigest()}  {n}\n" for n, b in sorted(members.items())
                       if n != "MANIFEST.sha256").encode()
    bad = tmp_path / "rehashed.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, manifest if n == "MANIFEST.sha256" else b)
        zf.comment = f"almanac-bundle 1 manifest-sha256:{hashlib.sha256(manifest).hexdigest()}".encode()
    with pytest.raises(AlmanacError, match="metadata.json lists other files"):
        load_bundle(bad)


def test_not_a_zip_and_missing_columns_and_assets_refused(binary_bundle, tmp_path):
    from almanac.settings import REPO_ROOT
    from ml.export import load_bundle, predict_bundle

    _, path = binary_bundle
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(AlmanacError, match="junk.zip is not a model bundle"):
        load_bundle(junk)
    bundle = load_bundle(path)
    inp = tmp_path / "few.parquet"
    pd.DataFrame({"date": pd.bdate_range("2024-01-01", periods=3),
                  "or_return_pct": [0.1, 0.2, 0.3]}).to_parquet(inp)
    with pytest.raises(AlmanacError, match="lacks feature column.*gap_pct.*rv_20d"):
        predict_bundle(bundle, inp, tmp_path / "p.parquet")
    with pytest.raises(AlmanacError, match="assets/ is served publicly"):
        predict_bundle(bundle, inp, REPO_ROOT / "assets" / "p.parquet")
    with pytest.raises(AlmanacError, match="must end with"):
        predict_bundle(bundle, inp, tmp_path / "p.txt")


def test_bundle_layout_and_manifest_is_sha256sum_format(binary_bundle):
    import hashlib

    _, path = binary_bundle
    with zipfile.ZipFile(path) as zf:
        names = sorted(zf.namelist())
        manifest = zf.read("MANIFEST.sha256").decode().splitlines()
        listed = dict(reversed(line.split("  ")) for line in manifest)
        for name, digest in listed.items():
            assert hashlib.sha256(zf.read(name)).hexdigest() == digest
        readme = zf.read("README.md").decode()
        comment = zf.comment.decode()
    assert names == ["MANIFEST.sha256", "README.md", "metadata.json", "model/model.txt"]
    assert sorted(listed) == ["README.md", "metadata.json", "model/model.txt"]
    assert comment.endswith(hashlib.sha256("\n".join(manifest).encode() + b"\n").hexdigest())
    for heading in ("## Intended use", "## Data", "## Features", "## Label", "## Validation",
                    "## Metrics", "## Backtest", "## Caveats"):
        assert heading in readme
    assert "PSR" in readme and "DSR" in readme and "`or_return_pct`" in readme


def run_with_runner(home: Path, label: str = "rest_of_day", kind: str = "lightgbm") -> dict:
    """A real run by ml.runner on a small synthetic market in ``home`` (ALMANAC_HOME)."""
    from almanac.store import Store
    from bench.synthetic import synthetic_store
    from ml.runner import run_experiment

    store = Store(home)
    if not store.has("ES", "1min"):
        synthetic_store(store, minute_start="2017-01-02", days=320)
    return run_experiment({"data": {"symbol": "ES"}, "features": {"cross_assets": ["VIX"]},
                           "label": label, "model": {"kind": kind, "params": SMALL[kind] or {}},
                           "validation": {"n_splits": 3, "min_train": 150}}, store=store)


def test_runner_run_round_trip(home, tmp_path):
    """The real runner's run folder: the bundle predicts exactly what the run's model does."""
    from ml.export import export_run, load_bundle, predict_bundle

    run = run_with_runner(home)
    bundle = load_bundle(export_run(run["run_id"], tmp_path))
    md = bundle.metadata
    assert md["feature_names"] == run["feature_names"] and len(md["feature_names"]) > 10
    assert md["training"]["start"] == run["date_range"]["start"][:10]
    assert md["training"]["end"] == run["date_range"]["end"][:10]
    assert md["threshold"] == run["spec"]["backtest"]["threshold"]
    assert md["backtest"]["dsr"] == run["backtest"]["dsr"]
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    inp = tmp_path / "rows.parquet"
    data.to_parquet(inp)  # date index + features + y + session columns
    pred = pd.read_parquet(predict_bundle(bundle, inp, tmp_path / "pred.parquet"))
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    expected = model.predict_proba(data[run["feature_names"]])[:, 1]
    assert np.array_equal(pred["prob"].to_numpy(), expected)
    assert pd.DatetimeIndex(pred["date"]).equals(pd.DatetimeIndex(data.index))
    # a model file changed inside the run folder after the run is not exported
    model_file = Path(run["path"]) / "model" / run["final_model"]["file"]
    model_file.write_bytes(model_file.read_bytes() + b"\n")
    with pytest.raises(AlmanacError, match="does not match the SHA-256 recorded in run.json"):
        export_run(run["run_id"], tmp_path / "again.zip")
    assert not (tmp_path / "again.zip").exists()
