"""Model factory: every kind fits every task, refits identically, learns a planted
signal, scales tiny features inside the pipeline, and rejects unknown names."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import r2_score, roc_auc_score
from threadpoolctl import threadpool_limits

import ml.threads
from almanac.errors import SpecError
from ml.models import MODEL_KINDS, TASKS, default_params, make_model, valid_params

#: The kinds that take a table of engineered features; minirocket reads a raw path (tests/test_rocket.py).
TABULAR_KINDS = tuple(k for k in MODEL_KINDS if k != "minirocket")


@pytest.fixture(autouse=True)
def _one_thread():
    """One OpenMP/BLAS thread, as the pipeline sets via ml.threads.limit_threads
    (hist_gb has no n_jobs; a contended OpenMP pool made single fits take seconds)."""
    with threadpool_limits(limits=1):
        yield


def data(task: str, n: int = 400, scale: float = 1.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 6)) * scale, columns=[f"f{i}" for i in range(6)])
    X.iloc[::13, 2] = np.nan  # missing values must be handled inside the model
    z = X["f0"].to_numpy() / scale + 0.5 * rng.normal(size=n)
    if task == "binary":
        y = (z > 0).astype(int)
    elif task == "multiclass":
        y = np.digitize(z, [-0.7, 0.0, 0.7])  # four classes, as the archetype label
    else:
        y = z
    return X, y


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("kind", TABULAR_KINDS)
def test_refit_is_identical_and_learns(kind, task):
    X, y = data(task)
    tr, te = slice(0, 300), slice(300, None)
    fit = lambda seed: make_model(kind, task, seed=seed).fit(X.iloc[tr], y[tr])  # noqa: E731
    out = (lambda m: m.predict(X.iloc[te])) if task == "regression" else \
        (lambda m: m.predict_proba(X.iloc[te]))
    a, b = out(fit(0)), out(fit(0))
    np.testing.assert_array_equal(a, b)
    if task == "binary":
        assert roc_auc_score(y[te], a[:, 1]) > 0.8
    elif task == "multiclass":
        assert a.shape == (100, 4)
        np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-6)
        assert roc_auc_score(y[te], a, multi_class="ovr") > 0.75
    else:
        assert r2_score(y[te], a) > 0.5


@pytest.mark.parametrize("kind", ["random_forest", "lightgbm", "xgboost"])
def test_seed_changes_subsampled_models(kind):
    X, y = data("binary")
    p0 = make_model(kind, "binary", seed=0).fit(X, y).predict_proba(X)[:, 1]
    p1 = make_model(kind, "binary", seed=1).fit(X, y).predict_proba(X)[:, 1]
    assert np.abs(p0 - p1).max() > 1e-6


def test_logistic_scales_tiny_features_inside_the_pipeline():
    # returns of ~0.004: an unscaled regularized logistic regression predicts ~constant
    X, y = data("binary", scale=0.004)
    X = X.fillna(0.0)
    raw = LogisticRegression().fit(X, y).predict_proba(X)[:, 1]
    ours = make_model("logistic", "binary").fit(X, y).predict_proba(X)[:, 1]
    assert raw.std() < 0.01
    assert ours.std() > 0.2 and roc_auc_score(y, ours) > 0.85


def test_imputer_and_scaler_are_fitted_on_training_rows_only():
    X, y = data("binary")
    m = make_model("logistic", "binary").fit(X.iloc[:200], y[:200])
    np.testing.assert_allclose(m.named_steps["impute"].statistics_,
                               X.iloc[:200].median().to_numpy())
    filled = X.iloc[:200].fillna(X.iloc[:200].median())
    np.testing.assert_allclose(m.named_steps["scale"].mean_, filled.mean().to_numpy())


def test_regression_logistic_is_ridge_and_params_override():
    assert type(make_model("logistic", "regression")[-1]).__name__ == "Ridge"
    m = make_model("lightgbm", "binary", {"num_leaves": 7, "n_estimators": 50})
    assert (m.get_params()["num_leaves"], m.get_params()["n_estimators"]) == (7, 50)
    assert make_model("logistic", "binary", {"C": 0.1})[-1].C == 0.1
    assert default_params("lightgbm", "binary")["min_child_samples"] == 40


def test_thread_count_comes_from_ml_threads(monkeypatch):
    monkeypatch.setattr(ml.threads, "N_THREADS", 3)
    assert make_model("lightgbm", "binary").get_params()["n_jobs"] == 3
    assert make_model("xgboost", "regression").get_params()["n_jobs"] == 3
    assert make_model("random_forest", "binary")[-1].n_jobs == 3
    lgb = make_model("lightgbm", "binary").get_params()
    assert lgb["deterministic"] is True and lgb["verbose"] == -1
    assert make_model("xgboost", "binary").get_params()["tree_method"] == "hist"


def test_unknown_names_list_the_choices():
    with pytest.raises(SpecError, match="logistic, random_forest, hist_gb, lightgbm, xgboost"):
        make_model("svm", "binary")
    with pytest.raises(SpecError, match="binary, multiclass, regression"):
        make_model("lightgbm", "ordinal")
    with pytest.raises(SpecError, match=r"num_leafs.*valid parameters:.*num_leaves"):
        make_model("lightgbm", "binary", {"num_leafs": 7})
    with pytest.raises(SpecError, match="ALMANAC_THREADS"):
        make_model("xgboost", "binary", {"n_jobs": 8})
    assert "C" in valid_params("logistic", "binary")
    assert "alpha" in valid_params("logistic", "regression")


def test_heavy_libraries_are_imported_lazily():
    code = ("import sys, ml.models, ml.explain, ml.evaluation, ml.splits, ml.labelers, "
            "ml.drift, ml.predictor; "
            "print(sorted(m for m in ('lightgbm', 'xgboost', 'shap') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- check_params (issue 17)

@pytest.mark.parametrize("kind, task, params, expected", [
    ("lightgbm", "binary", {"learning_rate": -1},
     "spec field model.params.learning_rate: -1 is refused by LightGBM: Check failed: (learning_rate) > (0.0); "
     "change or remove it"),
    ("lightgbm", "regression", {"num_leaves": 1, "learning_rate": 0.1},
     "spec field model.params.num_leaves: 1 is refused by LightGBM: Check failed: (num_leaves) > (1)"),
    ("lightgbm", "multiclass", {"subsample": 2, "num_leaves": 7},  # LightGBM names it bagging_fraction
     "spec field model.params.subsample: 2 is refused by LightGBM: Check failed: (bagging_fraction) <= (1.0)"),
    ("lightgbm", "binary", {"n_estimators": "abc"},
     "spec field model.params.n_estimators: 'abc' is not a number (LightGBM's default is 100): write a number "
     "without quotes"),
    ("lightgbm", "binary", {"n_estimators": 2.5},
     "spec field model.params.n_estimators: 2.5 is refused by LightGBM: Parameter num_iterations should be of "
     "type int, got \"2.5\""),
    ("xgboost", "binary", {"max_depth": -1},
     "spec field model.params.max_depth: -1 is refused by XGBoost: value -1 for Parameter max_depth should be "
     "greater equal to 0"),
    ("xgboost", "regression", {"booster": "x", "max_depth": 3},
     "spec field model.params.booster: 'x' is refused by XGBoost: Unknown gbm type x"),
    ("xgboost", "multiclass", {"n_estimators": "abc"},
     "spec field model.params.n_estimators: 'abc' is refused by XGBoost: 'str' object cannot be interpreted as an "
     "integer"),
    ("logistic", "binary", {"C": -1},
     "spec field model.params.C: -1 is refused by scikit-learn: The 'C' parameter of LogisticRegression must be a "
     "float in the range (0.0, inf]. Got -1 instead"),
    ("logistic", "binary", {"penalty": "l1", "C": 2.0},
     "spec field model.params.penalty: 'l1' is refused by scikit-learn: Solver lbfgs supports only 'l2' or None "
     "penalties, got l1 penalty"),
    ("hist_gb", "binary", {"max_iter": 0},
     "spec field model.params.max_iter: 0 is refused by scikit-learn: The 'max_iter' parameter of "
     "HistGradientBoostingClassifier must be an int in the range [1, inf). Got 0 instead"),
    ("random_forest", "regression", {"n_estimators": 0},
     "spec field model.params.n_estimators: 0 is refused by scikit-learn: The 'n_estimators' parameter of "
     "RandomForestRegressor must be an int in the range [1, inf). Got 0 instead"),
    ("lightgbm", "binary", {"learning_rat": 0.1},
     "unknown parameter(s) learning_rat for model 'lightgbm' (binary) (did you mean learning_rate?); valid "
     "parameters: "),
])
def test_check_params_refuses_with_the_librarys_rule_naming_the_parameter(kind, task, params, expected, capfd):
    from ml.models import check_params

    check_params(kind, task, {})  # warm up (imports)
    with pytest.raises(SpecError) as exc:
        check_params(kind, task, params)
    assert exc.value.message.startswith(expected) and len(exc.value.message) <= 300
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # LightGBM's C-level "[LightGBM] [Fatal]" line is silenced


@pytest.mark.parametrize("kind", TABULAR_KINDS)
def test_check_params_accepts_the_defaults_and_large_work_cheaply(kind):
    from ml.models import check_params

    big = {"lightgbm": {"n_estimators": 20000}, "xgboost": {"n_estimators": 20000},
           "random_forest": {"n_estimators": 20000}, "hist_gb": {"max_iter": 20000}, "logistic": {"max_iter": 20000},
           "knn": {"n_neighbors": 5000}}
    for task in TASKS:
        check_params(kind, task, {})
        check_params(kind, task, big[kind])  # the check fits at most 2 rounds (measured: < 0.15 s)
