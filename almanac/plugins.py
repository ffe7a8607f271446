"""Feature plugins: the ``@feature`` decorator a user's file imports, and the plugin registry.

A plugin is **Python code the user chose to run**: the lab executes it, with the user's
own rights, in the process that builds features (the command line, or a background job
of the web app -- never the web server's own process). The lab audits what the code
*computes* for look-ahead (:mod:`features.plugins`); it does not sandbox what the code
*does*. Add only files you wrote or read.

A plugin file::

    from almanac.plugins import feature

    @feature(name="or_skew", description="skewness of 1-minute returns before the cutoff")
    def or_skew(window, daily):
        r = window.groupby("date")["close"].apply(lambda c: c.pct_change().skew())
        return r

``window``: the intraday bars of every trading day from the session open up to, not
including, the cutoff (``timestamp`` UTC, ``open``, ``high``, ``low``, ``close``,
``volume``, ``date`` = the trading day); ``daily``: the symbol's daily bars (``date``,
``open``, ``high``, ``low``, ``close``, ``volume``). The function returns a numeric
Series indexed by trading day.

Registry (this module; the kernel imports nothing of the plugin itself)::

    plugins/registry.json             one record per accepted plugin file
    plugins/<name>.<sha16>.py         the accepted file, copied, named by its SHA-256
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from almanac.atomic import atomic_write_bytes, atomic_write_json, file_lock
from almanac.errors import DataError, NotFoundError, SpecError
from almanac.settings import get_settings

MARK = "__almanac_feature__"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def check_name(name, what: str = "feature name") -> str:
    text = str(name).strip()
    if not _NAME_RE.match(text):
        raise SpecError(f"{what} {text[:40]!r} is not valid: use 1-40 lower-case letters, digits or '_', starting "
                        "with a letter, e.g. or_skew")
    return text


def feature(name: str, description: str = ""):
    """Mark ``fn(window, daily) -> Series`` as a feature named ``name`` (see the module doc)."""
    check_name(name)

    def mark(fn):
        if not callable(fn):
            raise SpecError(f"@feature(name={name!r}) decorates {type(fn).__name__}, not a function")
        setattr(fn, MARK, {"name": name, "description": " ".join(str(description).split())[:300]})
        return fn

    return mark


@dataclass
class PluginRecord:
    name: str                     # the plugin: its file's stem
    file: str                     # the accepted copy, relative to the data home
    sha256: str
    source: str                   # the path it was added from
    added_at: str
    features: list[dict] = field(default_factory=list)   # [{name, description}]
    audits: dict = field(default_factory=dict)           # audit key -> {symbol, cutoff, days, at, data}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PluginRecord:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class Plugins:
    """The accepted plugins under a data home (default: ``ALMANAC_HOME``)."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home is not None else get_settings().home
        self.folder = self.home / "plugins"
        self.registry_path = self.folder / "registry.json"
        self._lock = self.folder / ".registry.lock"

    def _load(self) -> dict[str, PluginRecord]:
        if not self.registry_path.exists():
            return {}
        try:
            raw = json.loads(self.registry_path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"plugin registry {self.registry_path} is unreadable ({exc}): restore it or remove it "
                            "and add the plugins again") from None
        return {d["name"]: PluginRecord.from_dict(d) for d in raw.get("plugins", [])}

    def list(self) -> list[PluginRecord]:
        return [v for _, v in sorted(self._load().items())]

    def get(self, name: str) -> PluginRecord:
        plugins = self._load()
        key = str(name).strip()
        if key in plugins:
            return plugins[key]
        for p in plugins.values():  # a feature's name finds its plugin too
            if any(f["name"] == key for f in p.features):
                return p
        have = ", ".join(plugins) or "none yet"
        raise NotFoundError(f"no plugin {key!r} (have: {have}): add one with `python -m almanac plugins add FILE.py`")

    def path(self, record: PluginRecord) -> Path:
        return self.home / record.file

    def save(self, record: PluginRecord, code: bytes | None = None) -> PluginRecord:
        """Write the plugin's file (when ``code`` is given) and its record, atomically."""
        with file_lock(self._lock):
            plugins = self._load()
            old = plugins.get(record.name)
            if code is not None:
                atomic_write_bytes(self.home / record.file, code)
            plugins[record.name] = record
            self._save(plugins)
            if old is not None and old.file != record.file:
                (self.home / old.file).unlink(missing_ok=True)
        return record

    def record_audit(self, name: str, key: str, info: dict, sha256: str | None = None) -> None:
        with file_lock(self._lock):
            plugins = self._load()
            if name not in plugins:
                return
            rec = plugins[name]
            if sha256 is not None and sha256 != rec.sha256:
                rec.sha256, rec.audits = sha256, {}
            rec.audits[key] = info
            self._save(plugins)

    def remove(self, name: str) -> PluginRecord:
        rec = self.get(name)
        with file_lock(self._lock):
            plugins = self._load()
            plugins.pop(rec.name, None)
            self._save(plugins)
            (self.home / rec.file).unlink(missing_ok=True)
        return rec

    def _save(self, plugins: dict[str, PluginRecord]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.registry_path, {"version": 1, "plugins": [plugins[k].to_dict() for k in sorted(plugins)]})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


__all__ = ["MARK", "PluginRecord", "Plugins", "check_name", "feature", "now"]
