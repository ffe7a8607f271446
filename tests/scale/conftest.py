"""Scale-out fixtures: a real ``redis-server`` and real Celery workers (bench.cluster).

* ``redis_server`` (module): ``redis-server`` on a free port with its own temporary folder,
  no persistence, stopped afterwards. Missing binary: skip, or fail when ``CI=true``.
* ``workers``: ``workers(n, home, **env)`` starts n ``celery -A worker worker --concurrency 1
  --pool prefork -n wK@%h`` processes with ``ALMANAC_HOME`` and ``ALMANAC_REDIS_URL`` set,
  waits until they answer, and stops them (SIGTERM, then SIGKILL) after the test.
* ``tiny_home``: a data home with a seeded random-walk ES market (390 days), small enough
  that a trial (3 folds, 20 trees) takes about a second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import cluster

#: The heartbeat of these tests: a killed worker's trial fails after 3 s of silence.
FAST_HEARTBEAT = {"ALMANAC_HEARTBEAT_S": "0.5", "ALMANAC_GRACE_S": "3"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    if not Path(cluster.REDIS_SERVER).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is missing (apt-get install -y redis-server)")
        pytest.skip("redis-server is not installed")
    server = cluster.start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def workers(redis_server, tmp_path):
    started: list[cluster.Worker] = []

    def start(n: int, home: Path, prefix: str = "w", **env) -> list[cluster.Worker]:
        ws = cluster.start_workers(n, home, redis_server.url, tmp_path / "worker-logs", prefix=prefix,
                                   **{**FAST_HEARTBEAT, **env})
        started.extend(ws)
        cluster.wait_workers(redis_server.url, started)
        return ws

    yield start
    cluster.stop_workers(started)


def write_market(home: Path, seed: int = 11):
    from almanac.store import Store
    from bench.synthetic import futures_minutes

    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=390, seed=seed, step=5, overnight=False),
                source="test")
    return store


@pytest.fixture
def tiny_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    write_market(home)
    return home
