"""Exchange sessions: time zone, regular session hours, trading days, cutoffs.

Bars are stored in UTC and stamped with their *start* time. A session is defined in
local wall-clock time of the exchange, so daylight-saving changes never move it: 09:30
New York is 13:30 UTC in summer and 14:30 UTC in winter.

A *trading day* is a local calendar date that has at least one bar inside the regular
session; no holiday calendar is needed for that to be right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time

import numpy as np
import pandas as pd

from almanac.errors import SpecError

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

    @property
    def label(self) -> str:
        return f"{self.open:%H:%M}–{self.close:%H:%M} {self.tz}"

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
        """Sorted local dates that have at least one bar in the regular session."""
        s = pd.Series(ts_utc) if isinstance(ts_utc, pd.DatetimeIndex) else ts_utc
        days = self.local_date(s[self.in_session(s)])
        return pd.DatetimeIndex(days.unique()).sort_values().rename("date")

    def at(self, dates, wall: time | str) -> pd.DatetimeIndex:
        """UTC instants of local wall-clock time ``wall`` on each local date."""
        wall = parse_time(wall)
        d = pd.DatetimeIndex(pd.to_datetime(dates)).normalize()
        offset = pd.Timedelta(hours=wall.hour, minutes=wall.minute)
        return (d + offset).tz_localize(self.tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC")

    def opens(self, dates) -> pd.DatetimeIndex:
        return self.at(dates, self.open)

    def closes(self, dates) -> pd.DatetimeIndex:
        return self.at(dates, self.close)

    def check_cutoff(self, cutoff: time | str) -> time:
        """A cutoff must lie strictly after the open and no later than the close."""
        t = parse_time(cutoff)
        if not _minutes(self.open) < _minutes(t) <= _minutes(self.close):
            raise SpecError(
                f"cutoff {t:%H:%M} is outside the regular session {self.label}: "
                f"choose a time after {self.open:%H:%M} and no later than {self.close:%H:%M}"
            )
        return t


#: Regular sessions of the symbols the lab knows. Unknown symbols get the default
#: (New York equity hours), which is also the sample data's session.
KNOWN_SESSIONS: dict[str, Session] = {
    sym: Session() for sym in ("ES", "NQ", "YM", "RTY", "SPX", "VIX", "DX", "TNX", "ZN", "CL")
}


def session_for(symbol: str) -> Session:
    return KNOWN_SESSIONS.get(symbol.upper(), Session())
