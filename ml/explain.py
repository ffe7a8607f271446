"""Why a fitted model predicts what it does: SHAP values and permutation importance.

SHAP values explain the model's *raw* output, the space in which they add up exactly:

==============  =========================  ============================================
model           explainer                  output explained (``ShapResult.output``)
==============  =========================  ============================================
lightgbm        TreeExplainer              log-odds (binary), softmax logits
xgboost                                    (multiclass), prediction (regression)
hist_gb
random_forest   TreeExplainer on the       probability (classifiers), prediction
                imputed rows               (regression)
logistic        LinearExplainer in the     log-odds / logits; Ridge: prediction
                imputed+scaled space
==============  =========================  ============================================

For binary models the values are those of class 1 (P(up)). Tree explainers use the
tree-path-dependent algorithm (no background data needed; ``background`` is ignored);
the linear explainer needs ``background`` = the training rows (it is passed through the
pipeline's imputer and scaler, and values are ``coef · (x − mean(background))``).

Every result is checked for additivity, ``base_value + Σ_features values ≈ raw output``
of each row; a gap above ``tol · max(1, max |raw output|)`` raises
:class:`ShapAdditivityError`. shap itself runs single-threaded; lightgbm and xgboost
compute their native contributions with the model's thread count (``ml.threads``).
shap is imported lazily.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import is_classifier
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline

from almanac.errors import SpecError


class ShapAdditivityError(RuntimeError):
    """SHAP values do not add up to the model output (a bug, not a user mistake)."""


@dataclass(frozen=True)
class ShapResult:
    """SHAP values of one model output.

    values: rows × features (index and columns of the explained rows);
    base_value: the explainer's expected output; output: what ``base_value +
    values.sum(axis=1)`` equals ("log_odds", "logit", "probability", "prediction");
    max_error: the largest additivity gap over the rows.
    """

    values: pd.DataFrame
    base_value: float
    output: str
    max_error: float


def _split(model):
    """(preprocessing or None, final estimator)."""
    if isinstance(model, Pipeline):
        return (model[:-1] if len(model) > 1 else None), model[-1]
    return None, model


def _family(est) -> str:
    mod = type(est).__module__
    if mod.startswith("lightgbm"):
        return "lightgbm"
    if mod.startswith("xgboost"):
        return "xgboost"
    if hasattr(est, "estimators_") and hasattr(est, "n_estimators"):
        return "random_forest"
    if hasattr(est, "coef_"):
        return "linear"
    if type(est).__name__.startswith("HistGradientBoosting"):
        return "hist_gb"
    raise SpecError(f"no SHAP explainer for {type(est).__name__}; explain a model built by "
                    "ml.models.make_model")


def _raw_output(family: str, est, Xt) -> np.ndarray:
    clf = is_classifier(est)
    if family == "lightgbm":
        return np.asarray(est.predict(Xt, raw_score=True), dtype="float64")
    if family == "xgboost":
        return np.asarray(est.predict(Xt, output_margin=True), dtype="float64")
    if family == "random_forest":
        return est.predict_proba(Xt) if clf else est.predict(Xt)
    return est.decision_function(Xt) if clf else est.predict(Xt)


def _output_name(family: str, est) -> str:
    if not is_classifier(est):
        return "prediction"
    if family == "random_forest":
        return "probability"
    return "log_odds" if len(est.classes_) == 2 else "logit"


def _explain(model, X: pd.DataFrame, background):
    """values (n, f[, K]), base (scalar or (K,)), raw (n[, K]), output name."""
    import shap

    pre, est = _split(model)
    family = _family(est)
    Xt = pre.transform(X) if pre is not None else X
    if family == "linear":
        if background is None:
            raise SpecError("SHAP for a linear model needs background rows: pass the "
                            "training rows as background")
        bg = pre.transform(background) if pre is not None else background
        bg = np.asarray(bg, dtype="float64")  # all rows: shap would subsample 100
        explainer = shap.LinearExplainer(est, shap.maskers.Independent(bg, max_samples=len(bg)))
        values = explainer.shap_values(np.asarray(Xt, dtype="float64"))
    else:
        explainer = shap.TreeExplainer(est)
        with warnings.catch_warnings():  # shap's note on the lightgbm output format
            warnings.simplefilter("ignore", UserWarning)
            values = explainer.shap_values(Xt)
    values = np.asarray(values, dtype="float64")
    base = np.asarray(explainer.expected_value, dtype="float64")
    raw = np.asarray(_raw_output(family, est, Xt), dtype="float64")
    if values.ndim == 3 and raw.ndim == 2 and raw.shape[1] == 2 and family == "random_forest":
        values, base, raw = values[:, :, 1], base[1], raw[:, 1]  # binary forest: P(class 1)
    if values.ndim == 2:
        base = base.reshape(-1)[-1] if base.ndim else base
    return values, base, raw, _output_name(family, est)


def _result(values, base, raw, output, X, tol) -> ShapResult:
    err = float(np.max(np.abs(values.sum(1) + base - raw))) if len(raw) else 0.0
    limit = tol * max(1.0, float(np.max(np.abs(raw))) if len(raw) else 1.0)
    if not err <= limit:
        raise ShapAdditivityError(f"SHAP values miss the model output by up to {err:.3g} "
                                  f"(tolerance {limit:.3g})")
    frame = pd.DataFrame(values, index=X.index, columns=list(X.columns))
    return ShapResult(frame, float(base), output, err)


def _check_frame(X) -> pd.DataFrame:
    if not isinstance(X, pd.DataFrame):
        raise SpecError("pass the rows to explain as a DataFrame with the feature names")
    return X


def shap_values(model, X: pd.DataFrame, background: pd.DataFrame | None = None, *,
                class_index: int | None = None, tol: float = 1e-4) -> ShapResult:
    """SHAP values of fitted ``model`` on rows ``X`` (one output).

    Binary classifiers and regressors: their single output (class 1 for binary).
    Multiclass: ``class_index`` (0..K-1) is required; :func:`shap_values_by_class`
    gives all classes from one computation.
    """
    X = _check_frame(X)
    values, base, raw, output = _explain(model, X, background)
    if values.ndim == 3:
        k = values.shape[2]
        if class_index is None or not 0 <= class_index < k:
            raise SpecError(f"a multiclass model has {k} outputs: pass class_index "
                            f"0..{k - 1}")
        values, base, raw = values[:, :, class_index], base[class_index], raw[:, class_index]
    return _result(values, base, raw, output, X, tol)


def shap_values_by_class(model, X: pd.DataFrame, background: pd.DataFrame | None = None, *,
                         tol: float = 1e-4) -> list[ShapResult]:
    """One :class:`ShapResult` per model output (a single one for binary/regression)."""
    X = _check_frame(X)
    values, base, raw, output = _explain(model, X, background)
    if values.ndim == 2:
        return [_result(values, base, raw, output, X, tol)]
    return [_result(values[:, :, k], base[k], raw[:, k], output, X, tol)
            for k in range(values.shape[2])]


def mean_abs_shap(results: ShapResult | list[ShapResult]) -> pd.Series:
    """Mean |SHAP| per feature, largest first (summed over outputs for a list)."""
    results = [results] if isinstance(results, ShapResult) else results
    total = sum(r.values.abs().mean() for r in results)
    return total.sort_values(ascending=False).rename("mean_abs_shap")


_SCORING = {"binary": "roc_auc", "multiclass": "roc_auc_ovr", "regression": "r2"}


def permutation_importances(model, X: pd.DataFrame, y, task: str, *, n_repeats: int = 5,
                            seed: int = 0) -> pd.DataFrame:
    """Drop in score when one feature's values are shuffled (scikit-learn).

    Scoring: roc_auc (binary), roc_auc_ovr (multiclass), r2 (regression); ``n_repeats``
    shuffles per feature with ``random_state=seed``, one job. Returns columns feature,
    importance_mean, importance_std, largest mean first.
    """
    if task not in _SCORING:
        raise SpecError(f"unknown task {task!r}; choose one of: {', '.join(_SCORING)}")
    X = _check_frame(X)
    r = permutation_importance(model, X, np.asarray(y), scoring=_SCORING[task],
                               n_repeats=n_repeats, random_state=seed, n_jobs=1)
    out = pd.DataFrame({"feature": list(X.columns), "importance_mean": r.importances_mean,
                        "importance_std": r.importances_std})
    return out.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)
