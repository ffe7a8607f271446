"""Import CSV and Parquet bar files into the store, with validation.

Every refusal is one line that names the file and, where it applies, the row and the
column at fault, and says how to fix it. A refused import writes nothing: the store
and the catalog stay byte-for-byte as they were. Two problems are repaired with a
warning instead: unsorted rows (sorted) and exact duplicate rows (one kept).

Rows are numbered as data rows from 1 (for a CSV with a header, row N is line N+1).

Vendor layouts: one timestamp column or separate date and time columns, the header
aliases of :data:`ALIASES` (``Gmt time`` is UTC; ``Last``/``Price`` are the close; ``Adj
Close`` is the close of daily bars only), comma, semicolon or tab separated, gzip or zip
compressed (:mod:`almanac.filereader`); ISO, epoch or day/month-first times
(:mod:`almanac.bartimes`). What cannot be detected, or is ambiguous, is refused naming the
flag that settles it (:class:`almanac.filereader.Layout`). Bar sizes 1min .. 1h and 1d
are stored natively; each import records the session (zone, hours, exchange calendar)
it was read in.

What a file may cost is bounded before it is parsed (:class:`almanac.settings.Limits`:
size, columns, CSV line length, Parquet footer, rows and expansion) by
:mod:`almanac.filereader`, which reads it into a frame; this module maps its columns,
parses values and times and applies the bar rules. An upload's size is checked first
(:func:`check_upload_size`). Each refusal of a limit names its environment variable.

Data sanity: prices must be above 0 (``allow_nonpositive`` for spreads), times must
fall in the years 1900-2100, text may hold no control characters (tab, CR and LF only
as separators), and the bar frequency is detected in the exchange's time zone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from almanac.bartimes import _check_grid, _detect_freq, _drop_outside, _has_offsets, _localize, _parse_time
from almanac.errors import DataError
from almanac.filereader import _CONTROL_TEXT, Layout, _Failures, _Reader, _size
from almanac.sessions import KNOWN_SESSIONS, Session, session_for
from almanac.settings import Limits, get_limits
from almanac.store import FREQS, CatalogEntry, Store, bar_minutes, check_freq, normalize_symbol

TIME_NAMES = ("timestamp", "datetime", "date", "time", "ts")
#: vendor header spellings (lower case, letters and digits only) -> canonical names
ALIASES = {"adjclose": "adj_close", "adjustedclose": "adj_close", "vol": "volume", "gmttime": "timestamp",
           "utctime": "timestamp", "last": "close", "price": "close", "o": "open", "h": "high", "l": "low",
           "c": "close", "v": "volume"}
#: header spellings whose naive times are UTC whatever the symbol's zone
UTC_NAMES = ("gmttime", "utctime")
PRICE_COLUMNS = ("open", "high", "low", "close")


def check_upload_size(nbytes: int, filename: str, limits: Limits | None = None) -> None:
    """Refuse an upload larger than ``upload_bytes`` (before it is decoded or copied)."""
    limit = (limits or get_limits()).upload_bytes
    if nbytes > limit:
        raise DataError(f"{Path(filename).name}: the upload is {_size(nbytes)}, over the {_size(limit)} limit "
                        f"({Limits.var('upload_bytes')}): import it with `python -m almanac data import`, "
                        "or raise the limit")


@dataclass
class ImportResult:
    entry: CatalogEntry
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the import assumed (the zone of naive times)


@dataclass
class _Parsed:
    """A validated file: canonical frame, bar size, warnings, notes and the session it was read in."""

    frame: pd.DataFrame
    freq: str
    warnings: list[str]
    notes: list[str]
    session: Session


def _key(name: str) -> str:
    k = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return ALIASES.get(k, k)


def _map_columns(df: pd.DataFrame, rd: _Reader) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Rename the user's columns to canonical names; returns (frame, canonical->original, warnings)."""
    keys = {}
    for col in df.columns:
        k = _key(col)
        if k in keys and k in ("open", "high", "low", "close", "volume", "adj_close"):
            raise rd.fail(f"columns '{keys[k]}' and '{col}' both give the {k.replace('_', ' ')}: remove one")
        keys.setdefault(k, col)
    warnings: list[str] = []
    mapping: dict[str, str] = {}
    time_cols = [n for n in TIME_NAMES if n in keys]
    if "date" in keys and "time" in keys:  # separate Date and Time columns
        df = df.copy()
        df["__t"] = df[keys["date"]].astype(str) + " " + df[keys["time"]].astype(str)
        mapping["time"] = f"{keys['date']}+{keys['time']}"
        keys["__t"] = "__t"
        time_cols = ["__t"]
    elif time_cols:
        mapping["time"] = keys[time_cols[0]]
    else:
        raise rd.fail(f"missing required time column: name one of Date, Datetime, Timestamp or time "
                      f"(found {list(df.columns)})")
    for c in ("open", "high", "low", "close", "volume"):
        if c in keys:
            mapping[c] = keys[c]
    if "adj_close" in keys:
        mapping["adj_close"] = keys["adj_close"]
        if "close" in mapping:
            warnings.append(f"{rd.name}: both Close and Adj Close present; using Close")
        else:
            mapping["close"] = keys["adj_close"]
    src = keys[time_cols[0]] if time_cols[0] != "__t" else "__t"
    out = pd.DataFrame({"time": df[src]})
    for c in ("open", "high", "low", "close", "volume"):
        if c in mapping:
            out[c] = df[mapping[c]]
    return out, mapping, warnings


