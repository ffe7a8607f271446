"""Import CSV and Parquet bar files into the store, with validation.

Every refusal is one line that names the file and, where it applies, the row and the
column at fault, and says how to fix it. A refused import writes nothing: the store
and the catalog stay byte-for-byte as they were. Two problems are repaired with a
warning instead: unsorted rows (sorted) and exact duplicate rows (one kept).

Rows are numbered as data rows from 1 (for a CSV with a header, row N is line N+1).
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from almanac.errors import DataError
from almanac.sessions import session_for
from almanac.store import FREQS, CatalogEntry, Store, check_freq, normalize_symbol

TIME_NAMES = ("timestamp", "datetime", "date", "time", "ts")
ALIASES = {"adjclose": "adj_close", "adjustedclose": "adj_close", "vol": "volume"}
CSV_SUFFIXES = {".csv", ".txt"}
_OFFSET_RE = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}


@dataclass
class ImportResult:
    entry: CatalogEntry
    warnings: list[str] = field(default_factory=list)


def _key(name: str) -> str:
    k = re.sub(r"[^a-z0-9]", "", str(name).lower())
    return ALIASES.get(k, k)


class _Reader:
    """Reads a user's file into a frame of strings/values plus the column mapping."""

    def __init__(self, path: Path, display: str):
        self.path, self.name = path, display

    def fail(self, problem: str, row: int | None = None, column: str | None = None) -> DataError:
        where = "".join([f", row {row}" if row is not None else "",
                         f", column '{column}'" if column is not None else ""])
        return DataError(f"{self.name}{where}: {problem}")

    def read(self) -> pd.DataFrame:
        if not self.path.is_file():
            raise self.fail("file not found: check the path")
        if self.path.stat().st_size == 0:
            raise self.fail("the file is empty: export the bars again")
        suffix = self.path.suffix.lower()
        with open(self.path, "rb") as fh:
            magic = fh.read(4)
        if suffix in PARQUET_SUFFIXES or (suffix not in CSV_SUFFIXES and magic == b"PAR1"):
            return self._read_parquet()
        if suffix in CSV_SUFFIXES:
            return self._read_csv()
        raise self.fail(f"unsupported file type {suffix or '(none)'!r}: import a .csv or .parquet file")

    def _read_parquet(self) -> pd.DataFrame:
        try:
            table = pq.read_table(self.path, page_checksum_verification=True)
            frame = table.to_pandas()
        except Exception as exc:  # noqa: BLE001 - corrupt files raise Arrow, OS, JSON, Unicode, Key errors...
            detail = str(exc).splitlines()[0][:160]
            raise self.fail(f"not a readable Parquet file (truncated, corrupt or another format: {detail}); "
                            "re-export it as Parquet or CSV") from None
        if table.num_rows == 0:
            raise self.fail("the file has no rows: export the bars again")
        return frame

    def _read_csv(self) -> pd.DataFrame:
        try:
            # numbers are inferred by the fast parser; a column with any non-number stays
            # text and is checked cell by cell later, so its first bad row is named
            df = pd.read_csv(self.path, skipinitialspace=True, keep_default_na=False, na_values=[],
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
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC")
    try:
        return ts.dt.tz_localize(tz, ambiguous="infer", nonexistent="raise").dt.tz_convert("UTC")
    except Exception as exc:  # pytz/zoneinfo raise several types for DST gaps/overlaps
        raise rd.fail(f"local times do not exist or are ambiguous in {tz} ({str(exc)[:120]}); "
                      "give timestamps with a UTC offset or pass --tz UTC", column=col) from None


def _detect_freq(ts: pd.Series, rd: _Reader) -> str:
    uniq = ts.drop_duplicates().sort_values()
    if len(uniq) < 2:  # one bar: daily unless it has a time of day
        return "1d" if (uniq.dt.tz_convert(None) == uniq.dt.tz_convert(None).dt.normalize()).all() else "1min"
    step = uniq.diff().dropna().median()
    if step <= pd.Timedelta(minutes=1):
        return "1min"
    if step >= pd.Timedelta(hours=20):
        return "1d"
    raise rd.fail(f"bars are {step} apart; the lab stores 1-minute or daily bars: resample, "
                  "or pass --freq if that is wrong")


def _check_rules(df: pd.DataFrame, mapping: dict[str, str], rd: _Reader, freq: str) -> None:
    rows = df["__row"].to_numpy()

    def first(mask, column, problem):
        mask = np.asarray(mask)
        if mask.any():
            i = int(np.argmax(mask))
            raise rd.fail(problem(i), row=int(rows[i]), column=mapping[column])

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


def read_bars_file(path: Path | str, symbol: str, freq: str | None = None, tz: str | None = None,
                   display_name: str | None = None) -> tuple[pd.DataFrame, str, list[str]]:
    """Read and validate a user's file; returns (canonical frame, freq, warnings). Writes nothing."""
    path = Path(path)
    rd = _Reader(path, display_name or path.name)
    sym = normalize_symbol(symbol)
    tz = tz or session_for(sym).tz
    if freq is not None:
        check_freq(freq)
    df, mapping, warnings = _map_columns(rd.read(), rd)
    df = _parse_numbers(df, mapping, rd)
    ts = _parse_time(df, mapping, rd, tz)
    freq = freq or _detect_freq(ts, rd)
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
        local = ts.dt.tz_convert(session_for(sym).tz).dt.tz_localize(None)
        df["date"] = local.dt.normalize()
        tcol = "date"
    _check_rules(df, mapping, rd, freq)
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


def import_file(path: Path | str, symbol: str, freq: str | None = None, tz: str | None = None,
                store: Store | None = None, display_name: str | None = None) -> ImportResult:
    """Validate ``path`` and store it as ``symbol`` (replacing that symbol's dataset atomically)."""
    path = Path(path)
    frame, freq, warnings = read_bars_file(path, symbol, freq, tz, display_name)
    store = store or Store()
    entry = store.write(symbol, freq, frame, source=display_name or path.name)
    return ImportResult(entry, warnings)


def import_bytes(data: bytes, filename: str, symbol: str, freq: str | None = None, tz: str | None = None,
                 store: Store | None = None) -> ImportResult:
    """Import an uploaded file's bytes (the web UI's path); the temp copy lives under the home."""
    store = store or Store()
    suffix = Path(filename).suffix.lower()
    tmp_dir = store.home / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=suffix, delete=True) as fh:
        fh.write(data)
        fh.flush()
        return import_file(fh.name, symbol, freq, tz, store, display_name=Path(filename).name)


__all__ = ["FREQS", "ImportResult", "import_bytes", "import_file", "read_bars_file"]
