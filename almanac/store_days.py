"""How many days of an intraday dataset a spec can use, remembered by the file's hash.

:func:`almanac.spec.validate_against_store` needs, for a symbol's intraday bars in a date
range, its trading days (local dates with a bar in the regular session) and of those the
days with a bar before the cutoff. Finding them reads every bar's timestamp: about
0.2-0.5 s for ten years of minute bars, paid by every ``almanac train`` and every form
check before any work starts. The answer depends only on the file's content (its SHA-256
in the catalog, the same key the feature cache uses), the date range, the session and the
cutoff, so once a check has passed it is kept in ``<home>/cache/days/<key>.json``
(written atomically; an entry that cannot be read is recomputed, never trusted; a refused
spec writes nothing). New data is a new file hash, so a stale
entry is never read; :data:`DAYS_CODE_VERSION` retires entries when the rule changes.

Only the counts and the first and last dates are kept: what the checks and their
messages use.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from almanac.atomic import atomic_write_json

#: Bump when :func:`trading_days` or :func:`days_with_bar_before` change: old entries stop matching.
DAYS_CODE_VERSION = "1"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaySpan:
    """``n`` dates from ``first`` to ``last`` (YYYY-MM-DD; None when ``n`` is 0)."""

    n: int
    first: str | None
    last: str | None

    @classmethod
    def of(cls, days: pd.DatetimeIndex) -> DaySpan:
        if len(days) == 0:
            return cls(0, None, None)
        return cls(int(len(days)), f"{days[0]:%Y-%m-%d}", f"{days[-1]:%Y-%m-%d}")

    def text(self) -> str:
        return f"{self.first} .. {self.last}"


def trading_days(ts: pd.Series, session) -> pd.DatetimeIndex:
    """Local dates with at least one bar in the regular session (sorted UTC bar starts).

    Same result as :meth:`Session.trading_days`, without converting every timestamp:
    candidate dates are the UTC dates of the bars +- 1 day, and a candidate counts when
    ``searchsorted`` finds a bar in ``[open, close)`` of that date (DST-correct times
    from :meth:`Session.opens` / :meth:`Session.closes`).
    """
    us = pd.DatetimeIndex(ts).as_unit("us").asi8
    if us.size == 0:
        return pd.DatetimeIndex([], name="date")
    day = np.unique(us // 86_400_000_000)
    cand = np.unique(np.concatenate([day - 1, day, day + 1])).astype("datetime64[D]")
    dates = pd.DatetimeIndex(cand.astype("datetime64[us]"))
    lo = np.searchsorted(us, session.opens(dates).as_unit("us").asi8, side="left")
    hi = np.searchsorted(us, session.closes(dates).as_unit("us").asi8, side="left")
    return dates[hi > lo].rename("date")


def days_with_bar_before(ts: pd.Series, days: pd.DatetimeIndex, session, cutoff: str) -> pd.DatetimeIndex:
    """The ``days`` with at least one bar starting in ``[open, cutoff)`` (sorted UTC bar starts):
    the days that have a price at the cutoff."""
    if len(days) == 0:
        return days
    us = pd.DatetimeIndex(ts).as_unit("us").asi8
    lo = np.searchsorted(us, session.opens(days).as_unit("us").asi8, side="left")
    hi = np.searchsorted(us, session.at(days, cutoff).as_unit("us").asi8, side="left")
    return days[hi > lo]


def cache_dir(home: Path) -> Path:
    return Path(home) / "cache" / "days"


def _key(entry, start, end, session, cutoff: str | None) -> str:
    payload = {"sha256": entry.sha256, "freq": entry.freq, "start": str(start) if start else None,
               "end": str(end) if end else None, "session": [session.tz, f"{session.open:%H:%M}",
                                                            f"{session.close:%H:%M}", session.calendar],
               "cutoff": cutoff, "code": DAYS_CODE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class DayCounts:
    """An intraday dataset's trading days in a range (``days``) and those with a bar before
    the cutoff (``labelled``); :meth:`keep` writes them to the cache when they were computed."""

    days: DaySpan
    labelled: DaySpan
    path: Path
    cached: bool

    def keep(self) -> None:
        """Remember these counts (a no-op when they came from the cache). Called once the
        check has passed: a refused spec leaves the data home as it was."""
        if self.cached:
            return
        try:
            atomic_write_json(self.path, {"days": self.days.__dict__, "labelled": self.labelled.__dict__})
        except OSError as exc:  # a read-only home still checks, only slower next time
            log.warning("cannot keep the day counts in %s: %s", self.path.parent, exc)


def intraday_days(store, entry, start, end, session, cutoff: str | None) -> DayCounts:
    """The :class:`DayCounts` of ``entry``'s bars from ``start`` to ``end`` (``cutoff`` None:
    ``labelled`` is ``days``). Read from the cache when the same file, range, session and
    cutoff were checked before; else computed from the bars (call ``keep()`` to remember them)."""
    path = cache_dir(store.home) / f"{_key(entry, start, end, session, cutoff)}.json"
    try:
        got = json.loads(path.read_text())
        return DayCounts(DaySpan(**got["days"]), DaySpan(**got["labelled"]), path, cached=True)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError, TypeError, KeyError) as exc:  # a damaged entry is recomputed, not trusted
        log.warning("ignoring damaged day-count cache entry %s: %s", path.name, exc)
    ts = store.read_bars(entry.symbol, entry.freq, start=start, end=end, columns=["timestamp"])["timestamp"]
    days = trading_days(ts, session)
    span = DaySpan.of(days)
    labelled = DaySpan.of(days_with_bar_before(ts, days, session, cutoff)) if cutoff is not None else span
    return DayCounts(span, labelled, path, cached=False)


__all__ = ["DaySpan", "DayCounts", "trading_days", "days_with_bar_before", "intraday_days", "cache_dir", "DAYS_CODE_VERSION"]
