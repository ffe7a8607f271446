"""The Parquet data store and its catalog.

Layout under ``ALMANAC_HOME``::

    market/<SYMBOL>_<freq>.parquet   one file per symbol and frequency ("1min" or "1d")
    catalog.json                     one entry per file (see :class:`CatalogEntry`)

Canonical frames
    ``1min``: ``timestamp`` (UTC, bar start), ``open``, ``high``, ``low``, ``close``,
    ``volume``. ``1d``: ``date`` (naive midnight, the exchange's local date) and
    ``close``, optionally ``open``, ``high``, ``low``, ``volume``.

Writes are atomic (temporary file, fsync, ``os.replace``) and the catalog is updated
only after the data file is in place, under a lock, so concurrent writers never lose
an entry. Files are written with page checksums, zstd compression and row groups small
enough that a read by date range and columns touches only what it needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from almanac.atomic import atomic_write, atomic_write_json, file_lock
from almanac.errors import DataError, NotFoundError
from almanac.sessions import session_for
from almanac.settings import get_settings

FREQS = ("1min", "1d")
PRICE_COLUMNS = ("open", "high", "low", "close")
MINUTE_COLUMNS = ("timestamp", *PRICE_COLUMNS, "volume")
DAILY_COLUMNS = ("date", *PRICE_COLUMNS, "volume")
ROW_GROUP_ROWS = {"1min": 65_536, "1d": 4_096}


def time_column(freq: str) -> str:
    return "timestamp" if freq == "1min" else "date"


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
    file: str = ""
    bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CatalogEntry:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def normalize_symbol(symbol: str) -> str:
    sym = str(symbol).strip().upper()
    if not sym or not all(c.isalnum() or c in "-._" for c in sym) or sym[0] in "._-":
        raise DataError(
            f"symbol {symbol!r} is not valid: use letters, digits, '-', '_' or '.', e.g. ES or VIX"
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


def _canonical(df: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Check a frame has the canonical schema and return it in canonical column order."""
    tcol = time_column(freq)
    allowed = MINUTE_COLUMNS if freq == "1min" else DAILY_COLUMNS
    missing = [c for c in ((tcol, *PRICE_COLUMNS, "volume") if freq == "1min" else (tcol, "close"))
               if c not in df.columns]
    if missing:
        raise DataError(f"{freq} frame lacks column(s) {missing}: canonical columns are {list(allowed)}")
    out = df[[c for c in allowed if c in df.columns]].copy()
    t = out[tcol]
    if freq == "1min":
        if not isinstance(t.dtype, pd.DatetimeTZDtype):
            raise DataError("minute bars need a timezone-aware 'timestamp' column")
        out[tcol] = t.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    else:
        if isinstance(t.dtype, pd.DatetimeTZDtype):
            t = t.dt.tz_localize(None)
        out[tcol] = pd.to_datetime(t).dt.normalize().astype("datetime64[us]")
    for c in out.columns.drop(tcol):
        out[c] = out[c].astype("float64")
    if not out[tcol].is_monotonic_increasing or out[tcol].duplicated().any():
        raise DataError(f"{freq} frame must have unique, increasing {tcol} values")
    return out.reset_index(drop=True)


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
        return self.market_dir / f"{normalize_symbol(symbol)}_{check_freq(freq)}.parquet"

    # -- read ----------------------------------------------------------------------
    def read_bars(self, symbol: str, freq: str = "1min", start=None, end=None,
                  columns: list[str] | None = None) -> pd.DataFrame:
        """Read bars of ``symbol`` between local dates ``start`` and ``end`` (inclusive).

        Only the requested columns (plus the time column) and the row groups whose
        statistics overlap the range are read.
        """
        entry = self.entry(symbol, check_freq(freq))
        tcol = time_column(freq)
        cols = None if columns is None else [tcol, *[c for c in columns if c != tcol]]
        if cols is not None:
            unknown = [c for c in cols if c not in entry.columns]
            if unknown:
                raise DataError(f"{entry.symbol} {freq} has no column(s) {unknown}: it has {entry.columns}")
        filters = []
        if start is not None or end is not None:
            session = session_for(entry.symbol)
            if start is not None:
                lo = pd.Timestamp(start).normalize()
                filters.append((tcol, ">=", session.at([lo], "00:00")[0] if freq == "1min" else lo))
            if end is not None:
                hi = pd.Timestamp(end).normalize() + pd.Timedelta(days=1)
                filters.append((tcol, "<", session.at([hi], "00:00")[0] if freq == "1min" else hi))
        table = pq.read_table(self.path(entry.symbol, freq), columns=cols, filters=filters or None,
                              page_checksum_verification=True)
        return table.to_pandas()

    # -- write ---------------------------------------------------------------------
    def write(self, symbol: str, freq: str, df: pd.DataFrame, source: str,
              sample: bool = False, notes: list[str] | None = None) -> CatalogEntry:
        """Atomically write (replace) a dataset, then record it in the catalog."""
        sym = normalize_symbol(symbol)
        frame = _canonical(df, check_freq(freq))
        if frame.empty:
            raise DataError(f"refusing to store an empty {freq} dataset for {sym}")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        path = self.path(sym, freq)

        def writer(tmp: Path) -> None:
            pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS[freq],
                           write_page_checksum=True, write_statistics=True)

        session = session_for(sym)
        tcol = time_column(freq)
        with file_lock(self._lock_path):
            atomic_write(path, writer)
            entry = CatalogEntry(
                symbol=sym, freq=freq,
                start=frame[tcol].iloc[0].isoformat(), end=frame[tcol].iloc[-1].isoformat(),
                rows=len(frame), sha256=file_sha256(path), source=str(source),
                imported_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                columns=list(frame.columns), sample=bool(sample), tz=session.tz,
                session_open=f"{session.open:%H:%M}", session_close=f"{session.close:%H:%M}",
                file=str(path.relative_to(self.home)), bytes=path.stat().st_size,
                notes=list(notes or []),
            )
            entries = self._load()
            entries[(sym, freq)] = entry
            self._save(entries)
        return entry

    def delete(self, symbol: str, freq: str) -> None:
        entry = self.entry(symbol, freq)
        with file_lock(self._lock_path):
            entries = self._load()
            entries.pop((entry.symbol, entry.freq), None)
            self._save(entries)
            self.path(entry.symbol, entry.freq).unlink(missing_ok=True)

    def _save(self, entries: dict[tuple[str, str], CatalogEntry]) -> None:
        ordered = sorted(entries.values(), key=lambda e: (e.symbol, FREQS.index(e.freq)))
        atomic_write_json(self.catalog_path, {"version": 1, "datasets": [e.to_dict() for e in ordered]})
