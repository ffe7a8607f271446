"""The minute path after each day's cutoff: what the path labels (:mod:`ml.path_labels`) read.

For every trading day D of a symbol's intraday bars (the days of
:mod:`features.sessions_table`):

* ``cutoff_price``: the session table's (close of the last bar starting before the cutoff
  of D; NaN when D has no such bar or closed before its cutoff);
* ``atr_prev``: ATR(14) of D-1 -- Wilder's average (:func:`features.regime.atr`, the ATR
  of the features) of the true ranges of the regular-session daily bars (high, low, close
  of the session table, the previous trading day's close) up to and including D-1, the
  previous trading day present. Nothing of day D is in it. It needs 15 days up to D-1 (14
  true ranges, each with a previous close), so the first 15 days of the data have none;
  Wilder's average starts at the data's first day, so it is computed on the whole history
  up to ``end`` whatever the experiment's start;
* ``minutes_to_close``: minutes from the cutoff to the session close of D (the exchange
  calendar's: an early close on a half day);

and for every *post-cutoff bar* (a regular-session bar of D starting at or after the cutoff
and before the close): its day, ``end_minute`` (minutes from the cutoff to the END of the
bar: a touch inside a bar is certain only when the bar has closed; a 1-minute bar starting
at the cutoff ends at minute 1), ``high`` and ``low``. Bars before the cutoff, after the
close and overnight are not in the path.

The parameters of a label (its ``k``) are applied in :mod:`ml.path_labels`; nothing here
depends on them, and nothing here enters the feature table or its cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

import numpy as np
import pandas as pd

from almanac.errors import DataError
from almanac.sessions import Session, intraday_entry, parse_time, symbol_session
from almanac.store import Store, bar_minutes, normalize_symbol
from features.build import _split_minutes
from features.regime import atr
from features.sessions_table import DayBars, Groups, split_bars, table_from_daybars

#: Bar columns the session table needs for the cutoff price and the daily true range.
TABLE_COLUMNS = ("high", "low", "close")
#: Bar columns gathered for each post-cutoff bar.
PATH_COLUMNS = ("high", "low")


@dataclass
class CutoffPaths:
    """Per day (``days``): cutoff_price, atr_prev, minutes_to_close; per post-cutoff bar (in
    time order, ``pos`` = its day's index): end_minute, high, low. See the module doc."""

    days: pd.DatetimeIndex
    cutoff_price: np.ndarray
    atr_prev: np.ndarray
    minutes_to_close: np.ndarray
    pos: np.ndarray
    end_minute: np.ndarray
    high: np.ndarray
    low: np.ndarray
    bar_minutes: int = 1

    @property
    def n(self) -> int:
        return len(self.days)

    def groups(self) -> Groups:
        """Per-day reductions over the post-cutoff bars (NaN for a day without any)."""
        return Groups(self.pos, self.n)

    def bars_after_cutoff(self) -> np.ndarray:
        """Post-cutoff bars per day."""
        return np.bincount(self.pos, minlength=self.n)[: self.n]


def paths_from_daybars(db: DayBars, bar_mins: int = 1) -> CutoffPaths:
    """The paths of bars already split with ``post_columns=PATH_COLUMNS``."""
    table = table_from_daybars(db)
    a = atr(table["high"].to_numpy(), table["low"].to_numpy(), table["close"].to_numpy())
    pos = np.asarray(db.post_pos, dtype=np.int64)
    cut = np.asarray(db.cutoff_us, dtype=np.int64)
    end = (db.post_t - cut[pos]) / 60e6 + bar_mins
    return CutoffPaths(days=db.days, cutoff_price=table["cutoff_price"].to_numpy(dtype="float64"),
                       atr_prev=np.r_[np.nan, a[:-1]] if a.size else a,
                       minutes_to_close=(np.asarray(db.close_us, dtype=np.int64) - cut) / 60e6,
                       pos=pos, end_minute=end.astype("float64"), high=db.post["high"], low=db.post["low"],
                       bar_minutes=bar_mins)


def paths_from_bars(bars: pd.DataFrame, session: Session, cutoff: time | str, bar_mins: int = 1) -> CutoffPaths:
    """The paths of minute bars in a DataFrame (canonical schema; tests and small data)."""
    db = split_bars(bars, session, parse_time(cutoff), TABLE_COLUMNS, PATH_COLUMNS)
    return paths_from_daybars(db, bar_mins)


def cutoff_paths(symbol: str, cutoff: time | str, end=None, store: Store | None = None) -> CutoffPaths:
    """The paths of ``symbol``'s stored intraday bars up to ``end``, read a part of the file at a
    time as the feature build reads them (only timestamp, high, low and close)."""
    store = store if store is not None else Store()
    sym = normalize_symbol(symbol)
    entry = intraday_entry(store, sym)
    if entry is None:
        raise DataError(f"the path labels need {sym}'s intraday bars after the cutoff and {sym} has none: import "
                        f"{sym} 1-minute bars or pick a label of the daily bars (direction, archetype)")
    session = symbol_session(store, sym)
    end = None if end is None else f"{pd.Timestamp(end):%Y-%m-%d}"
    key = (str(store.home), entry.sha256, session.description, f"{parse_time(cutoff):%H:%M}", end)
    hit = _last.get(key)
    if hit is None:
        db = _split_minutes(store, entry, session, parse_time(cutoff), end, TABLE_COLUMNS, PATH_COLUMNS)
        hit = paths_from_daybars(db, bar_minutes(entry.freq))
        _last.clear()
        _last[key] = hit
    return hit


#: The last paths read, by (home, file hash, session, cutoff, end): a run reads them twice (the
#: check of its labelled days before any work, then its labels); the file is content-addressed,
#: so a hit always belongs to the bytes it was read from. One entry: a few tens of MB at most.
_last: dict = {}


__all__ = ["CutoffPaths", "cutoff_paths", "paths_from_bars", "paths_from_daybars", "PATH_COLUMNS"]
