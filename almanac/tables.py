"""User tables: feature tables with a "known at" time, and any table as a dataset.

Stored beside the market store, in a sibling folder of the data home (the market
catalog is the store's; these tables are not bars)::

    tables/catalog.json              one entry per table (see :class:`TableEntry`)
    tables/<name>.<sha16>.parquet    the validated table, content-addressed

Writes follow the store's rules with the :mod:`almanac.atomic` helpers: the file is
staged under a temporary name, renamed to its content-addressed name, then the catalog
is replaced atomically under ``tables/.catalog.lock`` and the file it named before is
removed. A refused import writes nothing.

Two kinds:

* ``features`` (:func:`import_feature_table`): a key column ``date`` (a daily table) or
  a timestamp, one or more numeric columns, and a known-at rule: ``--known-at HH:MM``
  (a date-keyed table: each row is known at that local time of its date, in the
  exchange time zone of the symbol it is joined to), a ``known_at`` column (each row's
  own instant), or, for a timestamp-keyed table, the timestamp itself. The join is
  :mod:`features.tables`.
* ``dataset`` (:func:`import_dataset_table`): any table with a time column (and an
  optional group column), validated like bars (types, missing values, order by time),
  for experiments whose ``data`` names a ``table``.

Reading is bounded exactly as a bar import (:class:`almanac.filereader._Reader`: size,
columns, line length, Parquet footer, rows, expansion; each refusal names its variable).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from almanac.atomic import atomic_write_json, file_lock, fsync_dir, fsync_file, tmp_path_for
from almanac.errors import DataError, NotFoundError, SpecError
from almanac.filereader import _Reader
from almanac.sessions import parse_time
from almanac.settings import get_settings

KINDS = ("features", "dataset")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
KEY_NAMES = ("date", "timestamp", "datetime", "time", "ts")
KNOWN_AT_COLUMN = "known_at"
YEARS = (1900, 2100)


@dataclass
class TableEntry:
    name: str
    kind: str                      # "features" | "dataset"
    file: str                      # relative to the data home
    sha256: str
    rows: int
    columns: list[str]             # value columns (features) / every column but time (dataset)
    key: str                       # features: "date" | "timestamp"; dataset: the time column's name
    known_at: str = ""             # features: "HH:MM" | "column" | "timestamp"
    naive: bool = True             # times without a UTC offset (read in the exchange time zone)
    group: str = ""                # dataset: the group column ("" = none)
    numeric: list[str] = field(default_factory=list)  # dataset: numeric columns
    start: str = ""
    end: str = ""
    source: str = ""
    imported_at: str = ""
    sample: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TableEntry:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def rule(self) -> str:
        """The known-at rule in words (features tables)."""
        if self.known_at == "column":
            return "each row's known_at column"
        if self.known_at == "timestamp":
            return "each row's timestamp"
        return f"{self.known_at} on the row's date, exchange time"


def check_name(name: str) -> str:
    text = str(name).strip().lower()
    if not _NAME_RE.match(text):
        raise SpecError(f"table name {str(name)[:40]!r} is not valid: use 1-40 lower-case letters, digits or '_', "
                        "starting with a letter, e.g. macro or spx_options")
    return text


class Tables:
    """The user tables under a data home (default: ``ALMANAC_HOME``)."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home is not None else get_settings().home
        self.folder = self.home / "tables"
        self.catalog_path = self.folder / "catalog.json"
        self._lock = self.folder / ".catalog.lock"

    def _load(self) -> dict[str, TableEntry]:
        if not self.catalog_path.exists():
            return {}
        try:
            raw = json.loads(self.catalog_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"table catalog {self.catalog_path} is unreadable ({exc}): restore it or remove it "
                            "and import the tables again") from None
        return {d["name"]: TableEntry.from_dict(d) for d in raw.get("tables", [])}

    def list(self, kind: str | None = None) -> list[TableEntry]:
        return sorted((e for e in self._load().values() if kind is None or e.kind == kind), key=lambda e: e.name)

    def has(self, name: str, kind: str | None = None) -> bool:
        e = self._load().get(str(name).strip().lower())
        return e is not None and (kind is None or e.kind == kind)

    def entry(self, name: str, kind: str | None = None) -> TableEntry:
        e = self._load().get(str(name).strip().lower())
        if e is None or (kind is not None and e.kind != kind):
            have = ", ".join(x.name for x in self.list(kind)) or "none yet"
            what = {"features": "feature table", "dataset": "dataset table"}.get(kind, "table")
            cmd = "import-features" if kind == "features" else "import-table"
            raise NotFoundError(f"no {what} {name!r} in {self.folder} (have: {have}): "
                                f"import it with `python -m almanac data {cmd}`")
        return e

    def read(self, entry: TableEntry) -> pd.DataFrame:
        path = self.home / entry.file
        try:
            return pq.read_table(path, page_checksum_verification=True).to_pandas()
        except FileNotFoundError:
            raise DataError(f"table {entry.name} was replaced or removed while it was being read: try again") from None

    def write(self, entry: TableEntry, frame: pd.DataFrame) -> TableEntry:
        """Stage ``frame``, name it by content, then replace the catalog entry (atomic)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = tmp_path_for(self.folder / f"{entry.name}.parquet")
        try:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            pq.write_table(table, tmp, compression="zstd", write_page_checksum=True)
            fsync_file(tmp)
            h = hashlib.sha256()
            with open(tmp, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
            final = self.folder / f"{entry.name}.{digest[:16]}.parquet"
            entry.sha256, entry.file = digest, str(final.relative_to(self.home))
            entry.imported_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with file_lock(self._lock):
                entries = self._load()
                os.replace(tmp, final)
                old = entries.get(entry.name)
                entries[entry.name] = entry
                fsync_dir(self.folder)
                self._save(entries)
                if old is not None and old.file != entry.file:
                    (self.home / old.file).unlink(missing_ok=True)
        finally:
            tmp.unlink(missing_ok=True)
        return entry

    def remove(self, name: str) -> TableEntry:
        e = self.entry(name)
        with file_lock(self._lock):
            entries = self._load()
            entries.pop(e.name, None)
            self._save(entries)
            (self.home / e.file).unlink(missing_ok=True)
        return e

    def _save(self, entries: dict[str, TableEntry]) -> None:
        atomic_write_json(self.catalog_path, {"version": 1, "tables": [entries[k].to_dict() for k in sorted(entries)]})


# ---------------------------------------------------------------------- validation


def _norm(col) -> str:
    return re.sub(r"[^a-z0-9]", "", str(col).lower())


def _find(df: pd.DataFrame, rd: _Reader, wanted: str | None, names=KEY_NAMES, what="time") -> str:
    by_key = {}
    for c in df.columns:
        by_key.setdefault(_norm(c), c)
    if wanted is not None:
        if wanted in df.columns:
            return wanted
        if _norm(wanted) in by_key:
            return by_key[_norm(wanted)]
        raise rd.fail(f"has no column {wanted!r} (found {list(df.columns)[:12]}): name the {what} column")
    for n in names:
        if n in by_key:
            return by_key[n]
    raise rd.fail(f"missing a {what} column: name one of {', '.join(names)} (found {list(df.columns)[:12]})")


def _times(raw: pd.Series, rd: _Reader, col: str) -> pd.Series:
    """Parsed times: naive (wall clock) or UTC-aware; refuses text that is not a time."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        ts = raw
    elif pd.api.types.is_numeric_dtype(raw):
        raise rd.fail("time values are numbers; write them as dates or ISO timestamps", row=1, column=col)
    else:
        text = raw.astype("string").str.strip()
        aware = text.str.contains(r"(?:Z|[+-]\d{2}:?\d{2})$", regex=True).fillna(False)
        try:
            ts = pd.to_datetime(text, errors="coerce", format="mixed", utc=bool(aware.any()))
        except (ValueError, TypeError, OverflowError) as exc:
            raise rd.fail(f"times could not be read ({str(exc)[:100]}); use ISO dates such as 2018-03-09",
                          column=col) from None
        if aware.any() and not aware.all():
            i = int(np.argmax(~aware.to_numpy()))
            raise rd.fail("mixes times with and without a UTC offset; give every row an offset or none",
                          row=i + 1, column=col)
    bad = ts.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise rd.fail(f"{str(raw.iloc[i])[:40]!r} is not a date or time; use e.g. 2018-03-09 or "
                      "2018-03-09 16:00", row=i + 1, column=col)
    years = ts.dt.year.to_numpy()
    out = (years < YEARS[0]) | (years > YEARS[1])
    if out.any():
        i = int(np.argmax(out))
        raise rd.fail(f"{str(raw.iloc[i])[:40]!r} is outside {YEARS[0]}-{YEARS[1]}; fix the date", row=i + 1, column=col)
    if isinstance(ts.dtype, pd.DatetimeTZDtype):
        return ts.dt.tz_convert("UTC").dt.as_unit("us")
    return ts.dt.as_unit("us")


