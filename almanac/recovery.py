"""Start-up recovery: remove what interrupted operations left in the data home.

Every write in the lab is atomic (see :mod:`almanac.atomic`, :mod:`almanac.store` and
the run folders of :mod:`almanac.registry`), so a killed process never leaves a state a
reader can see half-done. What it can leave are unnamed leftovers:

* temporary files ``.<name>.tmp-<pid>-<random>`` of an atomic write;
* temporary run folders ``runs/.tmp-<run_id>`` and deleted runs ``runs/.trash-*``;
* market files the catalog does not name (a write killed after its rename but before
  the catalog, or after the catalog but before the old file was removed);
* feature-cache Parquet files without their JSON sidecar (the sidecar is written last);
* upload and export scratch files under ``tmp/``.

:func:`sweep` removes them when they are older than ``min_age_s`` (default five
minutes) *and* no live process owns them: a temporary file names its writer's pid, and
a running experiment holds an ``flock`` on ``runs/.tmp-<run_id>/.lock``. Orphaned
market files are decided under the catalog lock, where every catalog change happens,
so a concurrent import is never mistaken for a leftover. The command line and the web
app call it on start and say what they removed.

Catalogs written before market files were content-addressed name ``<SYM>_<freq>.parquet``;
:func:`sweep` checks such a file against its recorded hash once, records the file's real
content if an interrupted import left them apart, and moves it to its content-addressed
name (hard link, catalog, unlink: a kill at any step leaves a consistent catalog).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import time
from pathlib import Path

import pyarrow.parquet as pq

from almanac.atomic import TMP_MARK, file_lock, fsync_dir
from almanac.errors import AlmanacError
from almanac.store import CatalogEntry, Store, file_sha256, time_column

log = logging.getLogger(__name__)

MIN_AGE_S = 300.0
RUN_LOCK = ".lock"
_PID = re.compile(re.escape(TMP_MARK) + r"(\d+)-")
_CONTENT_NAME = re.compile(r"^.+_[0-9a-z]+\.[0-9a-f]{16}\.parquet$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(folder: Path) -> bool:
    """True if a live process holds the flock of ``folder/.lock``."""
    lock = folder / RUN_LOCK
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _in_use(path: Path) -> bool:
    m = _PID.search(path.name)
    if m and int(m.group(1)) != os.getpid() and _pid_alive(int(m.group(1))):
        return True
    return path.is_dir() and _locked(path)


def _old(path: Path, now: float, min_age_s: float) -> bool:
    try:
        return now - path.lstat().st_mtime >= min_age_s
    except FileNotFoundError:
        return False


def _remove(path: Path, home: Path, removed: list[str]) -> None:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        return
    removed.append(str(path.relative_to(home)))


def _leftovers(home: Path) -> list[Path]:
    """Temporary files and folders anywhere in the lab's own folders."""
    found: list[Path] = []
    for folder in (home, home / "market", home / "cache" / "features", home / "cache" / "days", home / "runs",
                   home / "tmp", home / "tables", home / "plugins", home / "multihead"):
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            name = path.name
            if TMP_MARK in name or name.startswith(".trash-") or folder.name == "tmp":
                found.append(path)
    return found


def _incomplete_cache(home: Path) -> list[Path]:
    folder = home / "cache" / "features"
    if not folder.is_dir():
        return []
    return [p for p in folder.glob("*.parquet") if not p.with_suffix(".json").exists()]


