"""Why a fitted model predicts what it does: SHAP values and permutation importance.

SHAP values explain the model's *raw* output, the space in which they add up exactly:

==============  =========================  ============================================
model           explainer                  output explained (``ShapResult.output``)
==============  =========================  ============================================
lightgbm        the library's own TreeSHAP log-odds (binary), softmax logits
                (``pred_contrib=True``)    (multiclass), prediction (regression)
xgboost         the library's own TreeSHAP
                (``pred_contribs=True``)
hist_gb         shap TreeExplainer
random_forest   shap TreeExplainer on the  probability (classifiers), prediction
                imputed rows               (regression)
logistic        LinearExplainer in the     log-odds / logits; Ridge: prediction
                imputed+scaled space
knn             PermutationExplainer in    probability (classifiers), prediction
                the imputed+scaled space   (regression)
minirocket      ml.rocket.path_shap:       log-odds / logits; Ridge: prediction
                baseline Shapley per
                minute, two permutations
==============  =========================  ============================================

For binary models the values are those of class 1 (P(up)). Tree explainers use the
tree-path-dependent algorithm (no background data needed; ``background`` is ignored).
For lightgbm and xgboost that is the libraries' native TreeSHAP, the very routine
``shap.TreeExplainer.shap_values`` calls for them, without the explainer's conversion of
every tree into shap's own format on construction (done once per fold model, and not
needed for these two); the values equal shap's (tests/test_explain.py). The TreeSHAP
itself, about trees x leaves x depth² per row, is most of what SHAP costs. The bias
column of the native output is the base value. The linear explainer needs
``background`` = the training rows (it is passed through the pipeline's imputer and
scaler, and values are ``coef · (x − mean(background))``). A k-nearest-neighbours model has
no exact fast explainer: its values are baseline Shapley values, the Shapley values of
moving from one background row, the average training day, to the explained row, estimated
from :data:`KNN_PERMUTATIONS` seeded feature orders and their reverses (every order, so
exact, when there are that few), which is what shap's ``PermutationExplainer`` computes
with that background, vectorized here over all rows (shap's per-row calls took 40 ms a
row). They add up exactly, to the prediction minus the prediction for the average
training day (the base value).

Every result is checked for additivity, ``base_value + Σ_features values ≈ raw output``
of each row; a gap above ``tol · max(1, max |raw output|)`` raises
:class:`ShapAdditivityError`. shap itself runs single-threaded; lightgbm and xgboost
compute their native contributions with ``ml.threads.N_THREADS`` threads. shap is
imported lazily (and not at all for lightgbm and xgboost), and so are scikit-learn and
scipy: the web pages import this module at start-up.

:func:`permutation_importances` gives the numbers of
``sklearn.inspection.permutation_importance`` (same shuffles, same scorer) but predicts
all shuffled copies in one call (a few for large inputs) instead of one call per
feature and repeat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from almanac.errors import SpecError
from ml import threads


#: knn: antithetic feature orders per explained row of the permutation explainer. Cost per
#: row: KNN_PERMUTATIONS x (2 x features + 1) predictions.
KNN_PERMUTATIONS = 5
#: knn: explained rows per block of predictions (memory: rows x 2 x KNN_PERMUTATIONS x features²).
KNN_BLOCK_ROWS = 200


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
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline):
        return (model[:-1] if len(model) > 1 else None), model[-1]
    return None, model


def _family(est) -> str:
    if type(est).__name__.startswith("KNeighbors"):
        return "knn"
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
    from sklearn.base import is_classifier

    clf = is_classifier(est)
    if family == "lightgbm":
        return np.asarray(est.predict(Xt, raw_score=True), dtype="float64")
    if family == "xgboost":
        return np.asarray(est.predict(Xt, output_margin=True), dtype="float64")
    if family in ("random_forest", "knn"):
        return est.predict_proba(Xt) if clf else est.predict(Xt)
    return est.decision_function(Xt) if clf else est.predict(Xt)


def _output_name(family: str, est) -> str:
    from sklearn.base import is_classifier

    if not is_classifier(est):
        return "prediction"
    if family in ("random_forest", "knn"):
        return "probability"
    return "log_odds" if len(est.classes_) == 2 else "logit"


def _xgb_iteration_range(est) -> tuple[int, int]:
    """The trees ``XGBModel.predict`` uses: up to ``best_iteration`` after early stopping."""
    try:
        return 0, int(est.best_iteration) + 1
    except AttributeError:
        return 0, 0


def _native_contributions(family: str, est, Xt):
    """TreeSHAP values of a lightgbm / xgboost model from the library itself:
    values (n, f) or (n, f, K), base value scalar or (K,)."""
    n, f = Xt.shape
    if n == 0:  # the libraries refuse no rows; the bias is the same for any row: one NaN row
        one = (pd.DataFrame(np.nan, index=[0], columns=Xt.columns) if isinstance(Xt, pd.DataFrame)
               else np.full((1, f), np.nan))
        values, base = _native_contributions(family, est, one)
        return values[:0], base
    if family == "lightgbm":
        # (n, K * (f + 1)): per output (class) one block of f contributions + its bias
        phi = est.predict(Xt, pred_contrib=True, num_threads=threads.N_THREADS)
        phi = np.asarray(phi, dtype="float64").reshape(n, -1, f + 1)
    else:
        import xgboost

        dm = xgboost.DMatrix(Xt, missing=est.missing, nthread=threads.N_THREADS,
                             enable_categorical=bool(getattr(est, "enable_categorical", False)))
        # strict_shape: always (n, K, f + 1), K = 1 for binary / regression; bias last
        phi = est.get_booster().predict(dm, pred_contribs=True, strict_shape=True,
                                        iteration_range=_xgb_iteration_range(est))
        phi = np.asarray(phi, dtype="float64")
    if phi.shape != (n, phi.shape[1], f + 1):  # pragma: no cover - a library changed its layout
        raise RuntimeError(f"unexpected {family} contribution shape {phi.shape} for {n} rows "
                                  f"x {f} features")
    values = np.moveaxis(phi[:, :, :f], 1, 2)  # (n, f, K), the layout of shap's values
    base = phi[0, :, f]  # the bias: the same on every row
    if values.shape[2] == 1:
        return values[:, :, 0], base[0]
    return values, base


def _explain(model, X: pd.DataFrame, background):
    """values (n, f[, K]), base (scalar or (K,)), raw (n[, K]), output name."""
    pre, est = _split(model)
    from ml.rocket import is_minirocket, path_shap  # no sktime import: that comes with its transform

    if is_minirocket(est):
        if background is None:
            raise SpecError("SHAP for a minirocket model needs background rows: pass the training rows")
        return path_shap(est, X, background)
    family = _family(est)
    Xt = pre.transform(X) if pre is not None else X
    if family in ("lightgbm", "xgboost"):
        values, base = _native_contributions(family, est, Xt)
        raw = (np.asarray(_raw_output(family, est, Xt), dtype="float64") if len(values)
               else np.zeros((0, *values.shape[2:])))
        return values, np.asarray(base, dtype="float64"), raw, _output_name(family, est)

    if family == "knn":  # no shap import: computed here (see _knn_explain)
        return _knn_explain(est, pre, Xt, background)

    import shap

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
        values = explainer.shap_values(Xt)
    values = np.asarray(values, dtype="float64")
    base = np.asarray(explainer.expected_value, dtype="float64")
    raw = np.asarray(_raw_output(family, est, Xt), dtype="float64")
    if values.ndim == 3 and raw.ndim == 2 and raw.shape[1] == 2 and family == "random_forest":
        values, base, raw = values[:, :, 1], base[1], raw[:, 1]  # binary forest: P(class 1)
    if values.ndim == 2:
        base = base.reshape(-1)[-1] if base.ndim else base
    return values, base, raw, _output_name(family, est)


def _knn_explain(est, pre, Xt, background):
    """Baseline Shapley values of a k-nearest-neighbours model by permutation (module doc):
    every row x, every feature order, the 2 + ... points that switch the features from the
    average training day b to x one at a time are predicted in a few calls (blocks of
    :data:`KNN_BLOCK_ROWS` rows), and a feature's value is its mean step."""
    from itertools import permutations

    from sklearn.base import is_classifier

    if background is None:
        raise SpecError("SHAP for a k-nearest-neighbours model needs background rows: pass the training rows")
    b = np.asarray(pre.transform(background) if pre is not None else background, dtype="float64").mean(axis=0)
    X = np.asarray(Xt, dtype="float64")
    n, f = X.shape
    clf = is_classifier(est)
    predict = est.predict_proba if clf else est.predict
    if math.factorial(f) <= 2 * KNN_PERMUTATIONS:  # few features: every order, exact values
        orders = np.array(list(permutations(range(f))), dtype=np.intp).reshape(-1, f)
    else:  # seeded orders and their reverses (antithetic)
        rng = np.random.default_rng(0)
        half = np.stack([rng.permutation(f) for _ in range(KNN_PERMUTATIONS)])
        orders = np.concatenate([half, half[:, ::-1]])
    rank = np.argsort(orders, axis=1)  # rank[p, j]: the step at which order p switches feature j
    switched = rank[:, None, :] < np.arange(f + 1)[None, :, None]  # (P, f + 1, f)
    base = np.asarray(predict(b[None, :]), dtype="float64")[0]
    values = np.zeros((n, f) + base.shape)
    for lo in range(0, n, KNN_BLOCK_ROWS):
        x = X[lo:lo + KNN_BLOCK_ROWS]
        pts = np.where(switched[None], x[:, None, None, :], b)  # (m, P, f + 1, f)
        out = np.asarray(predict(pts.reshape(-1, f)), dtype="float64").reshape(*pts.shape[:3], *base.shape)
        steps = out[:, :, 1:] - out[:, :, :-1]  # (m, P, f[, K]): step s switches feature orders[p, s]
        idx = rank.reshape((1, *rank.shape) + (1,) * base.ndim)
        values[lo:lo + KNN_BLOCK_ROWS] = np.take_along_axis(steps, np.broadcast_to(idx, steps.shape), 2).mean(1)
    raw = np.asarray(_raw_output("knn", est, X), dtype="float64") if n else np.zeros((0,) + base.shape)
    if base.ndim and base.shape[0] == 2:  # binary: P(class 1)
        values, base, raw = values[..., 1], base[1], raw[:, 1]
    return values, np.asarray(base, dtype="float64"), raw, "probability" if clf else "prediction"


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

