"""The Parquet data store and its catalog.

Layout under ``ALMANAC_HOME``::

    market/<SYMBOL>_<freq>.parquet   one file per symbol and bar size (:data:`FREQS`)
    catalog.json                     one entry per file (see :class:`CatalogEntry`)

Canonical frames
    intraday (``1min``, ``5min``, ``15min``, ``30min``, ``1h``): ``timestamp`` (UTC, bar
    start), ``open``, ``high``, ``low``, ``close``, ``volume``. ``1d``: ``date`` (naive
    midnight, the exchange's local date) and ``close``, optionally ``open``, ``high``,
    ``low``, ``volume``. Each entry records the session it was read in: ``tz``, hours and
    ``calendar`` (an ``exchange_calendars`` name; "" none; absent in older catalogs).

Crash consistency. Data files are content-addressed and never changed in place: a
write stages the new file under a temporary name, names it
``<SYMBOL>_<freq>.<first 16 hex of its SHA-256>.parquet``, and then, under the catalog
lock, (1) renames it into place, (2) replaces ``catalog.json`` atomically so that the
entry names the new file, and (3) removes the file the entry named before. A ``kill -9``
at any instant therefore leaves the catalog naming a complete file whose hash it
records -- the old dataset before step 2, the new one after it -- and at most an
unnamed leftover, which :func:`almanac.recovery.sweep` removes on the next start.
A reader resolves the catalog entry once and reads exactly the file it names
(:meth:`Store.read_bars` with ``entry=``), so a hash taken from the entry is the hash
of the bytes read. Files are written with page checksums, zstd compression and row
groups small enough that a read by date range and columns touches only what it needs.
Each step calls :func:`almanac.faults.point` so the tests can kill the process there.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from almanac import faults
from almanac.atomic import fsync_dir, fsync_file, atomic_write_json, file_lock, tmp_path_for
from almanac.errors import DataError, NotFoundError
from almanac.sessions import INTRADAY_FREQS, Session, session_for
from almanac.settings import get_settings

FREQS = (*INTRADAY_FREQS, "1d")  # bar sizes, finest first
PRICE_COLUMNS = ("open", "high", "low", "close")
MINUTE_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
DAILY_COLUMNS = ("date", *PRICE_COLUMNS, "volume")
ROW_GROUP_ROWS = {**{f: 65_536 for f in INTRADAY_FREQS}, "1d": 4_096}
MAX_SYMBOL_CHARS = 64


def time_column(freq: str) -> str:
    return "date" if freq == "1d" else "timestamp"


def bar_minutes(freq: str) -> int:
    """Minutes per bar of an intraday size (``5min`` -> 5, ``1h`` -> 60)."""
    return int(pd.Timedelta(freq).total_seconds() // 60)


@dataclass
class CatalogEntry:
    symbol: str
    freq: str
    start: str
    end: str
    rows: int
    sha256: str
    source: str
    imported_at: str
    columns: list[str]
    sample: bool = False
    tz: str = "America/New_York"
    session_open: str = "09:30"
    session_close: str = "16:00"
    calendar: str | None = None  # exchange_calendars name; "" = none; None = recorded before calendars
    file: str = ""
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CatalogEntry:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


_SYMBOL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._")


def normalize_symbol(symbol: str) -> str:
    """The stored spelling of a symbol: stripped and upper-cased ASCII.

    Only ASCII letters, digits, '-', '_' and '.' (not first) are allowed, and at most
    :data:`MAX_SYMBOL_CHARS` characters, so two different names can never become the
    same file (Unicode upper-casing turns ``ß`` into ``SS``) and no name is too long
    for the file system.
    """
    text = str(symbol).strip()
    if len(text) > MAX_SYMBOL_CHARS:
        raise DataError(f"symbol {text[:20]!r}... is {len(text)} characters long: use at most "
                        f"{MAX_SYMBOL_CHARS}, e.g. ES or VIX")
    sym = text.upper() if text.isascii() else text
    if not sym or not set(sym) <= _SYMBOL_CHARS or sym[0] in "._-":
        raise DataError(
            f"symbol {text!r} is not valid: use ASCII letters, digits, '-', '_' or '.', e.g. ES or VIX"
        )
    return sym


def check_freq(freq: str) -> str:
    if freq not in FREQS:
        raise DataError(f"frequency {freq!r} is not supported: use one of {', '.join(FREQS)}")
    return freq


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(df: pd.DataFrame, freq: str) -> tuple[pa.Table, pd.Series]:
    """Check a frame has the canonical schema; return it as an Arrow table in canonical
    column order, and its time column (``datetime64[us]``, UTC-aware for minute bars).

    The table is built column by column (float columns without a copy when they are float64
    already) under the schema ``pa.Table.from_pandas`` gives the same columns, pandas
    metadata included, so the file written is the same as from a canonical frame, without
    the frame's copy (about 600 MB at 7 M rows)."""
    tcol = time_column(freq)
    intraday = freq != "1d"
    allowed = MINUTE_COLUMNS if intraday else DAILY_COLUMNS
    missing = [c for c in ((tcol, *PRICE_COLUMNS, "volume") if intraday else (tcol, "close"))
               if c not in df.columns]
    if missing:
        raise DataError(f"{freq} frame lacks column(s) {missing}: canonical columns are {list(allowed)}")
    t = df[tcol]
    if intraday:
        if not isinstance(t.dtype, pd.DatetimeTZDtype):
            raise DataError("minute bars need a timezone-aware 'timestamp' column")
        t = t.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    else:
        if isinstance(t.dtype, pd.DatetimeTZDtype):
            t = t.dt.tz_localize(None)
        t = pd.to_datetime(t).dt.normalize().astype("datetime64[us]")
    t = t.reset_index(drop=True)
    columns = {tcol: t}
    for c in allowed[1:]:
        if c in df.columns:
            columns[c] = df[c].astype("float64").reset_index(drop=True)
    times = t.array.asi8
    if len(times) and (t.isna().any() or not bool((times[1:] > times[:-1]).all())):
        raise DataError(f"{freq} frame must have unique, increasing {tcol} values")
    schema = pa.Table.from_pandas(pd.DataFrame({c: s.iloc[:0] for c, s in columns.items()}),
                                  preserve_index=False).schema
    table = pa.Table.from_arrays([pa.array(s, type=f.type) for s, f in zip(columns.values(), schema)],
                                 schema=schema)
    return table, t


