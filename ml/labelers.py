"""Labels: what the model is asked to predict for trading day D.

Every labeler reads a per-trading-day *session table* with one row per date::

    date          naive midnight datetime64, local exchange date (unique, any order)
    open          price at the session open of day D
    high, low     highest / lowest price of day D's regular session
    close         price at the session close of day D
    cutoff_price  close of the last bar that starts before the cutoff of day D
                  (daily-only symbols: the cutoff is the open, so cutoff_price = open)

and returns a float ``pd.Series`` indexed by ``date`` (sorted), named after the label.
A row with a missing (NaN) or non-positive price among the inputs a label needs gets a
NaN label; the caller drops those rows. Nothing is shifted: the label of day D is built
from day D's row only.

All four labels are resolved at the session close of the same day D, so their
``horizon_days`` is 0: a training row for day D is fully known after D's close, before
any feature of day D+1 exists. The walk-forward gap (``ml.splits.WalkForwardSplit``)
must be ``>= horizon_days``; the default gap of 1 day keeps one extra day of margin.

Use :func:`make_label` with a key of :data:`LABELS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from almanac.errors import DataError, SpecError

#: Class order of the archetype label: class ``i`` is ``ARCHETYPE_CLASSES[i]``.
ARCHETYPE_CLASSES: tuple[str, ...] = ("TrendUp", "TrendDown", "Range", "Reversal")
TREND_UP, TREND_DOWN, RANGE, REVERSAL = range(4)


def _prices(table: pd.DataFrame, *cols: str) -> tuple[np.ndarray, ...]:
    """The columns as float arrays with non-positive prices set to NaN."""
    out = []
    for c in cols:
        x = table[c].to_numpy(dtype="float64", na_value=np.nan)
        out.append(np.where(x > 0, x, np.nan))
    return tuple(out)


def label_direction(table: pd.DataFrame) -> np.ndarray:
    """1 if day D's session close > day D's session open, else 0 (a flat day is 0).

    Future looked at: the whole session of day D (open to close). Only meaningful
    with features known *before* the open, i.e. from day D-1 or earlier; with
    early-session features part of the answer is already in the inputs.
    """
    o, c = _prices(table, "open", "close")
    return np.where(np.isnan(o) | np.isnan(c), np.nan, (c > o).astype("float64"))


def label_rest_of_day(table: pd.DataFrame) -> np.ndarray:
    """1 if day D's session close > day D's price at the cutoff, else 0 (flat is 0).

    Future looked at: from the cutoff of day D to the session close of day D — exactly
    the stretch a position decided at the cutoff is exposed to.

    The session close is the exchange calendar's: an early close on a half day (13:00 New
    York the day after Thanksgiving); a day that closed before the cutoff has no
    ``cutoff_price``, so no label (:mod:`features.sessions_table`).
    """
    p, c = _prices(table, "cutoff_price", "close")
    return np.where(np.isnan(p) | np.isnan(c), np.nan, (c > p).astype("float64"))


def label_forward_return(table: pd.DataFrame) -> np.ndarray:
    """close(D) / cutoff_price(D) − 1: the simple return from the cutoff to the close of D.

    Future looked at: from the cutoff of day D to the session close of day D.
    """
    p, c = _prices(table, "cutoff_price", "close")
    return c / p - 1.0


def label_archetype(table: pd.DataFrame) -> np.ndarray:
    """Shape of day D's whole session, as a class index into :data:`ARCHETYPE_CLASSES`.

    With ``pos(x) = (x − low) / (high − low)`` (clipped to [0, 1]) the range of day D is
    cut in thirds: bottom ``pos < 1/3``, middle ``1/3 <= pos <= 2/3``, top ``pos > 2/3``.

    * Reversal (3): open and close in the *same outer* third (both bottom or both top):
      the price travelled to the other end of the range and came back.
    * otherwise by the close's third: top → TrendUp (0), bottom → TrendDown (1),
      middle → Range (2). An open in the bottom third and a close in the top third
      (the classic trend day) is therefore TrendUp, the mirror image TrendDown.
    * a zero-range day (high == low) is Range.

    Future looked at: open, high, low and close of day D's entire session.
    """
    o, h, lo, c = _prices(table, "open", "high", "low", "close")
    rng = h - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        po = np.clip((o - lo) / rng, 0.0, 1.0)
        pc = np.clip((c - lo) / rng, 0.0, 1.0)
    third_o = np.where(po < 1 / 3, 0, np.where(po > 2 / 3, 2, 1))  # 0 bottom, 1 mid, 2 top
    third_c = np.where(pc < 1 / 3, 0, np.where(pc > 2 / 3, 2, 1))
    by_close = np.choose(third_c, [TREND_DOWN, RANGE, TREND_UP])
    reversal = (third_o == third_c) & (third_c != 1)
    lab = np.where(reversal, REVERSAL, by_close).astype("float64")
    lab = np.where(rng == 0, RANGE, lab)
    missing = np.isnan(o) | np.isnan(h) | np.isnan(lo) | np.isnan(c) | (rng < 0)
    return np.where(missing, np.nan, lab)


@dataclass(frozen=True)
class LabelSpec:
    """What a label is: its task, horizon, classes and the columns it needs."""

    name: str
    task: str  # "binary" | "multiclass" | "regression"
    horizon_days: int  # 0 = resolved at the same day's close
    columns: tuple[str, ...]
    classes: tuple[str, ...] | None  # class names in class-index order; None for regression
    func: Callable[[pd.DataFrame], np.ndarray]

    @property
    def description(self) -> str:
        """The labeler's summary and its "Future looked at" paragraph as plain text (reST roles
        and literals such as :data:`X` and ``x`` shown as X and x): what the /train form shows."""
        paragraphs = [p for p in (self.func.__doc__ or "").split("\n\n") if p.strip()]
        kept = paragraphs[:1] + [p for p in paragraphs[1:] if p.strip().startswith("Future looked at")]
        text = " ".join(" ".join(kept).split())
        text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
        return text.replace("``", "")


LABELS: dict[str, LabelSpec] = {
    "direction": LabelSpec("direction", "binary", 0, ("open", "close"),
                           ("down", "up"), label_direction),
    "rest_of_day": LabelSpec("rest_of_day", "binary", 0, ("cutoff_price", "close"),
                             ("down", "up"), label_rest_of_day),
    "archetype": LabelSpec("archetype", "multiclass", 0, ("open", "high", "low", "close"),
                           ARCHETYPE_CLASSES, label_archetype),
    "forward_return": LabelSpec("forward_return", "regression", 0,
                                ("cutoff_price", "close"), None, label_forward_return),
}


def label_spec(kind: str) -> LabelSpec:
    """The :class:`LabelSpec` of ``kind``; SpecError listing the valid kinds."""
    try:
        return LABELS[kind]
    except (KeyError, TypeError):
        raise SpecError(f"unknown label {kind!r}; choose one of: {', '.join(LABELS)}") from None


def make_label(kind: str, session_table: pd.DataFrame) -> pd.Series:
    """Label ``kind`` for every row of ``session_table``, indexed by sorted ``date``.

    Returns a float64 Series named ``kind`` (classes as 0.0, 1.0, ...; NaN where an
    input is missing). Raises DataError if a needed column is absent or a date repeats.
    """
    spec = label_spec(kind)
    need = ("date",) + spec.columns
    missing = [c for c in need if c not in session_table.columns]
    if missing:
        raise DataError(f"label {kind!r} needs session-table columns {', '.join(missing)} "
                        f"(have {', '.join(map(str, session_table.columns))}); "
                        "use a symbol with open/high/low data or pick another label")
    table = session_table.sort_values("date", kind="stable")
    dates = pd.DatetimeIndex(pd.to_datetime(table["date"]), name="date")
    if dates.has_duplicates:
        dup = dates[dates.duplicated()][0]
        raise DataError(f"session table has date {dup:%Y-%m-%d} more than once; "
                        "build it with one row per trading day")
    return pd.Series(spec.func(table), index=dates, name=kind, dtype="float64")
