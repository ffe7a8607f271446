"""Model factory: one call from (kind, task, params, seed) to an unfitted estimator.

Kinds (:data:`MODEL_KINDS`) and the estimator they build, per task
(``"binary"`` / ``"multiclass"`` -> classifier, ``"regression"`` -> regressor):

==============  ==========================================  ==============================
kind            classifier                                  regressor
==============  ==========================================  ==============================
logistic        impute(median) -> scale -> LogisticRegression  impute -> scale -> Ridge
random_forest   impute(median) -> RandomForestClassifier    impute -> RandomForestRegressor
hist_gb         HistGradientBoostingClassifier              HistGradientBoostingRegressor
lightgbm        lightgbm.LGBMClassifier                     lightgbm.LGBMRegressor
xgboost         xgboost.XGBClassifier                       xgboost.XGBRegressor
==============  ==========================================  ==============================

Imputation and scaling live *inside* a :class:`~sklearn.pipeline.Pipeline`, so they are
fitted on the training fold only (docs/design.md §4) and scaling saves the logistic model from
tiny unscaled features (§11). The gradient-boosting kinds take NaN natively.

Defaults suit small daily data (1,000–5,000 rows, ~30 features): shallow trees, large
leaves, slow learning, row/column subsampling. Every random element is seeded from
``seed`` and every multi-threaded library gets ``ml.threads.N_THREADS``, so refitting on
the same rows gives identical predictions. ``params`` override the defaults of the final
estimator (for pipelines: the model step); unknown names raise SpecError with the list.
lightgbm and xgboost are imported only inside :func:`make_model`.
"""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from almanac.errors import SpecError
from ml import threads

MODEL_KINDS: tuple[str, ...] = ("logistic", "random_forest", "hist_gb", "lightgbm", "xgboost")
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")

#: Parameters the factory owns: threads come from ALMANAC_THREADS, seeds from ``seed``.
_RESERVED = ("n_jobs", "nthread", "num_threads", "random_state", "seed", "verbose", "verbosity")

_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "logistic": {
        "classifier": {"C": 1.0, "max_iter": 2000},
        "regressor": {"alpha": 1.0},
    },
    "random_forest": {
        "classifier": {"n_estimators": 300, "max_features": "sqrt", "min_samples_leaf": 20},
        "regressor": {"n_estimators": 300, "max_features": 0.5, "min_samples_leaf": 20},
    },
    "hist_gb": {
        "classifier": {"max_iter": 200, "learning_rate": 0.03, "max_leaf_nodes": 15,
                       "min_samples_leaf": 40, "l2_regularization": 1.0, "early_stopping": False},
        "regressor": {"max_iter": 200, "learning_rate": 0.03, "max_leaf_nodes": 15,
                      "min_samples_leaf": 40, "l2_regularization": 1.0, "early_stopping": False},
    },
    "lightgbm": {
        "classifier": {"n_estimators": 200, "learning_rate": 0.03, "num_leaves": 15,
                       "min_child_samples": 40, "subsample": 0.8, "subsample_freq": 1,
                       "colsample_bytree": 0.8, "reg_lambda": 1.0},
        "regressor": {"n_estimators": 200, "learning_rate": 0.03, "num_leaves": 15,
                      "min_child_samples": 40, "subsample": 0.8, "subsample_freq": 1,
                      "colsample_bytree": 0.8, "reg_lambda": 1.0},
    },
    "xgboost": {
        "classifier": {"n_estimators": 200, "learning_rate": 0.03, "max_depth": 3,
                       "min_child_weight": 5.0, "subsample": 0.8, "colsample_bytree": 0.8,
                       "reg_lambda": 1.0},
        "regressor": {"n_estimators": 200, "learning_rate": 0.03, "max_depth": 3,
                      "min_child_weight": 5.0, "subsample": 0.8, "colsample_bytree": 0.8,
                      "reg_lambda": 1.0},
    },
}


def _role(task: str) -> str:
    if task not in TASKS:
        raise SpecError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return "regressor" if task == "regression" else "classifier"


def default_params(kind: str, task: str) -> dict[str, Any]:
    """The factory's default parameters for ``kind`` and ``task`` (a copy)."""
    if kind not in MODEL_KINDS:
        raise SpecError(f"unknown model {kind!r}; choose one of: {', '.join(MODEL_KINDS)}")
    return dict(_DEFAULTS[kind][_role(task)])


def _final_estimator(kind: str, role: str, seed: int, n_threads: int):
    """The bare model with the factory's fixed settings (seeds, threads, quiet)."""
    clf = role == "classifier"
    if kind == "logistic":
        return LogisticRegression(random_state=seed) if clf else Ridge(random_state=seed)
    if kind == "random_forest":
        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(random_state=seed, n_jobs=n_threads)
    if kind == "hist_gb":
        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(random_state=seed)
    if kind == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if clf else lightgbm.LGBMRegressor
        # deterministic needs a fixed histogram layout (force_row_wise) to be exact
        return cls(random_state=seed, n_jobs=n_threads, verbose=-1,
                   deterministic=True, force_row_wise=True)
    import xgboost  # kind == "xgboost"

    cls = xgboost.XGBClassifier if clf else xgboost.XGBRegressor
    return cls(random_state=seed, n_jobs=n_threads, tree_method="hist", verbosity=0)


def valid_params(kind: str, task: str) -> list[str]:
    """Names ``params`` may set for ``kind``/``task`` (the final estimator's parameters)."""
    default_params(kind, task)  # validates kind and task
    est = _final_estimator(kind, _role(task), 0, 1)
    return sorted(k for k in est.get_params(deep=False) if k not in _RESERVED)


def make_model(kind: str, task: str, params: dict[str, Any] | None = None, seed: int = 0):
    """An unfitted scikit-learn-compatible estimator for ``kind`` and ``task``.

    ``params`` override :func:`default_params` on the final estimator. Thread counts
    and random states are owned by the factory (``ml.threads.N_THREADS``, ``seed``);
    setting them, or any name the estimator does not have, raises SpecError.
    """
    role = _role(task)
    merged = default_params(kind, task)
    params = dict(params or {})
    est = _final_estimator(kind, role, int(seed), threads.N_THREADS)
    allowed = {k for k in est.get_params(deep=False) if k not in _RESERVED}
    bad = sorted(k for k in params if k not in allowed)
    if bad:
        owned = [k for k in bad if k in _RESERVED]
        why = (f"{', '.join(owned)} is set by the lab (threads: ALMANAC_THREADS, "
               "random state: seed); " if owned else "")
        raise SpecError(f"unknown parameter(s) {', '.join(bad)} for model {kind!r} ({task}); "
                        f"{why}valid parameters: {', '.join(sorted(allowed))}")
    merged.update(params)
    try:
        est.set_params(**merged)
    except (TypeError, ValueError) as exc:  # pragma: no cover - set_params rarely validates
        raise SpecError(f"bad parameters for model {kind!r}: {exc}") from None
    if kind == "logistic":
        return Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
            ("model", est),
        ])
    if kind == "random_forest":
        return Pipeline([
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("model", est),
        ])
    return est