def _parse_numbers(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader, failures: _Failures,
                   offset: int = 0) -> pd.DataFrame:
    for k, c in enumerate([c for c in ("open", "high", "low", "close", "volume") if c in out.columns]):
        raw = out[c]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            vals = raw.astype("float64")
        else:
            text = raw.astype("string").str.strip()
            decimal = rd.layout.decimal
            if decimal is None and rd.sep != ",":
                comma = text.str.contains(",", regex=False).fillna(False).to_numpy(dtype=bool)
                if comma.any():  # 4500,25 is a decimal comma in Europe, 4,500 a thousands separator elsewhere
                    i = int(np.argmax(comma))
                    failures.add((2, k), rd.fail(f"value {str(raw.iloc[i])[:40]!r} holds a comma: pass --decimal , "
                                                 "if it is the decimal mark, or --decimal . if it separates "
                                                 "thousands", row=offset + i + 1, column=mapping[c]))
            text = text.str.replace(",", ".", regex=False) if decimal == "," else text.str.replace(",", "", regex=False)
            vals = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = ~np.isfinite(vals.to_numpy(dtype="float64", na_value=np.nan))
        if bad.any():
            i = int(np.argmax(bad))
            shown = raw.iloc[i]
            problem = "value is missing" if shown is None or str(shown).strip() in ("", "nan", "<NA>", "None") \
                else f"value {str(shown)[:40]!r} is not a number"
            failures.add((2, k), rd.fail(f"{problem}; fix or remove the row", row=offset + i + 1, column=mapping[c]))
        out[c] = vals
    return out


def _check_text(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader, failures: _Failures,
                offset: int = 0) -> None:
    """Refuse control characters in text columns (a CSV's bytes were scanned already)."""
    for k, c in enumerate(out.columns):
        raw = out[c]
        if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
            continue
        bad = raw.astype("string").str.contains(_CONTROL_TEXT, regex=True).fillna(False).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            char = re.search(_CONTROL_TEXT, str(raw.iloc[i])).group(0)
            failures.add((1, k), rd.fail(f"contains the control character \\x{ord(char):02x}; remove it",
                                         row=offset + i + 1, column=mapping[c]))


