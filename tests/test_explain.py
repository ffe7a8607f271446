"""SHAP values add up to the model output for every model kind, and the feature that
drives the label ranks first by mean |SHAP| and by permutation importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax
from threadpoolctl import threadpool_limits

from almanac.errors import SpecError
from ml.explain import mean_abs_shap, permutation_importances, shap_values, shap_values_by_class
from ml.models import make_model


@pytest.fixture(autouse=True)
def _one_thread():
    """One OpenMP/BLAS thread, as the pipeline sets via ml.threads.limit_threads
    (hist_gb has no n_jobs; a contended OpenMP pool made single fits take seconds)."""
    with threadpool_limits(limits=1):
        yield


def data(task: str, n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 5)), columns=["drive", "n1", "n2", "n3", "n4"])
    X.iloc[::11, 1] = np.nan
    z = 1.5 * X["drive"].to_numpy() + 0.5 * rng.normal(size=n)
    if task == "binary":
        return X, (z > 0).astype(int)
    if task == "multiclass":
        return X, np.digitize(z, [-1.0, 0.0, 1.0])
    return X, z


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "random_forest", "hist_gb", "logistic"])
def test_binary_additivity_and_ranking(kind):
    X, y = data("binary")
    model = make_model(kind, "binary").fit(X.iloc[:200], y[:200])
    rows = X.iloc[200:]
    res = shap_values(model, rows, background=X.iloc[:200])
    assert list(res.values.columns) == list(X.columns) and res.values.index.equals(rows.index)
    total = res.base_value + res.values.sum(axis=1).to_numpy()
    p_up = model.predict_proba(rows)[:, 1]
    # independent check through predict_proba: forests explain P(up), the rest log-odds
    implied = total if kind == "random_forest" else expit(total)
    assert res.output == ("probability" if kind == "random_forest" else "log_odds")
    np.testing.assert_allclose(implied, p_up, atol=1e-5)
    assert res.max_error < 1e-4
    assert mean_abs_shap(res).index[0] == "drive"
    imp = permutation_importances(model, rows, y[200:], "binary")
    assert imp["feature"].iloc[0] == "drive"
    assert imp["importance_mean"].iloc[0] > 0.1 > imp["importance_mean"].iloc[1:].abs().max()


def test_logistic_shap_is_coef_times_centered_scaled_features():
    X, y = data("binary")
    model = make_model("logistic", "binary").fit(X.iloc[:200], y[:200])
    res = shap_values(model, X.iloc[200:], background=X.iloc[:200])
    pre, lr = model[:-1], model[-1]
    bg = pre.transform(X.iloc[:200])
    expected = lr.coef_[0] * (pre.transform(X.iloc[200:]) - bg.mean(0))
    np.testing.assert_allclose(res.values.to_numpy(), expected, atol=1e-10)
    assert res.base_value == pytest.approx(lr.intercept_[0] + lr.coef_[0] @ bg.mean(0))
    with pytest.raises(SpecError, match="background"):
        shap_values(model, X.iloc[200:])


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "logistic", "random_forest"])
def test_regression_additivity(kind):
    X, y = data("regression")
    model = make_model(kind, "regression").fit(X.iloc[:200], y[:200])
    res = shap_values(model, X.iloc[200:], background=X.iloc[:200])
    np.testing.assert_allclose(res.base_value + res.values.sum(axis=1),
                               model.predict(X.iloc[200:]), atol=1e-4)
    assert res.output == "prediction" and mean_abs_shap(res).index[0] == "drive"
    imp = permutation_importances(model, X.iloc[200:], y[200:], "regression")
    assert imp["feature"].iloc[0] == "drive"


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "hist_gb", "logistic"])
def test_multiclass_by_class_reproduces_probabilities(kind):
    X, y = data("multiclass")
    model = make_model(kind, "multiclass").fit(X, y)
    results = shap_values_by_class(model, X.iloc[:50], background=X)
    assert len(results) == 4
    logits = np.column_stack([r.base_value + r.values.sum(axis=1) for r in results])
    np.testing.assert_allclose(softmax(logits, axis=1), model.predict_proba(X.iloc[:50]),
                               atol=1e-5)
    one = shap_values(model, X.iloc[:50], background=X, class_index=2)
    np.testing.assert_allclose(one.values, results[2].values)
    assert mean_abs_shap(results).index[0] == "drive"
    with pytest.raises(SpecError, match="class_index 0..3"):
        shap_values(model, X.iloc[:50], background=X)


def test_additivity_gap_is_flagged():
    from ml.explain import ShapAdditivityError

    X, y = data("binary")
    model = make_model("xgboost", "binary").fit(X, y)
    # xgboost sums in float32: gaps of ~1e-6 pass the default tolerance, not 1e-12
    assert 0 < shap_values(model, X).max_error < 1e-4
    with pytest.raises(ShapAdditivityError, match="miss the model output"):
        shap_values(model, X, tol=1e-12)


@pytest.mark.filterwarnings("ignore:LightGBM binary classifier:UserWarning")  # shap's note
@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_native_tree_shap_equals_shap_tree_explainer(kind, task):
    """lightgbm / xgboost values come from the libraries' own TreeSHAP, not from
    shap.TreeExplainer: same numbers, same layout (one result per class), same base."""
    import shap

    X, y = data(task)
    model = make_model(kind, task).fit(X.iloc[:200], y[:200])
    rows = X.iloc[200:]
    results = shap_values_by_class(model, rows)
    explainer = shap.TreeExplainer(model)
    expected = np.asarray(explainer.shap_values(rows), dtype="float64")
    base = np.atleast_1d(np.asarray(explainer.expected_value, dtype="float64"))
    if task == "multiclass":
        assert expected.shape == (len(rows), X.shape[1], 4) and len(results) == 4
    else:
        assert expected.shape == rows.shape and len(results) == 1
        expected = expected[:, :, None]
    for k, r in enumerate(results):
        np.testing.assert_allclose(r.values.to_numpy(), expected[:, :, k], rtol=1e-12, atol=1e-12)
        assert r.base_value == pytest.approx(base[k], rel=1e-12, abs=1e-12)
    # no rows: no values, the same base value (the libraries refuse empty input)
    empty = shap_values_by_class(model, rows.iloc[:0])
    assert [e.values.shape for e in empty] == [(0, X.shape[1])] * len(results)
    assert [e.base_value for e in empty] == pytest.approx([r.base_value for r in results], rel=1e-12)


_PERM_CASES = [("lightgbm", "binary"), ("logistic", "binary"), ("xgboost", "binary"),
               ("random_forest", "binary"), ("lightgbm", "multiclass"), ("logistic", "multiclass"),
               ("hist_gb", "multiclass"), ("lightgbm", "regression"), ("logistic", "regression")]


@pytest.mark.parametrize("kind,task", _PERM_CASES)
def test_batched_permutation_importance_equals_sklearn(kind, task, monkeypatch):
    """One stacked prediction gives exactly sklearn's permutation_importance (same seed
    handling, same shuffles, same scorer), also when split into chunks."""
    import ml.explain
    from sklearn.inspection import permutation_importance

    X, y = data(task)
    model = make_model(kind, task).fit(X.iloc[:200], y[:200])
    rows, y_rows = X.iloc[200:], y[200:]
    scoring = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}[task]
    ref = permutation_importance(model, rows, y_rows, scoring=scoring, n_repeats=5, random_state=3,
                                 n_jobs=1)
    ours = permutation_importances(model, rows, y_rows, task, n_repeats=5, seed=3)
    assert list(ours.columns) == ["feature", "importance_mean", "importance_std"]
    assert ours["importance_mean"].is_monotonic_decreasing
    ours = ours.set_index("feature").loc[list(X.columns)]
    np.testing.assert_allclose(ours["importance_mean"], ref.importances_mean, rtol=1e-12)
    np.testing.assert_allclose(ours["importance_std"], ref.importances_std, rtol=1e-12)
    assert ours["importance_mean"].idxmax() == "drive"
    # 100 rows, at most 250 per call: 2 of the 1 + 5 x 5 blocks per prediction
    monkeypatch.setattr(ml.explain, "MAX_ROWS_PER_CALL", 250)
    chunked = permutation_importances(model, rows, y_rows, task, n_repeats=5, seed=3)
    np.testing.assert_allclose(chunked.set_index("feature").loc[list(X.columns), "importance_mean"],
                               ref.importances_mean, rtol=1e-12)


def test_permutation_importance_predicts_in_one_call(monkeypatch):
    import ml.explain

    X, y = data("binary")
    model = make_model("lightgbm", "binary").fit(X.iloc[:200], y[:200])
    calls = []
    # the booster's predict: what decision_function (the roc_auc scorer's choice) calls, and
    # what permutation_importances calls directly for a bare LightGBM model
    original = type(model.booster_).predict

    def counting(self, Z, *a, **kw):
        calls.append(len(Z))
        return original(self, Z, *a, **kw)

    monkeypatch.setattr(type(model.booster_), "predict", counting)
    permutation_importances(model, X.iloc[200:], y[200:], "binary", n_repeats=5)
    assert calls == [100 * (1 + 5 * 5)]  # baseline + every (feature, repeat) copy
    calls.clear()
    monkeypatch.setattr(ml.explain, "MAX_ROWS_PER_CALL", 250)
    permutation_importances(model, X.iloc[200:], y[200:], "binary", n_repeats=5)
    assert calls == [200] * 13


def test_batched_scores_equal_sklearns_scorers_with_ties():
    from sklearn.metrics import r2_score, roc_auc_score

    from ml.explain import _scores

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    responses = np.round(rng.normal(size=(7, 300)), 1)  # many ties
    responses[3] = 0.25  # a constant response: AUC 0.5
    want = [roc_auc_score(y, r) for r in responses]
    np.testing.assert_allclose(_scores("binary", y, responses), want, rtol=1e-12)
    assert _scores("binary", y, responses)[3] == 0.5
    yr = rng.normal(size=300)
    np.testing.assert_allclose(_scores("regression", yr, responses), [r2_score(yr, r) for r in responses],
                               rtol=1e-12)
    with pytest.raises(ValueError, match="Only one class"):
        _scores("binary", np.ones(300), responses)