def _numbers(raw: pd.Series, rd: _Reader, col: str, strict: bool = True) -> pd.Series | None:
    """float64 values, or refuse (strict) / None (not numeric) a column that is not numbers."""
    if pd.api.types.is_bool_dtype(raw):
        vals = raw.astype("float64")
    elif pd.api.types.is_numeric_dtype(raw):
        vals = raw.astype("float64")
    else:
        text = raw.astype("string").str.strip().str.replace(",", "", regex=False)
        vals = pd.to_numeric(text, errors="coerce").astype("float64")
        filled = text.notna() & (text != "")
        wrong = filled.to_numpy(dtype=bool) & vals.isna().to_numpy()
        if wrong.any():
            if not strict:
                return None
            i = int(np.argmax(wrong))
            raise rd.fail(f"value {str(raw.iloc[i])[:40]!r} is not a number; fix or remove the row",
                          row=i + 1, column=col)
    x = vals.to_numpy(dtype="float64", na_value=np.nan)
    bad = ~np.isfinite(x)
    if bad.any():
        i = int(np.argmax(bad))
        raise rd.fail("value is missing or not finite; fill or remove the row", row=i + 1, column=col)
    return pd.Series(x, index=raw.index)


def _check_missing(raw: pd.Series, rd: _Reader, col: str) -> None:
    bad = raw.isna().to_numpy() | (raw.astype("string").str.strip() == "").fillna(True).to_numpy(dtype=bool)
    if bad.any():
        i = int(np.argmax(bad))
        raise rd.fail("value is missing; fill or remove the row", row=i + 1, column=col)


