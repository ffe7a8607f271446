"""A deliberately naive reference for the early-session features: one Python call per day.

``groupby(local date).apply(per_day)`` with plain Python inside -- the way a notebook
would write it. It exists to check :func:`features.early.early_features` (tests assert
both give the same numbers) and as the baseline of the benchmark; never use it to build
features.
"""

from __future__ import annotations

import math
from datetime import time

import numpy as np
import pandas as pd

from almanac.sessions import Session, parse_time


KEYS = ["open", "cutoff_price", "close", "w_high", "w_low", "w_vol", "or_delta",
        "hod_tests", "lod_tests", "vwap_dist_pct", "or_close_pos", "or_rv"]


def _per_day(day: pd.DataFrame, cut_min: int) -> pd.Series:
    win = day[day["minute"] < cut_min]
    if win.empty:
        return pd.Series({k: day["close"].iloc[-1] if k == "close" else np.nan for k in KEYS})
    o, h, lo, c, v = (win[k].tolist() for k in ("open", "high", "low", "close", "volume"))
    hod = lod = 0
    for i in range(1, len(h)):
        hod += h[i] >= max(h[:i])
        lod += lo[i] <= min(lo[:i])
    vol = sum(v)
    delta = sum((1 if ci > oi else -1 if ci < oi else 0) * vi for oi, ci, vi in zip(o, c, v))
    vwap = sum(ci * vi for ci, vi in zip(c, v)) / vol if vol else np.nan
    rets = [math.log(c[0] / o[0])] + [math.log(c[i] / c[i - 1]) for i in range(1, len(c))]
    hi, low, cut = max(h), min(lo), c[-1]
    return pd.Series({
        "open": day["open"].iloc[0], "cutoff_price": cut, "close": day["close"].iloc[-1],
        "w_high": hi, "w_low": low, "w_vol": vol, "or_delta": delta / vol if vol else np.nan,
        "hod_tests": float(hod), "lod_tests": float(lod),
        "vwap_dist_pct": cut / vwap - 1 if vol else np.nan,
        "or_close_pos": (cut - low) / (hi - low) if hi > low else np.nan,
        "or_rv": math.sqrt(sum(r * r for r in rets)),
    })


def naive_early_features(bars: pd.DataFrame, session: Session, cutoff: time | str,
                         atr_prev: pd.Series | None = None) -> pd.DataFrame:
    """Early-session features (no overnight feature) computed one day at a time.

    ``atr_prev``: ATR(14) up to D-1 indexed by date (for ``or_range_atr``).
    """
    cut = parse_time(cutoff)
    local = bars["timestamp"].dt.tz_convert(session.tz)
    minute = local.dt.hour * 60 + local.dt.minute
    o_min = session.open.hour * 60 + session.open.minute
    c_min = session.close.hour * 60 + session.close.minute
    reg = bars[(minute >= o_min) & (minute < c_min)].assign(minute=minute, date=local.dt.tz_localize(None).dt.normalize())
    days = reg.groupby("date").apply(_per_day, cut_min=cut.hour * 60 + cut.minute)
    atr = atr_prev.reindex(days.index) if atr_prev is not None else np.nan
    vol_prev = days["w_vol"].rolling(10, min_periods=5).mean().shift(1)
    out = pd.DataFrame({
        "gap_pct": days["open"] / days["close"].shift(1) - 1,
        "or_return_pct": days["cutoff_price"] / days["open"] - 1,
        "or_range_atr": (days["w_high"] - days["w_low"]) / atr,
        "or_volume_rel": days["w_vol"] / vol_prev,
        **{k: days[k] for k in ("or_delta", "hod_tests", "lod_tests", "vwap_dist_pct", "or_close_pos", "or_rv")},
    })
    out.index = pd.DatetimeIndex(out.index, name="date")
    return out.astype("float64")
