"""Naive baselines on a run's out-of-fold days, and the model's lift over them.

Every function is pure: it takes the out-of-fold frame (or arrays of it) and returns
numbers; :mod:`ml.runner` stores them in ``run.json["baselines"]``. A baseline is
computed on the SAME out-of-fold days as the model, with the run's cost per side, by the
same backtest code (:func:`ml.backtester.backtest`), so its statistics follow the same
conventions (:mod:`ml.stats`).

* ``always_long``: long from the cutoff to the close on every out-of-fold day that can be
  traded (positive cutoff price and close), paying ``cost_bps`` on each side: the
  backtest of ``prob = 1.0`` on those days at threshold 0.5, long only.
* ``majority``: always predict the training base rate. For each out-of-fold day the
  class shares of its fold's TRAINING rows (what a model without features learns,
  scikit-learn's ``DummyClassifier(strategy="prior")``): ``accuracy`` of the most
  frequent training class (ties: the lower class, as scikit-learn), ``brier`` and
  ``log_loss`` of those shares, ``roc_auc`` 0.5 by definition (a constant ranks
  nothing), ``base_rate`` = the mean predicted P(up) (binary) or the share of the most
  frequent class (multiclass; its name in ``class``).
* ``train_mean`` (regression): always predict the mean outcome of the fold's TRAINING
  rows (scikit-learn's ``DummyRegressor(strategy="mean")`` fitted in each fold): ``mae``,
  ``rmse`` and ``r2`` on the out-of-fold days. The run's own ``r2`` compares with the mean
  of the TEST days, which a model cannot know; this one is the honest floor (for
  time_to_touch or max_excursion, the only baseline there is).
* ``prior_day``: the sign of day D-1's close-to-close return as the prediction of day D
  (``prob`` 1 for an up day, 0 for a down day, NaN when that return is 0 or missing):
  binary classification scores on the days it predicts (``coverage`` = their share) and
  its backtest at threshold 0.5 with the run's long-only rule and cost.
* ``lift``: the model minus ``always_long`` in Sharpe, and the model's ROC AUC minus 0.5,
  each with a percentile interval from a seeded stationary block bootstrap over days
  (:func:`stationary_indices`: those of :class:`arch.bootstrap.StationaryBootstrap`, mean
  block :data:`BLOCK_DAYS` days,
  :data:`RESAMPLES` resamples; the same resampled days for both series). The same seed
  gives the same interval.

Baseline backtest statistics leave out ``dsr`` and ``n_trials`` (a baseline is not a
trial of the experiment); ``psr`` is kept.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn import metrics as skm

from ml import evaluation, stats
from ml.backtester import BacktestResult, backtest

#: Mean block length (trading days) of the stationary bootstrap.
BLOCK_DAYS = 20
#: Bootstrap resamples.
RESAMPLES = 1000
#: Confidence level of the lift intervals.
LEVEL = 0.95
#: Statistics of a baseline backtest that only make sense for the model's own trials.
_TRIAL_KEYS = ("dsr", "n_trials")
#: Resamples evaluated at once (bounds memory: a chunk holds _CHUNK x days values per series).
_CHUNK = 100

__all__ = ["BLOCK_DAYS", "RESAMPLES", "LEVEL", "always_long", "prior_day_prob", "prior_day", "majority",
           "lift", "stationary_indices", "stationary_blocks", "bootstrap_days", "fast_auc", "baseline_stats", "train_shares",
           "train_mean"]


def _tradable(frame: pd.DataFrame) -> np.ndarray:
    return ((frame["cutoff_price"] > 0) & (frame["close"] > 0)).to_numpy()


def baseline_stats(result: BacktestResult) -> dict:
    """The backtest statistics of a baseline (without ``dsr`` / ``n_trials``)."""
    return {k: v for k, v in result.stats.items() if k not in _TRIAL_KEYS}


def always_long(frame: pd.DataFrame, cost_bps: float) -> BacktestResult:
    """Long from cutoff to close on every tradeable day of ``frame`` (columns date,
    cutoff_price, close, prev_close), ``cost_bps`` per side."""
    prob = np.where(_tradable(frame), 1.0, np.nan)
    bt_frame = frame.loc[:, ["date", "cutoff_price", "close", "prev_close"]].assign(prob=prob)
    return backtest(bt_frame, threshold=0.5, cost_bps=cost_bps, long_only=True)


def prior_day_prob(prior_return) -> np.ndarray:
    """1.0 where day D-1's close-to-close return is > 0, 0.0 where < 0, NaN where 0 or missing."""
    r = np.asarray(prior_return, dtype="float64")
    return np.where(r > 0, 1.0, np.where(r < 0, 0.0, np.nan))