def _check_rules(df: pd.DataFrame, mapping: dict[str, str], rd: _Reader, failures: _Failures,
                 offset: int = 0, allow_nonpositive: bool = False) -> None:
    """The bar rules on one chunk of parsed numbers (rows from ``offset`` + 1); each rule's
    first failing row is recorded in ``failures``."""
    def first(mask, column, problem, key):
        mask = np.asarray(mask)
        if mask.any():
            i = int(np.argmax(mask))
            failures.add((7, key), rd.fail(problem(i), row=offset + i + 1, column=mapping[column]))

    prices = [c for c in PRICE_COLUMNS if c in df.columns]
    if prices and not allow_nonpositive:  # the first row with a price <= 0, and its first such column
        values = df[prices].to_numpy()
        bad = values <= 0
        if bad.any():
            i = int(np.argmax(bad.any(axis=1)))
            j = int(np.argmax(bad[i]))
            failures.add((7, 0), rd.fail(f"{prices[j]} {values[i, j]:g} is not a positive price; fix the bar, "
                                         "or for a spread allow zero and negative prices (--allow-nonpositive)",
                                         row=offset + i + 1, column=mapping[prices[j]]))

    if {"high", "low"} <= set(df.columns):
        h, lo = df["high"].to_numpy(), df["low"].to_numpy()
        first(h < lo, "high", lambda i: f"high {h[i]:g} is below low {lo[i]:g}; fix the bar", 1)
        for key, c in ((2, "open"), (3, "close")):
            if c in df.columns:
                v = df[c].to_numpy()
                first((v < lo) | (v > h), c,
                      lambda i, v=v, c=c: f"{c} {v[i]:g} is outside the bar's range [{lo[i]:g}, {h[i]:g}]; fix the bar",
                      key)
    if "volume" in df.columns:
        v = df["volume"].to_numpy()
        first(v < 0, "volume", lambda i: f"volume {v[i]:g} is negative; fix the bar", 4)


def read_bars_file(path: Path | str | bytes, symbol: str, freq: str | None = None, tz: str | None = None,
                   display_name: str | None = None, allow_nonpositive: bool = False,
                   calendar: str | None = None, stamp: str = "start",
                   layout: Layout | None = None) -> tuple[pd.DataFrame, str, list[str]]:
    """Read and validate a user's file (a path, or an upload's bytes with ``display_name``);
    returns (canonical frame, freq, warnings). Writes nothing. See :func:`_read`."""
    p = _read(path, symbol, freq, tz, display_name, allow_nonpositive, calendar, stamp, layout)
    return p.frame, p.freq, p.warnings


