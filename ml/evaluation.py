"""Scores of out-of-fold predictions, per fold and pooled.

Inputs are aligned arrays of outcomes ``y`` and predictions ``pred``:

* ``binary``: ``y`` in {0, 1}; ``pred`` = P(class 1), shape (n,). A row is predicted 1
  when ``pred >= threshold``.
* ``multiclass``: ``y`` in {0, ..., K-1}; ``pred`` = class probabilities, shape (n, K),
  column k = P(class k).
* ``regression``: ``y`` and ``pred`` real, shape (n,).

Definitions (N rows):

* brier (binary) = mean (p − y)²; brier (multiclass) = mean over rows of
  Σ_k (p_k − 1[y = k])², range [0, 2] (scikit-learn's convention, not halved).
* roc_auc (multiclass) = unweighted mean of the one-vs-rest AUCs of the classes for which
  the AUC is defined (the class and its complement both occur); None if none is.
* reliability curve: 10 equal-width bins of the predicted probability, right-closed as in
  :func:`sklearn.calibration.calibration_curve` ([0, .1], (.1, .2], ..., (.9, 1]);
  ECE = Σ_bins (count_b / N) · |observed frequency_b − mean predicted_b|.
* ic = Spearman rank correlation between prediction and outcome.

Undefined numbers (AUC with one class, precision with no predicted positives, ...) are
NaN in DataFrames and ``None`` in the JSON-safe dicts :func:`evaluate` returns.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from almanac.errors import SpecError

# scikit-learn and scipy are imported inside the functions that score: importing them
# costs about a second, and the web pages import this module at start-up.

#: Thresholds the UI slider scrubs through (0.30, 0.31, ..., 0.70).
THRESHOLDS = np.round(np.arange(0.30, 0.701, 0.01), 2)


def _json_safe(obj):
    """Plain Python objects with NaN/inf -> None, numpy scalars -> int/float."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, pd.DataFrame):
        return [_json_safe(r) for r in obj.to_dict("records")]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, pd.Timestamp):
        return obj.isoformat()
    return obj


def _arrays(y, pred, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype="float64").ravel()
    pred = np.asarray(pred, dtype="float64")
    if pred.ndim != ndim or len(pred) != len(y):
        raise SpecError(f"predictions of shape {pred.shape} do not match {len(y)} outcomes")
    if np.isnan(y).any() or np.isnan(pred).any():
        raise SpecError("outcomes or predictions contain NaN; keep only rows that have an "
                        "out-of-fold prediction and a label")
    return y, pred


def _safe(fn, *args, **kw) -> float:
    """fn(...) or NaN when the metric is undefined on these rows (e.g. one class)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return float(fn(*args, **kw))
        except ValueError:
            return float("nan")


# ---------------------------------------------------------------- binary

def reliability_curve(y, p, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin: bounds, mean predicted, observed frequency, count (all bins,
    empty ones with count 0 and NaN means)."""
    y, p = _arrays(y, p, 1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)  # the binning of calibration_curve
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(ids, weights=p, minlength=n_bins) / count
        obs = np.bincount(ids, weights=y, minlength=n_bins) / count
    return pd.DataFrame({"bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:],
                         "mean_predicted": mean_p, "observed": obs, "count": count})


def expected_calibration_error(y, p, n_bins: int = 10) -> float:
    """Σ_bins (count/N) · |observed − mean predicted| over the reliability bins."""
    rc = reliability_curve(y, p, n_bins).query("count > 0")
    w = rc["count"] / rc["count"].sum()
    return float((w * (rc["observed"] - rc["mean_predicted"]).abs()).sum())


def threshold_grid(y, p, thresholds=THRESHOLDS) -> pd.DataFrame:
    """Confusion counts and scores when predicting 1 for ``p >= t``, for each threshold t.

    Columns: threshold, tn, fp, fn, tp, accuracy, precision (NaN when nothing is
    predicted 1), recall (NaN when no row is 1), predicted_up (share predicted 1).
    """
    y, p = _arrays(y, p, 1)
    t = np.asarray(thresholds, dtype="float64")
    hat = p[None, :] >= t[:, None]  # thresholds × rows
    pos = (y == 1)[None, :]
    tp = (hat & pos).sum(1)
    fp = (hat & ~pos).sum(1)
    fn = (~hat & pos).sum(1)
    tn = (~hat & ~pos).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
    return pd.DataFrame({"threshold": t, "tn": tn, "fp": fp, "fn": fn, "tp": tp,
                         "accuracy": (tp + tn) / len(y), "precision": precision,
                         "recall": recall, "predicted_up": (tp + fp) / len(y)})


