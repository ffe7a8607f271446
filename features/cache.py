"""The feature cache: ``<home>/cache/features/<key>.parquet`` + ``<key>.json``.

The key is the SHA-256 of the data hashes of every dataset used, the normalized
configuration and :data:`FEATURE_CODE_VERSION`, so new data (a new file hash), another
configuration or changed feature code each get their own entry. The Parquet file holds
``date``, the feature columns and the session columns (prefixed ``session__``); the JSON
sidecar holds lineage, notes, hashes and configuration and is written last, so an entry
without its sidecar is incomplete and ignored. Both writes are atomic.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from almanac.atomic import atomic_write, atomic_write_json

#: Bump when any feature's computation changes: old cache entries stop matching.
FEATURE_CODE_VERSION = "3"  # 2: notes of a date-limited build count only its days; 3: exchange calendars
SESSION_PREFIX = "session__"

log = logging.getLogger(__name__)


def cache_key(data_hashes: dict[str, str], config: dict) -> str:
    payload = {"data": data_hashes, "config": config, "code": FEATURE_CODE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_dir(home: Path) -> Path:
    return Path(home) / "cache" / "features"


def save(folder: Path, key: str, frame: pd.DataFrame, sessions: pd.DataFrame, meta: dict) -> None:
    """Write one cache entry (Parquet, then the JSON sidecar)."""
    both = pd.concat([frame, sessions.add_prefix(SESSION_PREFIX)], axis=1).reset_index()
    table = pa.Table.from_pandas(both, preserve_index=False)
    atomic_write(folder / f"{key}.parquet",
                 lambda tmp: pq.write_table(table, tmp, compression="zstd", write_page_checksum=True),
                 fault="cache.parquet")
    atomic_write_json(folder / f"{key}.json", {**meta, "key": key, "code_version": FEATURE_CODE_VERSION},
                      fault="cache.json")


def load(folder: Path, key: str) -> tuple[pd.DataFrame, pd.DataFrame, dict] | None:
    """The cached ``(frame, sessions, meta)`` or None (absent, incomplete or unreadable)."""
    pq_path, js_path = folder / f"{key}.parquet", folder / f"{key}.json"
    if not js_path.exists() or not pq_path.exists():
        return None
    try:
        meta = json.loads(js_path.read_text())
        table = pq.read_table(pq_path, page_checksum_verification=True)
    except (OSError, ValueError) as exc:  # a damaged entry is rebuilt, not trusted
        log.warning("ignoring damaged feature cache entry %s: %s", key, exc)
        return None
    # plain numpy columns: much cheaper than to_pandas() + set_index for a small table
    index = pd.DatetimeIndex(table.column("date").to_numpy(), name="date")
    cols = {c: table.column(c).to_numpy() for c in table.column_names if c != "date"}
    frame = pd.DataFrame({c: v for c, v in cols.items() if not c.startswith(SESSION_PREFIX)}, index=index)
    sessions = pd.DataFrame({c[len(SESSION_PREFIX):]: v for c, v in cols.items() if c.startswith(SESSION_PREFIX)},
                            index=index)
    return frame, sessions, meta