def _read(path: Path | str | bytes, symbol: str, freq: str | None = None, tz: str | None = None,
          display_name: str | None = None, allow_nonpositive: bool = False,
          calendar: str | None = None, stamp: str = "start", layout: Layout | None = None) -> _Parsed:
    """Read and validate a user's file (a path, or an upload's bytes with ``display_name``).
    Writes nothing.

    ``calendar``: an ``exchange_calendars`` name (None: the symbol's default, none for a
    symbol the lab does not know, with a warning naming ``--calendar``). Bars during the
    regular hours of a date the calendar has no session for, or after its early close, are
    dropped with a counted warning. ``tz``: the zone of naive times (default: the
    calendar's / symbol's zone, said in a note). ``stamp="end"``: intraday bars are stamped
    at their end and are moved to their start (checked to lie on the bar grid).
    ``layout``: the vendor layout (:class:`almanac.filereader.Layout`) where it cannot be
    detected or is ambiguous.

    The file is read and validated a chunk at a time (:meth:`almanac.filereader._Reader.chunks`):
    each chunk's values become float64 and its times int64 at once, so the text of the file
    is never held whole. Every check records its first failing row; once the file is read,
    the refusal raised is the one a whole-file pass would have raised (the same check order,
    row and column). Time-zone inference at DST changes and the frequency need every time,
    and run on the whole int64 array.

    ``allow_nonpositive`` accepts prices <= 0 (spreads); otherwise they are refused."""
    layout = layout or Layout()
    if isinstance(path, (bytes, bytearray, memoryview)):
        rd = _Reader(path, display_name or "upload", layout=layout)
    else:
        path = Path(path)
        rd = _Reader(path, display_name or path.name, layout=layout)
    sym = normalize_symbol(symbol)
    if calendar is not None and calendar.strip().lower() in ("", "none"):
        calendar = ""  # explicitly none: every weekday with data, the default hours
    session = session_for(sym, calendar)
    session_tz = session.tz
    notes: list[str] = []
    given_tz = tz
    tz = tz or session_tz
    if freq is not None:
        check_freq(freq)
    if stamp not in ("start", "end"):
        raise DataError(f"--stamp {stamp!r} is not a bar stamp: use start (bars stamped at their start, the "
                        "default) or end")
    failures = _Failures()
    mapping: dict[str, str] = {}
    warnings: list[str] = []
    times: list[np.ndarray] = []  # int64 ns: naive wall-clock, or UTC when the times are aware
    values: dict[str, list[np.ndarray]] = {}
    time_tz = None
    naive = first_aware = gmt = None
    tstate: dict = {}  # what the first chunk's times decided (epoch unit, date order)
    offset = 0
    pool = pa.default_memory_pool()
    for chunk in rd.chunks():
        n = len(chunk)
        if (0, 0) in failures.found:  # no usable columns: read on only for the reader's refusals
            offset += n
            continue
        try:
            df, chunk_mapping, chunk_warnings = _map_columns(chunk, rd)
        except DataError as exc:
            failures.add((0, 0), exc)
            offset += n
            continue
        del chunk
        if not offset:
            mapping, warnings = chunk_mapping, chunk_warnings
            naive = not isinstance(df["time"].dtype, pd.DatetimeTZDtype) and not _has_offsets(df["time"])
            gmt = re.sub(r"[^a-z0-9]", "", mapping["time"].split("+")[0].lower()) in UTC_NAMES
            if gmt and given_tz is None:
                tz = "UTC"  # a "Gmt time" column: naive times are UTC
        if rd.kind != "csv":  # a CSV's bytes were scanned for control characters already
            _check_text(df, mapping, rd, failures, offset)
        df = _parse_numbers(df, mapping, rd, failures, offset)
        ts, first_aware = _parse_time(df, mapping, rd, failures, offset, first_aware, tstate)
        _check_rules(df, mapping, rd, failures, offset, allow_nonpositive)
        if not any(k[0] < 4 for k in failures.found):  # a file refused before its bar rules keeps nothing
            if not offset:
                time_tz = getattr(ts.dtype, "tz", None)
            times.append((ts.dt.tz_convert("UTC") if time_tz is not None else ts).dt.as_unit("ns").array.asi8)
            for c in ("open", "high", "low", "close", "volume"):
                if c in df.columns:
                    values.setdefault(c, []).append(df[c].to_numpy(dtype="float64"))
        offset += n
        del df, ts
        pool.release_unused()  # Arrow's allocator keeps freed chunks otherwise (~350 MB at 7 M rows)
    failures.raise_first(before=4)  # columns, text, numbers, times
    col = mapping["time"]
    wall = pd.Series(np.concatenate(times).view("M8[ns]"))
    del times
    ts = wall.dt.tz_localize("UTC") if time_tz is not None else _localize(wall, rd, col, tz)
    del wall
    epoch = tstate.get("epoch")
    naive = naive and not epoch
    # the zone the file's dates were written in (epoch times: UTC dates unless --tz says otherwise)
    wall_tz = tz if naive else (given_tz or "UTC") if epoch else session_tz
    freq = freq or _detect_freq(ts, rd, wall_tz)
    intraday = freq != "1d"
    if intraday and "adj_close" in mapping:
        raise rd.fail(f"column '{mapping['adj_close']}' (adjusted close) is a daily series; {freq} bars need "
                      "a Close, Last or Price column: remove the adjusted close", column=mapping["adj_close"])
    if stamp == "end":
        if not intraday:
            raise rd.fail("--stamp end applies to intraday bars; daily bars are stamped with their date")
        ts = ts - pd.Timedelta(minutes=bar_minutes(freq))
    if intraday:
        _check_grid(ts, freq, session, rd, col, stamp)
    if epoch:
        notes.append(f"times read as epoch {'seconds' if epoch == 's' else 'milliseconds'} (UTC)"
                     + ("" if rd.layout.epoch else "; pass --epoch to change"))
    elif naive and time_tz is None and intraday:
        why = (f"the column '{mapping['time']}' says GMT" if gmt else f"the {session.calendar} calendar's zone"
               if session.calendar else f"{sym}'s default zone")
        notes.append(f"naive times read as {tz}" + ("" if given_tz else f" ({why}; pass --tz to change)"))
    required = ("open", "high", "low", "close", "volume") if intraday else ("close",)
    missing = [c for c in required if c not in values]
    if freq == "1d" and any(c in values for c in ("open", "high", "low")):
        missing += [c for c in ("open", "high", "low") if c not in values]
    if missing:
        raise rd.fail(f"missing required column(s) {', '.join(missing)} for {freq} bars "
                      f"(found {list(mapping.values())})")
    failures.raise_first()  # the bar rules
    if intraday:
        tcol, tvals = "timestamp", ts  # already UTC
    else:
        tcol, tvals = "date", ts.dt.tz_convert(wall_tz).dt.tz_localize(None).dt.normalize()
    del ts
    value_cols = [c for c in ("open", "high", "low", "close", "volume") if c in values]
    columns = {tcol: tvals}
    for c in value_cols:  # a chunk's numbers may be views of Arrow's buffers (Parquet): give each back
        columns[c] = np.concatenate(values.pop(c))
        pool.release_unused()
    df = pd.DataFrame(columns, copy=False)
    del tvals, columns
    if calendar is None and not session.calendar and sym not in KNOWN_SESSIONS:
        warnings.append(f"{sym} has no exchange calendar: its trading days are the weekdays with data and its "
                        f"session {session.label}; pass --calendar (e.g. XNYS, CMES, XLON) for holidays and "
                        "early closes")
    df = _dedup_sort(df, tcol, value_cols, mapping, rd, warnings)
    if session.calendar:
        df = _drop_outside(df, tcol, session, rd, warnings)
    return _Parsed(df, freq, warnings, notes, session)


