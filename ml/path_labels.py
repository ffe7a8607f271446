"""Path labels: what the minute path after day D's cutoff does, measured in ATR.

Every path label of day D reads :class:`features.paths.CutoffPaths`: the cutoff price
``P`` (close of the last bar starting before the cutoff), ``A`` = ATR(14) of D-1 (Wilder,
daily bars of the regular session up to D-1: nothing of day D) and the *post-cutoff
bars* of D -- the regular-session bars starting at or after the cutoff and before the
session close (an early close on a half day). A bar *touches* the upper barrier when its
high >= ``P + k*A`` and the lower one when its low <= ``P - k*A``; a touch is dated at the
END of its bar (minutes from the cutoff), when it is certain.

A day gets NaN (no label; the runner drops it) when ``P`` or ``A`` is missing or not
positive (the first 15 days of the data, a day without a bar before the cutoff, a half
day that closed before the cutoff) or when no bar starts after the cutoff (a data gap:
the path is unknown, which is not the same as "no touch").

Horizon: every path label is resolved at the session close of D (``horizon_days`` 0), so
the walk-forward gap rule is that of the other labels.
"""

from __future__ import annotations

import numpy as np

from almanac.errors import SpecError
from features.paths import CutoffPaths

#: Class order of first_touch: class ``i`` is ``TOUCH_CLASSES[i]`` (binary: the first two).
TOUCH_CLASSES: tuple[str, ...] = ("down", "up", "neither")
TRADEABLE_CLASSES: tuple[str, ...] = ("quiet", "tradeable")
#: The barrier distance when a spec gives none, and the largest it may give (in ATR).
DEFAULT_K = 1.0
MAX_K = 10.0
SIDES = ("up", "down")


def check_k(k) -> float:
    """``k`` as a float in (0, MAX_K]; SpecError (one line) otherwise."""
    ok = isinstance(k, (int, float)) and not isinstance(k, bool) and np.isfinite(k) and 0 < k <= MAX_K
    if not ok:
        raise SpecError(f"label parameter k={k!r} is not a barrier distance in ATR: use a number with 0 < k <= "
                        f"{MAX_K:g}, e.g. k: 1.0")
    return float(k)


def _valid(p: CutoffPaths) -> np.ndarray:
    """Days a path label is defined on (see the module doc)."""
    with np.errstate(invalid="ignore"):
        return (p.cutoff_price > 0) & (p.atr_prev > 0) & np.isfinite(p.atr_prev) & (p.bars_after_cutoff() > 0)


def touch_minutes(p: CutoffPaths, k: float) -> tuple[np.ndarray, np.ndarray]:
    """Per day: minutes from the cutoff to the end of the first bar touching ``P + k*A`` (up)
    and ``P - k*A`` (down); ``inf`` when none does by the close. One pass over the bars."""
    k = check_k(k)
    up_level, down_level = p.cutoff_price + k * p.atr_prev, p.cutoff_price - k * p.atr_prev
    g = p.groups()
    with np.errstate(invalid="ignore"):  # NaN levels touch nothing
        hit_up = p.high >= up_level[p.pos]
        hit_down = p.low <= down_level[p.pos]
    up = g.min(np.where(hit_up, p.end_minute, np.inf))
    down = g.min(np.where(hit_down, p.end_minute, np.inf))
    return np.where(np.isnan(up), np.inf, up), np.where(np.isnan(down), np.inf, down)


def label_tradeable(p: CutoffPaths, k: float = DEFAULT_K) -> dict:
    """1 if the price moves at least k x ATR(14 of D-1) from the cutoff price P, up or down, before the
    close, else 0.

    A touch: a post-cutoff bar's high >= P + kA or low <= P - kA.

    Future looked at: the bars of day D from the cutoff to the session close (their highs and lows).
    """
    up, down = touch_minutes(p, k)
    return {"y": np.where(_valid(p), np.isfinite(np.minimum(up, down)).astype("float64"), np.nan)}