#: Most rows predicted in one call by :func:`permutation_importances` (bounds memory: the
#: shuffled copies of a block of features are stacked; always at least one copy per call).
MAX_ROWS_PER_CALL = 200_000


def _shuffles(n: int, n_repeats: int, seed: int) -> np.ndarray:
    """(n_repeats, n) row orders of the shuffled column, exactly as scikit-learn's
    ``permutation_importance(random_state=seed)``: one seed drawn from ``seed``, then for
    every column a fresh ``RandomState(that seed)`` shuffles an index array in place once
    per repeat and applies it to the column *as already shuffled* (so repeat r shows the
    composition of the first r shuffles). The orders are thus the same for every column."""
    from sklearn.utils import check_random_state

    col_seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    rs = np.random.RandomState(col_seed)
    shuffling_idx = np.arange(n)
    order = np.arange(n)
    out = np.empty((n_repeats, n), dtype=np.intp)
    for r in range(n_repeats):
        rs.shuffle(shuffling_idx)
        order = order[shuffling_idx]
        out[r] = order
    return out


def _scored_response(model, X: pd.DataFrame, task: str) -> np.ndarray:
    """What scikit-learn's scorer of ``_SCORING[task]`` scores (its response-method rules,
    sklearn.utils._response): roc_auc prefers ``decision_function`` and else takes
    ``predict_proba``; roc_auc_ovr takes ``predict_proba``; of a two-class
    ``predict_proba`` the positive class ``classes_[-1]``; r2 takes ``predict``."""
    if task == "regression":
        return np.asarray(model.predict(X))
    if task == "binary" and getattr(model, "decision_function", None) is not None:
        return np.asarray(model.decision_function(X))
    proba = np.asarray(model.predict_proba(X))
    return proba[:, -1] if len(model.classes_) == 2 else proba


