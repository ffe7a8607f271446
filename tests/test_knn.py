"""The ``knn`` model kind: scaler fitted per training fold inside the model, walk-forward
predictions equal to a hand fit, and its SHAP values equal to shap's exact explainer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml import explain
from ml.models import make_model
from ml.runner import run_experiment
from tests.test_runner import SPEC, write_market


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    store = write_market(tmp_path_factory.mktemp("knn") / "home")
    spec = {**SPEC, "name": "tiny-knn", "model": {"kind": "knn", "params": {"n_neighbors": 15}}}
    return run_experiment(spec, store=store), store


def test_knn_walk_forward_equals_a_hand_fit(run):
    """Fold 2's out-of-fold P(up) = a KNeighborsClassifier fitted by hand on that fold's training
    rows, after a median imputer and a StandardScaler fitted on those rows only."""
    from sklearn.neighbors import KNeighborsClassifier

    record, store = run
    folder = store.home / "runs" / record["run_id"]
    data = pd.read_parquet(folder / "dataset.parquet")
    oof = pd.read_parquet(folder / "oof.parquet")
    names = record["feature_names"]
    fold = record["folds"][1]
    train = data.loc[fold["train_start"]:fold["train_end"]]
    test = data.loc[fold["test_start"]:fold["test_end"]]
    assert len(train) == fold["n_train"] and len(test) == fold["n_test"]
    X_tr = train[names].to_numpy()
    med = np.nanmedian(X_tr, axis=0)
    med = np.where(np.isnan(med), 0.0, med)

    def prep(X, mean=None, std=None):
        X = np.where(np.isnan(X), med, X)
        return X if mean is None else (X - mean) / np.where(std > 0, std, 1.0)

    filled = prep(X_tr)
    mean, std = filled.mean(axis=0), filled.std(axis=0)
    knn = KNeighborsClassifier(n_neighbors=15, algorithm="brute").fit(prep(X_tr, mean, std), train["y"].astype(int))
    want = knn.predict_proba(prep(test[names].to_numpy(), mean, std))[:, 1]
    got = oof.set_index("date").loc[test.index, "prob"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    assert record["spec"]["model"]["kind"] == "knn" and record["shap_output"] == "probability"
    assert record["backtest"] is not None and "always_long" in record["baselines"]


def test_knn_shap_equals_shaps_exact_explainer():
    """Few features: every feature order is used, so the values are the exact Shapley values
    of moving from the average training day, which shap's Exact explainer computes too."""
    import shap

    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(300, 3)) * [1.0, 5.0, 0.1], columns=["a", "b", "c"])
    X.iloc[::11, 2] = np.nan
    for task, y in (("binary", (X["a"] + rng.normal(size=300) > 0).astype(int)),
                    ("regression", X["b"] + rng.normal(size=300))):
        model = make_model("knn", task, {"n_neighbors": 20}).fit(X, y)
        rows = X.iloc[:25]
        got = explain.shap_values(model, rows, background=X)
        pre, est = model[:-1], model[-1]
        bg = pre.transform(X).mean(axis=0, keepdims=True)
        f = (lambda Z: est.predict_proba(Z)[:, 1]) if task == "binary" else est.predict
        ref = shap.explainers.Exact(f, shap.maskers.Independent(bg, max_samples=1))(pre.transform(rows))
        np.testing.assert_allclose(got.values.to_numpy(), ref.values, atol=1e-12)
        assert got.base_value == pytest.approx(float(np.asarray(ref.base_values).reshape(-1)[0]), abs=1e-12)
        assert got.output == ("probability" if task == "binary" else "prediction")


def test_knn_shap_adds_up_with_many_features():
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.normal(size=(400, 12)), columns=[f"f{i}" for i in range(12)])
    y = rng.integers(0, 3, 400)
    model = make_model("knn", "multiclass", {"n_neighbors": 30}).fit(X, y)
    results = explain.shap_values_by_class(model, X.iloc[:50], background=X)  # checks additivity itself
    assert len(results) == 3 and all(r.max_error < 1e-9 for r in results)
    proba = model.predict_proba(X.iloc[:50])
    for k, r in enumerate(results):
        np.testing.assert_allclose(r.values.sum(axis=1) + r.base_value, proba[:, k], atol=1e-12)


def test_evaluate_similar_days_of_an_out_of_fold_day(run, page_module, monkeypatch):
    """/evaluate: the run's out-of-fold days, and a day's neighbours in the run's own features,
    all before it (training days included), equal to ml.similar.nearest_days on dataset.parquet."""
    import dash_bootstrap_components as dbc
    from dash import dcc

    from ml.similar import nearest_days, rest_of_day_returns

    record, store = run
    monkeypatch.setenv("ALMANAC_HOME", str(store.home))
    page = page_module("evaluate")
    first, last, value, month = page.similar_days_of_run(record["run_id"])
    oof = pd.read_parquet(store.home / "runs" / record["run_id"] / "oof.parquet")
    assert (first, last, value, month) == (f"{oof['date'].min():%Y-%m-%d}", f"{oof['date'].max():%Y-%m-%d}",
                                           f"{oof['date'].max():%Y-%m-%d}", f"{oof['date'].max():%Y-%m-%d}")
    day = f"{oof['date'].iloc[3]:%Y-%m-%d}"  # an early test day: most neighbours are training days
    prompt = page.render_similar(0, record["run_id"], day, 7)  # nothing computed before "Find"
    assert "press Find similar days" in str(prompt.children)
    view = page.render_similar(1, record["run_id"], day, 7)
    graph = next(c for c in view if isinstance(c, dcc.Graph))
    bar = next(t for t in graph.figure.data if t.type == "bar")
    data = pd.read_parquet(store.home / "runs" / record["run_id"] / "dataset.parquet")
    want = nearest_days(data[record["feature_names"]], rest_of_day_returns(data), day, 7)
    assert list(bar.y) == [f"{d:%Y-%m-%d}" for d in want.table["date"]] and all(d < day for d in bar.y)
    np.testing.assert_allclose(bar.x, 100 * want.table["rest_of_day_return"])
    # a picked date that is no out-of-fold day (a Saturday) is the latest one before it, said above the chart
    saturday = next(d for d in pd.date_range(oof["date"].iloc[3], periods=8) if d.dayofweek == 5)
    before = f"{oof['date'][oof['date'] < saturday].max():%Y-%m-%d}"
    moved = page.render_similar(2, record["run_id"], f"{saturday:%Y-%m-%d}", 7)
    assert f"{saturday:%Y-%m-%d} has no row here" in str(moved[0].children) and f"showing {before}" in str(
        moved[0].children)
    assert next(c for c in moved if isinstance(c, dcc.Graph)).figure.layout.title.text.split(":")[0].endswith(before)
    train_day = f"{data.index[5]:%Y-%m-%d}"  # a training day (the picker starts after them): not queried
    early = page.render_similar(3, record["run_id"], train_day, 7)
    assert f"showing {oof['date'].min():%Y-%m-%d}" in str(early[0].children)
    from ml.similar import similar_in_run

    with pytest.raises(Exception) as exc:  # asked directly, the query itself refuses it
        similar_in_run(record["run_id"], train_day, 7, store)
    alert = page.failure_alert(exc.value, page.log, "finding similar days")
    assert isinstance(alert, dbc.Alert) and f"{train_day} is not an out-of-fold day of run" in str(alert.children)
