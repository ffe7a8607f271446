"""Settings from the environment.

``ALMANAC_HOME`` is the one folder the lab reads and writes (default: ``data/`` in the
repository). ``HOST`` (default 127.0.0.1), ``PORT`` (default 8050) and ``ALMANAC_DEBUG``
(default off) configure the web server. Settings are read on each call, so a test can
point ``ALMANAC_HOME`` at an empty folder.

:class:`Limits` bound what one input may cost before it is refused (upload and import
size, columns, line length, Parquet metadata, YAML size, aliases and values, bundle members and size,
model memory and run time, REST request bodies and rows, message length, similar-days neighbours). Each has a safe default and an ``ALMANAC_MAX_*`` variable.

``ALMANAC_REDIS_URL`` (``redis://[:password@]host:port/db``, unset by default) turns on the
scale-out mode: background callbacks on Dash's ``CeleryManager`` and study trials on Celery
workers (``worker.py``), with Optuna's study storage in Redis. :func:`redis_url` checks it;
:func:`mask_url` is how it appears in every log line, page and message (password as ``***``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from almanac.errors import AlmanacError

REPO_ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Limits:
    """What a single input may cost; each refusal names the limit and its variable."""

    upload_bytes: int = 100 * 2**20          # ALMANAC_MAX_UPLOAD_MB: a browser upload (Flask MAX_CONTENT_LENGTH)
    import_bytes: int = 4 * 2**30            # ALMANAC_MAX_IMPORT_MB: a file given to `data import`
    columns: int = 64                        # ALMANAC_MAX_COLUMNS: columns of an imported file
    line_bytes: int = 64 * 2**10             # ALMANAC_MAX_LINE_KB: one line of a CSV file
    parquet_footer_bytes: int = 8 * 2**20    # ALMANAC_MAX_PARQUET_FOOTER_MB: an imported Parquet file's metadata
    rows: int = 20_000_000                   # ALMANAC_MAX_ROWS: rows of an imported file
    expansion: int = 100                     # ALMANAC_MAX_EXPANSION: times a Parquet file may grow in memory
    yaml_bytes: int = 256 * 2**10            # ALMANAC_MAX_YAML_KB: a spec file
    yaml_aliases: int = 64                   # ALMANAC_MAX_YAML_ALIASES: '*alias' uses in a spec
    yaml_values: int = 10_000                # ALMANAC_MAX_YAML_VALUES: values in a spec, aliases expanded
    bundle_members: int = 16                 # ALMANAC_MAX_BUNDLE_MEMBERS: files in a model bundle
    bundle_bytes: int = 512 * 2**20          # ALMANAC_MAX_BUNDLE_MB: a bundle's size, packed or unpacked
    model_memory_bytes: int = 2 * 2**30      # ALMANAC_MODEL_MEMORY_MB: a bundle's model loaded in a child
    model_seconds: float = 300.0             # ALMANAC_MODEL_TIMEOUT_S: that child's run (load + predict)
    api_body_bytes: int = 8 * 2**20          # ALMANAC_MAX_API_BODY_MB: one request body sent to `serve`
    api_rows: int = 10_000                   # ALMANAC_MAX_API_ROWS: rows of one /predict/batch request
    plugin_bytes: int = 1 * 2**20            # ALMANAC_MAX_PLUGIN_KB: a feature plugin's Python file
    plugin_seconds: float = 300.0            # ALMANAC_PLUGIN_TIMEOUT_S: one call of a plugin's feature (or its load)
    message_chars: int = 300                 # one error line, at most
    study_trials: int = 1000                 # ALMANAC_MAX_STUDY_TRIALS: trials of one study (budget.n_trials)
    study_jobs: int = 8                      # ALMANAC_MAX_STUDY_JOBS: worker processes of one study (--jobs)
    similar_k: int = 100                     # ALMANAC_MAX_SIMILAR_K: neighbours of one similar-days query (--k)
    heads: int = 8                           # ALMANAC_MAX_HEADS: heads of one multi-head spec (each is a whole run)

    _ENV = {"upload_bytes": ("ALMANAC_MAX_UPLOAD_MB", 2**20), "import_bytes": ("ALMANAC_MAX_IMPORT_MB", 2**20),
            "columns": ("ALMANAC_MAX_COLUMNS", 1), "line_bytes": ("ALMANAC_MAX_LINE_KB", 2**10),
            "parquet_footer_bytes": ("ALMANAC_MAX_PARQUET_FOOTER_MB", 2**20),
            "rows": ("ALMANAC_MAX_ROWS", 1), "expansion": ("ALMANAC_MAX_EXPANSION", 1),
            "yaml_bytes": ("ALMANAC_MAX_YAML_KB", 2**10), "yaml_aliases": ("ALMANAC_MAX_YAML_ALIASES", 1),
            "yaml_values": ("ALMANAC_MAX_YAML_VALUES", 1),
            "bundle_members": ("ALMANAC_MAX_BUNDLE_MEMBERS", 1), "bundle_bytes": ("ALMANAC_MAX_BUNDLE_MB", 2**20),
            "model_memory_bytes": ("ALMANAC_MODEL_MEMORY_MB", 2**20),
            "model_seconds": ("ALMANAC_MODEL_TIMEOUT_S", 1),
            "api_body_bytes": ("ALMANAC_MAX_API_BODY_MB", 2**20), "api_rows": ("ALMANAC_MAX_API_ROWS", 1),
            "plugin_bytes": ("ALMANAC_MAX_PLUGIN_KB", 2**10), "plugin_seconds": ("ALMANAC_PLUGIN_TIMEOUT_S", 1),
            "study_trials": ("ALMANAC_MAX_STUDY_TRIALS", 1), "study_jobs": ("ALMANAC_MAX_STUDY_JOBS", 1),
            "similar_k": ("ALMANAC_MAX_SIMILAR_K", 1),
            "heads": ("ALMANAC_MAX_HEADS", 1)}

    @classmethod
    def from_env(cls) -> Limits:
        values = {}
        for name, (var, unit) in cls._ENV.items():
            text = os.environ.get(var, "").strip()
            if not text:
                continue
            try:
                number = float(text)
                if not 0 < number < 2**40:
                    raise ValueError
            except ValueError:
                raise AlmanacError(f"{var}={text!r} is not a positive number: unset it or give e.g. "
                                   f"{cls.default_text(name)}") from None
            value = number * unit  # a float limit keeps its fraction; a count never rounds to 0
            values[name] = value if isinstance(getattr(cls, name), float) else max(1, int(value))
        return cls(**values)

    @classmethod
    def default_text(cls, name: str) -> str:
        _, unit = cls._ENV[name]
        return f"{getattr(cls, name) // unit}"

    @staticmethod
    def var(name: str) -> str:
        """The environment variable that sets limit ``name``."""
        return Limits._ENV[name][0]


@dataclass(frozen=True)
class Settings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8050
    debug: bool = False
    limits: Limits = Limits()
    allowed_hosts: tuple[str, ...] = ()   # ALMANAC_ALLOWED_HOSTS: Host names served besides loopback
    redis_url: str | None = None          # ALMANAC_REDIS_URL: Celery broker/backend and study storage
    heartbeat_s: float = 5.0              # ALMANAC_HEARTBEAT_S: a queued trial's heartbeat interval
    grace_s: float = 30.0                 # ALMANAC_GRACE_S: silence after which a queued trial is failed

    @property
    def market_dir(self) -> Path:
        return self.home / "market"

    @property
    def catalog_path(self) -> Path:
        return self.home / "catalog.json"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def jobs_dir(self) -> Path:
        """The background-callback cache: private to the user (0700)."""
        return self.home / "jobs"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    def private_dir(self, path: Path) -> Path:
        """Create ``path`` (under home) with mode 0700 and return it."""
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        return path


def get_settings() -> Settings:
    home = Path(os.environ.get("ALMANAC_HOME") or REPO_ROOT / "data").expanduser().resolve()
    port_text = os.environ.get("PORT", "8050")
    try:
        port = int(port_text)
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise AlmanacError(f"PORT={port_text!r} is not a port number: set PORT to 1-65535") from None
    return Settings(
        home=home,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=port,
        debug=os.environ.get("ALMANAC_DEBUG", "").strip().lower() in _TRUE,
        limits=Limits.from_env(),
        allowed_hosts=tuple(h.strip().lower() for h in os.environ.get("ALMANAC_ALLOWED_HOSTS", "").split(",")
                            if h.strip()),
        redis_url=redis_url(),
        heartbeat_s=_seconds("ALMANAC_HEARTBEAT_S", 5.0),
        grace_s=_seconds("ALMANAC_GRACE_S", 30.0),
    )


def _seconds(var: str, default: float) -> float:
    text = os.environ.get(var, "").strip()
    if not text:
        return default
    try:
        value = float(text)
        if not 0 < value < 86400:
            raise ValueError
    except ValueError:
        raise AlmanacError(f"{var}={text!r} is not a number of seconds: unset it or give e.g. {default:g}") from None
    return value


def get_limits() -> Limits:
    """The input limits in force (read from the environment on each call)."""
    return Limits.from_env()



def mask_url(url: str | None) -> str:
    """``url`` with its password replaced by ``***`` (``redis://:***@host:6379/0``): the only
    form of the Redis URL that may appear in a log line, a page or a message."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
    except ValueError:
        return "<unparsable URL>"
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        user = cred.split(":", 1)[0] if ":" in cred else ""
        netloc = f"{user}:***@{host}" if (":" in cred or cred) else host
    return parts._replace(netloc=netloc).geturl()


def redis_url(text: str | None = None) -> str | None:
    """The checked ``ALMANAC_REDIS_URL`` (``redis://`` or ``rediss://``, host, optional port and
    db number), or None when unset (the embedded default)."""
    text = (os.environ.get("ALMANAC_REDIS_URL", "") if text is None else text).strip()
    if not text:
        return None
    hint = "give e.g. redis://localhost:6379/0 or redis://:PASSWORD@host:6379/0, or unset it"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise AlmanacError(f"ALMANAC_REDIS_URL={mask_url(text)!r} is not a Redis URL: {hint}") from None
    db = parts.path.lstrip("/")
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or (db and not db.isdigit()) \
            or (port is not None and not 0 < port < 65536):
        raise AlmanacError(f"ALMANAC_REDIS_URL={mask_url(text)!r} is not a Redis URL: {hint}")
    return text
