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
knn             impute(median) -> scale -> KNeighbors-      impute -> scale ->
                Classifier                                  KNeighborsRegressor
minirocket      ml.rocket.MiniRocketClassifier              ml.rocket.MiniRocketRegressor
                (fill -> MiniRocket -> scale -> logistic)   (... -> scale -> Ridge)
==============  ==========================================  ==============================

``minirocket`` reads the raw ``minute_path`` set only (the spec refuses other sets with it)
and needs sktime (in requirements.txt; refused in one line in an environment without it,
:func:`ml.rocket.require_sktime`).

Imputation and scaling live *inside* a :class:`~sklearn.pipeline.Pipeline`, so they are
fitted on the training fold only (docs/design.md §4) and scaling saves the logistic model from
tiny unscaled features (§11); ``knn`` measures distances in that fold-scaled space (the
similar-days query of :mod:`ml.similar` as a model: the n_neighbors nearest training days vote). The gradient-boosting kinds take NaN natively.

Defaults suit small daily data (1,000–5,000 rows, ~30 features): shallow trees, large
leaves, slow learning, row/column subsampling. Every random element is seeded from
``seed`` and every multi-threaded library gets ``ml.threads.N_THREADS``, so refitting on
the same rows gives identical predictions. ``params`` override the defaults of the final
estimator (for pipelines: the model step); unknown names raise SpecError with the list.
scikit-learn, lightgbm and xgboost are imported only inside :func:`make_model` (the web
pages import this module at start-up; scikit-learn alone costs about a second).

:func:`check_params` applies each library's own rules to ``params`` before any work: it
builds the estimator and fits it on :data:`CHECK_ROWS` synthetic rows (the work
parameters n_estimators / max_iter lowered to at most 2 for the check, so it takes
milliseconds), and turns the library's exception into one line naming the parameter.
"""

from __future__ import annotations

import contextlib
import difflib
import io
import math
import os
import re
import sys
import warnings
from typing import Any

import numpy as np

from almanac.errors import SpecError
from ml import threads

MODEL_KINDS: tuple[str, ...] = ("logistic", "random_forest", "hist_gb", "lightgbm", "xgboost", "knn", "minirocket")
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
    # brute force: exact, deterministic, fast for a few thousand days; and a fitted model is arrays only
    "knn": {
        "classifier": {"n_neighbors": 50, "weights": "uniform", "algorithm": "brute"},
        "regressor": {"n_neighbors": 50, "weights": "uniform", "algorithm": "brute"},
    },
    # 10,000 kernels as in the paper; strong penalties for ~9,996 features on ~2,000 days. C: 0.01 was
    # overconfident on the ES sample (log loss 0.825 > majority's 0.687, ECE 0.18); 0.001 gave 0.704 and
    # ECE 0.075 (AUC 0.544 -> 0.569): chosen after seeing both runs, so count it as a 2-trial search.
    "minirocket": {
        "classifier": {"num_kernels": 10_000, "max_dilations_per_kernel": 32, "C": 0.001, "max_iter": 1000},
        "regressor": {"num_kernels": 10_000, "max_dilations_per_kernel": 32, "alpha": 1000.0},
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
        from sklearn.linear_model import LogisticRegression, Ridge

        return LogisticRegression(random_state=seed) if clf else Ridge(random_state=seed)
    if kind == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestClassifier if clf else RandomForestRegressor
        return cls(random_state=seed, n_jobs=n_threads)
    if kind == "hist_gb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if clf else HistGradientBoostingRegressor
        return cls(random_state=seed)
    if kind == "lightgbm":
        import lightgbm

        cls = lightgbm.LGBMClassifier if clf else lightgbm.LGBMRegressor
        # deterministic needs a fixed histogram layout (force_row_wise) to be exact
        return cls(random_state=seed, n_jobs=n_threads, verbose=-1,
                   deterministic=True, force_row_wise=True)
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

        return (KNeighborsClassifier if clf else KNeighborsRegressor)(n_jobs=n_threads)
    if kind == "minirocket":
        from ml.rocket import MiniRocketClassifier, MiniRocketRegressor, require_sktime

        require_sktime()
        return (MiniRocketClassifier if clf else MiniRocketRegressor)(random_state=seed)
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
        near = [m for b in bad for m in difflib.get_close_matches(b, sorted(allowed), n=1)]
        guess = f" (did you mean {', '.join(near)}?)" if near and not owned else ""
        raise SpecError(f"unknown parameter(s) {', '.join(bad)} for model {kind!r} ({task}){guess}; "
                        f"{why}valid parameters: {', '.join(sorted(allowed))}")
    merged.update(params)
    try:
        est.set_params(**merged)
    except (TypeError, ValueError) as exc:  # pragma: no cover - set_params rarely validates
        raise SpecError(f"bad parameters for model {kind!r}: {exc}") from None
    if kind not in ("logistic", "random_forest", "knn"):
        return est
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    impute = ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    if kind in ("logistic", "knn"):
        from sklearn.preprocessing import StandardScaler

        return Pipeline([impute, ("scale", StandardScaler()), ("model", est)])
    return Pipeline([impute, ("model", est)])


# ---------------------------------------------------------------------- parameter check

#: Rows and columns of the synthetic data :func:`check_params` fits on.
CHECK_ROWS, CHECK_FEATURES = 64, 4
#: Work parameters lowered (only when above this) for the check fit; a value below the
#: cap, e.g. 0, is passed as it is so the library still judges it.
_CHECK_CAPS = {"n_estimators": 2, "max_iter": 2}
_LIBRARY = {"lightgbm": "LightGBM", "xgboost": "XGBoost"}


def _check_data(task: str):
    import pandas as pd

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(CHECK_ROWS, CHECK_FEATURES)),
                     columns=[f"f{i}" for i in range(CHECK_FEATURES)])
    X.iloc[::7, 1] = np.nan  # the real features have gaps too
    i = np.arange(CHECK_ROWS)
    y = {"binary": i % 2, "multiclass": i % 4}.get(task)
    return X, (rng.normal(size=CHECK_ROWS) if y is None else y)


def _capped(params: dict[str, Any]) -> dict[str, Any]:
    out = dict(params)
    for name, cap in _CHECK_CAPS.items():
        v = out.get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > cap:
            # a float stays a float with its fraction (2.5 -> 2.5, 300.0 -> 2.0): the library judges the type
            out[name] = cap + (v % 1) if isinstance(v, float) and math.isfinite(v) else type(v)(cap)
    return out


@contextlib.contextmanager
def _native_output_silenced():
    """File descriptors 1 and 2 point at /dev/null for the duration: LightGBM writes its
    ``[LightGBM] [Fatal] ...`` line to the C-level stderr before raising, which would make
    a one-line refusal two lines. Process-wide, so only for the few milliseconds of the
    check (the runner calls it in the CLI or job process, never in the web server)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    saved = []
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null: keep the output
        yield
        return
    try:
        for fd in (1, 2):
            try:
                saved.append((fd, os.dup(fd)))
                os.dup2(devnull, fd)
            except OSError:  # pragma: no cover - descriptor closed
                pass
        with contextlib.redirect_stdout(io.StringIO()):  # the Python-level prints too
            yield
    finally:
        for fd, copy in saved:
            os.dup2(copy, fd)
            os.close(copy)
        os.close(devnull)