def _order(df: pd.DataFrame, key: str, name: str, unique: bool, warnings: list[str]) -> pd.DataFrame:
    t = df[key].array.asi8
    if unique:
        s = pd.Series(t)
        dup = s.duplicated(keep=False).to_numpy()
        if dup.any():
            rows = np.flatnonzero(dup)
            first = rows[s.iloc[rows].to_numpy() == t[rows[0]]]
            raise DataError(f"{name}, rows {first[0] + 1} and {first[1] + 1}: two rows have the same {key} "
                            f"{df[key].iloc[first[0]]}; keep one of them")
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
        warnings.append(f"{name}: rows were not in time order; sorted them")
        df = df.sort_values(key, kind="stable")
    return df.reset_index(drop=True)


def _entry_times(df: pd.DataFrame, key: str) -> tuple[str, str]:
    return str(df[key].iloc[0]), str(df[key].iloc[-1])


# ---------------------------------------------------------------------- imports


def read_feature_table(path, name: str, known_at: str | None = None, display: str | None = None,
                       key: str | None = None) -> tuple[pd.DataFrame, TableEntry, list[str]]:
    """Validate a feature table; returns (stored frame, entry without file/hash, warnings)."""
    name = check_name(name)
    path = Path(path)
    rd = _Reader(path, display or path.name)
    df = rd.read()
    kcol = _find(df, rd, key)
    by = {_norm(c): c for c in df.columns}
    kacol = by.get(_norm(KNOWN_AT_COLUMN)) if _norm(KNOWN_AT_COLUMN) != _norm(kcol) else None
    if known_at is not None and kacol is not None:
        raise rd.fail(f"has a {kacol!r} column and --known-at {known_at} was given: use one of them")
    t = _times(df[kcol], rd, kcol)
    aware = isinstance(t.dtype, pd.DatetimeTZDtype)
    midnight = (not aware) and bool((t == t.dt.normalize()).all())
    kind = "date" if midnight else "timestamp"
    if known_at is not None:
        if kind != "date":
            raise rd.fail(f"--known-at {known_at} applies to a table keyed by date, but column {kcol!r} holds times "
                          "of day: drop --known-at (each row is known at its timestamp) or add a known_at column")
        rule = f"{parse_time(known_at):%H:%M}"
    elif kacol is not None:
        rule = "column"
    elif kind == "timestamp":
        rule = "timestamp"
    else:
        raise rd.fail(f"is keyed by date ({kcol!r}) but says nothing of when each value was known: pass "
                      "--known-at HH:MM (e.g. 16:00 for a value published at the close) or add a known_at column")
    values = [c for c in df.columns if c not in (kcol, kacol)]
    if not values:
        raise rd.fail(f"has no value column besides {kcol!r}: add one or more numeric columns")
    out = pd.DataFrame({kind: t.dt.normalize() if kind == "date" else t})
    naive = not aware
    if rule == "column":
        ka = _times(df[kacol], rd, kacol)
        ka_aware = isinstance(ka.dtype, pd.DatetimeTZDtype)
        if ka_aware != aware and kind == "timestamp":
            raise rd.fail(f"column {kacol!r} and {kcol!r} differ in having a UTC offset: give both an offset or none")
        naive = not ka_aware
        out[KNOWN_AT_COLUMN] = ka
    cols = []
    for c in values:
        cname = re.sub(r"[^a-z0-9_]", "_", str(c).strip().lower()).strip("_") or "value"
        if cname in out.columns or cname in cols:
            raise rd.fail(f"column {c!r} repeats the name {cname!r} after lower-casing: rename one")
        out[cname] = _numbers(df[c], rd, str(c)).to_numpy()
        cols.append(cname)
    warnings: list[str] = []
    out = _order(out, kind, rd.name, unique=True, warnings=warnings)
    first, last = _entry_times(out, kind)
    entry = TableEntry(name=name, kind="features", file="", sha256="", rows=len(out), columns=cols, key=kind,
                       known_at=rule, naive=naive, start=first, end=last, source=rd.name)
    return out, entry, warnings


