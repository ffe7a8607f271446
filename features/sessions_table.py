"""Minute bars assigned to trading days, and the per-day session table.

Everything here is vectorized over all days at once. Bars are sorted by time, so the
bars of a day's session, window or overnight are one contiguous row range: the UTC
instants of every local date's open, cutoff and close (DST-correct, from
:meth:`Session.at`) are located among the timestamps with ``searchsorted``, and per-day
values come from ``numpy.ufunc.reduceat`` over those ranges. Only the timestamps are
needed whole: the prices and volumes can arrive a part at a time (:class:`DaySplitter`),
so a feature build never holds all the minute bars of a long history in memory.

Which bar belongs where (``t`` = bar start, local wall-clock time):

* *regular-session bar* of date d: ``open(d) <= t < close(d)``; a *trading day* is a
  date with at least one;
* *window bar* of day D: a regular-session bar of D with ``t < cutoff(D)``;
* *post-cutoff bar* of day D: a regular-session bar of D with ``t >= cutoff(D)`` (the
  rest of the day a position decided at the cutoff lives through; gathered only for the
  path labels, see :mod:`features.paths`);
* *overnight bar* of day D: any other bar after the session close of the previous
  trading day and before the open of D (for a 23-hour futures session: the evening and
  night before D; a holiday without a regular session folds into the next trading
  day's overnight). Overnight bars never enter the session table.

Data gaps, decided here and relied on by the features:

* a missing day does not exist: D-1 is the previous trading day present;
* a late first bar (data starting after the open): the session ``open`` is the open of
  the first regular-session bar present, and the window holds the bars present;
* a day whose first regular-session bar starts at or after the cutoff has no window:
  ``cutoff_price`` and every window feature are NaN;
* a half day (an early close of the symbol's exchange calendar, e.g. 13:00 New York the
  day after Thanksgiving) ends at its early close: its ``close`` is the last bar before
  it, and later bars belong to the next day's overnight. With a cutoff after its close
  there is no rest of the day to trade or label: ``cutoff_price`` is NaN (so are its
  window features, its label and its trade); a cutoff at the regular close itself keeps
  every ordinary day as before. A holiday of the calendar has no session at all.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import time

import numpy as np
import pandas as pd

from almanac.errors import DataError
from almanac.sessions import Session, parse_time

SESSION_COLUMNS = ("open", "high", "low", "close", "volume", "cutoff_price", "prev_close")


def utc_micros(ts) -> np.ndarray:
    """Timezone-aware timestamps as int64 microseconds since the epoch (UTC)."""
    idx = pd.DatetimeIndex(ts)
    if idx.tz is None:
        raise DataError("minute bars need a timezone-aware 'timestamp' column (UTC)")
    return idx.tz_convert("UTC").as_unit("us").asi8


class Groups:
    """Per-group reductions of values sorted by a non-decreasing integer code.

    ``codes`` give each row's group (0 .. n-1, non-decreasing); groups without rows get
    NaN (sums get 0 only where stated).
    """

    def __init__(self, codes: np.ndarray, n: int):
        self.n = n
        self.codes = codes
        if codes.size:
            self.starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
            self.ends = np.r_[self.starts[1:], codes.size].astype(np.int64)
        else:
            self.starts = self.ends = np.zeros(0, dtype=np.int64)
        self.present = codes[self.starts] if codes.size else np.zeros(0, dtype=np.int64)

    def _out(self, values: np.ndarray) -> np.ndarray:
        out = np.full(self.n, np.nan)
        out[self.present] = values
        return out

    def first(self, x):
        return self._out(x[self.starts])

    def last(self, x):
        return self._out(x[self.ends - 1])

    def max(self, x):
        return self._out(np.maximum.reduceat(x, self.starts) if x.size else x)

    def min(self, x):
        return self._out(np.minimum.reduceat(x, self.starts) if x.size else x)

    def sum(self, x):
        return self._out(np.add.reduceat(x, self.starts) if x.size else x)

    def count(self):
        return self._out((self.ends - self.starts).astype("float64"))


def segment_reduce(ufunc, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(x[lo_i:hi_i])`` for each segment (NaN when empty).

    Segments must be ordered and non-overlapping (``lo_i <= hi_i <= lo_{i+1}``): one
    ``reduceat`` pass over ``x`` with the interleaved bounds, no copy of ``x``.
    """
    out = np.full(lo.size, np.nan)
    ok = hi > lo
    if not ok.any():
        return out
    idx = np.empty(2 * int(ok.sum()), dtype=np.int64)
    idx[0::2], idx[1::2] = lo[ok], hi[ok]
    if idx[-1] >= x.size:  # the last segment runs to the end of x
        idx = idx[:-1]
    out[ok] = ufunc.reduceat(x, idx)[0::2]
    return out


