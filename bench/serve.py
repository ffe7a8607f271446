"""``python -m almanac bench serve``: throughput and latency of the REST service.

In a throw-away data home: a small synthetic market (``bench.synthetic.synthetic_store``),
one LightGBM run with the lab's default parameters (``rest_of_day``), marked active. Then
``python -m almanac serve`` is started as its own process on a free loopback port and
``--clients`` threads (default 8), each with one keep-alive connection, send
``--requests`` requests in all (default 2,000) per route and repeat:

* ``predict``: ``POST /api/v1/predict`` with one row (a day of the run's own dataset), each
  thread sending as soon as it has its answer (the most the service takes);
* ``predict@300``: the same at 300 requests/s offered (open schedule; latency counted from
  each request's due time, so queueing behind a slow answer counts);
* ``signal``: ``GET /api/v1/signal?symbol=ES&date=D`` (the features of day D are built at
  the first request, then memoized);
* ``batch``: ``POST /api/v1/predict/batch`` with 1,000 rows (``--requests`` / 20 requests).

It reports requests per second and p50 / p95 / p99 latency (ms) of each repeat, and the
min and median over the repeats. Any non-200 answer is an error, and errors fail the
benchmark. Goal: single-row ``/predict`` p95 <= 15 ms at 300 requests/s, and >= 300
requests/s at most, on 2 cores (the client threads share them with the service).
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_P95_MS, GOAL_RPS = 15.0, 300.0


def make_home(home: Path) -> dict:
    """Synthetic market + one active LightGBM run; returns {run_id, rows, dates}."""
    import pandas as pd

    from almanac import registry
    from almanac.store import Store
    from bench.synthetic import synthetic_store
    from ml.runner import run_experiment

    store = Store(home)
    synthetic_store(store, minute_start="2017-01-02", days=500)
    run = run_experiment({"data": {"symbol": "ES"}, "features": {"cross_assets": ["VIX"]},
                          "label": "rest_of_day", "model": {"kind": "lightgbm"},
                          "validation": {"n_splits": 3, "min_train": 200}}, store=store)
    registry.set_active(run["run_id"], home)
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    names = run["feature_names"]
    rows = [{c: (None if pd.isna(v) else float(v)) for c, v in rec.items()}
            for rec in data[names].to_dict("records")]
    return {"run_id": run["run_id"], "rows": rows, "dates": [f"{d:%Y-%m-%d}" for d in data.index]}


def start_service(home: Path, log_path: Path) -> tuple[subprocess.Popen, int]:
    from bench.ui import free_port

    port = free_port()
    env = {**os.environ, "ALMANAC_HOME": str(home)}
    env.pop("ALMANAC_API_TOKEN", None)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "almanac", "serve", "--port", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=2):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the service did not answer; see {log_path}")


def load(port: int, requests: list[tuple[str, str, bytes | None]], clients: int, rate: float | None = None) -> dict:
    """Send ``requests`` (method, path, body) from ``clients`` threads; latencies in ms.

    ``rate`` None: each thread sends its next request as soon as the last one is answered
    (the most the service takes). ``rate`` R: request k is due at ``k / R`` seconds (an open
    schedule shared by the threads) and its latency counts from when it was due, so a
    service that falls behind is charged its queueing too."""
    lat: list[float] = []
    app: list[float] = []   # Server-Timing: time inside the service
    errors: list[str] = []
    lock = threading.Lock()
    chunks = [list(enumerate(requests))[i::clients] for i in range(clients)]
    start = time.perf_counter() + 0.05

    def worker(mine):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        own, inside, bad = [], [], []
        headers = {"Content-Type": "application/json"}
        for k, (method, path, body) in mine:
            t0 = time.perf_counter()
            if rate:
                t0 = start + k / rate
                pause = t0 - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                timing = resp.getheader("server-timing") or ""
                if timing.startswith("app;dur="):
                    inside.append(float(timing[8:]))
                if resp.status != 200:
                    bad.append(f"{resp.status} {data[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                bad.append(type(exc).__name__)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            own.append((time.perf_counter() - t0) * 1000)
        conn.close()
        with lock:
            lat.extend(own)
            app.extend(inside)
            errors.extend(bad)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    t0 = start if rate else time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    q = statistics.quantiles(lat, n=100, method="inclusive")
    qa = statistics.quantiles(app, n=100, method="inclusive") if len(app) > 1 else [float("nan")] * 99
    return {"requests": len(lat), "seconds": wall, "rps": len(lat) / wall, "p50_ms": q[49], "p95_ms": q[94],
            "p99_ms": q[98], "app_p50_ms": qa[49], "app_p95_ms": qa[94], "errors": len(errors),
            "first_error": errors[0] if errors else None}


def run(requests: int = 2000, clients: int = 8, repeat: int = 3, progress=None) -> dict:
    step = progress or (lambda f, s: None)
    with tempfile.TemporaryDirectory(prefix="almanac-bench-serve-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        step(0.05, "synthetic market and one LightGBM run")
        made = make_home(home)
        rid, rows, dates = made["run_id"], made["rows"], made["dates"]
        proc, port = start_service(home, Path(tmp) / "serve.log")
        try:
            day = dates[-1]
            one = [json.dumps({"run_id": rid, "rows": [rows[i % len(rows)]]}).encode() for i in range(requests)]
            batch_body = json.dumps({"run_id": rid, "rows": [rows[i % len(rows)] for i in range(1000)]}).encode()
            routes = {
                "predict": [("POST", "/api/v1/predict", b) for b in one],
                f"predict@{GOAL_RPS:g}": [("POST", "/api/v1/predict", b) for b in one],
                "signal": [("GET", f"/api/v1/signal?symbol=ES&date={day}", None)] * requests,
                "batch": [("POST", "/api/v1/predict/batch", batch_body)] * max(requests // 20, clients),
            }
            load(port, routes["predict"][:200] + routes["signal"][:8], clients)  # warm-up: caches, memo
            gc.collect()
            gc.freeze()  # this process trained a model: keep its heap out of the client threads' collections
            out = {"requests": requests, "clients": clients, "repeat": repeat, "run_id": rid, "signal_date": day,
                   "routes": {}}
            for k, (name, reqs) in enumerate(routes.items()):
                step(0.2 + 0.8 * k / len(routes), f"load: {name}")
                rate = GOAL_RPS if "@" in name else None
                out["routes"][name] = [load(port, reqs, clients, rate) for _ in range(repeat)]
        finally:
            from bench.ui import stop_app

            stop_app(proc)
    return out


def summary(runs: list[dict]) -> dict:
    def mm(key):
        vals = [r[key] for r in runs]
        return {"min": min(vals), "median": statistics.median(vals), "max": max(vals)}

    keys = ("rps", "p50_ms", "p95_ms", "p99_ms", "app_p50_ms", "app_p95_ms")
    return {k: mm(k) for k in keys} | {"errors": sum(r["errors"] for r in runs)}


def format_report(result: dict) -> str:
    lines = [f"REST service: {result['clients']} client threads, keep-alive, {result['requests']:,} requests "
             f"per repeat and route ({result['repeat']} repeats); run {result['run_id']}",
             f"{'route':<12}{'req/s min':>10}{'median':>8}{'p50 ms':>8}{'p95 ms':>8}{'(min)':>7}{'p99 ms':>8}"
             f"{'in-app p50':>11}{'p95':>7}{'errors':>7}"]
    for name, runs in result["routes"].items():
        s = summary(runs)
        lines.append(f"{name:<12}{s['rps']['min']:>10.0f}{s['rps']['median']:>8.0f}{s['p50_ms']['median']:>8.2f}"
                     f"{s['p95_ms']['median']:>8.2f}{s['p95_ms']['min']:>7.2f}{s['p99_ms']['median']:>8.2f}"
                     f"{s['app_p50_ms']['median']:>11.2f}{s['app_p95_ms']['median']:>7.2f}{s['errors']:>7}")
    lines.append(f"latencies: medians over the repeats; predict = as fast as answered (closed loop), "
                 f"predict@{GOAL_RPS:g} = {GOAL_RPS:g} requests/s offered, latency from each request's due "
                 "time; batch = 1,000 rows per request; in-app = Server-Timing, the time inside the service (the rest is "
                 "waiting for a core: the client threads and the service share the machine's two)")
    most = summary(result["routes"]["predict"])
    paced = summary(result["routes"][f"predict@{GOAL_RPS:g}"])
    ok = paced["p95_ms"]["median"] <= GOAL_P95_MS and most["rps"]["median"] >= GOAL_RPS
    lines.append(f"goal single-row /predict p95 <= {GOAL_P95_MS:g} ms at {GOAL_RPS:g} req/s and >= {GOAL_RPS:g} "
                 f"req/s: {'met' if ok else 'NOT met'} (p95 {paced['p95_ms']['median']:.2f} ms at "
                 f"{paced['rps']['median']:.0f} req/s; at most {most['rps']['median']:.0f} req/s, p95 "
                 f"{most['p95_ms']['median']:.2f} ms there)")
    if result["routes"]["signal"]:
        lines.append(f"signal: day {result['signal_date']} (features memoized after the first request)")
    return "\n".join(lines)


def errors_of(result: dict) -> int:
    return sum(r["errors"] for runs in result["routes"].values() for r in runs)