def _plain_booster(model, X: pd.DataFrame, task: str):
    """The LightGBM booster of a bare LGBMClassifier (binary) / LGBMRegressor fitted on
    all-float64 columns, else None. Its ``predict(matrix, raw_score=binary)`` is what
    ``decision_function`` / ``predict`` return for the same rows as a DataFrame (the
    wrapper turns the frame into that float64 matrix first), without building the frame
    and converting it back: a third of the permutation importance's time."""
    lightgbm_made = type(model).__module__.startswith("lightgbm") or type(model).__name__ == "LightGBMModel"
    if task not in ("binary", "regression") or not lightgbm_made:  # LightGBMModel: ml.persist's loaded booster
        return None
    if not all(dt == np.float64 for dt in X.dtypes):
        return None
    if task == "binary" and len(getattr(model, "classes_", ())) != 2:
        return None
    return getattr(model, "booster_", None)


def _score(task: str, y: np.ndarray, response: np.ndarray) -> float:
    from sklearn.metrics import r2_score, roc_auc_score

    if task == "regression":
        return r2_score(y, response)
    if task == "binary":
        return roc_auc_score(y, response)
    return roc_auc_score(y, response, multi_class="ovr")


def _scores(task: str, y: np.ndarray, responses: np.ndarray) -> np.ndarray:
    """:func:`_score` of every row of ``responses`` (blocks x rows; multiclass: blocks x
    rows x classes) at once. Binary: the ROC AUC as the Mann-Whitney statistic of the
    mid-ranks, ``(sum of the positives' ranks - P (P + 1) / 2) / (P N)``, which is the
    area under the ROC curve with ties counted half, i.e. what ``roc_auc_score``
    integrates (a test holds the two equal to 1e-12); regression: R^2 with
    ``r2_score``'s rule for constant targets. One call instead of one scorer call (and
    its input checks) per shuffled copy: those checks cost as much as the predictions."""
    if task == "binary":
        classes = np.unique(y)
        if classes.size != 2:
            raise ValueError("Only one class present in y_true. ROC AUC score is not defined in that case.")
        pos = y == classes[-1]
        n_pos, n_neg = int(pos.sum()), int((~pos).sum())
        from scipy.stats import rankdata

        ranks = rankdata(responses, axis=1)
        return (ranks[:, pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    if task == "regression":
        y = np.asarray(y, dtype="float64")
        num = ((y - responses) ** 2).sum(axis=1)
        den = ((y - y.mean()) ** 2).sum()
        if den == 0:
            return np.where(num == 0, 1.0, 0.0)
        return 1 - num / den
    return np.array([_score(task, y, r) for r in responses])


def permutation_importances(model, X: pd.DataFrame, y, task: str, *, n_repeats: int = 5,
                            seed: int = 0) -> pd.DataFrame:
    """Drop in score when one feature's values are shuffled.

    The numbers of ``sklearn.inspection.permutation_importance(model, X, y, scoring=...,
    n_repeats=n_repeats, random_state=seed)`` (same shuffles, same scorer: roc_auc for
    binary, roc_auc_ovr for multiclass, r2 for regression; importance = baseline score -
    shuffled score, mean and population std over the repeats), computed in one batch: the
    unshuffled rows and every (feature, repeat) shuffled copy are stacked and predicted in
    one call (in chunks of at most :data:`MAX_ROWS_PER_CALL` rows), then each copy is
    scored. Returns columns feature, importance_mean, importance_std, largest mean first.
    A score that is undefined on these rows (e.g. one class only) raises ValueError.
    """
    if task not in _SCORING:
        raise SpecError(f"unknown task {task!r}; choose one of: {', '.join(_SCORING)}")
    X = _check_frame(X)
    if int(n_repeats) < 1:
        raise SpecError(f"n_repeats must be at least 1, got {n_repeats}")
    y = np.asarray(y)
    n, n_features = X.shape
    orders = _shuffles(n, int(n_repeats), seed)
    identity = np.arange(n)
    # block 0: the rows as they are (baseline); block 1 + j * n_repeats + r: feature j, repeat r
    blocks = [(-1, 0)] + [(j, r) for j in range(n_features) for r in range(int(n_repeats))]
    per_call = max(1, MAX_ROWS_PER_CALL // max(n, 1))
    booster = _plain_booster(model, X, task)
    columns = [X.iloc[:, j].array for j in range(n_features)]
    scores = np.empty(len(blocks))
    for lo in range(0, len(blocks), per_call):
        chunk = blocks[lo:lo + per_call]
        rows = {j: np.concatenate([orders[r] if jj == j else identity for jj, r in chunk])
                for j in range(n_features)}
        if booster is not None:  # the float64 matrix LightGBM would make of the frame itself
            stacked = np.empty((len(chunk) * n, n_features))
            for j in range(n_features):
                stacked[:, j] = columns[j].to_numpy()[rows[j]]
            response = np.asarray(booster.predict(stacked, raw_score=task == "binary",
                                                  num_threads=threads.N_THREADS))
        else:
            stacked = pd.DataFrame({j: columns[j].take(rows[j]) for j in range(n_features)})
            stacked.columns = X.columns
            response = _scored_response(model, stacked, task)
        scores[lo:lo + len(chunk)] = _scores(task, y, response.reshape(len(chunk), n, *response.shape[1:]))
    baseline, permuted = scores[0], scores[1:].reshape(n_features, int(n_repeats))
    importances = baseline - permuted
    out = pd.DataFrame({"feature": list(X.columns), "importance_mean": np.mean(importances, axis=1),
                        "importance_std": np.std(importances, axis=1)})
    return out.sort_values("importance_mean", ascending=False, kind="stable").reset_index(drop=True)


#: The cached result of :func:`run_permutation_importance` in a run folder.
PERMUTATION_FILE = "permutation.parquet"


def run_permutation_importance(run_id: str, home=None) -> pd.DataFrame:
    """Permutation importance of a run, computed on demand and cached in its folder.

    The run recorded how (``run.json["permutation"]``: the last fold's model saved in the
    run, that fold's test dates, the shuffles and the seed); this loads that model (its
    SHA-256 checked), takes the same test rows of ``dataset.parquet`` and computes
    :func:`permutation_importances` -- the numbers the runner itself computed before it
    deferred them. The result (columns feature, perm_importance_mean, perm_importance_std)
    is written once to ``permutation.parquet`` (atomically; later calls read it). Runs made
    before the deferral carry these columns in ``importance.parquet``; they are returned
    from there. NotFoundError for a run without either."""
    from almanac import registry
    from almanac.atomic import atomic_write
    from almanac.errors import NotFoundError
    from ml import persist

    run = registry.get_run(run_id, home=home)
    folder = registry.run_path(run_id, home=home)
    cached = folder / PERMUTATION_FILE
    if cached.exists():
        return pd.read_parquet(cached)
    info = run.get("permutation")
    if not info:
        imp = registry.read_artifact(run_id, "importance.parquet", home=home)
        if "perm_importance_mean" not in imp.columns:
            raise NotFoundError(f"run {run_id} has no permutation importance; train it again to get one")
        return imp[["feature", "perm_importance_mean", "perm_importance_std"]]
    names = run["feature_names"]
    data = pd.read_parquet(folder / "dataset.parquet", columns=[*names, "y"])
    rows = (data.index >= pd.Timestamp(info["test_start"])) & (data.index <= pd.Timestamp(info["test_end"]))
    task = run["task"]
    y = data.loc[rows, "y"].to_numpy()
    if info["model"].get("kind") == "ensemble":  # the parts' last-fold models, combined (ml.ensemble)
        from ml.ensemble import load_final

        model = load_final(folder / info["folder"], info["model"])
    else:
        model = persist.load_model(folder / info["folder"], info["model"])
    try:
        perm = permutation_importances(model, data.loc[rows, names], y.astype("int64") if task != "regression" else y,
                                       task, n_repeats=int(info["repeats"]), seed=int(info["seed"]))
    except ValueError:  # e.g. a class absent from the last fold's test rows: score undefined
        perm = pd.DataFrame({"feature": names, "importance_mean": np.nan, "importance_std": np.nan})
    out = perm.rename(columns={"importance_mean": "perm_importance_mean", "importance_std": "perm_importance_std"})
    atomic_write(cached, lambda tmp: out.to_parquet(tmp, index=False))
    return out
