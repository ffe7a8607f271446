"""Import CSV and Parquet bar files into the store, with validation.

Every refusal is one line that names the file and, where it applies, the row and the
column at fault, and says how to fix it. A refused import writes nothing: the store
and the catalog stay byte-for-byte as they were. Two problems are repaired with a
warning instead: unsorted rows (sorted) and exact duplicate rows (one kept).

Rows are numbered as data rows from 1 (for a CSV with a header, row N is line N+1).

What a file may cost is bounded before it is parsed (:class:`almanac.settings.Limits`):
its size, its number of columns (a CSV's header line, a Parquet file's footer), the
length of every CSV line and the size of a Parquet footer. A CSV is scanned once in
chunks for over-long lines and control characters (about 0.1 s per 100 MB) before
pandas reads it. Each refusal names the limit's environment variable.

Data sanity: prices must be above 0 (``allow_nonpositive`` for spreads), times must
fall in the years 1900-2100, text may hold no control characters (tab, CR and LF only
as separators), and the bar frequency is detected in the exchange's time zone.
"""

from __future__ import annotations

import csv
import io
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from almanac.errors import DataError
from almanac.sessions import session_for
from almanac.settings import Limits, get_limits
from almanac.store import FREQS, CatalogEntry, Store, check_freq, normalize_symbol

TIME_NAMES = ("timestamp", "datetime", "date", "time", "ts")
ALIASES = {"adjclose": "adj_close", "adjustedclose": "adj_close", "vol": "volume"}
CSV_SUFFIXES = {".csv", ".txt"}
_OFFSET_RE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
YEARS = (1900, 2100)  # times outside these years are refused as typos or placeholders
PRICE_COLUMNS = ("open", "high", "low", "close")
SCAN_CHUNK = 4 << 20  # bytes per read of the CSV scan
EXPANSION_FLOOR = 64 * 2**20  # a Parquet file that reads into less than this is never refused as a bomb
#: C0 control characters other than tab, LF and CR
_CONTROL = bytes(c for c in range(32) if c not in (9, 10, 13))
_CONTROL_RE = re.compile(b"[" + re.escape(_CONTROL) + b"]")
_CONTROL_TEXT = "[" + re.escape(_CONTROL.decode()) + "]"


def _size(n: int) -> str:
    """``n`` bytes for a message: ``190 MB``, ``64 KB``, ``4 GB``."""
    for unit, scale in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.{0 if n % scale == 0 or n >= 10 * scale else 1}f} {unit}"
    return f"{n} bytes"


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


def _key(name: str) -> str:
    k = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return ALIASES.get(k, k)


