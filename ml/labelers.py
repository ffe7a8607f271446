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

The *path labels* (``tradeable``, ``first_touch``, ``time_to_touch``, ``max_excursion``,
:mod:`ml.path_labels`) follow the minute bars after the cutoff instead: they take
parameters (``k``, ``classes``, ``side``) and read :class:`features.paths.CutoffPaths`
(``paths=``), aligned to the session table's dates.

All labels are resolved at the session close of the same day D, so their
``horizon_days`` is 0: a training row for day D is fully known after D's close, before
any feature of day D+1 exists. The walk-forward gap (``ml.splits.WalkForwardSplit``)
must be ``>= horizon_days``; the default gap of 1 day keeps one extra day of margin.

Use :func:`make_label` with a key of :data:`LABELS` (:func:`spec_label` for a spec).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import pandas as pd

from almanac.errors import DataError, SpecError
from ml import path_labels as pl

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
    func: Callable[..., np.ndarray | dict]
    params: tuple[str, ...] = ()  # parameters the label takes (path labels: k, classes, side)
    path: bool = False  # reads the minute path after the cutoff (func(paths, **params) -> {"y", flags})
    untraded: str | None = None  # why the backtest does not trade its prediction (None: it does)
    unit: str = ""  # a regression label's unit: "return" (a fraction), "minutes", "ATR"

    @property
    def description(self) -> str:
        """The labeler's summary and its "Future looked at" paragraph as plain text (reST roles
        and literals such as :data:`X` and ``x`` shown as X and x): what the /train form shows."""
        paragraphs = [p for p in (self.func.__doc__ or "").split("\n\n") if p.strip()]
        kept = paragraphs[:1] + [p for p in paragraphs[1:] if p.strip().startswith("Future looked at")]
        text = " ".join(" ".join(kept).split())
        text = re.sub(r":[a-z]+:`~?([^`]+)`", lambda m: m.group(1).rsplit(".", 1)[-1], text)
        return text.replace("``", "")


#: What a path label reads of the session table (the rest comes from the minute path).
_PATH_COLUMNS = ("cutoff_price",)
_ARCHETYPE_UNTRADED = "the archetype label is a day shape, not a direction to trade"

LABELS: dict[str, LabelSpec] = {
    "direction": LabelSpec("direction", "binary", 0, ("open", "close"),
                           ("down", "up"), label_direction),
    "rest_of_day": LabelSpec("rest_of_day", "binary", 0, ("cutoff_price", "close"),
                             ("down", "up"), label_rest_of_day),
    "archetype": LabelSpec("archetype", "multiclass", 0, ("open", "high", "low", "close"),
                           ARCHETYPE_CLASSES, label_archetype, untraded=_ARCHETYPE_UNTRADED),
    "forward_return": LabelSpec("forward_return", "regression", 0,
                                ("cutoff_price", "close"), None, label_forward_return, unit="return"),
    "tradeable": LabelSpec("tradeable", "binary", 0, _PATH_COLUMNS, pl.TRADEABLE_CLASSES, pl.label_tradeable,
                           ("k",), True, "tradeable says whether the price moves k ATR, not which way; gate a "
                                         "direction with it instead"),
    "first_touch": LabelSpec("first_touch", "multiclass", 0, _PATH_COLUMNS, pl.TOUCH_CLASSES,
                             pl.label_first_touch, ("k", "classes"), True),
    "time_to_touch": LabelSpec("time_to_touch", "regression", 0, _PATH_COLUMNS, None, pl.label_time_to_touch,
                               ("k",), True, "time_to_touch is a number of minutes, not a direction to trade",
                               "minutes"),
    "max_excursion": LabelSpec("max_excursion", "regression", 0, _PATH_COLUMNS, None, pl.label_max_excursion,
                               ("side",), True, "max_excursion is the size of a move, not a direction to trade",
                               "ATR"),
}


def label_spec(kind: str, params: dict | None = None) -> LabelSpec:
    """The :class:`LabelSpec` of ``kind`` with ``params`` applied (``first_touch`` with
    ``classes: binary`` is a binary label of classes down, up); SpecError listing the valid
    kinds, or naming a parameter the label does not take."""
    try:
        spec = LABELS[kind]
    except (KeyError, TypeError):
        raise SpecError(f"unknown label {kind!r}; choose one of: {', '.join(LABELS)}") from None
    params = {k: v for k, v in (params or {}).items() if v is not None}
    extra = [k for k in params if k not in spec.params]
    if extra:
        takes = f"takes only {', '.join(spec.params)}" if spec.params else "takes no parameters"
        raise SpecError(f"label {kind} {takes}: remove {', '.join(extra)}")
    if kind == "first_touch":
        if params.get("classes", "multiclass") == "binary":
            return replace(spec, task="binary", classes=pl.TOUCH_CLASSES[:2])
        return replace(spec, untraded="multiclass first_touch has a 'neither' class, not a direction to trade: use "
                                      "classes: binary to trade P(up first)")
    return spec