def import_feature_table(path, name: str, known_at: str | None = None, home=None, display: str | None = None,
                         key: str | None = None) -> tuple[TableEntry, list[str]]:
    frame, entry, warnings = read_feature_table(path, name, known_at, display, key)
    tables = Tables(home)
    _check_kind(tables, entry)
    return tables.write(entry, frame), warnings


def read_dataset_table(path, name: str, time: str, group: str | None = None, display: str | None = None,
                       sample: bool = False) -> tuple[pd.DataFrame, TableEntry, list[str]]:
    """Validate any table with a time column (+ optional group column)."""
    name = check_name(name)
    path = Path(path) if not isinstance(path, pd.DataFrame) else path
    if isinstance(path, pd.DataFrame):
        df, rd = path, _Reader(Path(display or name), display or name)
    else:
        rd = _Reader(path, display or path.name)
        df = rd.read()
    tcol = _find(df, rd, time)
    gcol = _find(df, rd, group, what="group") if group else ""
    out = pd.DataFrame({tcol: _times(df[tcol], rd, tcol)})
    numeric = []
    for c in df.columns:
        if c == tcol:
            continue
        _check_missing(df[c], rd, str(c))
        if c == gcol:
            out[c] = df[c]
            continue
        vals = _numbers(df[c], rd, str(c), strict=False)
        if vals is None:
            out[c] = df[c].astype("string")
        else:
            out[c] = vals.to_numpy()
            numeric.append(str(c))
    if not numeric:
        raise rd.fail("has no numeric column besides the time: add the target and feature columns")
    warnings: list[str] = []
    out = _order(out, tcol, rd.name, unique=False, warnings=warnings)
    first, last = _entry_times(out, tcol)
    entry = TableEntry(name=name, kind="dataset", file="", sha256="", rows=len(out),
                       columns=[str(c) for c in out.columns if c != tcol], key=str(tcol), group=str(gcol),
                       numeric=numeric, naive=not isinstance(out[tcol].dtype, pd.DatetimeTZDtype),
                       start=first, end=last, source=rd.name, sample=sample)
    return out, entry, warnings