class _Reader:
    """Reads a user's file (a path, or an upload's bytes) into a frame plus the column mapping.

    Every cost is bounded before the file is parsed: size, columns, CSV line length,
    Parquet footer size (see :class:`almanac.settings.Limits`).
    """

    def __init__(self, source: Path | bytes, display: str, limits: Limits | None = None):
        self.data = source if isinstance(source, (bytes, bytearray, memoryview)) else None
        self.path = None if self.data is not None else Path(source)
        self.name = display
        self.limits = limits or get_limits()
        self.kind = "csv"
        self.eol = 10  # the byte that ends a CSV line: LF, or CR for a file with old Mac line endings
        self.body_at = 0

    def fail(self, problem: str, row: int | None = None, column: str | None = None) -> DataError:
        where = "".join([f", row {row}" if row is not None else "",
                         f", column '{column}'" if column is not None else ""])
        return DataError(f"{self.name}{where}: {problem}")

    @contextmanager
    def _open(self):
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            with open(self.path, "rb") as fh:
                yield fh

    def _nbytes(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size

    def read(self) -> pd.DataFrame:
        if self.data is None and not self.path.is_file():
            raise self.fail("file not found: check the path")
        size = self._nbytes()
        if size == 0:
            raise self.fail("the file is empty: export the bars again")
        limit = self.limits.import_bytes
        if size > limit:
            raise self.fail(f"the file is {_size(size)}, over the {_size(limit)} import limit "
                            f"({Limits.var('import_bytes')}): split it by date range, or raise the limit")
        suffix = Path(self.name if self.data is not None else self.path).suffix.lower()
        with self._open() as fh:
            magic = fh.read(4)
        if suffix in PARQUET_SUFFIXES or (suffix not in CSV_SUFFIXES and magic == b"PAR1"):
            self.kind = "parquet"
            return self._read_parquet(size)
        if suffix in CSV_SUFFIXES:
            return self._read_csv()
        raise self.fail(f"unsupported file type {suffix or '(none)'!r}: import a .csv or .parquet file")

    # -- Parquet -------------------------------------------------------------------
    def _bad_parquet(self, detail: str) -> DataError:
        return self.fail(f"not a readable Parquet file (truncated, corrupt or another format: {detail[:160]}); "
                         "re-export it as Parquet or CSV")

    def _read_parquet(self, size: int) -> pd.DataFrame:
        with self._open() as fh:
            fh.seek(max(size - 8, 0))
            tail = fh.read(8)
        if size < 12 or tail[4:] != b"PAR1":
            raise self._bad_parquet("no Parquet footer at the end")
        footer, limit = int.from_bytes(tail[:4], "little"), self.limits.parquet_footer_bytes
        if footer > size - 12:
            raise self._bad_parquet(f"its footer claims {footer} bytes of a {size}-byte file")
        if footer > limit:
            raise self.fail(f"its metadata is {_size(footer)}, over the {_size(limit)} limit "
                            f"({Limits.var('parquet_footer_bytes')}): keep only the time and price columns, "
                            "write fewer row groups, or raise the limit")
        try:
            with self._open() as fh:
                pf = pq.ParquetFile(fh, page_checksum_verification=True)
                ncols, limit = pf.metadata.num_columns, self.limits.columns
                if ncols > limit:
                    raise self.fail(f"the file has {ncols:,} columns, over the limit of {limit} "
                                    f"({Limits.var('columns')}): keep only the time and price columns, "
                                    "or raise the limit")
                self._check_rows(pf.metadata.num_rows)
                self._check_expansion(pf.metadata.num_rows * ncols * 8, size)
                table = pf.read()
            frame = table.to_pandas()
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - corrupt files raise Arrow, OS, JSON, Unicode, Key errors...
            raise self._bad_parquet(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        if table.num_rows == 0:
            raise self.fail("the file has no rows: export the bars again")
        return frame

    def _check_rows(self, rows: int) -> None:
        limit = self.limits.rows
        if rows > limit:
            raise self.fail(f"the file has {rows:,} rows, over the limit of {limit:,} ({Limits.var('rows')}): "
                            "split it by date range, or raise the limit")

    def _check_expansion(self, estimate: int, size: int) -> None:
        """Refuse a Parquet file that would grow in memory far more than bar data compresses
        (a few MB of constant values can claim tens of millions of rows)."""
        limit = self.limits.expansion
        if estimate > EXPANSION_FLOOR and estimate > limit * size:
            raise self.fail(f"the file's {_size(size)} would take {_size(estimate)} in memory, over {limit} times "
                            f"its size ({Limits.var('expansion')}); bars do not compress that well: re-export "
                            "them, or raise the limit")

    # -- CSV -----------------------------------------------------------------------
    def _fields(self, line: bytes) -> list[str]:
        """The fields of one CSV line (at most ``line_bytes`` long, so this is cheap)."""
        text = line.rstrip(b"\r").decode("utf-8", errors="replace")
        try:
            return next(csv.reader([text], skipinitialspace=True), [])
        except csv.Error:
            return text.split(",")

    def _check_header(self) -> list[str]:
        """Read at most ``line_bytes`` + 1 bytes: refuse too many columns or a too-long first line."""
        lim = self.limits
        with self._open() as fh:
            head = fh.read(lim.line_bytes + 1)
        end, cr = head.find(b"\n"), head.find(b"\r")
        if cr >= 0 and (end < 0 or cr < end - 1):  # lines end with a bare CR
            self.eol, end = 13, cr
        complete = end >= 0 or len(head) <= lim.line_bytes
        line = head[:end] if end >= 0 else head[:lim.line_bytes]
        header = self._fields(line)
        if len(header) > lim.columns:
            count = f"{len(header):,}" if complete else f"more than {len(header) - 1:,}"
            raise self.fail(f"the header has {count} columns, over the limit of {lim.columns} "
                            f"({Limits.var('columns')}): keep only the time and price columns, or raise the limit")
        if not complete:
            raise self._long_line(1)
        self.body_at = end + 1  # where the first data row starts
        return header

    def _check_first_row(self, start: int, columns: int) -> None:
        """Refuse a first data row with more fields than the header names (pandas would
        silently take the extra leading fields as an index and shift every column)."""
        with self._open() as fh:
            fh.seek(start)
            window = fh.read(self.limits.line_bytes + 1)
        lines = window.split(bytes([self.eol]))
        if len(window) > self.limits.line_bytes:  # the last piece may be cut short
            lines.pop()
        for line in lines:
            if line.strip(b"\r\t "):
                fields = len(self._fields(line))
                if fields > columns:
                    raise self.fail(f"has {fields} fields but the header names {columns} columns: remove the extra "
                                    "separators (a trailing comma?) or name every column", row=1)
                return

    def _long_line(self, line: int) -> DataError:
        limit = self.limits.line_bytes
        what = "the header line" if line == 1 else f"line {line}"
        return self.fail(f"{what} is longer than {_size(limit)} ({Limits.var('line_bytes')}): "
                         "is the file really CSV with one bar per line? Fix it, or raise the limit",
                         row=line - 1 if line > 1 else None)

    def _scan_csv(self, header: list[str]) -> None:
        """One chunked pass over the bytes: refuse over-long lines and control characters.

        A line longer than L bytes holds a whole aligned block of (L + 2) // 2 bytes with
        no line end, so each chunk is cut into such blocks and only blocks without a line
        end (none, in an ordinary file) are measured exactly. Control characters are found
        with ``bytes.translate``. About 0.15 s per 100 MB, whatever the lines look like;
        line numbers are counted only for the message.
        """
        limit, eol = self.limits.line_bytes, bytes([self.eol])
        block = max(1, (limit + 2) // 2)
        last_nl, off = -1, 0  # absolute offset of the last line end seen; of this chunk
        with self._open() as fh:
            while chunk := fh.read(SCAN_CHUNK):
                first, last = chunk.find(eol), chunk.rfind(eol)
                if off + (first if first >= 0 else len(chunk)) - last_nl - 1 > limit:
                    raise self._long_line(self._line_of(last_nl + 1))  # the line that runs into this chunk
                if first >= 0:
                    self._scan_lines(chunk, first, last, off, block)
                if len(chunk.translate(None, _CONTROL)) != len(chunk):
                    pos = _CONTROL_RE.search(chunk).start()
                    k = chunk.rfind(eol, 0, pos)
                    start = off + k if k >= 0 else last_nl
                    if off + pos - start - 1 > limit:
                        raise self._long_line(self._line_of(start + 1))
                    self._control_at(start + 1, off + pos, header)
                if last >= 0:
                    last_nl = off + last
                off += len(chunk)
        if off - last_nl - 1 > limit:
            raise self._long_line(self._line_of(last_nl + 1))

    def _scan_lines(self, chunk: bytes, first: int, last: int, off: int, block: int) -> None:
        """Refuse a line longer than the limit between the chunk's first and last line ends."""
        n = (last + 1 - first) // block
        if n == 0:
            return
        blocks = np.frombuffer(chunk, dtype=np.uint8, count=n * block, offset=first).reshape(n, block)
        eol = bytes([self.eol])
        for k in np.flatnonzero(~(blocks == self.eol).any(axis=1)):  # blocks inside one line
            at = first + int(k) * block
            prev, nxt = chunk.rfind(eol, 0, at), chunk.find(eol, at + block)
            if nxt - prev - 1 > self.limits.line_bytes:
                raise self._long_line(self._line_of(off + prev + 1))

    def _line_of(self, pos: int) -> int:
        """The line number (from 1) of byte ``pos``: line ends before it are counted on refusal only."""
        eol, count, done = bytes([self.eol]), 1, 0
        with self._open() as fh:
            while done < pos and (chunk := fh.read(min(SCAN_CHUNK, pos - done))):
                count += chunk.count(eol)
                done += len(chunk)
        return count

    def _control_at(self, line_start: int, pos: int, header: list[str]) -> None:
        """Refuse the control character at byte ``pos`` (its line starts at ``line_start``)."""
        with self._open() as fh:
            fh.seek(line_start)
            before = fh.read(pos - line_start)
            char = fh.read(1)
        shown = f"\\x{char[0]:02x}"
        line = self._line_of(line_start)
        if line == 1:
            raise self.fail(f"not a readable CSV file (control character {shown} in the header: binary data or "
                            "not UTF-8 text); save it as a UTF-8 CSV file")
        index = len(self._fields(before + b"x")) - 1
        column = header[index] if index < len(header) else None
        raise self.fail(f"contains the control character {shown}; remove it (only tab, CR and LF may "
                        "separate values)", row=line - 1, column=column)

    def _read_csv(self) -> pd.DataFrame:
        header = self._check_header()
        self._scan_csv(header)
        self._check_first_row(self.body_at, len(header))
        try:
            # numbers are inferred by the fast parser; a column with any non-number stays
            # text and is checked cell by cell later, so its first bad row is named
            with self._open() as fh:
                df = pd.read_csv(fh, skipinitialspace=True, keep_default_na=False, na_values=[],
                                 dtype={0: str}, low_memory=False)
        except pd.errors.EmptyDataError:
            raise self.fail("the file is empty: export the bars again") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            detail = str(exc).strip().splitlines()[-1][:160]
            m = re.search(r"line (\d+)", detail)
            row = int(m.group(1)) - 1 if m else None
            raise self.fail(f"not a readable CSV file ({detail}); check the row is complete", row=row) from None
        if df.empty:
            raise self.fail("the file has a header but no rows: export the bars again")
        self._check_rows(len(df))
        return df


def _map_columns(df: pd.DataFrame, rd: _Reader) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Rename the user's columns to canonical names; returns (frame, canonical->original, warnings)."""
    keys = {}
    for col in df.columns:
        keys.setdefault(_key(col), col)
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


def _parse_numbers(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader) -> pd.DataFrame:
    for c in [c for c in ("open", "high", "low", "close", "volume") if c in out.columns]:
        raw = out[c]
        if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
            vals = raw.astype("float64")
        else:
            text = raw.astype("string").str.strip().str.replace(",", "", regex=False)
            vals = pd.to_numeric(text, errors="coerce").astype("float64")
        bad = ~np.isfinite(vals.to_numpy(dtype="float64", na_value=np.nan))
        if bad.any():
            i = int(np.argmax(bad))
            shown = raw.iloc[i]
            problem = "value is missing" if shown is None or str(shown).strip() in ("", "nan", "<NA>", "None") \
                else f"value {str(shown)[:40]!r} is not a number"
            raise rd.fail(f"{problem}; fix or remove the row", row=i + 1, column=mapping[c])
        out[c] = vals
    return out


def _check_text(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader) -> None:
    """Refuse control characters in text columns (a CSV's bytes were scanned already)."""
    for c in out.columns:
        raw = out[c]
        if pd.api.types.is_numeric_dtype(raw) or pd.api.types.is_datetime64_any_dtype(raw):
            continue
        bad = raw.astype("string").str.contains(_CONTROL_TEXT, regex=True).fillna(False).to_numpy(dtype=bool)
        if bad.any():
            i = int(np.argmax(bad))
            char = re.search(_CONTROL_TEXT, str(raw.iloc[i])).group(0)
            raise rd.fail(f"contains the control character \\x{ord(char):02x}; remove it",
                          row=i + 1, column=mapping[c])


def _parse_time(out: pd.DataFrame, mapping: dict[str, str], rd: _Reader, tz: str) -> pd.Series:
    raw = out["time"]
    col = mapping["time"]
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
    elif pd.api.types.is_numeric_dtype(raw):
        raise rd.fail("time values are numbers; write them as dates or ISO timestamps", row=1, column=col)
    else:
        text = raw.astype("string").str.strip()
        aware = text.str.contains(_OFFSET_RE, regex=True).fillna(False).to_numpy(dtype=bool)
        if aware.any() and not aware.all():
            i = int(np.argmax(aware != aware[0]))
            raise rd.fail("mixes times with and without a UTC offset; give every row an offset or none",
                          row=i + 1, column=col)
        utc = bool(aware.all())
        try:  # the common, fast case: one ISO 8601 layout
            ts = pd.to_datetime(text, format="ISO8601", utc=utc)
        except (ValueError, TypeError):
            try:
                ts = pd.to_datetime(text, errors="coerce", format="mixed", utc=utc)
            except (ValueError, TypeError, OverflowError) as exc:
                raise rd.fail(f"times could not be read ({str(exc)[:120]}); use ISO timestamps such as "
                              "2018-03-09 09:30:00", column=col) from None
        bad = ts.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise rd.fail(f"{str(raw.iloc[i])[:40]!r} is not a date or time; use e.g. 2018-03-09 09:30:00",
                          row=i + 1, column=col)
    _check_years(ts, raw, rd, col)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC")
    try:
        return ts.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise").dt.tz_convert("UTC")
    except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps/overlaps
        raise rd.fail(f"local times do not exist or are ambiguous in {tz} ({str(exc)[:120]}); "
                      "give timestamps with a UTC offset or pass --tz UTC", column=col) from None


def _check_years(ts: pd.Series, raw: pd.Series, rd: _Reader, col: str) -> None:
    """Refuse times outside :data:`YEARS` (0001-01-01 or 9999-12-31 are placeholders, not bars)."""
    years = ts.dt.year.to_numpy()
    bad = (years < YEARS[0]) | (years > YEARS[1])
    if bad.any():
        i = int(np.argmax(bad))
        raise rd.fail(f"{str(raw.iloc[i])[:40]!r} is in the year {int(years[i])}, outside {YEARS[0]}-{YEARS[1]}; "
                      "fix the date or remove the row", row=i + 1, column=col)


def _detect_freq(ts: pd.Series, rd: _Reader, wall_tz: str) -> str:
    """1min or 1d from the spacing of the UTC times ``ts``; one bar is daily if it falls on
    midnight in ``wall_tz`` (the zone its wall-clock times were written in)."""
    uniq = ts.drop_duplicates().sort_values()
    if len(uniq) < 2:  # one bar: daily unless it has a time of day
        local = uniq.dt.tz_convert(wall_tz).dt.tz_localize(None)
        return "1d" if (local == local.dt.normalize()).all() else "1min"
    step = uniq.diff().dropna().median()
    if step <= pd.Timedelta(minutes=1):
        return "1min"
    if step >= pd.Timedelta(hours=20):
        return "1d"
    raise rd.fail(f"bars are {step} apart; the lab stores 1-minute or daily bars: resample, "
                  "or pass --freq if that is wrong")


def _check_rules(df: pd.DataFrame, mapping: dict[str, str], rd: _Reader, freq: str,
                 allow_nonpositive: bool = False) -> None:
    rows = df["__row"].to_numpy()

    def first(mask, column, problem):
        mask = np.asarray(mask)
        if mask.any():
            i = int(np.argmax(mask))
            raise rd.fail(problem(i), row=int(rows[i]), column=mapping[column])

    prices = [c for c in PRICE_COLUMNS if c in df.columns]
    if prices and not allow_nonpositive:  # the first row with a price <= 0, and its first such column
        values = df[prices].to_numpy()
        bad = values <= 0
        if bad.any():
            i = int(np.argmax(bad.any(axis=1)))
            j = int(np.argmax(bad[i]))
            raise rd.fail(f"{prices[j]} {values[i, j]:g} is not a positive price; fix the bar, or for a spread "
                          "allow zero and negative prices (--allow-nonpositive)",
                          row=int(rows[i]), column=mapping[prices[j]])

    if {"high", "low"} <= set(df.columns):
        h, lo = df["high"].to_numpy(), df["low"].to_numpy()
        first(h < lo, "high", lambda i: f"high {h[i]:g} is below low {lo[i]:g}; fix the bar")
        for c in ("open", "close"):
            if c in df.columns:
                v = df[c].to_numpy()
                first((v < lo) | (v > h), c,
                      lambda i, v=v, c=c: f"{c} {v[i]:g} is outside the bar's range [{lo[i]:g}, {h[i]:g}]; fix the bar")
    if "volume" in df.columns:
        v = df["volume"].to_numpy()
        first(v < 0, "volume", lambda i: f"volume {v[i]:g} is negative; fix the bar")


def read_bars_file(path: Path | str | bytes, symbol: str, freq: str | None = None, tz: str | None = None,
                   display_name: str | None = None,
                   allow_nonpositive: bool = False) -> tuple[pd.DataFrame, str, list[str]]:
    """Read and validate a user's file (a path, or an upload's bytes with ``display_name``);
    returns (canonical frame, freq, warnings). Writes nothing.

    ``allow_nonpositive`` accepts prices <= 0 (spreads); otherwise they are refused."""
    if isinstance(path, (bytes, bytearray, memoryview)):
        rd = _Reader(path, display_name or "upload")
    else:
        path = Path(path)
        rd = _Reader(path, display_name or path.name)
    sym = normalize_symbol(symbol)
    session_tz = session_for(sym).tz
    tz = tz or session_tz
    if freq is not None:
        check_freq(freq)
    df, mapping, warnings = _map_columns(rd.read(), rd)
    if rd.kind != "csv":  # a CSV's bytes were scanned for control characters already
        _check_text(df, mapping, rd)
    df = _parse_numbers(df, mapping, rd)
    naive = not isinstance(df["time"].dtype, pd.DatetimeTZDtype) and not _has_offsets(df["time"])
    ts = _parse_time(df, mapping, rd, tz)
    wall_tz = tz if naive else session_tz  # the zone the file's dates were written in
    freq = freq or _detect_freq(ts, rd, wall_tz)
    required = ("open", "high", "low", "close", "volume") if freq == "1min" else ("close",)
    missing = [c for c in required if c not in df.columns]
    if freq == "1d" and any(c in df.columns for c in ("open", "high", "low")):
        missing += [c for c in ("open", "high", "low") if c not in df.columns]
    if missing:
        raise rd.fail(f"missing required column(s) {', '.join(missing)} for {freq} bars "
                      f"(found {list(mapping.values())})")
    df["__row"] = np.arange(1, len(df) + 1)
    if freq == "1min":
        df["timestamp"] = ts  # already UTC, same index
        tcol = "timestamp"
    else:
        local = ts.dt.tz_convert(wall_tz).dt.tz_localize(None)
        df["date"] = local.dt.normalize()
        tcol = "date"
    _check_rules(df, mapping, rd, freq, allow_nonpositive)
    value_cols = [c for c in ("open", "high", "low", "close", "volume") if c in df.columns]
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
    cols = [tcol, *value_cols]
    return df[cols].reset_index(drop=True), freq, warnings


def _has_offsets(raw: pd.Series) -> bool:
    """Whether text times carry a UTC offset (checked on the first non-empty value)."""
    if pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_numeric_dtype(raw) or raw.empty:
        return False
    return bool(re.search(_OFFSET_RE, str(raw.iloc[0]).strip()))


def import_file(path: Path | str, symbol: str, freq: str | None = None, tz: str | None = None,
                store: Store | None = None, display_name: str | None = None,
                allow_nonpositive: bool = False) -> ImportResult:
    """Validate ``path`` and store it as ``symbol`` (replacing that symbol's dataset atomically)."""
    path = Path(path)
    frame, freq, warnings = read_bars_file(path, symbol, freq, tz, display_name, allow_nonpositive)
    store = store or Store()
    entry = store.write(symbol, freq, frame, source=display_name or path.name)
    return ImportResult(entry, warnings)


def import_bytes(data: bytes, filename: str, symbol: str, freq: str | None = None, tz: str | None = None,
                 store: Store | None = None, allow_nonpositive: bool = False) -> ImportResult:
    """Import an uploaded file's bytes (the web UI's path).

    The bytes are read in memory (no copy in the data home), after the upload limit is
    checked, so a refused upload leaves the home byte-identical."""
    name = Path(filename).name
    check_upload_size(len(data), name)
    frame, freq, warnings = read_bars_file(bytes(data), symbol, freq, tz, name, allow_nonpositive)
    store = store or Store()
    entry = store.write(symbol, freq, frame, source=name)
    return ImportResult(entry, warnings)


__all__ = ["FREQS", "ImportResult", "check_upload_size", "import_bytes", "import_file", "read_bars_file"]