def _dedup_sort(df: pd.DataFrame, tcol: str, value_cols: list[str], mapping: dict[str, str], rd: _Reader,
                warnings: list[str]) -> pd.DataFrame:
    """Exact duplicate rows dropped and rows sorted, each with a warning; clashing rows refused."""
    order = df[tcol].array.asi8
    if len(order) < 2 or bool((order[1:] > order[:-1]).all()):
        return df  # strictly increasing: no duplicates, in order
    df["__row"] = np.arange(1, len(df) + 1)
    cols = [tcol, *value_cols]
    exact = df.duplicated(subset=[tcol, *value_cols], keep="first")
    if exact.any():
        warnings.append(f"{rd.name}: dropped {int(exact.sum())} exact duplicate row(s), "
                        f"first at row {int(df.loc[exact, '__row'].iloc[0])}")
        df = df[~exact.to_numpy()]
    clash = df.duplicated(subset=[tcol], keep=False)
    if clash.any():
        dup = df[clash].sort_values([tcol, "__row"])
        a, b = dup["__row"].iloc[0], dup["__row"].iloc[1]
        raise rd.fail(f"rows {a} and {b} have the same time {dup[tcol].iloc[0]} but different values; "
                      "keep one of them", row=int(b), column=mapping["time"])
    if not df[tcol].is_monotonic_increasing:
        warnings.append(f"{rd.name}: rows were not in time order; sorted them")
        df = df.sort_values(tcol, kind="stable")
    return df[cols].reset_index(drop=True)


def import_file(path: Path | str, symbol: str, freq: str | None = None, tz: str | None = None,
                store: Store | None = None, display_name: str | None = None,
                allow_nonpositive: bool = False, calendar: str | None = None, stamp: str = "start",
                layout: Layout | None = None) -> ImportResult:
    """Validate ``path`` and store it as ``symbol`` (replacing that symbol's dataset atomically),
    with the session it was read in (zone, hours, calendar); see :func:`_read`."""
    path = Path(path)
    p = _read(path, symbol, freq, tz, display_name, allow_nonpositive, calendar, stamp, layout)
    store = store or Store()
    entry = store.write(symbol, p.freq, p.frame, source=display_name or path.name, session=p.session)
    return ImportResult(entry, p.warnings, p.notes)


def import_bytes(data: bytes, filename: str, symbol: str, freq: str | None = None, tz: str | None = None,
                 store: Store | None = None, allow_nonpositive: bool = False, calendar: str | None = None,
                 stamp: str = "start", layout: Layout | None = None) -> ImportResult:
    """Import an uploaded file's bytes (the web UI's path).

    The bytes are read in memory (no copy in the data home), after the upload limit is
    checked, so a refused upload leaves the home byte-identical."""
    name = Path(filename).name
    check_upload_size(len(data), name)
    p = _read(bytes(data), symbol, freq, tz, name, allow_nonpositive, calendar, stamp, layout)
    store = store or Store()
    entry = store.write(symbol, p.freq, p.frame, source=name, session=p.session)
    return ImportResult(entry, p.warnings, p.notes)


__all__ = ["FREQS", "ImportResult", "Layout", "check_upload_size", "import_bytes", "import_file", "read_bars_file"]
