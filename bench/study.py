"""``bench study``: what a study costs on top of its runs, what ``--jobs 2`` and pruning save.

In a temporary ``ALMANAC_HOME`` with the sample data (features built once by a warm-up
run, so every trial reads them from the cache), each repeat runs three studies of N
trials (default 20) on the default spec (``configs/es-rest-of-day-lgbm.yaml``), searching
the learning rate, the leaves per tree and the backtest threshold with the same seed:

* **B** -- ``--jobs 1``, no pruning. Per-trial overhead = (study wall time - the time
  spent inside ``run_experiment``) / trials, and the ratio wall / time in
  ``run_experiment`` (goal <= 1.1x). The time inside is measured around each
  ``run_experiment`` call by :func:`ml.study.run_trial` (trial attribute ``run_seconds``).
* **C** -- ``--jobs 2``, no pruning: the same work in two processes; speed-up = wall B /
  wall C (goal >= 1.6x on 2 cores; it needs the 2 cores free: the CPU seconds per wall
  second of each study say how many cores it actually got).
* **A** -- ``--jobs 1`` with the median pruner (5 start-up trials, 1 warm-up fold): fold
  fits = the folds each trial fitted (a complete trial all of them, a pruned one those
  before it stopped), against B's; and both studies' best values (the same seed proposes
  the same first trials).

Figures are printed (min and median over the repeats), never asserted in tests.
"""

from __future__ import annotations

import os
import resource
import statistics
import tempfile
import time
from unittest.mock import patch

from almanac.settings import REPO_ROOT

DEFAULT_SPEC = REPO_ROOT / "configs" / "es-rest-of-day-lgbm.yaml"
SEARCH = {"model.params.learning_rate": {"float": [0.01, 0.2], "log": True},
          "model.params.num_leaves": {"int": [4, 64], "log": True},
          "backtest.threshold": {"float": [0.5, 0.6]}}
TARGET_OVERHEAD = 1.1
TARGET_SPEEDUP = 1.6


def _study(name: str, spec: dict, trials: int, pruner: dict) -> dict:
    return {"name": name, "kind": "search", "spec": spec, "objective": {"metric": "roc_auc"},
            "budget": {"n_trials": trials}, "pruner": pruner, "search": SEARCH}


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the --jobs workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _fits(report: dict, n_splits: int) -> int:
    return sum(n_splits if t["state"] == "complete" else int(t.get("folds") or 0) for t in report["trials"])


