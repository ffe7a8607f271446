"""Exploring features against an outcome: quantile-binned hit rates, rank correlations,
and a quick mutual-information ranking computed without peeking at later days.

The outcome is any 0/1 Series indexed by date (NaN = unknown), e.g. the day direction or
the rest-of-day direction from ``ml.labelers`` -- this module does not build labels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Share of the earliest labelled days that :func:`mutual_information` may look at.
TRAIN_FRACTION = 0.7
MIN_ROWS = 30


def binned_hit_rates(x: pd.Series, y: pd.Series, bins: int = 10) -> pd.DataFrame:
    """Hit rate of the binary outcome ``y`` per quantile bin of the feature ``x``.

    Days where either is NaN are left out. Bins are ``pd.qcut`` quantiles of ``x``
    (fewer than ``bins`` when ``x`` has many ties). Columns: ``bin`` (1..k), ``lo``,
    ``hi`` (the bin's smallest and largest feature value), ``count``, ``hits`` (days
    with ``y == 1``) and ``hit_rate`` = hits / count.
    """
    both = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").dropna()
    cols = ["bin", "lo", "hi", "count", "hits", "hit_rate"]
    if both.empty or both["x"].nunique() < 2:
        return pd.DataFrame(columns=cols)
    codes = pd.qcut(both["x"], q=bins, labels=False, duplicates="drop")
    g = both.groupby(codes)
    out = pd.DataFrame({"lo": g["x"].min(), "hi": g["x"].max(), "count": g["y"].size(),
                        "hits": g["y"].sum()})
    out["hit_rate"] = out["hits"] / out["count"]
    out.insert(0, "bin", np.arange(1, len(out) + 1))
    return out.reset_index(drop=True)[cols]


def rank_correlation(frame: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation between features (pairwise complete days)."""
    return frame.corr(method="spearman", min_periods=MIN_ROWS)


def mutual_information(frame: pd.DataFrame, y: pd.Series, train_fraction: float = TRAIN_FRACTION,
                       seed: int = 0) -> tuple[pd.Series, dict]:
    """Mutual information (nats) of each feature with the binary outcome, on early days only.

    Only the earliest ``train_fraction`` of the days that have an outcome are used, so
    the later days stay unseen (a quick screen must not look at the days a model will
    be tested on). Each feature uses its own non-NaN days among them; with fewer than
    :data:`MIN_ROWS` the value is NaN. Estimator: scikit-learn's
    ``mutual_info_classif`` (k-nearest neighbours, k=3, fixed ``seed``).

    Returns the values sorted high to low and ``{"start", "end", "days", "fraction"}``
    describing the days used.
    """
    from sklearn.feature_selection import mutual_info_classif

    labelled = y.dropna().sort_index()
    n = int(np.floor(len(labelled) * train_fraction))
    info = {"fraction": train_fraction, "days": n, "start": None, "end": None}
    if n < MIN_ROWS:
        return pd.Series(np.nan, index=frame.columns, dtype="float64"), info
    used = labelled.iloc[:n]
    info.update(start=used.index[0], end=used.index[-1])
    x_all = frame.reindex(used.index)
    values = {}
    for col in frame.columns:  # one estimate per feature (not per day)
        ok = x_all[col].notna().to_numpy()
        if ok.sum() < MIN_ROWS or x_all[col][ok].nunique() < 2:
            values[col] = np.nan
            continue
        values[col] = float(mutual_info_classif(x_all[col].to_numpy()[ok].reshape(-1, 1),
                                                used.to_numpy()[ok].astype(int), n_neighbors=3,
                                                random_state=seed)[0])
    return pd.Series(values, dtype="float64").sort_values(ascending=False, na_position="last"), info
