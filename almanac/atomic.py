"""Atomic file writes: temporary file in the same folder, fsync, ``os.replace``.

A reader sees either the old file or the new one, never a half-written file, and a
crash leaves at most a stray ``.tmp-<pid>-<random>`` file that nothing lists and that
:func:`almanac.recovery.sweep` removes once its process is gone. ``fault`` names the
steps for :mod:`almanac.faults` (``<fault>:tmp-written`` before the rename,
``<fault>:replaced`` after it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from almanac import faults

TMP_MARK = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_path_for(path: Path) -> Path:
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def atomic_write(path: Path, writer: Callable[[Path], None], fault: str = "") -> None:
    """Call ``writer(tmp)`` to produce the file, then move it into place atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        writer(tmp)
        fsync_file(tmp)
        if fault:
            faults.point(f"{fault}:tmp-written")
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        if fault:
            faults.point(f"{fault}:replaced")
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: Path, data: bytes, fault: str = "") -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data), fault)


def atomic_write_json(path: Path, obj, fault: str = "") -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_bytes(path, text.encode(), fault)


def fsync_dir(folder: Path) -> None:
    """Make a rename or unlink in ``folder`` durable."""
    _fsync_dir(folder)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) on ``path``, held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
