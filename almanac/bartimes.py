"""The time column of a user's bar file: parsed, localized, sized and checked against the calendar.

What :mod:`almanac.importer` asks of a file's times, one concern at a time:

* parsing one chunk (:func:`_parse_time`): ISO 8601 text with or without a UTC offset
  (never mixed), epoch seconds or milliseconds (numbers, or digit-only text; the unit
  from ``--epoch`` or from the first value's size), dates written day and month first
  (``03/04/2024``: the order from ``--date-order``, or the only one every value of the
  first chunk parses in; both parsing differently is refused naming the flag), and any
  other layout pandas reads; years outside :data:`YEARS` are refused;
* naive wall-clock times localized in a zone (:func:`_localize`), DST ambiguities
  inferred from the file's order;
* the bar size from the median step (:func:`_detect_freq`) and, for sizes above one
  minute, every bar on the grid anchored at the session open (:func:`_check_grid`);
* bars the exchange calendar says cannot exist dropped with a counted warning
  (:func:`_drop_outside`).

Every refusal is recorded in the file's :class:`almanac.filereader._Failures` (or raised)
as one line naming the file, the row and the column, and the flag that settles it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from almanac.filereader import _Failures, _Reader
from almanac.sessions import Session
from almanac.store import FREQS, bar_minutes

#: epoch times: plausible magnitudes (1973-2103) of seconds and milliseconds
EPOCH_RANGES = {"s": (1e8, 4.2e9), "ms": (1e11, 4.2e12)}
#: a date written day and month first (03/04/2024, 03.04.2024, 3-4-24), and a time after it
_DM_RE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})(?:([ T])(\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?$")
_OFFSET_RE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
YEARS = (1900, 2100)  # times outside these years are refused as typos or placeholders


def _epoch_unit(x: np.ndarray) -> tuple[str | None, int]:
    """``("s" | "ms", -1)`` when every value is a plausible epoch time in that unit; else
    ``(None, i)`` with ``i`` the first row that does not fit the unit of the first value."""
    first = x[0] if x.size else np.nan
    unit = next((u for u, (lo, hi) in EPOCH_RANGES.items() if lo <= first < hi), None)
    if unit is None:
        return None, 0
    lo, hi = EPOCH_RANGES[unit]
    bad = ~((x >= lo) & (x < hi))
    return (unit, -1) if not bad.any() else (None, int(np.argmax(bad)))


def _parse_epoch(raw: pd.Series, col: str, rd: _Reader, failures: _Failures, offset: int,
                 state: dict) -> pd.Series | None:
    """Numeric times as epoch seconds or milliseconds (``--epoch``, else detected from their
    size on the first chunk), UTC; None if refused."""
    x = raw.to_numpy(dtype="float64", na_value=np.nan)
    unit = rd.layout.epoch or state.get("epoch")
    if unit is None:
        unit, i = _epoch_unit(x)
        if unit is None:
            failures.add((3, 0), rd.fail(f"time value {str(raw.iloc[i])[:40]!r} is a number but not epoch seconds "
                                         "or milliseconds of the years 1973-2103 (e.g. 1520605800 or 1520605800000): "
                                         "pass --epoch s or --epoch ms, or write ISO timestamps",
                                         row=offset + i + 1, column=col))
            return None
        state["epoch"] = unit
    lo, hi = EPOCH_RANGES[unit]
    bad = ~((x >= lo) & (x < hi))
    if bad.any():
        i = int(np.argmax(bad))
        name = "seconds" if unit == "s" else "milliseconds"
        failures.add((3, 0), rd.fail(f"time value {str(raw.iloc[i])[:40]!r} is not epoch {name} of the years "
                                     f"1973-2103; fix the row, or check --epoch", row=offset + i + 1, column=col))
        return None
    return pd.Series(pd.to_datetime(x, unit=unit, utc=True), index=raw.index)


def _day_month(text: pd.Series, col: str, rd: _Reader, failures: _Failures, offset: int,
               state: dict) -> pd.Series | None:
    """Times written day and month first (03/04/2024 09:30): parsed with one explicit format
    in the order ``--date-order`` gives, or the only order every value of the first chunk
    parses in. Both orders parsing to different times is ambiguous: refused, naming the flag.
    None: not this layout (or refused)."""
    first = text.iloc[0] if len(text) else None
    m = _DM_RE.match(str(first)) if first is not None and first is not pd.NA else None
    if m is None:
        return None
    sep, year = m.group(2), "%Y" if len(m.group(4)) == 4 else "%y"
    clock = m.group(6) or ""
    tfmt = (m.group(5) + ("%H:%M:%S.%f" if "." in clock else "%H:%M:%S" if clock.count(":") == 2 else "%H:%M")
            if clock else "")
    fmts = {"dmy": f"%d{sep}%m{sep}{year}{tfmt}", "mdy": f"%m{sep}%d{sep}{year}{tfmt}"}
    order = rd.layout.date_order or state.get("date_order")
    if order is None:
        parsed = {o: pd.to_datetime(text, format=f, errors="coerce") for o, f in fmts.items()}
        ok = [o for o, ts in parsed.items() if not ts.isna().any()]
        if len(ok) == 2 and not parsed["dmy"].equals(parsed["mdy"]):
            failures.add((3, 2), rd.fail(f"dates such as {str(first)[:40]!r} read both day-first and month-first: "
                                         "pass --date-order dmy or --date-order mdy", row=offset + 1, column=col))
            return None
        order = ok[0] if ok else "dmy" if int(m.group(1)) > 12 else "mdy"
        state["date_order"] = order
    return pd.to_datetime(text, format=fmts[order], errors="coerce")


def _parse_time(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader, failures: _Failures,
                offset: int, first_aware: bool | None, state: dict | None = None) -> tuple[pd.Series | None, bool]:
    """One chunk's times, parsed (naive wall-clock, or tz-aware), or None if they are refused;
    and whether the file's first time carries a UTC offset (``first_aware`` from the first chunk).
    ``state`` carries what the first chunk decided (epoch unit, date order) to the next ones."""
    state = {} if state is None else state
    raw = out["time"]
    col = mapping["time"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
    elif pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        ts = _parse_epoch(raw, col, rd, failures, offset, state)
        if ts is None:
            return None, True
        first_aware = True
    else:
        text = raw.astype("string").str.strip()
        if len(text) and re.fullmatch(r"\d{5,14}(\.\d+)?", str(text.iloc[0])):  # digits only: epoch times
            ts = _parse_epoch(pd.to_numeric(text, errors="coerce"), col, rd, failures, offset, state)
            return (None, True) if ts is None else (ts, True)
        aware = _ends_with_offset(text)
        if first_aware is None:
            first_aware = bool(aware[0]) if len(aware) else False
        if (aware != first_aware).any():
            i = int(np.argmax(aware != first_aware))
            failures.add((3, 1), rd.fail("mixes times with and without a UTC offset; give every row an offset "
                                         "or none", row=offset + i + 1, column=col))
            return None, first_aware
        ts = None if first_aware else _day_month(text, col, rd, failures, offset, state)
        if ts is None and (3, 2) in failures.found:
            return None, first_aware
        try:  # the common, fast case: one ISO 8601 layout
            if ts is None:
                ts = pd.to_datetime(text, format="ISO8601", utc=first_aware)
        except (ValueError, TypeError):
            try:
                ts = pd.to_datetime(text, errors="coerce", format="mixed", utc=first_aware)
            except (ValueError, TypeError, OverflowError) as exc:
                detail = re.sub(r"position (\d+)", lambda m: f"position {int(m.group(1)) + offset}", str(exc))
                failures.add((3, 2), rd.fail(f"times could not be read ({detail[:120]}); use ISO timestamps such as "
                                             "2018-03-09 09:30:00", column=col))
                return None, first_aware
        bad = ts.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            failures.add((3, 3), rd.fail(f"{str(raw.iloc[i])[:40]!r} is not a date or time; use e.g. "
                                         "2018-03-09 09:30:00", row=offset + i + 1, column=col))
            return None, first_aware
    if not _check_years(ts, raw, rd, col, failures, offset):
        return None, bool(first_aware)
    return ts, bool(first_aware)


def _localize(ts: pd.Series, rd: _Reader, col: str, tz: str) -> pd.Series:
    """The parsed times as UTC: naive wall-clock times are localized in ``tz`` (ambiguous
    hours at a DST change inferred from the whole file's order)."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC")
    try:
        return ts.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise").dt.tz_convert("UTC")
    except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps/overlaps
        raise rd.fail(f"local times do not exist or are ambiguous in {tz} ({str(exc)[:120]}); "
                      "give timestamps with a UTC offset or pass --tz UTC", column=col) from None


def _ends_with_offset(text: pd.Series) -> np.ndarray:
    """Which stripped time texts end with a UTC offset (:data:`_OFFSET_RE`; missing: no).

    ASCII texts (every real export) are matched by Arrow's RE2 in one vectorized pass, the
    same matches as Python's ``re`` there (control characters were refused already); any
    other text by pandas, row by row, as before (7 s for 7 M rows)."""
    try:
        arr = pa.array(text.array)
        if pc.all(pc.string_is_ascii(arr)).as_py() in (True, None):
            return pc.match_substring_regex(arr, _OFFSET_RE).fill_null(False).to_numpy(zero_copy_only=False)
    except (pa.ArrowException, TypeError):
        pass
    return text.str.contains(_OFFSET_RE, regex=True).fillna(False).to_numpy(dtype=bool)


def _check_years(ts: pd.Series, raw: pd.Series, rd: _Reader, col: str, failures: _Failures,
                 offset: int = 0) -> bool:
    """Refuse times outside :data:`YEARS` (0001-01-01 or 9999-12-31 are placeholders, not bars)."""
    years = ts.dt.year.to_numpy()
    bad = (years < YEARS[0]) | (years > YEARS[1])
    if bad.any():
        i = int(np.argmax(bad))
        failures.add((3, 4), rd.fail(f"{str(raw.iloc[i])[:40]!r} is in the year {int(years[i])}, outside "
                                     f"{YEARS[0]}-{YEARS[1]}; fix the date or remove the row",
                                     row=offset + i + 1, column=col))
        return False
    return True


def _detect_freq(ts: pd.Series, rd: _Reader, wall_tz: str) -> str:
    """The bar size (:data:`FREQS`) from the spacing of the UTC times ``ts``: the median
    step between bars; one bar is daily if it falls on midnight in ``wall_tz`` (the zone
    its wall-clock times were written in)."""
    times = pd.DatetimeIndex(ts).asi8
    strictly = len(times) > 1 and bool((times[1:] > times[:-1]).all())
    uniq = ts if strictly else ts.drop_duplicates().sort_values()  # already unique and in order: no copy
    if len(uniq) < 2:  # one bar: daily unless it has a time of day
        local = uniq.dt.tz_convert(wall_tz).dt.tz_localize(None)
        return "1d" if (local == local.dt.normalize()).all() else "1min"
    step = uniq.diff().dropna().median()
    if step >= pd.Timedelta(hours=20):
        return "1d"
    for f in FREQS[:-1]:
        if step == pd.Timedelta(f):
            return f
    if step < pd.Timedelta(minutes=1):
        return "1min"  # seconds apart: refused later as off the minute grid
    raise rd.fail(f"bars are {step} apart; the lab stores {', '.join(FREQS[:-1])} or 1d bars: resample "
                  "to one of them, or pass --freq if that is wrong")


def _check_grid(ts: pd.Series, freq: str, session: Session, rd: _Reader, col: str, stamp: str) -> None:
    """Refuse intraday bars whose start is off the ``freq`` grid anchored at the session open
    (a bar would straddle the open or a cutoff); whole minutes for every size."""
    size = bar_minutes(freq)
    if size == 1 and stamp == "start":
        return  # 1-minute bars as before: any stamp
    local = ts.dt.tz_convert(session.tz)
    secs = local.dt.second.to_numpy() + local.dt.microsecond.to_numpy()
    mins = (local.dt.hour * 60 + local.dt.minute).to_numpy() - (session.open.hour * 60 + session.open.minute)
    bad = (secs != 0) | (mins % size != 0)
    if bad.any():
        i = int(np.argmax(bad))
        shown = f"{local.iloc[i]:%Y-%m-%d %H:%M:%S}"
        hint = ("; a bar may not straddle the open or a cutoff: import finer bars, or pass --stamp end if they are "
                "stamped at their end" if stamp == "start" else f"; check --stamp {stamp}")
        raise rd.fail(f"the bar at {shown} {session.tz} is not on the {freq} grid of the session opening at "
                      f"{session.open:%H:%M} (bars start at {session.open:%H:%M} + multiples of {size} min){hint}",
                      column=col)


def _drop_outside(df: pd.DataFrame, tcol: str, session: Session, rd: _Reader, warnings: list[str]) -> pd.DataFrame:
    """Drop the bars the calendar says cannot exist: a daily bar on a date without a session;
    an intraday bar inside the regular hours of a date without a session or after an early
    close (overnight bars, outside the regular hours, are kept). One counted warning."""
    t = df[tcol]
    if tcol == "date":
        bad = ~session.is_session(pd.DatetimeIndex(t))
    else:  # rows sorted: locate each date's closed stretches of regular hours (a few thousand look-ups)
        us = pd.DatetimeIndex(t).as_unit("us").asi8
        first, last = (pd.Timestamp(x).tz_convert(session.tz).tz_localize(None).normalize() for x in (t.iloc[0],
                                                                                                      t.iloc[-1]))
        days = pd.date_range(first - pd.Timedelta(days=1), last + pd.Timedelta(days=1), freq="D")
        reg_open, reg_close = (session.at(days, w).as_unit("us").asi8 for w in (session.open, session.close))
        opens, closes = session.opens(days).as_unit("us").asi8, session.closes(days).as_unit("us").asi8
        # closed: [regular open, session open) and [session close, regular close); a holiday's
        # session is empty at its regular open, so the second covers all its regular hours
        lo = np.searchsorted(us, np.r_[reg_open, closes], side="left")
        hi = np.searchsorted(us, np.r_[opens, reg_close], side="left")
        delta = np.zeros(us.size + 1, dtype=np.int64)
        np.add.at(delta, lo, 1)
        np.add.at(delta, hi, -1)
        bad = np.cumsum(delta)[:-1] > 0
    if not bad.any():
        return df
    first = t[bad].iloc[0]
    shown = f"{first:%Y-%m-%d}" if tcol == "date" else f"{first.tz_convert(session.tz):%Y-%m-%d %H:%M} {session.tz}"
    if bad.all():
        raise rd.fail(f"every bar is outside the {session.calendar} calendar's sessions (first at {shown}): "
                      "check the dates and --tz, or choose another --calendar")
    warnings.append(f"{rd.name}: dropped {int(bad.sum())} bar(s) outside the {session.calendar} calendar's sessions "
                    f"(holidays, after early closes), first at {shown}")
    return df[~bad].reset_index(drop=True)


def _has_offsets(raw: pd.Series) -> bool:
    """Whether text times carry a UTC offset (checked on the first non-empty value)."""
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_numeric_dtype(raw) or raw.empty:
        return False
    return bool(re.search(_OFFSET_RE, str(raw.iloc[0]).strip()))