def run_bench(trials: int = 20, repeat: int = 3, spec_path=DEFAULT_SPEC, progress=None) -> dict:
    from almanac.sample import ensure_sample_data
    from almanac.spec import load_spec
    from almanac.store import Store
    from ml import threads
    from ml.runner import run_experiment
    from ml.study import run_study

    step = progress or (lambda f, s: None)
    threads.limit_threads()
    spec = load_spec(spec_path)
    base = spec.to_dict()
    rows = []
    with tempfile.TemporaryDirectory(prefix="almanac-bench-study-") as tmp:
        with patch.dict(os.environ, {"ALMANAC_HOME": tmp}):  # restored on the way out
            store = Store(tmp)
            step(0.0, "generating the sample data")
            ensure_sample_data(store)
            t = time.perf_counter()
            run_experiment(spec, store=store)  # warm-up: features into the cache
            warm = time.perf_counter() - t
            total = 3 * repeat
            for r in range(repeat):
                out = {}
                for k, (key, jobs, pruner) in enumerate((("B", 1, {"kind": "none"}), ("C", 2, {"kind": "none"}),
                                                         ("A", 1, {"kind": "median"}))):
                    done = 3 * r + k

                    def prog(f, s, done=done, key=key):
                        step((done + f) / total, f"repeat {r + 1}/{repeat} study {key}: {s}")

                    t, cpu = time.perf_counter(), _cpu()
                    rep = run_study(_study(f"bench-{key.lower()}-{r}", base, trials, pruner), store, jobs=jobs,
                                    progress=prog)
                    out[key] = {"wall": time.perf_counter() - t, "cpu": _cpu() - cpu, "report": rep}
                b, c, a = out["B"], out["C"], out["A"]
                inside = sum(t["run_seconds"] or 0.0 for t in b["report"]["trials"])
                rows.append({
                    "wall_jobs1": b["wall"], "wall_jobs2": c["wall"], "speedup": b["wall"] / c["wall"],
                    "cores_used_jobs1": b["cpu"] / b["wall"], "cores_used_jobs2": c["cpu"] / c["wall"],
                    "inside_run_experiment": inside, "overhead_ratio": b["wall"] / inside,
                    "overhead_per_trial_s": (b["wall"] - inside) / trials,
                    "fits_no_pruning": _fits(b["report"], spec.validation.n_splits),
                    "fits_pruning": _fits(a["report"], spec.validation.n_splits),
                    "pruned": a["report"]["n_pruned"],
                    "best_no_pruning": b["report"]["best"]["value"], "best_pruning": a["report"]["best"]["value"],
                    "wall_pruning": a["wall"],
                    "complete_jobs2": c["report"]["n_complete"],
                })
    step(1.0, "done")

    def agg(key):
        xs = [r[key] for r in rows]
        return {"min": min(xs), "median": statistics.median(xs), "max": max(xs)}

    keys = ("wall_jobs1", "wall_jobs2", "speedup", "cores_used_jobs1", "cores_used_jobs2", "overhead_ratio", "overhead_per_trial_s", "fits_no_pruning",
            "fits_pruning", "pruned", "best_no_pruning", "best_pruning", "wall_pruning")
    return {"spec": str(spec_path), "trials": trials, "repeat": repeat, "n_splits": spec.validation.n_splits,
            "warmup_run_s": warm, "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "repeats": rows,
            **{k: agg(k) for k in keys},
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "targets": {"overhead_ratio": TARGET_OVERHEAD, "speedup": TARGET_SPEEDUP}}


def format_report(r: dict) -> str:
    def mm(key, fmt="{:.2f}"):
        return f"min {fmt.format(r[key]['min'])}, median {fmt.format(r[key]['median'])}"

    saved = [1 - x["fits_pruning"] / x["fits_no_pruning"] for x in r["repeats"]]
    lines = [
        f"Study benchmark: {r['trials']} trials of {os.path.basename(r['spec'])} (LightGBM, {r['n_splits']} folds) "
        f"searching learning_rate, num_leaves, threshold; {r['repeat']} repeat(s); {r['cpus']} CPUs, load average "
        f"{r['load_avg'][0]:.1f} at the end",
        f"one warm-up run_experiment: {r['warmup_run_s']:.1f} s (features into the cache)",
        "",
        f"per-trial overhead (jobs 1, no pruning): wall / time inside run_experiment = {mm('overhead_ratio')}x "
        f"(goal <= {r['targets']['overhead_ratio']}x); {mm('overhead_per_trial_s', '{:.3f}')} s per trial",
        f"wall time, jobs 1: {mm('wall_jobs1', '{:.1f}')} s; jobs 2: {mm('wall_jobs2', '{:.1f}')} s; "
        f"speed-up {mm('speedup')}x (goal >= {r['targets']['speedup']}x); CPU seconds per wall second (cores the "
        f"machine gave): jobs 1 {mm('cores_used_jobs1')}, jobs 2 {mm('cores_used_jobs2')}",
        f"pruning (median, 5 start-up trials, 1 warm-up fold): fold fits {mm('fits_pruning', '{:.0f}')} vs "
        f"{mm('fits_no_pruning', '{:.0f}')} without ({min(saved):.0%}..{max(saved):.0%} saved), "
        f"{mm('pruned', '{:.0f}')} trials pruned",
        f"best ROC AUC with pruning {mm('best_pruning', '{:.4f}')}; without {mm('best_no_pruning', '{:.4f}')}",
        f"peak memory (RSS) of the bench process: {r['peak_rss_mb']:.0f} MB",
    ]
    return "\n".join(lines)


def main(args) -> int:
    from cli import print_json, progress_printer

    result = run_bench(trials=args.trials, repeat=args.repeat, progress=progress_printer("bench "))
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0


__all__ = ["run_bench", "format_report", "main"]
