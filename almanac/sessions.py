"""Exchange sessions: time zone, regular session hours, trading days, cutoffs.

Bars are stored in UTC and stamped with their *start* time. A session is defined in
local wall-clock time of the exchange, so daylight-saving changes never move it: 09:30
New York is 13:30 UTC in summer and 14:30 UTC in winter.

A *trading day* is a local calendar date that has at least one bar inside the regular
session. Without an exchange calendar that is all there is: every date's session runs
from ``open`` to ``close``. With one (``calendar``: an ``exchange_calendars`` name such as
``XNYS``), holidays have no session at all and an early close ends that day's session:
:meth:`Session.opens` / :meth:`Session.closes` give, per date, the regular hours clipped to
the calendar's session (a holiday: open == close, an empty session). The calendar library
is imported only when a calendar is first used (it costs ~0.5 s), never at app start.

Bar sizes: intraday bars of ``n`` minutes lie on a grid anchored at the session open
(09:30, 09:35, ... for 5-minute bars); a cutoff must fall on that grid
(:meth:`Session.check_cutoff` with ``bar_minutes``), or a bar would straddle it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from functools import lru_cache

import numpy as np
import pandas as pd

from almanac.errors import DataError, SpecError

_TIME_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def parse_time(text: str | time) -> time:
    """Parse ``"HH:MM"`` (24-hour) into a :class:`datetime.time`."""
    if isinstance(text, time):
        return text
    m = _TIME_RE.match(str(text))
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise SpecError(f"time {text!r} is not HH:MM (24-hour), e.g. 10:15")
    return time(int(m.group(1)), int(m.group(2)))


def _minutes(t: time) -> int:
    return t.hour * 60 + t.minute


@dataclass(frozen=True)
class Session:
    """A regular trading session in an exchange time zone."""

    tz: str = "America/New_York"
    open: time = time(9, 30)
    close: time = time(16, 0)
    calendar: str = ""  # an exchange_calendars name (holidays, early closes); "" = every weekday with data

    @property
    def label(self) -> str:
        return f"{self.open:%H:%M}–{self.close:%H:%M} {self.tz}"

    @property
    def description(self) -> str:
        """The hours and where the trading days come from, for messages and pages."""
        if self.calendar:
            return f"{self.label}, {self.calendar} calendar (holidays and early closes)"
        return f"{self.label}, no exchange calendar (every weekday with data)"

    def local(self, ts_utc: pd.Series | pd.DatetimeIndex) -> pd.Series:
        """Timestamps converted to the exchange's local time."""
        s = pd.Series(ts_utc) if isinstance(ts_utc, pd.DatetimeIndex) else ts_utc
        return s.dt.tz_convert(self.tz)

    def minute_of_day(self, ts_utc: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        loc = self.local(ts_utc)
        return (loc.dt.hour * 60 + loc.dt.minute).to_numpy()

    def in_session(self, ts_utc: pd.Series | pd.DatetimeIndex) -> np.ndarray:
        """Boolean mask: bar starts inside ``[open, close)`` local time."""
        m = self.minute_of_day(ts_utc)
        return (m >= _minutes(self.open)) & (m < _minutes(self.close))

    def local_date(self, ts_utc: pd.Series | pd.DatetimeIndex) -> pd.Series:
        """Local calendar date of each timestamp, as naive midnight ``datetime64``."""
        return self.local(ts_utc).dt.tz_localize(None).dt.normalize()

    def trading_days(self, ts_utc: pd.Series | pd.DatetimeIndex) -> pd.DatetimeIndex:
        """Sorted local dates that have at least one bar in the regular session (with a
        calendar: dates it has a session on, and a bar before that day's close)."""
        s = pd.Series(ts_utc) if isinstance(ts_utc, pd.DatetimeIndex) else ts_utc
        s = s[self.in_session(s)]
        days = pd.DatetimeIndex(self.local_date(s).unique()).sort_values().rename("date")
        if self.calendar and len(days):
            us = pd.DatetimeIndex(s.sort_values()).as_unit("us").asi8
            lo = np.searchsorted(us, self.opens(days).as_unit("us").asi8, side="left")
            hi = np.searchsorted(us, self.closes(days).as_unit("us").asi8, side="left")
            days = days[hi > lo]
        return days

    def at(self, dates, wall: time | str) -> pd.DatetimeIndex:
        """UTC instants of local wall-clock time ``wall`` on each local date."""
        wall = parse_time(wall)
        d = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
        offset = pd.Timedelta(hours=wall.hour, minutes=wall.minute)
        return (d + offset).tz_localize(self.tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC")

    def opens(self, dates) -> pd.DatetimeIndex:
        """Each local date's session open (UTC): the regular open, or with a calendar the
        later of it and the calendar's open; a date that is no session gets its close."""
        if not self.calendar:
            return self.at(dates, self.open)
        return self._clipped(dates)[0]

    def closes(self, dates) -> pd.DatetimeIndex:
        """Each local date's session close (UTC): the regular close, or with a calendar the
        earlier of it and the calendar's close (an early close); a holiday's equals its open."""
        if not self.calendar:
            return self.at(dates, self.close)
        return self._clipped(dates)[1]

    def _clipped(self, dates) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
        reg_open, reg_close = self.at(dates, self.open), self.at(dates, self.close)
        sched = calendar_schedule(self.calendar)
        d = pd.DatetimeIndex(pd.to_datetime(dates)).normalize().as_unit("ns")
        known = (d >= sched.index[0]) & (d <= sched.index[-1])  # outside the calendar's range: regular hours
        rows = sched.reindex(d)
        cal_open = pd.DatetimeIndex(rows["open"]).tz_convert("UTC")
        cal_close = pd.DatetimeIndex(rows["close"]).tz_convert("UTC")
        is_session = ~np.asarray(cal_open.isna())
        o = np.where(known & is_session, np.maximum(reg_open.asi8, cal_open.as_unit(reg_open.unit).asi8), reg_open.asi8)
        c = np.where(known & is_session, np.minimum(reg_close.asi8, cal_close.as_unit(reg_close.unit).asi8),
                     reg_close.asi8)
        c = np.where(known & ~is_session, o, np.maximum(c, o))  # a holiday (or a session outside the hours): empty
        unit = reg_open.unit
        return (pd.DatetimeIndex(o.astype(f"M8[{unit}]")).tz_localize("UTC"),
                pd.DatetimeIndex(c.astype(f"M8[{unit}]")).tz_localize("UTC"))

    def is_session(self, dates) -> np.ndarray:
        """Whether each local date has a (non-empty) session."""
        o, c = self.opens(dates), self.closes(dates)
        return np.asarray(c.asi8 > o.asi8)

    def early_closes(self, dates) -> pd.DatetimeIndex:
        """The dates among ``dates`` whose session ends before the regular close."""
        d = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
        o, c = self.opens(d), self.closes(d)
        early = (c.asi8 > o.asi8) & (c.asi8 < self.at(d, self.close).as_unit(c.unit).asi8)
        return d[early]

    def check_cutoff(self, cutoff: time | str, bar_minutes: int = 1, dataset: str = "") -> time:
        """A cutoff must lie strictly after the open and no later than the close, and on the
        grid of ``bar_minutes`` bars anchored at the open (``dataset`` names the bars, e.g.
        ``ES 5min``, in the refusal)."""
        t = parse_time(cutoff)
        if not _minutes(self.open) < _minutes(t) <= _minutes(self.close):
            raise SpecError(
                f"cutoff {t:%H:%M} is outside the regular session {self.label}: "
                f"choose a time after {self.open:%H:%M} and no later than {self.close:%H:%M}"
            )
        since = _minutes(t) - _minutes(self.open)
        if bar_minutes > 1 and since % bar_minutes:
            lo = _minutes(self.open) + since // bar_minutes * bar_minutes
            hi = min(lo + bar_minutes, _minutes(self.close))
            fmt = lambda m: f"{m // 60:02d}:{m % 60:02d}"  # noqa: E731
            use = f"use {fmt(hi)}" if lo == _minutes(self.open) else f"use {fmt(lo)} or {fmt(hi)}"
            raise SpecError(f"cutoff {t:%H:%M} falls inside the {fmt(lo)}–{fmt(hi)} bar of "
                            f"{dataset or f'{bar_minutes}-minute bars'}; {use}")
        return t


#: The calendar of the symbols the lab knows. Their regular session is the New York
#: equity session 09:30-16:00 (the sample data's), so their holidays and early closes are
#: the NYSE's: XNYS closes at 13:00 ET the day after Thanksgiving and on Christmas Eve
#: (and July 3rd), as US equity index futures' day session does. ``CMES`` gives 13:00 ET
#: on those days too, but keeps Thanksgiving itself as a (short) session and models the
#: 23-hour Globex session, not the 09:30-16:00 one the lab's features are defined on.
DEFAULT_CALENDAR = "XNYS"
KNOWN_SESSIONS: dict[str, Session] = {
    sym: Session(calendar=DEFAULT_CALENDAR) for sym in ("ES", "NQ", "YM", "RTY", "SPX", "VIX", "DX", "TNX", "ZN", "CL")
}
#: Calendars load this far back (the sample's daily history starts in 1999).
CALENDAR_START = "1990-01-02"


def session_for(symbol: str, calendar: str | None = None) -> Session:
    """The session of ``symbol``: a known symbol's, else the default hours (no calendar).
    ``calendar`` (an ``exchange_calendars`` name; "" = none) replaces the default calendar:
    a known symbol keeps its hours, any other symbol takes the calendar's zone and hours
    (the default 09:30-16:00 New York hours when the calendar's session runs overnight)."""
    known = KNOWN_SESSIONS.get(symbol.upper())
    if calendar is None:
        return known or Session()
    if not calendar:
        return Session(*(known.tz, known.open, known.close) if known else ())
    name = check_calendar(calendar)
    if known is not None:
        return Session(known.tz, known.open, known.close, name)
    tz, open_, close = calendar_hours(name)
    if _minutes(open_) < _minutes(close):
        return Session(tz, open_, close, name)
    return Session(calendar=name)


def session_of(entry) -> Session:
    """The session a catalog entry recorded (its zone, hours and calendar); an entry from
    before calendars were recorded (``calendar`` None) gets its symbol's default calendar."""
    cal = getattr(entry, "calendar", None)
    if cal is None:
        cal = session_for(entry.symbol).calendar
    return Session(entry.tz, parse_time(entry.session_open), parse_time(entry.session_close), cal or "")


#: Intraday bar sizes, finest first (the store's FREQS without 1d).
INTRADAY_FREQS = ("1min", "5min", "15min", "30min", "1h")


def intraday_entry(store, symbol: str):
    """The finest intraday catalog entry of ``symbol`` in ``store`` (1min, else 5min, ...), or None."""
    for f in INTRADAY_FREQS:
        if store.has(symbol, f):
            return store.entry(symbol, f)
    return None


def symbol_session(store, symbol: str) -> Session:
    """The session recorded with ``symbol``'s intraday (else daily) dataset in ``store``;
    its known session when it has none."""
    entry = intraday_entry(store, symbol)
    if entry is None and store.has(symbol, "1d"):
        entry = store.entry(symbol, "1d")
    return session_of(entry) if entry is not None else session_for(symbol)


def calendar_names() -> list[str]:
    """The ``exchange_calendars`` names (no aliases), sorted."""
    import exchange_calendars as xc

    return sorted(xc.get_calendar_names(include_aliases=False))


def check_calendar(name: str) -> str:
    """``name`` as the calendar library spells it; DataError naming ``--calendar`` if unknown."""
    text = str(name).strip()
    import exchange_calendars as xc

    names = {n.upper(): n for n in xc.get_calendar_names(include_aliases=True)}
    if text.upper() not in names:
        raise DataError(f"--calendar {text!r} is not an exchange calendar: use an exchange_calendars name such as "
                        "XNYS (NYSE), CMES (CME), XLON (London) or XETR (Xetra)")
    return names[text.upper()]


@lru_cache(maxsize=16)
def _calendar(name: str):
    import exchange_calendars as xc

    return xc.get_calendar(name, start=CALENDAR_START)


def _cache_path(name: str):
    """Where the schedule of calendar ``name`` is kept between processes: the user's cache
    folder (``$XDG_CACHE_HOME``, else ``~/.cache``)/almanac/calendars, one file per library
    version and month (the library extends its schedules a year ahead). Outside the data
    home on purpose: a refused import must leave the data home byte-identical."""
    import os
    from datetime import date
    from importlib.metadata import PackageNotFoundError, version
    from pathlib import Path

    try:
        v = version("exchange_calendars")
    except PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "almanac" / "calendars"
    return root / f"{name}-{v}-{CALENDAR_START}-{date.today():%Y-%m}.parquet"


@lru_cache(maxsize=16)
def _calendar_data(name: str) -> tuple[pd.DataFrame, str, time, time]:
    """(schedule with ``open`` / ``close`` in UTC, zone, regular open, regular close) of
    calendar ``name``. Loading ``exchange_calendars`` and building a calendar cost about
    0.4 s, paid by every command that reads sessions; so the schedule is kept on disk
    (:func:`_cache_path`) and read back in milliseconds. A missing, unreadable or damaged
    copy is rebuilt from the library; a cache folder that cannot be written is skipped."""
    import json
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    path = _cache_path(name)
    if path is not None and path.is_file():
        try:
            table = pq.read_table(path)
            meta = json.loads(table.schema.metadata[b"almanac-calendar"])
            return table.to_pandas(), meta["tz"], parse_time(meta["open"]), parse_time(meta["close"])
        except Exception:  # noqa: BLE001 - a damaged copy is rebuilt below
            pass
    cal = _calendar(name)
    sched = cal.schedule[["open", "close"]]
    tz, open_, close = str(cal.tz), cal.open_times[-1][1], cal.close_times[-1][1]
    if path is not None:
        try:
            table = pa.Table.from_pandas(sched)
            meta = {"tz": tz, "open": open_.strftime("%H:%M"), "close": close.strftime("%H:%M")}
            table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                                   b"almanac-calendar": json.dumps(meta).encode()})
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            pq.write_table(table, tmp)
            os.replace(tmp, path)  # atomic: a reader sees the old copy or the whole new one
        except OSError:
            pass
    return sched, tz, open_, close


def calendar_schedule(name: str) -> pd.DataFrame:
    """The calendar's sessions: index = session date (naive), ``open`` / ``close`` in UTC."""
    return _calendar_data(name)[0]


def calendar_hours(name: str) -> tuple[str, time, time]:
    """(zone, regular open, regular close) of a calendar, in its own zone."""
    return _calendar_data(name)[1:]