def _migrate_legacy(store: Store, removed: list[str]) -> None:
    """Check and rename the fixed-name files of an older catalog (see the module doc)."""
    entries = store._load()
    changed = False
    for key, entry in list(entries.items()):
        path = store.file_of(entry)
        if _CONTENT_NAME.match(path.name) or not path.is_file():
            continue
        digest = file_sha256(path)
        if digest != entry.sha256:
            entry = _described(entry, path, digest)
            removed.append(f"catalog entry {entry.symbol} {entry.freq} (it did not match its file, "
                           "left by an interrupted import; the file's content is now recorded)")
        final = store.market_dir / f"{entry.symbol}_{entry.freq}.{digest[:16]}.parquet"
        if not final.exists():
            os.link(path, final)
        entry.file = str(final.relative_to(store.home))
        entries[key] = entry
        changed = True
    if changed:
        fsync_dir(store.market_dir)
        store._save(entries)
        for entry in entries.values():
            legacy = store.market_dir / f"{entry.symbol}_{entry.freq}.parquet"
            if legacy.exists() and legacy != store.file_of(entry):
                legacy.unlink()


def _described(entry: CatalogEntry, path: Path, digest: str) -> CatalogEntry:
    """``entry`` with rows, range, hash and size taken from the file itself."""
    tcol = time_column(entry.freq)
    times = pq.read_table(path, columns=[tcol]).column(tcol).to_pandas()
    entry.sha256, entry.rows, entry.bytes = digest, len(times), path.stat().st_size
    if len(times):
        entry.start, entry.end = times.iloc[0].isoformat(), times.iloc[-1].isoformat()
    return entry


def sweep(home: Path | str | None = None, min_age_s: float = MIN_AGE_S) -> list[str]:
    """Remove interrupted operations' leftovers; returns what was removed (home-relative)."""
    store = Store(home)
    home = store.home
    if not home.is_dir():
        return []
    removed: list[str] = []
    now = time.time()
    for path in _leftovers(home) + _incomplete_cache(home):
        if _old(path, now, min_age_s) and not _in_use(path):
            _remove(path, home, removed)
    if store.market_dir.is_dir() and store.catalog_path.exists():
        with store.lock():
            try:
                _migrate_legacy(store, removed)
            except (AlmanacError, OSError) as exc:  # an unreadable catalog is reported by its readers
                log.warning("could not check the catalog's files: %s", exc)
                return removed
            named = {store.file_of(e).name for e in store._load().values()}
            for path in store.market_dir.glob("*.parquet"):
                if path.name not in named:
                    _remove(path, home, removed)
    _unnamed_tables(home, removed)
    tmp = home / "tmp"
    with contextlib.suppress(OSError):
        if tmp.is_dir() and not any(tmp.iterdir()):
            tmp.rmdir()
    if removed:
        log.info("removed %d leftover(s) of interrupted operations: %s", len(removed), ", ".join(removed))
    return removed


def _unnamed_tables(home: Path, removed: list[str]) -> None:
    """User tables' and plugins' files that their catalog / registry does not name (an import or
    ``plugins add`` killed between writing the file and writing the catalog; see
    :mod:`almanac.tables`, :mod:`almanac.plugins`)."""
    from almanac.plugins import Plugins
    from almanac.tables import Tables

    tables, plugins = Tables(home), Plugins(home)
    for folder, index, lock, pattern, names in (
            (tables.folder, tables.catalog_path, tables._lock, "*.parquet",
             lambda: {Path(e.file).name for e in tables.list()}),
            (plugins.folder, plugins.registry_path, plugins._lock, "*.py",
             lambda: {Path(r.file).name for r in plugins.list()})):
        if not folder.is_dir() or not index.exists():
            continue
        with file_lock(lock):
            try:
                named = names()
            except (AlmanacError, OSError) as exc:
                log.warning("could not check the files of %s: %s", index, exc)
                continue
            for path in folder.glob(pattern):
                if path.name not in named:
                    _remove(path, home, removed)


def describe(removed: list[str], limit: int = 5) -> str:
    """One line for the user: what :func:`sweep` removed."""
    shown = ", ".join(removed[:limit]) + (f" and {len(removed) - limit} more" if len(removed) > limit else "")
    return f"cleaned up {len(removed)} leftover(s) of an interrupted operation: {shown}"


__all__ = ["MIN_AGE_S", "RUN_LOCK", "describe", "sweep"]