def label_first_touch(p: CutoffPaths, k: float = DEFAULT_K, classes: str = "multiclass") -> dict:
    """Which the price touches first after the cutoff: k x ATR(14 of D-1) above the cutoff price (up), k x
    ATR below (down), or neither by the close (a triple barrier; ``classes: binary`` drops the neither days).

    Classes: down = 0, up = 1, neither = 2 (binary: down, up; the dropped days are flagged ``neither``).
    A bar touching both barriers is ambiguous (one-minute bars do not say which came first): that day is
    dropped in both variants (``ambiguous``).

    Future looked at: the bars of day D from the cutoff to the session close (their highs and lows).
    """
    up, down = touch_minutes(p, k)
    ambiguous = np.isfinite(up) & (up == down)
    y = np.where(up < down, 1.0, np.where(down < up, 0.0, np.nan))
    neither = np.isinf(up) & np.isinf(down)
    if classes == "multiclass":
        y = np.where(neither, 2.0, y)
    elif classes != "binary":
        raise SpecError(f"label parameter classes={classes!r} is not multiclass or binary: choose one")
    ok = _valid(p)
    out = {"y": np.where(ok, y, np.nan), "ambiguous": ok & ambiguous}
    if classes == "binary":
        out["neither"] = ok & neither
    return out


def label_time_to_touch(p: CutoffPaths, k: float = DEFAULT_K) -> dict:
    """Minutes from the cutoff until the price first moves k x ATR(14 of D-1) from the cutoff price, up or
    down; censored at the close.

    The time is to the end of the first touching bar. A day without a touch is censored: its value is
    the minutes from the cutoff to the session close, and it is flagged ``censored`` (the run counts them).

    Future looked at: the bars of day D from the cutoff to the session close (their highs and lows).
    """
    up, down = touch_minutes(p, k)
    first = np.minimum(up, down)
    censored = np.isinf(first)
    ok = _valid(p)
    return {"y": np.where(ok, np.where(censored, p.minutes_to_close, first), np.nan), "censored": ok & censored}


def label_max_excursion(p: CutoffPaths, side: str = "up") -> dict:
    """The largest move after the cutoff, up or down (``side``), in ATR(14 of D-1).

    ``side: up`` (favourable to a long): max(0, highest post-cutoff high - P) / A; ``side: down``
    (adverse to a long): max(0, P - lowest post-cutoff low) / A.

    Future looked at: the bars of day D from the cutoff to the session close (their highs and lows).
    """
    g = p.groups()
    if side == "up":
        move = g.max(p.high) - p.cutoff_price
    elif side == "down":
        move = p.cutoff_price - g.min(p.low)
    else:
        raise SpecError(f"label parameter side={side!r} is not up or down: choose one")
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.maximum(move, 0.0) / p.atr_prev
    return {"y": np.where(_valid(p), x, np.nan)}


#: Flags of days a label drops (no value), with what a run's notes say about them.
DROP_FLAGS: dict[str, str] = {"ambiguous": "day(s) touched both barriers within one bar (which came first is "
                                           "unknown): not labelled",
                               "neither": "day(s) touched neither barrier by the close: dropped (classes: binary)"}


def drop_notes(kind: str, flags: dict[str, np.ndarray]) -> list[str]:
    """One sentence per :data:`DROP_FLAGS` flag that is set on some day (a run's ``notes``)."""
    out = []
    for name, text in DROP_FLAGS.items():
        n = int(np.asarray(flags.get(name, []), dtype=bool).sum())
        if n:
            out.append(f"{kind}: {n} {text}")
    return out


def flag_counts(flags: dict[str, np.ndarray], tested: np.ndarray | None = None) -> dict:
    """``{flag: {"days": n, "oof_days": m}}`` for a label's boolean flags on its labelled days
    (``tested``: which of them are out-of-fold)."""
    out = {}
    for name, f in flags.items():
        f = np.asarray(f, dtype=bool)
        out[name] = {"days": int(f.sum()), "oof_days": int(f[tested].sum()) if tested is not None else None}
    return out


__all__ = ["TOUCH_CLASSES", "TRADEABLE_CLASSES", "DEFAULT_K", "MAX_K", "SIDES", "check_k", "touch_minutes",
           "label_tradeable", "label_first_touch", "label_time_to_touch", "label_max_excursion", "flag_counts",
           "DROP_FLAGS", "drop_notes"]