def _gather(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of all segments ``[lo_i, hi_i)`` concatenated, and each row's segment."""
    lengths = np.maximum(hi - lo, 0)
    seg = np.repeat(np.arange(lo.size), lengths)
    offset = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return lo[seg] + offset, seg


#: The per-day reductions computed while the bars pass by, ``(part, how, column)``: all
#: that the session table and the early-session features read (``part``: ``reg`` = the
#: regular-session bars, ``night`` = the overnight bars).
REDUCTIONS = (("reg", "first", "open"), ("reg", "max", "high"), ("reg", "min", "low"),
              ("reg", "last", "close"), ("reg", "sum", "volume"),
              ("night", "max", "high"), ("night", "min", "low"))
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass
class _Layout:
    """Where each trading day's bars are, from the sorted timestamps alone."""

    days: pd.DatetimeIndex
    reg_lo: np.ndarray
    reg_hi: np.ndarray
    win_hi: np.ndarray
    night_lo: np.ndarray
    night_hi: np.ndarray
    first_minute: np.ndarray  # local minute-of-day of each day's first regular bar
    closed_before_cutoff: np.ndarray  # the session closed before the cutoff (an early close)
    post_lo: np.ndarray  # first bar at or after the cutoff ([post_lo, reg_hi): the bars after the cutoff)
    cutoff_us: np.ndarray  # each day's cutoff instant, UTC microseconds
    close_us: np.ndarray  # each day's session close (an early close included), UTC microseconds


@dataclass
class DayBars(_Layout):
    """Minute bars split into trading days: per day, the row ranges of its bars, the
    reductions of :data:`REDUCTIONS` over them, and its window bars.

    ``days``: the trading days (naive midnight, name ``date``). Rows are the bars in time
    order; for trading day i, regular-session bars are rows ``[reg_lo[i], reg_hi[i])``,
    window bars ``[reg_lo[i], win_hi[i])`` and overnight bars ``[night_lo[i], night_hi[i])``.
    ``win`` / ``win_pos``: the window bars' columns gathered (small) and their day index.
    ``columns``: the bar columns that were read; the bars themselves are not kept (a
    day's reductions are computed on its own rows, the same numbers however the rows
    arrived: all at once or a part of the file at a time, see :class:`DaySplitter`).
    ``post`` / ``post_pos`` / ``post_t``: the *post-cutoff bars* (regular-session bars of D
    starting at or after the cutoff of D and before its close, rows ``[post_lo[i],
    reg_hi[i])``; none on a day that closed before its cutoff), gathered only for the
    ``post_columns`` asked for (the path labels), with their day index and start
    (UTC microseconds); empty otherwise.
    """

    columns: tuple[str, ...]
    reduced: dict[tuple[str, str, str], np.ndarray]
    win: dict[str, np.ndarray]
    win_pos: np.ndarray
    post: dict[str, np.ndarray]
    post_pos: np.ndarray
    post_t: np.ndarray
    win_t: np.ndarray | None = None  # the window bars' starts, UTC microseconds (features.minute_path)

    @property
    def n(self) -> int:
        return len(self.days)

    @property
    def has_overnight(self) -> bool:
        return bool((self.night_hi > self.night_lo).any())

    def _get(self, part: str, how: str, col: str) -> np.ndarray:
        if col not in self.columns:  # not read (e.g. a cross-asset symbol's high): unknown
            return np.full(self.n, np.nan)
        try:
            return self.reduced[(part, how, col)]
        except KeyError:
            raise KeyError(f"the {part} {how} of {col} is not computed: add it to "
                           "features.sessions_table.REDUCTIONS") from None

    def reg(self, how: str, col: str) -> np.ndarray:
        """Per day over the regular-session bars: ``first``, ``last``, ``max``, ``min`` or ``sum``
        (of :data:`REDUCTIONS`; NaN for a column not read)."""
        return self._get("reg", how, col)

    def night(self, how: str, col: str) -> np.ndarray:
        """Per day over the overnight bars: ``max``, ``min`` or ``sum`` (NaN without any)."""
        return self._get("night", how, col)

    def win_groups(self) -> Groups:
        return Groups(self.win_pos, self.n)


_UFUNC = {"max": np.maximum, "min": np.minimum, "sum": np.add}


def _reduce(how: str, x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``how`` of ``x`` over each row range ``[lo_i, hi_i)`` (NaN when empty)."""
    ok = hi > lo
    if how == "first":
        return np.where(ok, x[np.minimum(lo, x.size - 1)], np.nan) if x.size else np.full(lo.size, np.nan)
    if how == "last":
        return np.where(ok, x[np.maximum(hi - 1, 0)], np.nan) if x.size else np.full(lo.size, np.nan)
    return segment_reduce(_UFUNC[how], x, lo, hi)


def _layout(t: np.ndarray, session: Session, cutoff: time) -> _Layout:
    """The session open, cutoff and close instants of every local date located in the sorted
    UTC microseconds ``t`` with ``searchsorted`` (a few thousand look-ups): no per-bar day
    code or mask is ever built."""
    z = np.zeros(0, dtype=np.int64)
    if t.size == 0:
        return _Layout(pd.DatetimeIndex([], name="date", dtype="datetime64[us]"), z, z, z, z, z, np.zeros(0),
                       np.zeros(0, dtype=bool), z, z, z)
    tz = session.tz
    first = pd.Timestamp(t[0], unit="us", tz="UTC").tz_convert(tz).tz_localize(None).normalize()
    last = pd.Timestamp(t[-1], unit="us", tz="UTC").tz_convert(tz).tz_localize(None).normalize()
    cal = pd.date_range(first - pd.Timedelta(days=1), last + pd.Timedelta(days=1), freq="D", unit="us")
    opens = session.opens(cal).as_unit("us").asi8
    closes = session.closes(cal).as_unit("us").asi8
    cutoffs = session.at(cal, cutoff).as_unit("us").asi8
    o_idx = np.searchsorted(t, opens, side="left")  # first bar at or after each open
    c_idx = np.searchsorted(t, closes, side="left")
    w_idx = np.searchsorted(t, cutoffs, side="left")
    trading = np.flatnonzero(c_idx > o_idx)
    reg_lo, reg_hi = o_idx[trading], c_idx[trading]
    shut = closes[trading] < cutoffs[trading]  # an early close before the cutoff: no window, no rest of day
    win_hi = np.where(shut, reg_lo, np.minimum(w_idx[trading], reg_hi))
    night_lo = np.r_[0, reg_hi[:-1]].astype(np.int64)  # after the previous trading day's close
    night_hi = reg_lo
    open_min = session.open.hour * 60 + session.open.minute
    first_minute = (t[np.minimum(reg_lo, t.size - 1)] - opens[trading]) // 60_000_000 + open_min
    post_lo = np.where(shut, reg_hi, np.maximum(np.minimum(w_idx[trading], reg_hi), reg_lo))
    return _Layout(pd.DatetimeIndex(cal[trading], name="date"), reg_lo, reg_hi, win_hi, night_lo, night_hi,
                   first_minute.astype("float64"), shut, post_lo, cutoffs[trading], closes[trading])


class DaySplitter:
    """Splits bars that arrive a part at a time (consecutive rows, in time order) into days.

    Built from the sorted timestamps of *all* rows (:func:`_layout`); :meth:`feed` takes the
    next rows' columns and reduces every day whose rows have all arrived (a day's rows run
    from the previous trading day's close to its own close), keeping only the rows of the
    day still open. So memory holds the timestamps, one part and one day, never all bars;
    and each day is reduced on exactly its own rows, so the numbers do not depend on how
    the rows were cut into parts.
    """

    def __init__(self, t: np.ndarray, session: Session, cutoff: time | str, columns=BAR_COLUMNS,
                 post_columns: tuple[str, ...] = ()):
        self.lay = _layout(t, session, parse_time(cutoff))
        self._t = t
        self.rows = t.size
        self.columns = tuple(columns) + tuple(c for c in post_columns if c not in columns)
        self.post_columns = tuple(post_columns)
        idx, pos = _gather(self.lay.post_lo, self.lay.reg_hi) if self.post_columns else (np.zeros(0, np.int64),) * 2
        self._post_t, self._post_pos = t[idx], pos
        self._post: dict = {c: [] for c in self.post_columns}
        self.wanted = [r for r in REDUCTIONS if r[2] in self.columns]
        self._buf = {c: np.zeros(0) for c in self.columns}
        self._start = 0  # row number of the buffer's first row
        self._seen = 0  # rows fed so far
        self._done = 0  # days reduced so far
        self._parts: dict = {r: [] for r in self.wanted}
        self._win: dict = {c: [] for c in self.columns}
        self._pos: list[np.ndarray] = []
        self._wt: list[np.ndarray] = []

    def feed(self, n: int, cols: dict[str, np.ndarray]) -> None:
        """The next ``n`` rows: ``cols`` maps every column to its ``n`` float64 values."""
        buf = {c: np.concatenate([self._buf[c], cols[c]]) if self._buf[c].size else cols[c]
               for c in self.columns}
        self._seen += n
        upto = int(np.searchsorted(self.lay.reg_hi, self._seen, side="right"))  # days complete
        if upto > self._done:
            self._reduce_days(buf, self._done, upto)
            keep = int(self.lay.reg_hi[upto - 1])
            buf = {c: x[keep - self._start:].copy() for c, x in buf.items()}
            self._start, self._done = keep, upto
        self._buf = buf

    def _reduce_days(self, buf: dict[str, np.ndarray], a: int, b: int) -> None:
        lay, s = self.lay, self._start
        bounds = {"reg": (lay.reg_lo[a:b] - s, lay.reg_hi[a:b] - s),
                  "night": (lay.night_lo[a:b] - s, lay.night_hi[a:b] - s)}
        for part, how, col in self.wanted:
            self._parts[(part, how, col)].append(_reduce(how, buf[col], *bounds[part]))
        idx, pos = _gather(lay.reg_lo[a:b] - s, lay.win_hi[a:b] - s)
        for c in self.columns:
            self._win[c].append(buf[c][idx])
        self._pos.append(pos + a)
        self._wt.append(self._t[idx + s])
        if self.post_columns:
            idx, _ = _gather(lay.post_lo[a:b] - s, lay.reg_hi[a:b] - s)
            for c in self.post_columns:
                self._post[c].append(buf[c][idx])

    def finish(self) -> DayBars:
        """The split days, once every row has been fed."""
        lay = self.lay
        if self._seen != self.rows or self._done != lay.days.size:
            raise RuntimeError(f"DaySplitter fed {self._seen} of {self.rows} rows")
        return DayBars(**{f.name: getattr(lay, f.name) for f in fields(_Layout)}, columns=self.columns,
                       reduced={r: _cat(v) for r, v in self._parts.items()},
                       win={c: _cat(v) for c, v in self._win.items()}, win_pos=_cat(self._pos, np.int64),
                       win_t=_cat(self._wt, np.int64),
                       post={c: _cat(v) for c, v in self._post.items()}, post_pos=self._post_pos,
                       post_t=self._post_t)


def _cat(parts: list[np.ndarray], dtype="float64") -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def split_bars(bars: pd.DataFrame, session: Session, cutoff: time | str, columns=BAR_COLUMNS,
               post_columns: tuple[str, ...] = ()) -> DayBars:
    """Assign minute bars (canonical schema, any order) to trading days; see the module doc.

    Bars are sorted once (if needed) and split in one part (:class:`DaySplitter`; the
    feature build splits the stored bars a part of the file at a time instead).
    """
    t = utc_micros(bars["timestamp"])
    order = None
    if t.size > 1 and not (t[1:] >= t[:-1]).all():
        order = np.argsort(t, kind="stable")
        t = t[order]
    splitter = DaySplitter(t, session, cutoff, columns, post_columns)
    cols = {}
    for c in splitter.columns:
        x = bars[c].to_numpy(dtype="float64", na_value=np.nan)
        cols[c] = x[order] if order is not None else x
    splitter.feed(t.size, cols)
    return splitter.finish()


def table_from_daybars(db: DayBars) -> pd.DataFrame:
    """The session table (see :func:`session_table`) of already split bars."""
    close = db.reg("last", "close")
    wg = db.win_groups()
    return pd.DataFrame({
        "open": db.reg("first", "open"), "high": db.reg("max", "high"), "low": db.reg("min", "low"),
        "close": close, "volume": db.reg("sum", "volume"),
        "cutoff_price": wg.last(db.win["close"]),
        "prev_close": np.r_[np.nan, close[:-1]],
    }, index=db.days)


def session_table(bars_1min: pd.DataFrame, session: Session, cutoff: time | str) -> pd.DataFrame:
    """One row per trading day from minute bars (regular session only).

    Index ``date`` (naive midnight local date). Columns: ``open`` (open of the first
    regular-session bar), ``high``, ``low``, ``close`` (close of the last regular-session
    bar), ``volume`` (sum), ``cutoff_price`` (close of the last bar stamped in
    ``[open, cutoff)``; NaN when the day has no such bar) and ``prev_close`` (previous
    trading day's ``close``; NaN on the first day). Overnight bars are ignored.
    """
    return table_from_daybars(split_bars(bars_1min, session, cutoff))


def daily_from_sessions(table: pd.DataFrame) -> pd.DataFrame:
    """Daily bars (``date, open, high, low, close, volume``) derived from a session table."""
    return table[["open", "high", "low", "close", "volume"]].reset_index()


def daily_session_table(daily: pd.DataFrame) -> pd.DataFrame:
    """The session table of a daily-only symbol: known at the open, so ``cutoff_price = open``.

    Missing ``open``/``high``/``low``/``volume`` columns become NaN.
    """
    d = daily.set_index("date").sort_index()
    out = pd.DataFrame(index=pd.DatetimeIndex(d.index, name="date"))
    for c in ("open", "high", "low", "close", "volume"):
        out[c] = d[c].astype("float64") if c in d.columns else np.nan
    out["cutoff_price"] = out["open"]
    out["prev_close"] = out["close"].shift(1)
    return out
