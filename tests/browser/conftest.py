"""Browser-test fixtures: the app as its own process, and headless Debian Chromium.

* ``lab_server`` (session): ``python app.py`` started with ``sys.executable`` on a free
  port, ``HOST=127.0.0.1`` and a fresh, empty ``ALMANAC_HOME`` (so the app writes the
  sample data on start, as on a first run). Yields the base URL, the data home and the
  log file; stops the process (by its pid) at the end.
* ``chromium`` (session): Playwright's Chromium driving ``/usr/bin/chromium`` (never a
  downloaded browser). Missing browser: skip, or fail when ``CI=true``.
* ``page``: a fresh 1366×900 browser context; console errors and uncaught page errors
  are recorded and fail the test at teardown.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.ui import stop_app

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
VIEWPORT = {"width": 1366, "height": 900}
START_TIMEOUT_S = 240  # first start writes ~1 M sample minute bars (a few seconds here)


@dataclass(frozen=True)
class LabServer:
    url: str
    home: Path
    log_path: Path
    startup_seconds: float  # process start -> first 200 from "/"

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install it with `apt-get install chromium chromium-driver`"
        if os.environ.get("CI") == "true":
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    return str(CHROMIUM)


@contextlib.contextmanager
def start_lab(base: Path, **extra_env: str):
    """``python app.py`` on a free port with an empty data home under ``base`` (the sample
    data is written on start); yields its LabServer and stops it afterwards."""
    home = base / "home"
    home.mkdir()
    log_path = base / "app.log"
    port = _free_port()
    env = {**os.environ, "ALMANAC_HOME": str(home), "HOST": "127.0.0.1", "PORT": str(port),
           "ALMANAC_DEBUG": "0", "PYTHONUNBUFFERED": "1", **extra_env}
    url = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = None
    try:
        while time.monotonic() - t0 < START_TIMEOUT_S:
            if proc.poll() is not None:
                break
            if _answers(url + "/"):
                server = LabServer(url, home, log_path, time.monotonic() - t0)
                break
            time.sleep(0.2)
        if server is None:
            tail = LabServer(url, home, log_path, 0).log_tail()
            pytest.fail(f"the app did not answer on {url} within {START_TIMEOUT_S} s "
                        f"(exit code {proc.poll()}); log:\n{tail}")
        yield server
    finally:
        stop_app(proc)


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory, chromium_path) -> LabServer:
    with start_lab(tmp_path_factory.mktemp("lab")) as server:
        print(f"\napp answered after {server.startup_seconds:.1f} s (empty home, sample data written)")
        yield server


@pytest.fixture(scope="session")
def chromium(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextlib.contextmanager
def page_on(chromium, server: LabServer):
    """A fresh page on ``server``; any console error or uncaught exception in it fails the test."""
    context = chromium.new_context(viewport=VIEWPORT, base_url=server.url)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    yield pg
    context.close()
    if problems:
        pytest.fail("the browser reported errors:\n" + "\n".join(problems) +
                    f"\n--- app log ---\n{server.log_tail()}")


@pytest.fixture
def page(chromium, lab_server):
    """A fresh page on the session's lab (see :func:`page_on`)."""
    with page_on(chromium, lab_server) as pg:
        yield pg


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