def roc_table(y, p) -> pd.DataFrame:
    """The ROC curve (fpr, tpr, threshold) of scikit-learn's ``roc_curve`` (with its
    ``drop_intermediate``), computed with numpy so that the web pages do not import
    scikit-learn (tests hold the two equal); the first point (0, 0) has threshold NaN
    (scikit-learn's +inf). Empty when ``y`` has one class."""
    y, p = _arrays(y, p, 1)
    if len(np.unique(y)) < 2:
        return pd.DataFrame({"fpr": [], "tpr": [], "threshold": []})
    order = np.argsort(p, kind="mergesort")[::-1]
    score, truth = p[order], y[order]
    distinct = np.flatnonzero(np.diff(score))
    idx = np.r_[distinct, len(truth) - 1]
    tps = np.cumsum(truth)[idx]
    fps = 1 + idx - tps
    thr = score[idx]
    if len(fps) > 2:  # drop the points on straight segments (collinear), as scikit-learn does
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    tps, fps, thr = np.r_[0, tps], np.r_[0, fps], np.r_[np.nan, thr]
    return pd.DataFrame({"fpr": fps / fps[-1], "tpr": tps / tps[-1], "threshold": thr})


def rank_auc(y: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC of float 0/1 outcomes ``y`` by the rank-sum formula with ties averaged
    (scikit-learn's ``roc_auc_score``); NaN when ``y`` has one class."""
    n1 = float(y.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(p, kind="mergesort")
    s = p[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    ranks = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # average 1-based rank of each tie group
    return float((ranks[y[order] == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def _binary_log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """scikit-learn's ``log_loss(y, p, labels=[0, 1])``: both columns [1 - p, p] clipped to
    [eps, 1 - eps] (eps of float64), rows renormalized, mean negative log of the true column."""
    eps = np.finfo(np.float64).eps
    neg, pos = np.clip(1.0 - p, eps, 1 - eps), np.clip(p, eps, 1 - eps)
    total = neg + pos
    return float(-np.mean(np.log(np.where(y == 1, pos, neg) / total)))


def binary_scores(y, p, threshold: float = 0.5) -> dict:
    """n, base_rate, mean_predicted, accuracy, balanced_accuracy (at ``threshold``),
    roc_auc, log_loss, brier, ece.

    The numbers of scikit-learn's ``accuracy_score``, ``balanced_accuracy_score``,
    ``roc_auc_score``, ``log_loss(labels=[0, 1])`` and ``brier_score_loss`` (tests hold
    them equal to 1e-12), computed with numpy: the runner scores every fold, the pooled
    rows and the baselines, and scikit-learn's input validation cost more than the sums."""
    y, p = _arrays(y, p, 1)
    if not len(y):
        nan = float("nan")
        return {"n": 0, "base_rate": nan, "mean_predicted": nan, "accuracy": nan, "balanced_accuracy": nan,
                "roc_auc": nan, "log_loss": nan, "brier": nan, "ece": nan}
    if not np.isin(y, (0.0, 1.0)).all():
        raise SpecError("binary outcomes must be 0 or 1")
    hat = p >= threshold
    pos = y == 1
    recalls = [float((hat[pos]).mean()) if pos.any() else None, float((~hat[~pos]).mean()) if (~pos).any() else None]
    recalls = [r for r in recalls if r is not None]
    return {
        "n": len(y),
        "base_rate": float(y.mean()),
        "mean_predicted": float(p.mean()),
        "accuracy": float((hat == pos).mean()),
        "balanced_accuracy": float(np.mean(recalls)),
        "roc_auc": rank_auc(y, p),
        "log_loss": _binary_log_loss(y, p),
        "brier": float(np.mean((y - p) ** 2)),
        "ece": expected_calibration_error(y, p),
    }


# ---------------------------------------------------------------- multiclass

def _ovr_auc(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    from sklearn import metrics as skm

    return np.array([_safe(skm.roc_auc_score, y == k, proba[:, k]) for k in range(proba.shape[1])])


def multiclass_scores(y, proba) -> dict:
    """n, accuracy, balanced_accuracy (argmax class), roc_auc (macro one-vs-rest over
    defined classes), log_loss, brier (multiclass, [0, 2])."""
    from sklearn import metrics as skm

    y, proba = _arrays(y, proba, 2)
    k = proba.shape[1]
    yi = y.astype("int64")
    hat = proba.argmax(1)
    auc = _ovr_auc(yi, proba)
    onehot = np.eye(k)[yi]
    return {
        "n": len(y),
        "accuracy": _safe(skm.accuracy_score, yi, hat),
        "balanced_accuracy": _safe(skm.balanced_accuracy_score, yi, hat),
        "roc_auc": float(np.nanmean(auc)) if np.isfinite(auc).any() else float("nan"),
        "log_loss": _safe(skm.log_loss, yi, proba, labels=list(range(k))),
        "brier": float(((proba - onehot) ** 2).sum(1).mean()) if len(y) else float("nan"),
    }


# ---------------------------------------------------------------- regression

def regression_scores(y, pred) -> dict:
    """n, mae, rmse, r2, ic (Spearman), hit_rate (share with sign(pred) == sign(y))."""
    from scipy.stats import spearmanr
    from sklearn import metrics as skm

    y, pred = _arrays(y, pred, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ic = spearmanr(pred, y).statistic if len(y) > 1 else float("nan")
    return {
        "n": len(y),
        "mae": _safe(skm.mean_absolute_error, y, pred),
        "rmse": _safe(skm.root_mean_squared_error, y, pred),
        "r2": _safe(skm.r2_score, y, pred),
        "ic": float(ic),
        "hit_rate": float((np.sign(pred) == np.sign(y)).mean()) if len(y) else float("nan"),
    }


def scores(task: str, y, pred, threshold: float = 0.5) -> dict:
    """The scalar scores of ``task`` (floats, NaN when undefined)."""
    if task == "binary":
        return binary_scores(y, pred, threshold)
    if task == "multiclass":
        return multiclass_scores(y, pred)
    if task == "regression":
        return regression_scores(y, pred)
    raise SpecError(f"unknown task {task!r}; choose one of: binary, multiclass, regression")


def fold_scores(task: str, y, pred, folds, threshold: float = 0.5) -> pd.DataFrame:
    """One row of :func:`scores` per fold (column ``fold`` first), in fold order."""
    folds = np.asarray(folds)
    pred = np.asarray(pred, dtype="float64")
    y = np.asarray(y, dtype="float64")
    rows = [{"fold": f, **scores(task, y[folds == f], pred[folds == f], threshold)}
            for f in np.unique(folds)]
    return pd.DataFrame(rows)


def evaluate(task: str, y, pred, folds=None, threshold: float = 0.5,
             classes: list[str] | tuple[str, ...] | None = None) -> dict:
    """Everything the results page shows, as a JSON-safe dict.

    Keys: ``task``, ``pooled`` (scores over all rows), ``per_fold`` (list of score dicts
    with ``fold``; empty without ``folds``); classification adds ``confusion``
    (``labels`` and ``matrix`` [true][predicted]) and ``report`` (scikit-learn's
    classification report); binary adds ``threshold``, ``roc``, ``reliability`` and
    ``threshold_grid`` (lists of row dicts).
    """
    from sklearn import metrics as skm

    out = {"task": task, "pooled": scores(task, y, pred, threshold),
           "per_fold": [] if folds is None else fold_scores(task, y, pred, folds, threshold)}
    if task in ("binary", "multiclass"):
        y_arr, pred_arr = _arrays(y, pred, 1 if task == "binary" else 2)
        k = 2 if task == "binary" else pred_arr.shape[1]
        hat = (pred_arr >= threshold).astype(int) if task == "binary" else pred_arr.argmax(1)
        labels = list(range(k))
        names = list(classes) if classes is not None else [str(c) for c in labels]
        if len(names) != k:
            raise SpecError(f"{len(names)} class names given for {k} classes")
        out["confusion"] = {"labels": names,
                            "matrix": skm.confusion_matrix(y_arr.astype(int), hat, labels=labels)}
        out["report"] = skm.classification_report(y_arr.astype(int), hat, labels=labels,
                                                  target_names=names, output_dict=True,
                                                  zero_division=0)
    if task == "binary":
        out["threshold"] = threshold
        out["roc"] = roc_table(y, pred)
        out["reliability"] = reliability_curve(y, pred)
        out["threshold_grid"] = threshold_grid(y, pred)
    return _json_safe(out)