def prior_day(frame: pd.DataFrame, up, cost_bps: float, long_only: bool = False) -> dict:
    """``{"metrics", "stats", "params"}`` of the prior-day sign on ``frame`` (columns date,
    cutoff_price, close, prev_close, prior_return); ``up`` = 1 where day D was up (the
    binary label, or ``y > 0`` of a regression)."""
    prob = prior_day_prob(frame["prior_return"])
    up = np.asarray(up, dtype="float64")
    has = ~np.isnan(prob)
    metrics = evaluation.binary_scores(up[has], prob[has]) if has.any() else {"n": 0}
    metrics["coverage"] = float(has.mean()) if len(has) else float("nan")
    traded = np.where(_tradable(frame), prob, np.nan)
    bt_frame = frame.loc[:, ["date", "cutoff_price", "close", "prev_close"]].assign(prob=traded)
    result = backtest(bt_frame, threshold=0.5, cost_bps=cost_bps, long_only=long_only)
    return {"metrics": metrics, "stats": baseline_stats(result), "params": result.params}


def train_shares(y, splits, k: int) -> np.ndarray:
    """(n, k): per row, the class shares of the training rows of the fold whose test block
    holds it (NaN for rows no fold tests); ``splits`` = [(train_idx, test_idx), ...]."""
    y = np.asarray(y)
    out = np.full((len(y), k), np.nan)
    for tr, te in splits:
        out[te] = np.bincount(y[tr].astype("int64"), minlength=k)[:k] / len(tr)
    return out


def train_mean(y_all, splits, tested: np.ndarray) -> dict:
    """Scores of predicting, for each out-of-fold day, the mean ``y`` of its fold's training rows
    (``y_all``: every row's outcome; ``tested``: the rows some fold tests, in order)."""
    y_all = np.asarray(y_all, dtype="float64")
    means = np.full(len(y_all), np.nan)
    for tr, te in splits:
        means[te] = y_all[tr].mean()
    y, pred = y_all[tested], means[tested]
    scores = evaluation.regression_scores(y, pred)
    return {k: scores[k] for k in ("n", "mae", "rmse", "r2")}


def majority(y, shares, classes=None) -> dict:
    """Scores of predicting each day's training class shares ``shares`` (n, k; :func:`train_shares`) for
    the outcomes ``y`` (class indices 0..k-1); see the module doc."""
    y = np.asarray(y, dtype="float64").astype("int64")
    p = np.asarray(shares, dtype="float64")
    k = p.shape[1]
    hat = p.argmax(1)  # ties: the lower class
    log_loss = evaluation._safe(skm.log_loss, y, p, labels=list(range(k))) if len(y) else float("nan")
    onehot = np.eye(k)[y]
    out = {"n": int(len(y)), "accuracy": float((hat == y).mean()) if len(y) else float("nan"),
           "log_loss": log_loss, "roc_auc": 0.5}
    if k == 2:
        out["brier"] = float(((p[:, 1] - y) ** 2).mean()) if len(y) else float("nan")
        out["base_rate"] = float(p[:, 1].mean()) if len(y) else float("nan")
    else:
        out["brier"] = float(((p - onehot) ** 2).sum(1).mean()) if len(y) else float("nan")
        top = int(np.bincount(hat, minlength=k).argmax()) if len(y) else 0
        out["base_rate"] = float(p[:, top].mean()) if len(y) else float("nan")
        out["class"] = classes[top] if classes is not None else top
    return out


# ---------------------------------------------------------------------- lift


