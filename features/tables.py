"""The ``tables`` feature set: user feature tables joined by their "known at" time.

A row of a feature table is *known* at one instant (:mod:`almanac.tables`): its date at
the table's ``--known-at`` local time (in the exchange time zone of the symbol it joins),
its ``known_at`` column, or its timestamp. Day D gets, for every column, the value of
the last row known **at or before D's cutoff** (``known <= cutoff(D)``), carried forward
until a newer row is known. So a daily value known at 16:00 reaches D+1, never D.

A row whose first day is later than its own date was *shifted*; the build's notes count
them per table. Feature names are ``<table>_<column>``.
"""

from __future__ import annotations

from datetime import time

import numpy as np
import pandas as pd

from almanac.sessions import Session
from almanac.tables import KNOWN_AT_COLUMN, TableEntry, Tables

SET = "tables"
#: Days after a table's last value beyond which the build notes that it is carried forward.
STALE_DAYS = 10


def _utc(ts: pd.Series, naive: bool, tz: str) -> pd.Series:
    """Instants (UTC): naive wall-clock times are read in ``tz``."""
    if naive and not isinstance(ts.dtype, pd.DatetimeTZDtype):
        ts = ts.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return ts.dt.tz_convert("UTC")


def known_instants(entry: TableEntry, frame: pd.DataFrame, session: Session) -> tuple[np.ndarray, pd.DatetimeIndex]:
    """(UTC microseconds each row is known at, each row's own local date)."""
    if entry.key == "date":
        dates = pd.DatetimeIndex(frame["date"])
    else:
        stamps = _utc(frame["timestamp"], entry.naive, session.tz)
        dates = pd.DatetimeIndex(stamps.dt.tz_convert(session.tz).dt.tz_localize(None).dt.normalize())
    if entry.known_at == "column":
        known = _utc(frame[KNOWN_AT_COLUMN], entry.naive, session.tz)
    elif entry.known_at == "timestamp":
        known = _utc(frame["timestamp"], entry.naive, session.tz)
    else:
        known = pd.Series(session.at(dates, entry.known_at))
    k = pd.DatetimeIndex(known).as_unit("us").asi8.copy()
    k[pd.isna(known).to_numpy()] = np.iinfo(np.int64).max  # a time that does not exist is never known
    return k, dates.as_unit("us")


def join_table(entry: TableEntry, frame: pd.DataFrame, days: pd.DatetimeIndex, session: Session,
               cutoff: time) -> tuple[pd.DataFrame, np.ndarray]:
    """(features of ``days`` from one table, per-row shifted flags among rows that join a day)."""
    k, dates = known_instants(entry, frame, session)
    cut = session.at(days, cutoff).as_unit("us").asi8
    order = np.argsort(k, kind="stable")
    ks = k[order]
    idx = np.searchsorted(ks, cut, side="right") - 1  # the last row known at or before the cutoff
    out = {}
    for c in entry.columns:
        v = frame[c].to_numpy(dtype="float64")[order]
        out[f"{entry.name}_{c}"] = np.where(idx >= 0, v[np.maximum(idx, 0)], np.nan)
    first = np.searchsorted(cut, k, side="left")  # the first day whose cutoff is at or after the row's instant
    joins = first < len(days)
    shifted = np.zeros(len(k), dtype=bool)
    shifted[joins] = days.as_unit("us").asi8[first[joins]] > dates.asi8[joins]
    return pd.DataFrame(out, index=pd.DatetimeIndex(days, name="date")), shifted & joins


def _stale_note(entry: TableEntry, frame: pd.DataFrame, days: pd.DatetimeIndex, session: Session, cutoff: time,
                shown: np.ndarray | None) -> list[str]:
    """A note when the table ends well before the build's days: its last value is carried forward
    (still known, so no look-ahead, but old) to every later day."""
    k, dates = known_instants(entry, frame, session)
    ok = k < np.iinfo(np.int64).max
    if not ok.any() or not len(days):
        return []
    cut = session.at(days, cutoff).as_unit("us").asi8
    later = cut > k[ok].max() + STALE_DAYS * 86_400_000_000
    if shown is not None and len(shown):
        later &= np.asarray(shown, dtype=bool)
    n = int(later.sum())
    if not n:
        return []
    return [f"table {entry.name} ends {dates[ok].max():%Y-%m-%d}: its last value is carried forward to {n} trading "
            f"day(s) more than {STALE_DAYS} days later; import newer rows or limit the dates"]


def table_features(tables: Tables, entries: list[TableEntry], days: pd.DatetimeIndex, session: Session,
                   cutoff: time, shown: np.ndarray | None = None) -> tuple[pd.DataFrame, dict, list[str]]:
    """Every feature table's columns for ``days``: (frame, lineage by feature, notes)."""
    frames, lineage, notes = [], {}, []
    for e in entries:
        frame = tables.read(e)
        f, shifted = join_table(e, frame, days, session, cutoff)
        if shown is not None and len(shown):
            k, _ = known_instants(e, frame, session)
            first = np.searchsorted(session.at(days, cutoff).as_unit("us").asi8, k, side="left")
            ok = first < len(days)
            in_range = np.zeros(len(k), dtype=bool)
            in_range[ok] = np.asarray(shown, dtype=bool)[first[ok]]
            shifted &= in_range
        n = int(shifted.sum())
        notes.append(f"table {e.name}: {n} of {e.rows} value(s) were known after their own date's cutoff "
                     f"{cutoff:%H:%M} ({e.rule}) and joined a later trading day")
        notes.extend(_stale_note(e, frame, days, session, cutoff, shown))
        for c in f.columns:
            lineage[c] = {
                "datasets": [f"table {e.name} {e.sha256[:12]}"], "set": SET,
                "window": f"rows of table {e.name} known at or before the cutoff of day D",
                "known_as_of": f"{cutoff:%H:%M} {session.tz} on day D",
                "definition": (f"column {c[len(e.name) + 1:]} of table {e.name}: the last value known at or before "
                               f"D's cutoff (known at: {e.rule})"),
                "table": {"name": e.name, "sha256": e.sha256, "known_at": e.rule, "source": e.source},
            }
        frames.append(f)
    frame = pd.concat(frames, axis=1) if frames else pd.DataFrame(index=pd.DatetimeIndex(days, name="date"))
    return frame, lineage, notes


__all__ = ["SET", "join_table", "known_instants", "table_features"]
