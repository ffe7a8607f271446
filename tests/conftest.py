"""Shared fixtures (every test that writes gets its own empty data home) and the `texts` helper of page tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty ALMANAC_HOME for one test."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("ALMANAC_HOME", str(h))
    return h


@pytest.fixture
def store(home):
    from almanac.store import Store

    return Store(home)


@pytest.fixture(scope="session")
def page_module(tmp_path_factory):
    """``page_module("train")`` -> the module ``pages.train``, registered by importing ``app``
    once per test session (pages cannot load before the app; the app's background-job
    cache goes into a temporary home, not the repository's data/)."""
    import importlib
    import sys

    mp = pytest.MonkeyPatch()
    mp.setenv("ALMANAC_HOME", str(tmp_path_factory.mktemp("app-home")))
    try:
        importlib.import_module("app")
    finally:
        mp.undo()
    return lambda name: sys.modules[f"pages.{name}"]


@pytest.fixture(scope="session", autouse=True)
def _one_thread_per_library():
    """Model libraries use the lab's thread setting (ml.threads), never all cores by chance."""
    from ml.threads import limit_threads

    limit_threads()


def texts(node) -> str:
    """All text inside a Dash component tree, space-joined (page callback tests import it)."""
    if node is None:
        return ""
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, (list, tuple)):
        return " ".join(texts(n) for n in node)
    return texts(getattr(node, "children", None))


def load_test_module(path, name: str | None = None):
    """Another test file, loaded by path under its own module name (its helpers and fixtures),
    whatever the import mode or package layout of the tests folder."""
    import importlib.util
    from pathlib import Path

    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or f"_almanac_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