def fast_auc(y, score) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties averaged: equal to
    scikit-learn's ``roc_auc_score``; NaN when ``y`` has one class
    (:func:`ml.evaluation.rank_auc` of "y is 1")."""
    return evaluation.rank_auc((np.asarray(y) == 1).astype("float64"), np.asarray(score, dtype="float64"))


def _aucs(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Row-wise rank-sum AUC of (r, n) arrays (NaN for a row with one class)."""
    pos = y == 1
    n1 = pos.sum(1)
    n0 = y.shape[1] - n1
    r = rankdata(score, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((r * pos).sum(1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def _resampled_aucs(y: np.ndarray, score: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``_aucs(y[idx], score[idx])`` for (r, n) day indices ``idx`` into 1-d ``y`` / ``score``,
    without sorting each resample: the scores are sorted once, and a resample is its count of
    each day. A day's average rank in a resample is (resampled days with a lower score) +
    (resampled days with its score + 1) / 2, a half-integer like ``rankdata``'s, so the rank
    sums (exact in float64) and the AUCs are the same numbers bit for bit."""
    r, n = idx.shape
    m = len(score)
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first sorted position of each tie group
    counts = np.bincount((np.arange(r)[:, None] * m + idx).ravel(), minlength=r * m).reshape(r, m)[:, order]
    pos = (y[order] == 1)
    g = np.add.reduceat(counts, starts, axis=1).astype("float64")  # resampled days per score value
    gp = np.add.reduceat(counts * pos, starts, axis=1).astype("float64")  # ... of them positive
    below = np.cumsum(g, axis=1) - g
    n1 = gp.sum(1)
    n0 = n - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = ((gp * (below + (g + 1) / 2.0)).sum(1) - n1 * (n1 + 1) / 2.0) / (n1 * n0)
    return np.where((n1 > 0) & (n0 > 0), auc, np.nan)


def _resampled_auc_rows(y: np.ndarray, pred: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """:func:`_auc_rows` of ``y[idx]`` / ``pred[idx]`` by :func:`_resampled_aucs` (NaN-free
    scores; with a NaN it falls back to ranking every resample)."""
    if np.isnan(pred).any():
        return _auc_rows(y[idx], pred[idx])
    if pred.ndim == 1:
        return _resampled_aucs(y, pred, idx)
    per = np.stack([_resampled_aucs((y == c).astype("int64"), pred[:, c], idx) for c in range(pred.shape[1])],
                   axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row where no class AUC is defined
        return np.nanmean(per, axis=1)


def _auc_rows(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per row of (r, n) resampled outcomes: binary AUC of P(up) (pred (r, n)), or the macro
    one-vs-rest AUC over the classes where it is defined (pred (r, n, k), as
    :func:`ml.evaluation.multiclass_scores`)."""
    if pred.ndim == 2:
        return _aucs(y, pred)
    per = np.stack([_aucs((y == c).astype("int64"), pred[:, :, c]) for c in range(pred.shape[2])], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a row where no class AUC is defined
        return np.nanmean(per, axis=1)


def _sharpes(r: np.ndarray) -> np.ndarray:
    """Row-wise annualized Sharpe (ddof=1) of (r, n) daily returns; NaN where std is 0."""
    sd = r.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r.mean(1) / sd * math.sqrt(stats.PERIODS), np.nan)


def stationary_blocks(n: int, block_days: float, resamples: int, seed: int, chunk: int = _CHUNK):
    """The rows of :func:`stationary_indices`, ``chunk`` resamples at a time ((<= chunk, n)
    int64 arrays, in order): the bootstrap's memory stays one chunk (a run's 1,000 x 2,013
    indices at once are 16 MB per array, and fresh pages cost more than the arithmetic)."""
    rng = np.random.default_rng(int(seed))
    p = 1.0 / block_days
    pos = np.arange(n)
    for lo in range(0, resamples, chunk):
        rows = min(chunk, resamples - lo)
        starts = np.empty((rows, n), dtype=np.int64)
        new = np.empty((rows, n), dtype=bool)
        for r in range(rows):  # the generator's order: integers, then uniforms, per resample
            starts[r] = rng.integers(n, size=n, dtype=np.int64)
            new[r] = rng.random(n) <= p
        new[:, 0] = True
        first = np.maximum.accumulate(np.where(new, pos, 0), axis=1)  # where each day's block began
        out = np.take_along_axis(starts, first, axis=1)
        out += pos - first
        out %= n
        yield out


def stationary_indices(n: int, block_days: float, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) day indices of a stationary block bootstrap: the very indices of
    ``arch.bootstrap.StationaryBootstrap(block_days, np.arange(n), seed=seed).bootstrap(resamples)``
    (a test holds them equal), without importing arch (with statsmodels and numba, most of
    a second). Per resample, as arch draws them from ``numpy.random.default_rng(seed)``: n
    block starts ``integers(n)``, then n uniforms ``u``; day i > 0 continues the previous
    day's block (index + 1, wrapping to 0 at n) when ``u[i] > 1 / block_days``, else starts
    a block at its own draw. The continuation is computed for all days at once
    (:func:`stationary_blocks` gives them a chunk at a time)."""
    return np.concatenate(list(stationary_blocks(n, block_days, resamples, seed)) or [np.empty((0, n), np.int64)])


def _interval(value: float, draws: np.ndarray, level: float) -> dict:
    finite = draws[np.isfinite(draws)]
    if not math.isfinite(value) or finite.size == 0:
        return {"value": value if math.isfinite(value) else None, "lo": None, "hi": None, "level": level}
    a = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [a, 100.0 - a])
    return {"value": float(value), "lo": float(lo), "hi": float(hi), "level": level}


def bootstrap_days(n: int, seed: int, block_days: float = BLOCK_DAYS, resamples: int = RESAMPLES) -> list[np.ndarray]:
    """:func:`lift`'s resampled days for ``n`` out-of-fold days, computed ahead (the runner's
    worker thread draws them while the folds fit; pass them to ``lift(days=...)``)."""
    return list(stationary_blocks(n, block_days, resamples, seed))


def lift(seed: int, model_returns=None, baseline_returns=None, y=None, pred=None,
         block_days: int = BLOCK_DAYS, resamples: int = RESAMPLES, level: float = LEVEL,
         days: list[np.ndarray] | None = None) -> dict:
    """The model's lift with bootstrap intervals (see the module doc).

    ``model_returns`` / ``baseline_returns``: daily strategy returns of the model and of
    ``always_long`` on the same out-of-fold days (``sharpe`` lift; omitted when None).
    ``y`` / ``pred``: out-of-fold outcomes (class indices) and P(up) (n,) or class
    probabilities (n, k) on the same days (``roc_auc`` lift; omitted when None). All
    arrays given must have one row per out-of-fold day, in the same order. ``days``: the
    resampled days drawn ahead by :func:`bootstrap_days` with the same ``seed``,
    ``block_days`` and ``resamples`` (drawn here when None or for another number of days).
    """
    series = {}
    if model_returns is not None and baseline_returns is not None:
        m = np.nan_to_num(np.asarray(model_returns, dtype="float64"))
        b = np.nan_to_num(np.asarray(baseline_returns, dtype="float64"))
        series["sharpe"] = lambda i: _sharpes(m[i]) - _sharpes(b[i])
        n = len(m)
    if y is not None and pred is not None:
        yy = np.asarray(y, dtype="float64").astype("int64")
        pp = np.asarray(pred, dtype="float64")
        series["roc_auc"] = lambda i: _resampled_auc_rows(yy, pp, i) - 0.5
        n = len(yy)
    out: dict = {}
    if series:
        draws: dict = {name: [] for name in series}
        if days is None or not days or days[0].shape[1] != n:
            days = stationary_blocks(n, block_days, resamples, seed)
        for block in days:  # rows of day indices, one per resample
            for name, stat in series.items():
                draws[name].append(stat(block))
        whole = np.arange(n)[None, :]
        for name, stat in series.items():
            out[name] = _interval(float(stat(whole)[0]), np.concatenate(draws[name] or [np.empty(0)]), level)
    out["bootstrap"] = {"method": "stationary", "block_days": int(block_days), "resamples": int(resamples),
                        "seed": int(seed)}
    return out
