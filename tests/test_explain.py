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