def time_bounds(symbol: str, freq: str, start=None, end=None, tz: str | None = None) -> tuple:
    """The time-column bounds ``[lo, hi)`` of the local dates ``start`` .. ``end`` (inclusive;
    None = open): for intraday bars the UTC instants of the local midnights in ``tz``
    (default: the symbol's zone)."""
    lo = hi = None
    if start is not None or end is not None:
        session = Session(tz=tz) if tz else session_for(symbol)
        if start is not None:
            lo = pd.Timestamp(start).normalize()
            lo = session.at([lo], "00:00")[0] if freq != "1d" else lo
        if end is not None:
            hi = pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
            hi = session.at([hi], "00:00")[0] if freq != "1d" else hi
    return lo, hi


class Store:
    """The market-data store under a data home (default: ``ALMANAC_HOME``)."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home is not None else get_settings().home
        self.market_dir = self.home / "market"
        self.catalog_path = self.home / "catalog.json"
        self._lock_path = self.home / ".catalog.lock"

    # -- catalog -------------------------------------------------------------------
    def _load(self) -> dict[tuple[str, str], CatalogEntry]:
        if not self.catalog_path.exists():
            return {}
        try:
            raw = json.loads(self.catalog_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(
                f"catalog {self.catalog_path} is unreadable ({exc}): restore it or remove it and re-import"
            ) from None
        entries = [CatalogEntry.from_dict(d) for d in raw.get("datasets", [])]
        return {(e.symbol, e.freq): e for e in entries}

    def catalog(self) -> list[CatalogEntry]:
        return sorted(self._load().values(), key=lambda e: (e.symbol, FREQS.index(e.freq)))

    def has(self, symbol: str, freq: str) -> bool:
        return (normalize_symbol(symbol), freq) in self._load()

    def symbols(self) -> list[str]:
        return sorted({e.symbol for e in self.catalog()})

    def entry(self, symbol: str, freq: str | None = None) -> CatalogEntry:
        sym = normalize_symbol(symbol)
        entries = self._load()
        if freq is None:
            for f in FREQS:
                if (sym, f) in entries:
                    return entries[(sym, f)]
        elif (sym, freq) in entries:
            return entries[(sym, freq)]
        have = ", ".join(f"{e.symbol} {e.freq}" for e in self.catalog()) or "nothing yet"
        what = f"{sym} {freq}" if freq else sym
        raise NotFoundError(f"no dataset {what} in {self.home}: the store holds {have}; import it first")

    def path(self, symbol: str, freq: str) -> Path:
        """The file the catalog names for a dataset (the legacy fixed name if none)."""
        sym, freq = normalize_symbol(symbol), check_freq(freq)
        entry = self._load().get((sym, freq))
        if entry is not None and entry.file:
            return self.home / entry.file
        return self.market_dir / f"{sym}_{freq}.parquet"

    def file_of(self, entry: CatalogEntry) -> Path:
        """The data file a catalog entry names."""
        return self.home / entry.file if entry.file else self.market_dir / f"{entry.symbol}_{entry.freq}.parquet"

    # -- read ----------------------------------------------------------------------
    def read_bars(self, symbol: str, freq: str = "1min", start=None, end=None,
                  columns: list[str] | None = None, entry: CatalogEntry | None = None) -> pd.DataFrame:
        """Read bars of ``symbol`` between local dates ``start`` and ``end`` (inclusive).

        Only the requested columns (plus the time column) and the row groups whose
        statistics overlap the range are read. With ``entry`` (a catalog entry the caller
        resolved earlier, e.g. to key a cache by its hash) exactly that file is read; if
        an import replaced it meanwhile, a DataError says so instead of mixing data.
        """
        if entry is not None:
            return self._read(entry, freq, start, end, columns)
        for attempt in range(3):
            try:
                return self._read(self.entry(symbol, check_freq(freq)), freq, start, end, columns)
            except _Replaced:
                continue  # an import replaced the file between the catalog read and the open
        return self._read(self.entry(symbol, check_freq(freq)), freq, start, end, columns)

    def _read(self, entry: CatalogEntry, freq: str, start, end, columns) -> pd.DataFrame:
        check_freq(freq)
        tcol = time_column(freq)
        cols = None if columns is None else [tcol, *[c for c in columns if c != tcol]]
        if cols is not None:
            unknown = [c for c in cols if c not in entry.columns]
            if unknown:
                raise DataError(f"{entry.symbol} {freq} has no column(s) {unknown}: it has {entry.columns}")
        lo, hi = time_bounds(entry.symbol, freq, start, end, entry.tz)
        filters = ([(tcol, ">=", lo)] if lo is not None else []) + ([(tcol, "<", hi)] if hi is not None else [])
        try:
            table = pq.read_table(self.file_of(entry), columns=cols, filters=filters or None,
                                  page_checksum_verification=True)
        except FileNotFoundError:
            raise _gone(entry) from None
        return table.to_pandas()

    @contextmanager
    def open_parquet(self, entry: CatalogEntry) -> Iterator[pq.ParquetFile]:
        """Exactly the file ``entry`` names, open, to read a part at a time (row groups,
        batches, columns) with page checksums verified: a reader that must not hold a whole
        dataset in memory. The file stays readable if an import replaces it meanwhile (files
        are never changed in place); one already gone raises the DataError of :meth:`read_bars`."""
        try:
            source = pa.OSFile(str(self.file_of(entry)))
        except FileNotFoundError:
            raise _gone(entry) from None
        with source:
            yield pq.ParquetFile(source, page_checksum_verification=True)

    # -- write ---------------------------------------------------------------------
    def write(self, symbol: str, freq: str, df: pd.DataFrame, source: str,
              sample: bool = False, notes: list[str] | None = None,
              session: Session | None = None) -> CatalogEntry:
        """Atomically write (replace) a dataset and record it in the catalog (see the module doc);
        ``session`` (zone, hours, calendar) is recorded with it (default: the symbol's hours,
        no calendar; the importer and the sample data pass the calendar they chose)."""
        return self.write_many([(symbol, freq, df, source, sample, notes, session)])[0]

    def write_many(self, items) -> list[CatalogEntry]:
        """Write several datasets as one operation: all of them are in the catalog, or none.

        ``items``: ``(symbol, freq, frame, source, sample, notes[, session])`` tuples. Every file is
        staged first; the catalog is then replaced once, under the lock.
        """
        staged: list[tuple[CatalogEntry, Path]] = []
        try:
            for item in items:
                staged.append(self._stage(*item))
            return self._commit(staged)
        finally:
            for _, tmp in staged:
                tmp.unlink(missing_ok=True)

    def _stage(self, symbol, freq, df, source, sample, notes, session=None) -> tuple[CatalogEntry, Path]:
        """Write one dataset to a temporary file; returns its entry and the file."""
        sym = normalize_symbol(symbol)
        table, times = _canonical(df, check_freq(freq))
        if table.num_rows == 0:
            raise DataError(f"refusing to store an empty {freq} dataset for {sym}")
        self.market_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_for(self.market_dir / f"{sym}_{freq}.parquet")
        try:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS[freq],
                           write_page_checksum=True, write_statistics=True)
            fsync_file(tmp)
            faults.point("store.write:staged")
            digest = file_sha256(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        session = session if session is not None else session_for(sym, "")
        final = self.market_dir / f"{sym}_{freq}.{digest[:16]}.parquet"
        entry = CatalogEntry(
            symbol=sym, freq=freq,
            start=times.iloc[0].isoformat(), end=times.iloc[-1].isoformat(),
            rows=table.num_rows, sha256=digest, source=str(source),
            imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            columns=list(table.column_names), sample=bool(sample), tz=session.tz,
            session_open=f"{session.open:%H:%M}", session_close=f"{session.close:%H:%M}",
            calendar=session.calendar, file=str(final.relative_to(self.home)), bytes=tmp.stat().st_size,
            notes=list(notes or []),
        )
        return entry, tmp

    def _commit(self, staged: list[tuple[CatalogEntry, Path]]) -> list[CatalogEntry]:
        with file_lock(self._lock_path):
            entries = self._load()
            replaced = []
            for entry, tmp in staged:
                os.replace(tmp, self.home / entry.file)
                old = entries.get((entry.symbol, entry.freq))
                if old is not None and self.file_of(old) != self.home / entry.file:
                    replaced.append(self.file_of(old))
                entries[(entry.symbol, entry.freq)] = entry
            fsync_dir(self.market_dir)
            faults.point("store.write:renamed")
            self._save(entries)
            faults.point("store.write:cataloged")
            for path in replaced:
                path.unlink(missing_ok=True)
            if replaced:
                fsync_dir(self.market_dir)
                faults.point("store.write:old-removed")
        return [e for e, _ in staged]

    def delete(self, symbol: str, freq: str) -> None:
        """Remove a dataset: out of the catalog first, then its file."""
        entry = self.entry(symbol, freq)
        with file_lock(self._lock_path):
            entries = self._load()
            current = entries.pop((entry.symbol, entry.freq), None)
            self._save(entries)
            faults.point("store.delete:cataloged")
            if current is not None:
                self.file_of(current).unlink(missing_ok=True)
                fsync_dir(self.market_dir)

    def lock(self):
        """The catalog lock (held by every catalog change; :mod:`almanac.recovery` uses it)."""
        return file_lock(self._lock_path)

    def _save(self, entries: dict[tuple[str, str], CatalogEntry]) -> None:
        ordered = sorted(entries.values(), key=lambda e: (e.symbol, FREQS.index(e.freq)))
        atomic_write_json(self.catalog_path, {"version": 1, "datasets": [e.to_dict() for e in ordered]},
                          fault="catalog")


class _Replaced(DataError):
    """The file a catalog entry named is gone: an import or delete replaced it meanwhile."""


def _gone(entry: CatalogEntry) -> _Replaced:
    return _Replaced(f"{entry.symbol} {entry.freq} was replaced or deleted while it was being read "
                     "(another import is running): try again")
