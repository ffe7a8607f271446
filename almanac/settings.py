"""Settings from the environment.

``ALMANAC_HOME`` is the one folder the lab reads and writes (default: ``data/`` in the
repository). ``HOST`` (default 127.0.0.1), ``PORT`` (default 8050) and ``ALMANAC_DEBUG``
(default off) configure the web server. Settings are read on each call, so a test can
point ``ALMANAC_HOME`` at an empty folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from almanac.errors import AlmanacError

REPO_ROOT = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    home: Path
    host: str = "127.0.0.1"
    port: int = 8050
    debug: bool = False

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
    )

