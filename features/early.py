"""Early-session features: what the first minutes of day D (up to the cutoff) say.

Definitions: :mod:`features.lineage` (``set == "early_session"``). Inputs are the bars
already split by :func:`features.sessions_table.split_bars`, so a feature of day D can
only see the window bars of D (``[open, cutoff)``), the overnight bars before D's open,
earlier days' windows and closes, and the ATR of daily bars up to D-1.

Gaps: a day without window bars gets NaN for every early feature -- ``gap_pct``
included, because its session open would then be a price from after the cutoff. A day
whose first bar is late uses the bars present (see :mod:`features.sessions_table`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sessions_table import DayBars

VOLUME_LOOKBACK = 10
VOLUME_MIN_DAYS = 5


def _within_group_prev(x: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``x`` shifted by one row, NaN on each group's first row."""
    prev = np.r_[np.nan, x[:-1]]
    prev[first] = np.nan
    return prev


def _tests(values: np.ndarray, codes: np.ndarray, first: np.ndarray, wg, highs: bool) -> np.ndarray:
    """Per day: number of bars at or beyond the extreme of the window's earlier bars."""
    s = pd.Series(values)
    running = (s.groupby(codes).cummax() if highs else s.groupby(codes).cummin()).to_numpy()
    prev = _within_group_prev(running, first)
    hit = (values >= prev) if highs else (values <= prev)  # NaN prev (first bar) -> False
    return wg.sum(hit.astype("float64"))


def early_features(db: DayBars, table: pd.DataFrame, atr_prev: np.ndarray) -> pd.DataFrame:
    """Early-session feature frame indexed like ``table`` (the session table of ``db``).

    ``atr_prev``: ATR(14) of the daily bars up to D-1, aligned to ``db.days``.
    """
    wg = db.win_groups()
    w = db.win
    o, h, lo, c, v = (w[k] for k in ("open", "high", "low", "close", "volume"))
    first = np.zeros(c.size, dtype=bool)
    first[wg.starts] = True

    has_window = ~np.isnan(wg.count())
    open_ = np.where(has_window, table["open"].to_numpy(), np.nan)
    cut = table["cutoff_price"].to_numpy()
    prev_close = table["prev_close"].to_numpy()
    w_high, w_low = wg.max(h), wg.min(lo)
    w_vol = wg.sum(v)
    w_vol_prev = (pd.Series(w_vol).rolling(VOLUME_LOOKBACK, min_periods=VOLUME_MIN_DAYS)
                  .mean().shift(1).to_numpy())
    with np.errstate(divide="ignore", invalid="ignore"):
        vwap = wg.sum(c * v) / w_vol
        log_c = np.log(c)
        r = log_c - _within_group_prev(log_c, first)
        r[first] = np.log(c[first] / o[first])
        feats = {
            "gap_pct": open_ / prev_close - 1.0,
            "or_return_pct": cut / open_ - 1.0,
            "or_range_atr": (w_high - w_low) / atr_prev,
            "or_volume_rel": w_vol / w_vol_prev,
            "or_delta": wg.sum(np.sign(c - o) * v) / w_vol,
            "hod_tests": _tests(h, db.win_pos, first, wg, highs=True),
            "lod_tests": _tests(lo, db.win_pos, first, wg, highs=False),
            "vwap_dist_pct": cut / vwap - 1.0,
            "or_close_pos": np.where(w_high > w_low, (cut - w_low) / (w_high - w_low), np.nan),
            "or_rv": np.sqrt(wg.sum(r * r)),
        }
        if db.has_overnight:
            feats["overnight_range_atr"] = (db.night("max", "high") - db.night("min", "low")) / atr_prev
    out = pd.DataFrame(feats, index=table.index)
    return out.replace([np.inf, -np.inf], np.nan).astype("float64")
