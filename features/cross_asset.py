"""Cross-asset features: other markets' daily moves up to D-1, and their early move on D.

For a cross symbol ``SYM``: ``{SYM}_ret_1d`` and ``{SYM}_z20`` come from its daily
closes (its 1d file, else closes derived from its minute bars) and enter day D from the
last ``SYM`` date strictly before D (:func:`features.regime.align_prev`) -- a daily
series never contributes day D's own close. ``{SYM}_early_ret`` needs ``SYM`` minute
bars: its window return (open to cutoff) on the same local date D. Definitions:
:mod:`features.lineage`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.regime import align_prev

Z_N = 20


def daily_close_features(daily: pd.DataFrame, sym: str) -> pd.DataFrame:
    """``{sym}_ret_1d`` and ``{sym}_z20`` per daily row of ``sym`` (value at t uses rows <= t)."""
    d = daily.sort_values("date")
    c = pd.Series(d["close"].to_numpy(dtype="float64"))
    roll = c.rolling(Z_N, min_periods=Z_N)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = ((c - roll.mean()) / roll.std(ddof=1)).to_numpy()
    out = pd.DataFrame({f"{sym}_ret_1d": (c / c.shift(1) - 1.0).to_numpy(), f"{sym}_z20": z},
                       index=pd.DatetimeIndex(d["date"], name="date"))
    return out.replace([np.inf, -np.inf], np.nan)


def cross_features(daily: pd.DataFrame, sym: str, days: pd.DatetimeIndex,
                   sessions: pd.DataFrame | None = None) -> pd.DataFrame:
    """Cross-asset features of ``sym`` aligned to the target's trading ``days``.

    ``sessions``: ``sym``'s session table (from minute bars, same cutoff) when
    ``{sym}_early_ret`` is wanted, else None.
    """
    out = align_prev(daily_close_features(daily, sym), days)
    if sessions is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            early = sessions["cutoff_price"] / sessions["open"] - 1.0
        out[f"{sym}_early_ret"] = early.reindex(out.index).to_numpy(dtype="float64")
    return out.astype("float64")