def _fit_error(kind: str, task: str, params: dict[str, Any], seed: int) -> Exception | None:
    """The exception the library raises fitting ``params`` on the synthetic rows, or None."""
    X, y = _check_data(task)
    try:
        with warnings.catch_warnings(), _native_output_silenced():
            warnings.simplefilter("ignore")  # convergence etc.: the check is not a fit
            est = make_model(kind, task, _capped({**default_params(kind, task), **params}), seed=seed)
            getattr(est, "check_fit", est.fit)(X, y)  # minirocket: its rules without sktime's seconds
    except SpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - any library error means these parameters cannot fit
        return exc
    return None


def _library_text(exc: BaseException) -> str:
    """The library's message, one line, without source paths and stack traces."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "") or type(exc).__name__
    text = re.sub(r"^\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text)            # XGBoost: "[hh:mm:ss] file.cc:24: "
    text = re.sub(r" at \S+\.(?:cpp|cc|h|hpp), line \d+\s*\.?$", "", text)   # LightGBM: " at file.cpp, line 349 ."
    return text.strip().rstrip(".")


def check_params(kind: str, task: str, params: dict[str, Any] | None = None, seed: int = 0) -> None:
    """Refuse ``params`` the library would refuse, before any data is read (one-line SpecError).

    Unknown names are refused by :func:`make_model`; a text value where the estimator's
    default is a number is refused as "not a number"; everything else is the library's
    own rule: the estimator is fitted on :data:`CHECK_ROWS` synthetic rows and its
    exception names the parameter (found by trying each parameter alone when the
    library's message does not say which).
    """
    params = dict(params or {})
    make_model(kind, task, params, seed=seed)  # unknown names
    lib = _LIBRARY.get(kind, "scikit-learn")
    base = _final_estimator(kind, _role(task), 0, 1).get_params(deep=False)
    for name, v in params.items():
        d = base.get(name)
        if isinstance(v, str) and isinstance(d, (int, float)) and not isinstance(d, bool):
            raise SpecError(f"spec field model.params.{name}: {v!r} is not a number ({lib}'s default is {d!r}): "
                            "write a number without quotes")
    exc = _fit_error(kind, task, params, seed)
    if exc is None:
        return
    text = _library_text(exc)
    name = None
    if len(params) == 1:
        name = next(iter(params))
    else:
        named = [n for n in params if re.search(rf"\b{re.escape(n)}\b", text)]
        name = named[0] if len(named) == 1 else next(
            (n for n in params if _fit_error(kind, task, {n: params[n]}, seed) is not None), None)
    if name is None:
        raise SpecError(f"spec field model.params: {lib} refuses these parameters together: {text}; "
                        "change or remove them")
    raise SpecError(f"spec field model.params.{name}: {params[name]!r} is refused by {lib}: {text}; "
                    "change or remove it")