def import_dataset_table(path, name: str, time: str, group: str | None = None, home=None,
                         display: str | None = None, sample: bool = False, notes=None) -> tuple[TableEntry, list[str]]:
    frame, entry, warnings = read_dataset_table(path, name, time, group, display, sample)
    entry.notes = list(notes or [])
    tables = Tables(home)
    _check_kind(tables, entry)
    return tables.write(entry, frame), warnings


def _check_kind(tables: Tables, entry: TableEntry) -> None:
    if tables.has(entry.name) and tables.entry(entry.name).kind != entry.kind:
        other = tables.entry(entry.name).kind
        raise SpecError(f"table {entry.name} exists already as a {other} table: choose another --name")




# ---------------------------------------------------------------------- experiments


def table_times(tables: Tables, entry: TableEntry, start=None, end=None) -> pd.DatetimeIndex:
    """The table's time column (naive, or UTC), limited to ``start`` .. ``end`` (dates, inclusive)."""
    t = pq.read_table(tables.home / entry.file, columns=[entry.key]).column(0).to_pandas()
    return pd.DatetimeIndex(t)[_in_dates(pd.DatetimeIndex(t), start, end)]


def _in_dates(t: pd.DatetimeIndex, start, end) -> np.ndarray:
    keep = np.ones(len(t), dtype=bool)
    naive = t.tz_localize(None) if t.tz is not None else t
    if start is not None:
        keep &= naive >= pd.Timestamp(start)
    if end is not None:
        keep &= naive < pd.Timestamp(end) + pd.Timedelta(days=1)
    return keep


def feature_columns(spec, entry: TableEntry) -> list[str]:
    """The spec's feature columns of a dataset table (default: every numeric column but the target)."""
    target = spec.data.target
    if target not in entry.columns:
        raise SpecError(f"spec field data.target: table {entry.name} has no column {target!r}: choose one of "
                        f"{', '.join(entry.numeric)}")
    if target not in entry.numeric:
        raise SpecError(f"spec field data.target: column {target} of table {entry.name} is text, not numbers: "
                        f"choose one of {', '.join(entry.numeric)}")
    cols = spec.features.columns
    if cols is None:
        cols = [c for c in entry.numeric if c != target]
        if not cols:
            raise SpecError(f"spec field features.columns: table {entry.name} has no numeric column besides "
                            f"{target}: import a table with feature columns")
        return cols
    for c in cols:
        if c not in entry.numeric:
            why = "is text" if c in entry.columns else "is not a column"
            raise SpecError(f"spec field features.columns: {c!r} {why} of table {entry.name}: choose from "
                            f"{', '.join(x for x in entry.numeric if x != target)}")
    return list(dict.fromkeys(cols))


__all__ = ["KINDS", "TableEntry", "Tables", "check_name", "feature_columns", "import_dataset_table",
           "import_feature_table", "read_dataset_table", "read_feature_table", "table_times"]