def make_label_frame(kind: str, session_table: pd.DataFrame, params: dict | None = None,
                     paths=None) -> pd.DataFrame:
    """Label ``kind`` for every row of ``session_table``, indexed by sorted ``date``: the column
    ``kind`` (float64; classes as 0.0, 1.0, ...; NaN where an input is missing) and, for a
    path label, its boolean flags (``time_to_touch``: ``censored``; ``first_touch``:
    ``ambiguous``). ``paths``: the :class:`features.paths.CutoffPaths` a path label reads
    (days it lacks get NaN). Raises DataError if a needed column is absent or a date repeats.
    """
    spec = label_spec(kind, params)
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
    if not spec.path:
        return pd.DataFrame({kind: pd.Series(spec.func(table), index=dates, dtype="float64")})
    if paths is None:
        raise DataError(f"label {kind!r} follows the minute bars after the cutoff: pass the symbol's paths "
                        "(features.paths.cutoff_paths)")
    out = spec.func(paths, **{k: v for k, v in (params or {}).items() if v is not None})
    frame = pd.DataFrame({(kind if c == "y" else c): v for c, v in out.items()}, index=paths.days)
    frame = frame[~frame.index.duplicated()].reindex(dates)
    frame[kind] = frame[kind].astype("float64")
    for c in frame.columns.drop(kind):
        frame[c] = frame[c].eq(True)  # a day the paths lack has no flag
    return frame


def make_label(kind: str, session_table: pd.DataFrame, params: dict | None = None, paths=None) -> pd.Series:
    """Label ``kind`` for every row of ``session_table``, indexed by sorted ``date``.

    Returns a float64 Series named ``kind`` (classes as 0.0, 1.0, ...; NaN where an
    input is missing); see :func:`make_label_frame` (path labels: ``params``, ``paths``).
    """
    return make_label_frame(kind, session_table, params, paths)[kind]


def check_label_days(spec, store=None) -> None:
    """Refuse (SpecError, one line) a path label that leaves fewer labelled days in the spec's
    range than its walk-forward splits need (a large ``k``, or ``classes: binary`` dropping the
    days that touch neither barrier), before the features are built. Other labels: nothing
    to do (``almanac.spec.validate_against_store`` counts their days)."""
    if spec.data.table is not None or not label_spec(spec.label.kind, spec.label.params()).path:
        return
    from features.paths import cutoff_paths

    paths = cutoff_paths(spec.data.symbol, spec.features.cutoff, spec.data.end, store)
    days = paths.days
    if spec.data.start is not None:
        days = days[days >= pd.Timestamp(spec.data.start)]
    y = make_label_frame(spec.label.kind, pd.DataFrame({"date": days, "cutoff_price": 0.0}),
                         spec.label.params(), paths)[spec.label.kind]
    n, need = int(y.notna().sum()), spec.validation.min_days()
    if n < need:
        tips = ["lower k"] if "k" in spec.label.params() else []
        if spec.label.params().get("classes") == "binary":
            tips.append("use classes: multiclass (binary drops the days that touch neither barrier)")
        tips.append("widen the date range or lower min_train or n_splits")
        raise SpecError(f"spec field label.kind: {spec.label.tag} labels {n} of {spec.data.symbol}'s {len(days)} "
                        f"trading days, fewer than the {need} the splits need: {', '.join(tips[:-1])}"
                        f"{', ' if len(tips) > 1 else ''}{tips[-1]}")


def spec_label(spec, session_table: pd.DataFrame, store=None) -> pd.DataFrame:
    """:func:`make_label_frame` of an experiment spec's label (see :func:`section_label`)."""
    return section_label(spec.label, spec.data.symbol, spec.features.cutoff, spec.data.end, session_table, store)


def section_label(label, symbol: str, cutoff: str, end, session_table: pd.DataFrame, store=None) -> pd.DataFrame:
    """:func:`make_label_frame` of one label section (``almanac.spec.LabelSpec``: kind and its
    parameters; a multi-head run has one per head) for ``symbol``'s session table. A path label
    reads the symbol's stored bars after ``cutoff`` up to ``end`` (:func:`features.paths.cutoff_paths`,
    memoized: several heads read them once)."""
    params = label.params()
    paths = None
    if label_spec(label.kind, params).path:
        from features.paths import cutoff_paths

        paths = cutoff_paths(symbol, cutoff, end, store)
    return make_label_frame(label.kind, session_table, params, paths)
