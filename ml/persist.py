"""Save and load fitted models in native, non-pickle formats.

==============  ============  ================  ===========================================
kind            file          format            loaded as
==============  ============  ================  ===========================================
lightgbm        model.txt     lightgbm-text     :class:`LightGBMModel` around a
                                                ``lightgbm.Booster`` (the booster's text)
xgboost         model.json    xgboost-json      ``XGBClassifier`` / ``XGBRegressor``
                                                (``save_model`` / ``load_model``)
logistic,       model.skops   skops             the scikit-learn estimator or pipeline
random_forest,                                  (``skops.io``)
hist_gb, knn
minirocket      model.skops   skops             ``ml.rocket.MiniRocketClassifier`` /
                                                ``MiniRocketRegressor`` (its fitted state is
                                                arrays: MiniRocket's parameters, the scaler,
                                                the linear model)
==============  ============  ================  ===========================================

Nothing is ever unpickled. A skops file is loaded only if every type it contains that
skops does not trust by default is on :data:`SKOPS_ALLOWED_TYPES` (the numpy dtype and the
tree structures of scikit-learn's forests and histogram boosting); any other type
refuses the file with an :class:`~almanac.errors.AlmanacError` naming it.

A loaded model predicts exactly what the saved one did: ``predict_proba`` / ``predict``
on the same rows give bit-identical arrays (LightGBM's text format and XGBoost's JSON
write every split and leaf value at full precision). The thread count of a loaded
model is ``ml.threads.N_THREADS``, as for a fresh one. lightgbm, xgboost and skops are
imported only when needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from almanac.errors import AlmanacError
from almanac.store import file_sha256
from ml import threads

SKLEARN_KINDS = ("logistic", "random_forest", "hist_gb", "knn", "minirocket")

#: kind -> (file name, format name)
FILES: dict[str, tuple[str, str]] = {
    "lightgbm": ("model.txt", "lightgbm-text"),
    "xgboost": ("model.json", "xgboost-json"),
    **{k: ("model.skops", "skops") for k in SKLEARN_KINDS},
}

#: Types a skops file may hold beyond those skops trusts by default. Everything else is
#: refused (a file with e.g. ``builtins.eval`` or an unknown class never loads).
SKOPS_ALLOWED_TYPES: frozenset[str] = frozenset({
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "ml.rocket.MiniRocketClassifier",   # the lab's own classes (ml.rocket): arrays and scikit-learn parts
    "ml.rocket.MiniRocketRegressor",
})

_TASKS = ("binary", "multiclass", "regression")


class LightGBMModel:
    """A LightGBM booster loaded from its text file, with the scikit-learn API of the
    ``LGBMClassifier`` / ``LGBMRegressor`` it was saved from.

    ``predict_proba`` (classifiers) is ``[1 − p, p]`` for a binary booster and the
    booster's class probabilities for a multiclass one, computed exactly as
    lightgbm's scikit-learn wrapper does; ``predict`` is ``classes_[argmax]``
    (classifiers) or the booster's prediction (regression).
    """

    def __init__(self, booster, task: str, classes=None):
        self.booster_ = booster
        self.task = task
        self.feature_names_in_ = np.asarray(booster.feature_name(), dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        if task != "regression":
            k = booster.num_model_per_iteration()
            k = 2 if k == 1 else k
            self.classes_ = np.asarray(classes if classes is not None else np.arange(k))
            self.n_classes_ = len(self.classes_)

    def _raw(self, X, **kw) -> np.ndarray:
        return self.booster_.predict(X, num_threads=threads.N_THREADS, **kw)

    def predict_proba(self, X) -> np.ndarray:
        if self.task == "regression":
            raise AttributeError("a regression model has no predict_proba")
        result = self._raw(X)
        if result.ndim == 1:  # binary: P(class 1)
            return np.vstack((1.0 - result, result)).transpose()
        return result

    def predict(self, X, raw_score: bool = False) -> np.ndarray:
        if raw_score:
            return self._raw(X, raw_score=True)
        if self.task == "regression":
            return self._raw(X)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _check_task(task: str) -> str:
    if task not in _TASKS:
        raise AlmanacError(f"unknown task {task!r}; choose one of: {', '.join(_TASKS)}")
    return task


def save_model(model, kind: str, task: str, folder: Path | str) -> dict:
    """Write fitted ``model`` (built by ``ml.models.make_model(kind, task)``) to ``folder``.

    Returns ``{"file", "format", "sha256", "kind", "task", "classes"}``: the file name
    inside ``folder``, the format name, the SHA-256 of the file, and what
    :func:`load_model` needs (``classes`` = the classifier's ``classes_`` as a list, None
    for regression). The folder is created if needed.
    """
    if kind not in FILES:
        raise AlmanacError(f"cannot save a model of kind {kind!r}; kinds: {', '.join(FILES)}")
    _check_task(task)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name, fmt = FILES[kind]
    path = folder / name
    if kind == "lightgbm":
        model.booster_.save_model(str(path))
    elif kind == "xgboost":
        model.save_model(str(path))
    else:
        import skops.io as sio

        sio.dump(model, path)
    classes = getattr(model, "classes_", None)
    return {"file": name, "format": fmt, "sha256": file_sha256(path), "kind": kind,
            "task": task, "classes": None if classes is None or task == "regression"
            else np.asarray(classes).tolist()}


def _model_path(folder: Path, meta: dict) -> Path:
    name = str(meta.get("file", ""))
    if not name or Path(name).name != name or name.startswith("."):
        raise AlmanacError(f"model file name {name!r} is not a plain file name; "
                           "the model metadata is damaged")
    path = folder / name
    if not path.is_file():
        raise AlmanacError(f"model file {path} is missing; re-run or re-export the experiment")
    want = meta.get("sha256")
    if want and file_sha256(path) != want:
        raise AlmanacError(f"model file {path} does not match its SHA-256 in the metadata "
                           "(altered or damaged); re-run or re-export the experiment")
    return path


def check_skops_types(path: Path) -> list[str]:
    """The non-default types in skops file ``path``, all on the allow-list, or AlmanacError."""
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a skops file"
        raise AlmanacError(f"{path.name} is not a readable skops file ({type(exc).__name__}); "
                           "re-export the model") from None
    refused = sorted(t for t in untrusted if t not in SKOPS_ALLOWED_TYPES)
    if refused:
        raise AlmanacError(f"{path.name} holds types the lab does not load: "
                           f"{', '.join(refused)}; only scikit-learn models saved by the lab "
                           "can be loaded")
    return list(untrusted)


def _set_threads(model) -> None:
    params = model.get_params() if hasattr(model, "get_params") else {}
    n_jobs = {k: threads.N_THREADS for k in params if k == "n_jobs" or k.endswith("__n_jobs")}
    if n_jobs:
        model.set_params(**n_jobs)


def load_model(folder: Path | str, meta: dict):
    """Load the model :func:`save_model` wrote to ``folder``; ``meta`` is its return value
    (at least ``file`` and ``format``; ``task`` and ``classes`` where present; a
    ``sha256`` is checked). Raises AlmanacError for a missing, altered or refused file.

    This runs the model library in the calling process: use it for the lab's own run
    folders only. A model from a bundle (someone else's file) is loaded through
    :func:`ml.sandbox.predict_in_child`, where a native crash cannot take the caller down."""
    folder = Path(folder)
    fmt = meta.get("format")
    path = _model_path(folder, meta)
    if fmt == "lightgbm-text":
        import lightgbm

        try:
            booster = lightgbm.Booster(model_file=str(path))
        except lightgbm.basic.LightGBMError:
            raise AlmanacError(f"{path.name} is not a readable LightGBM model file; "
                               "re-export the model") from None
        task = meta.get("task") or _lightgbm_task(booster)
        return LightGBMModel(booster, _check_task(task), meta.get("classes"))
    if fmt == "xgboost-json":
        import xgboost

        try:
            task = _check_task(meta.get("task") or _xgboost_task(path))
            model = xgboost.XGBRegressor() if task == "regression" else xgboost.XGBClassifier()
            model.load_model(str(path))
        except (xgboost.core.XGBoostError, TypeError, KeyError, ValueError):
            raise AlmanacError(f"{path.name} is not a readable XGBoost {meta.get('task') or ''} "
                               "model file; re-export the model") from None
        model.set_params(n_jobs=threads.N_THREADS)
        return model
    if fmt == "skops":
        import skops.io as sio

        trusted = check_skops_types(path)
        try:
            model = sio.load(path, trusted=trusted)
        except Exception as exc:  # noqa: BLE001 - a damaged file fails in many ways
            raise AlmanacError(f"{path.name} is not a readable skops model file "
                               f"({type(exc).__name__}); re-export the model") from None
        _set_threads(model)
        return model
    raise AlmanacError(f"unknown model format {fmt!r}; formats: "
                       f"{', '.join(sorted({f for _, f in FILES.values()}))}")


def _xgboost_task(path: Path) -> str:
    """binary / multiclass / regression from the objective in an XGBoost JSON model."""
    import xgboost

    booster = xgboost.Booster(model_file=str(path))
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    if objective.startswith("multi:"):
        return "multiclass"
    if objective.startswith("binary:"):
        return "binary"
    return "regression"


def _lightgbm_task(booster) -> str:
    """binary / multiclass / regression from the booster's objective line."""
    objective = str(booster.params.get("objective", "")) if booster.params else ""
    if booster.num_model_per_iteration() > 1 or objective.startswith(("multiclass", "softmax")):
        return "multiclass"
    if objective.startswith(("binary", "cross_entropy")):
        return "binary"
    return "regression"
