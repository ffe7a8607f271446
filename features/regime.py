"""Regime features from daily bars, and the rule that aligns any daily value to day D.

Indicators are computed on the daily rows themselves (value at row t uses rows <= t),
then :func:`align_prev` gives day D the value of the last daily row dated strictly
before D (``merge_asof(..., allow_exact_matches=False)``), so a daily bar never
contributes to its own day. Definitions: :mod:`features.lineage`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from features.lineage import MAX_STALE_DAYS, NEEDS_OHLC

ATR_N = 14
ADX_N = 14
GK_N = 20
PCT_N = 252
EXTREME_N = 20
SMA_FAST, SMA_SLOW = 50, 200
GK_K = 2.0 * np.log(2.0) - 1.0


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's moving average: ``y_t = y_{t-1} + (x_t - y_{t-1}) / n``.

    Seeded at the first index where ``n`` consecutive finite values are available with
    their mean; NaN before. Later NaNs in ``x`` keep the previous value.
    """
    x = np.asarray(x, dtype="float64")
    out = np.full(x.size, np.nan)
    finite = np.isfinite(x).astype(np.int64)
    runs = np.convolve(finite, np.ones(n, dtype=np.int64), mode="valid") if x.size >= n else np.zeros(0)
    ok = np.flatnonzero(runs == n)
    if ok.size == 0:
        return out
    s = int(ok[0]) + n - 1  # last index of the first full block
    y = x[s:].copy()
    y[0] = x[s - n + 1: s + 1].mean()
    out[s:] = pd.Series(y).ewm(alpha=1.0 / n, adjust=False, ignore_na=True).mean().to_numpy()
    return out


def true_range(high, low, close) -> np.ndarray:
    """``max(H_t, C_{t-1}) - min(L_t, C_{t-1})``; NaN on the first row."""
    pc = np.r_[np.nan, close[:-1]]
    return np.maximum(high, pc) - np.minimum(low, pc)


def atr(high, low, close, n: int = ATR_N) -> np.ndarray:
    return wilder(true_range(high, low, close), n)


def adx(high, low, close, n: int = ADX_N) -> np.ndarray:
    """Wilder's ADX(n) (see :mod:`features.lineage`)."""
    up = high - np.r_[np.nan, high[:-1]]
    down = np.r_[np.nan, low[:-1]] - low
    with np.errstate(invalid="ignore"):
        plus = np.where((up > down) & (up > 0), up, 0.0)
        minus = np.where((down > up) & (down > 0), down, 0.0)
    plus[0] = minus[0] = np.nan
    tr = wilder(true_range(high, low, close), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        di_p = 100.0 * wilder(plus, n) / tr
        di_m = 100.0 * wilder(minus, n) / tr
        dx = 100.0 * np.abs(di_p - di_m) / (di_p + di_m)
    return wilder(dx, n)


def pct_rank(x: np.ndarray, n: int = PCT_N) -> np.ndarray:
    """Fraction of the ``n`` values ending at t that are <= the value at t (NaN until n)."""
    return pd.Series(x).rolling(n, min_periods=n).rank(method="max", pct=True).to_numpy()


def days_since_extreme(x: np.ndarray, n: int, highest: bool) -> np.ndarray:
    """Rows since the most recent max (min) of the ``n`` values ending at t (0 = row t)."""
    out = np.full(x.size, np.nan)
    if x.size < n:
        return out
    win = sliding_window_view(x, n)[:, ::-1]  # newest first, so argmax finds the most recent
    idx = np.argmax(win, axis=1) if highest else np.argmin(win, axis=1)
    idx = idx.astype("float64")
    idx[np.isnan(win).any(axis=1)] = np.nan
    out[n - 1:] = idx
    return out


def garman_klass(o, h, lo, c, n: int = GK_N) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        var = 0.5 * np.log(h / lo) ** 2 - GK_K * np.log(c / o) ** 2
        # >= 0 for consistent bars (|ln C/O| <= ln H/L); inconsistent bars give NaN
        return np.sqrt(252.0 * pd.Series(var).rolling(n, min_periods=n).mean().to_numpy())


def regime_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """Regime indicators per daily row (value at row t uses rows <= t), index ``date``.

    Needs ``date`` and ``close``; the :data:`~features.lineage.NEEDS_OHLC` columns are
    produced only when ``open``, ``high`` and ``low`` are all present. ``days_since_*``
    use the close when there is no high/low.
    """
    d = daily.sort_values("date")
    c = d["close"].to_numpy(dtype="float64")
    ohlc = all(k in d.columns and d[k].notna().any() for k in ("open", "high", "low"))
    h = d["high"].to_numpy(dtype="float64") if ohlc else c
    lo = d["low"].to_numpy(dtype="float64") if ohlc else c
    feats: dict[str, np.ndarray] = {}
    if ohlc:
        o = d["open"].to_numpy(dtype="float64")
        a = atr(h, lo, c)
        gk = garman_klass(o, h, lo, c)
        feats.update({"atr14_rel": a / c, "atr14_pct252": pct_rank(a), "adx14": adx(h, lo, c),
                      "gk_vol20": gk, "gk_vol20_pct252": pct_rank(gk)})
    sma = {n: pd.Series(c).rolling(n, min_periods=n).mean().to_numpy() for n in (SMA_FAST, SMA_SLOW)}
    feats.update({
        "days_since_high20": days_since_extreme(h, EXTREME_N, True),
        "days_since_low20": days_since_extreme(lo, EXTREME_N, False),
        "close_sma50_pct": c / sma[SMA_FAST] - 1.0,
        "close_sma200_pct": c / sma[SMA_SLOW] - 1.0,
    })
    order = [k for k in (*NEEDS_OHLC, "days_since_high20", "days_since_low20",
                         "close_sma50_pct", "close_sma200_pct") if k in feats]
    return pd.DataFrame({k: feats[k] for k in order}, index=pd.DatetimeIndex(d["date"], name="date"))


def daily_atr(daily: pd.DataFrame) -> pd.Series | None:
    """ATR(14) per daily row (index ``date``), or None when the daily bars lack high/low."""
    if not all(k in daily.columns and daily[k].notna().any() for k in ("high", "low")):
        return None
    d = daily.sort_values("date")
    a = atr(d["high"].to_numpy(dtype="float64"), d["low"].to_numpy(dtype="float64"),
            d["close"].to_numpy(dtype="float64"))
    return pd.Series(a, index=pd.DatetimeIndex(d["date"], name="date"), name="atr14")


def align_prev(values: pd.DataFrame | pd.Series, days: pd.DatetimeIndex,
               max_stale_days: int = MAX_STALE_DAYS) -> pd.DataFrame:
    """For each day D: the row of ``values`` (indexed by date) dated strictly before D.

    A row more than ``max_stale_days`` calendar days before D is not used (NaN).
    """
    frame = values.to_frame() if isinstance(values, pd.Series) else values
    right = frame.sort_index()
    right.index = pd.DatetimeIndex(right.index).as_unit("us")
    right = right.rename_axis("_src").reset_index()
    left = pd.DataFrame({"_day": pd.DatetimeIndex(days).as_unit("us")})
    merged = pd.merge_asof(left, right, left_on="_day", right_on="_src",
                           allow_exact_matches=False, direction="backward",
                           tolerance=pd.Timedelta(days=max_stale_days))
    out = merged.drop(columns=["_day", "_src"])
    out.index = pd.DatetimeIndex(days, name="date")
    return out.astype("float64")
