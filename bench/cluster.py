"""A throwaway Redis server and Celery workers as real processes (for the scale tests and
``bench scale``).

* :func:`start_redis` -- ``redis-server`` on a free loopback port with its own folder, no
  persistence (``--save '' --appendonly no``) unless asked; :meth:`Redis.stop` stops it.
* :func:`start_workers` -- N ``celery -A worker worker --concurrency 1 --pool prefork -n wK@%h``
  processes from the repository root with ``ALMANAC_HOME`` and ``ALMANAC_REDIS_URL`` set,
  each in its own process group; :func:`wait_workers` waits until they answer a ping;
  :func:`stop_workers` sends SIGTERM to each group, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.ui import free_port

ROOT = Path(__file__).resolve().parent.parent
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


@dataclass
class Redis:
    url: str
    port: int
    proc: subprocess.Popen
    folder: Path

    def stop(self) -> None:
        _stop([self.proc], group=False)


def start_redis(folder: Path, port: int | None = None, password: str | None = None,
                persist: bool = False) -> Redis:
    """``persist``: an append-only file in ``folder``, so a server started again on the same
    port and folder comes back with its data (a Redis restart)."""
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    cmd = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
           "--appendonly", "yes" if persist else "no", "--logfile", str(folder / "redis.log")]
    if password:
        cmd += ["--requirepass", password]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    auth = f":{password}@" if password else ""
    url = f"redis://{auth}127.0.0.1:{port}/0"
    import redis

    end = time.monotonic() + 20
    while True:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=1).ping()
            break
        except redis.exceptions.RedisError:
            if proc.poll() is not None or time.monotonic() > end:
                proc.kill()
                raise RuntimeError(f"redis-server did not start on port {port}") from None
            time.sleep(0.05)
    return Redis(url, port, proc, folder)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log_path: Path
    children: list[int] = field(default_factory=list)

    def pids(self) -> list[int]:
        """The worker's main process and its pool processes."""
        import psutil

        try:
            p = psutil.Process(self.proc.pid)
            return [p.pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill9(self) -> None:
        """SIGKILL the worker and its pool processes at once (a lost machine)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def start_workers(n: int, home: Path, url: str, logs: Path, prefix: str = "w", **env) -> list[Worker]:
    logs.mkdir(parents=True, exist_ok=True)
    base = {**os.environ, "ALMANAC_HOME": str(home), "ALMANAC_REDIS_URL": url, "ALMANAC_THREADS": "1",
            "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **env}
    out = []
    for k in range(1, n + 1):
        name = f"{prefix}{k}@%h"
        log_path = logs / f"{prefix}{k}.log"
        cmd = [sys.executable, "-m", "celery", "-A", "worker", "worker", "--concurrency", "1", "--pool", "prefork",
               "-n", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        with open(log_path, "ab") as fh:
            proc = subprocess.Popen(cmd, cwd=str(ROOT), env=base, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        out.append(Worker(name, proc, log_path))
    return out


def wait_workers(url: str, workers: list[Worker], timeout_s: float = 90) -> None:
    """Until every worker answers a ping (raises with the log tail otherwise)."""
    from ml.scale import client

    app = client(url)
    end = time.monotonic() + timeout_s
    want = len(workers)
    while time.monotonic() < end:
        dead = [w for w in workers if w.proc.poll() is not None]
        if dead:
            raise RuntimeError(f"worker {dead[0].name} exited: {dead[0].log_path.read_text()[-2000:]}")
        with contextlib.suppress(Exception):
            if len(app.control.ping(timeout=0.5) or []) >= want:
                return
        time.sleep(0.2)
    raise RuntimeError(f"workers did not answer in {timeout_s:.0f} s: {workers[0].log_path.read_text()[-2000:]}")


def stop_workers(workers: list[Worker], timeout_s: float = 15) -> None:
    _stop([w.proc for w in workers], group=True, timeout_s=timeout_s)


def _stop(procs: list[subprocess.Popen], group: bool, timeout_s: float = 10) -> None:
    def send(p, sig):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig) if group else p.send_signal(sig)

    for p in procs:
        if p.poll() is None:
            send(p, signal.SIGTERM)
    end = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            send(p, signal.SIGKILL)
            p.wait(timeout=10)
        if group:  # the pool processes of a worker killed first
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
