"""``bench scale``: the same study on 1 and 2 Celery workers, and the queue's cost per trial.

In a temporary folder: a ``redis-server`` (:mod:`bench.cluster`), a data home with a
seeded random-walk ES market (1000 days of 5-minute bars) and a small spec (3 folds,
LightGBM of 300 trees: a trial takes about a second, so the queue's share shows).
Features are built once by a warm-up run. Each repeat runs a 12-trial search (learning
rate, leaves, threshold; same seed, no pruning, so every path fits the same trials):

* **local** -- ``--jobs 1`` in this process (no Redis);
* **queue 1** -- ``ALMANAC_REDIS_URL`` set, one worker (``celery -A worker worker
  --concurrency 1``);
* **queue 2** -- the same with two workers: speed-up = wall queue 1 / wall queue 2
  (goal >= 1.6x; it needs the 2 cores free);
* queue overhead per trial = (wall queue 1 - wall local) / trials (goal <= 0.2 s);
* the CPU seconds per wall second the workers got (2 workers can only be 2x faster when
  they get 2 cores: on a shared machine the load average says how many they could get).

Workers are started and answering before the clock starts. Min and median over the
repeats; figures are printed, never asserted in tests.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

TRIALS = 12
TARGET_SPEEDUP = 1.6
TARGET_OVERHEAD_S = 0.2
SPEC = {
    "name": "bench-scale",
    "data": {"symbol": "ES", "start": "2016-01-04", "end": "2019-12-31"},
    "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
    "label": {"kind": "rest_of_day"},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 300}},
    "validation": {"n_splits": 3, "gap": 1, "min_train": 250},
    "backtest": {"threshold": 0.52, "cost_bps": 1.0},
}
SEARCH = {"model.params.learning_rate": {"float": [0.02, 0.2], "log": True},
          "model.params.num_leaves": {"int": [4, 32], "log": True},
          "backtest.threshold": {"float": [0.5, 0.6]}}


def _study(name: str, trials: int) -> dict:
    return {"name": name, "kind": "search", "spec": SPEC, "objective": {"metric": "roc_auc"},
            "budget": {"n_trials": trials}, "pruner": {"kind": "none"}, "search": SEARCH}


def _timed_study(name: str, trials: int, home: Path, url: str | None) -> float:
    from almanac.store import Store
    from ml.study import run_study

    if url:
        os.environ["ALMANAC_REDIS_URL"] = url
    else:
        os.environ.pop("ALMANAC_REDIS_URL", None)
    try:
        t0 = time.perf_counter()
        report = run_study(_study(name, trials), Store(home))
        wall = time.perf_counter() - t0
    finally:
        os.environ.pop("ALMANAC_REDIS_URL", None)
    if report["n_complete"] != trials:
        raise RuntimeError(f"study {name}: {report['n_complete']} of {trials} trials complete")
    return wall


def _cpu(workers) -> float:
    """CPU seconds of the workers' processes so far (their pools included)."""
    import psutil

    total = 0.0
    for w in workers:
        for pid in w.pids():
            try:
                t = psutil.Process(pid).cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
    return total


def run_bench(trials: int = TRIALS, repeat: int = 3, progress=None) -> dict:
    from almanac.spec import spec_from_dict
    from almanac.store import Store
    from bench import cluster
    from bench.synthetic import futures_minutes
    from ml.runner import run_experiment

    say = progress or (lambda f, s: None)
    walls: dict[str, list[float]] = {"local": [], "queue1": [], "queue2": []}
    cores: dict[str, list[float]] = {"queue1": [], "queue2": []}
    with tempfile.TemporaryDirectory(prefix="almanac-bench-scale-") as tmp:
        base = Path(tmp)
        home = base / "home"
        home.mkdir()
        store = Store(home)
        store.write("ES", "1min", futures_minutes("2016-01-04", days=1000, seed=11, step=5, overnight=False),
                    source="bench")
        home_env = patch.dict(os.environ, {"ALMANAC_HOME": str(home)})  # restored in the finally below
        home_env.start()
        redis = cluster.start_redis(base / "redis")
        try:
            say(0.02, "warm-up run (features cached)")
            run_experiment(spec_from_dict(SPEC), store=store)
            steps = 3 * repeat
            k = 0
            for r in range(repeat):
                say(k / steps, f"repeat {r + 1}: local --jobs 1")
                walls["local"].append(_timed_study(f"bench-local-{r}", trials, home, None))
                k += 1
                for n in (1, 2):
                    workers = cluster.start_workers(n, home, redis.url, base / "logs", prefix=f"r{r}n{n}w")
                    try:
                        cluster.wait_workers(redis.url, workers)
                        # one throwaway trial per worker: its libraries are imported before the clock starts
                        _timed_study(f"bench-warm-{r}-{n}", n, home, redis.url)
                        say(k / steps, f"repeat {r + 1}: queue, {n} worker(s)")
                        cpu0 = _cpu(workers)
                        wall = _timed_study(f"bench-queue{n}-{r}", trials, home, redis.url)
                        walls[f"queue{n}"].append(wall)
                        cores[f"queue{n}"].append((_cpu(workers) - cpu0) / wall)
                    finally:
                        cluster.stop_workers(workers)
                    k += 1
        finally:
            redis.stop()
            home_env.stop()
    say(1.0, "done")

    def stats(values):
        return {"min": min(values), "median": statistics.median(values)}

    speedups = [a / b for a, b in zip(walls["queue1"], walls["queue2"])]
    overheads = [(q - loc) / trials for q, loc in zip(walls["queue1"], walls["local"])]
    return {"trials": trials, "repeat": repeat, "cores": os.cpu_count(),
            "wall_local_s": stats(walls["local"]), "wall_queue1_s": stats(walls["queue1"]),
            "wall_queue2_s": stats(walls["queue2"]), "speedup_2_workers": stats(speedups),
            "queue_overhead_per_trial_s": stats(overheads),
            "worker_cores_used": {k: stats(v) for k, v in cores.items()},
            "load_average_1min": os.getloadavg()[0],
            "targets": {"speedup": TARGET_SPEEDUP, "overhead_s": TARGET_OVERHEAD_S}}


def main(args) -> int:
    from cli import print_json, progress_printer

    out = run_bench(args.trials, args.repeat, progress_printer("bench scale "))
    if args.json:
        print_json(out)
        return 0

    def f(d, unit="s"):
        return f"min {d['min']:.2f} {unit} · median {d['median']:.2f} {unit}"

    print(f"{out['trials']}-trial study, {out['repeat']} repeats, {out['cores']} cores")
    print(f"local --jobs 1      {f(out['wall_local_s'])}")
    print(f"queue, 1 worker     {f(out['wall_queue1_s'])}")
    print(f"queue, 2 workers    {f(out['wall_queue2_s'])}")
    print(f"speed-up 2 vs 1     {f(out['speedup_2_workers'], 'x')} (goal >= {TARGET_SPEEDUP}x)")
    print(f"queue overhead      {f(out['queue_overhead_per_trial_s'])} per trial vs local (goal <= "
          f"{TARGET_OVERHEAD_S} s)")
    c = out["worker_cores_used"]
    print(f"cores the workers got: 1 worker {f(c['queue1'], '')} · 2 workers {f(c['queue2'], '')} "
          f"(load average {out['load_average_1min']:.1f} at the end: other processes share the cores)")
    return 0
