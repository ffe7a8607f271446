"""Drift: do test rows look like training rows, and does the model's skill hold over time?

Population stability index (PSI) of one feature, train = "expected", test = "actual":

1. bin edges = the deciles of the *training* values (``n_bins - 1`` interior quantiles,
   duplicates removed, so a feature with few distinct values gets fewer bins); bins are
   right-closed, ``(-inf, q1], (q1, q2], ..., (q_last, +inf)``, and missing values (NaN)
   form one extra bin;
2. ``e_i`` / ``a_i`` = share of train / test rows in bin i (out of all rows, NaN included);
   a share of exactly 0 is replaced by ``eps`` (1e-4) so the logarithm is finite;
3. ``PSI = Σ_i (a_i − e_i) · ln(a_i / e_i)``.

Identical distributions give 0. A common reading: < 0.1 stable, 0.1–0.25 moderate
shift, > 0.25 major shift (:func:`psi_level`).

Rolling AUC: the ROC AUC of out-of-fold predictions over the last ``window`` rows (one
row per trading day, so a window of trading days), NaN when the window holds fewer than
``min_periods`` rows or only one class.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from almanac.errors import SpecError


def psi(expected, actual, n_bins: int = 10, eps: float = 1e-4) -> float:
    """PSI of ``actual`` (test values) against ``expected`` (train values); see module doc."""
    e = np.asarray(expected, dtype="float64")
    a = np.asarray(actual, dtype="float64")
    e_ok = e[np.isfinite(e)]
    if len(e) == 0 or len(a) == 0 or len(e_ok) == 0:
        return float("nan")
    edges = np.unique(np.quantile(e_ok, np.linspace(0, 1, n_bins + 1)[1:-1]))
    nan_bin = len(edges) + 1

    def shares(x: np.ndarray) -> np.ndarray:
        idx = np.where(np.isnan(x), nan_bin, np.searchsorted(edges, x, side="left"))
        s = np.bincount(idx, minlength=nan_bin + 1) / len(x)
        return np.where(s == 0, eps, s)

    se, sa = shares(e), shares(a)
    return float(np.sum((sa - se) * np.log(sa / se)))


def psi_level(value: float) -> str:
    """"stable" (< 0.1), "moderate" (0.1–0.25), "major" (> 0.25) or "n/a" (NaN)."""
    if not np.isfinite(value):
        return "n/a"
    return "stable" if value < 0.1 else "moderate" if value <= 0.25 else "major"


def psi_table(train: pd.DataFrame, test: pd.DataFrame, n_bins: int = 10,
              eps: float = 1e-4) -> pd.DataFrame:
    """PSI per column of ``train`` (test must have the same columns): feature, psi, level."""
    missing = [c for c in train.columns if c not in test.columns]
    if missing:
        raise SpecError(f"test rows lack feature column(s) {', '.join(map(str, missing))}")
    values = [psi(train[c], test[c], n_bins, eps) for c in train.columns]
    return pd.DataFrame({"feature": list(train.columns), "psi": values,
                         "level": [psi_level(v) for v in values]})


def rolling_auc(dates, y, p, window: int = 60, min_periods: int | None = None) -> pd.DataFrame:
    """ROC AUC over the trailing ``window`` rows ending at each row (rows sorted by date).

    Rows with NaN outcome or prediction are dropped first. Columns: date, auc, n (rows in
    the window), n_pos. Computed for all windows at once from average ranks
    (Mann–Whitney: ``AUC = (R_pos − n_pos(n_pos+1)/2) / (n_pos · n_neg)``).
    """
    min_periods = window if min_periods is None else min_periods
    if window < 2 or not 1 <= min_periods <= window:
        raise SpecError(f"rolling AUC needs window >= 2 and 1 <= min_periods <= window, "
                        f"got window {window}, min_periods {min_periods}")
    frame = pd.DataFrame({"date": pd.to_datetime(np.asarray(dates)),
                          "y": np.asarray(y, dtype="float64"), "p": np.asarray(p, dtype="float64")})
    frame = frame.dropna().sort_values("date", kind="stable").reset_index(drop=True)
    pad = window - 1
    # padding rows rank above every real prediction, so real rows keep their ranks
    pp = np.concatenate([np.full(pad, np.inf), frame["p"].to_numpy()])
    real = np.concatenate([np.zeros(pad, bool), np.ones(len(frame), bool)])
    pos = np.concatenate([np.zeros(pad, bool), frame["y"].to_numpy() == 1])
    if len(frame) == 0:
        return pd.DataFrame({"date": frame["date"], "auc": [], "n": [], "n_pos": []})
    wp = sliding_window_view(pp, window)
    wreal = sliding_window_view(real, window)
    wpos = sliding_window_view(pos, window)
    from scipy.stats import rankdata  # here, not at import: the pages import this module

    ranks = rankdata(wp, axis=1)  # average ranks; padding (+inf) takes the top ranks
    n = wreal.sum(1)
    n_pos = wpos.sum(1)
    n_neg = n - n_pos
    r_pos = np.where(wpos, ranks, 0.0).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (r_pos - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc = np.where((n >= min_periods) & (n_pos > 0) & (n_neg > 0), auc, np.nan)
    return pd.DataFrame({"date": frame["date"], "auc": auc, "n": n, "n_pos": n_pos})
