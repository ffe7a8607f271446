"""The feature benchmark: ``python -m almanac bench features [--years 10] [--json]``.

On seeded synthetic 1-minute bars of a 23-hour futures session (about 1,380 bars a day,
252 days a year: 3.5 M bars for 10 years; :func:`bench.synthetic.futures_minutes`),
stored once in a Parquet store under ``<ALMANAC_HOME>/cache/bench`` (or ``home``), it
measures in one run:

* ``bare_read_s``: ``pandas.read_parquet`` of the whole file (all columns);
* ``cold_s``: :func:`features.build_features` with an empty feature cache (reads the
  bars, builds early-session + regime features, writes the cache);
* ``warm_s``: the same call again (a cache hit);
* ``compute_s``: the vectorized early-session computation alone on bars in memory;
* ``apply_s``: the naive per-day ``groupby().apply`` (:mod:`bench.naive`) computing
  the same early-session features on the same bars in memory -- checked to give the same
  numbers (``max_abs_diff``);
* ``peak_rss_mb``: peak resident memory (:func:`peak_rss_mb`: ``VmHWM`` on Linux) of a
  fresh Python process that imports the lab and does the cold build (without writing the
  cache); ``base_rss_mb`` is that process's peak after imports, before building.

Times are the best of ``repeat`` runs (the naive one runs once), to damp noise from other
processes; the bare read, cold build and warm build are interleaved within each run so a
burst of load elsewhere slows all three alike. ``load_avg`` (1-minute load average at
the start) says how busy the machine was. The targets, as ratios within the run: cold <= 2x bare read, apply >= 10x
cold, warm <= 5 % of cold, peak memory < 1 GB.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from almanac.sessions import Session
from almanac.settings import get_settings
from almanac.store import Store

SYMBOL = "BENCH"
SETS = ("early_session", "regime")
CUTOFF = "10:15"
DAYS_PER_YEAR = 252
START = "2009-01-05"

Progress = Callable[[float, str], None]


def bench_store(years: int = 10, seed: int = 42, home: Path | None = None,
                progress: Progress | None = None) -> Store:
    """The benchmark's store, generating its minute bars the first time (seeded)."""
    root = Path(home) if home is not None else get_settings().cache_dir / "bench"
    store = Store(root / f"futures-{years}y-seed{seed}")
    days = years * DAYS_PER_YEAR
    if not store.has(SYMBOL, "1min"):
        from bench.synthetic import futures_minutes

        if progress:
            progress(0.0, f"generating {years} years of 1-minute bars (once)")
        bars = futures_minutes(START, days=days, seed=seed, overnight=True)
        store.write(SYMBOL, "1min", bars, source=f"synthetic benchmark bars, seed {seed}")
    return store


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _vectorized_early(bars: pd.DataFrame) -> pd.DataFrame:
    from features.early import early_features
    from features.regime import align_prev, daily_atr
    from features.sessions_table import daily_from_sessions, split_bars, table_from_daybars

    db = split_bars(bars, Session(), CUTOFF)
    table = table_from_daybars(db)
    atr = align_prev(daily_atr(daily_from_sessions(table)), table.index).iloc[:, 0]
    return early_features(db, table, atr.to_numpy()), atr


def peak_rss_mb() -> tuple[float, str]:
    """This process's peak resident memory in MB, and how it was measured.

    Linux: ``VmHWM`` of ``/proc/self/status`` (reset by ``exec``, unlike ``ru_maxrss``,
    which a child inherits from the parent it was forked from); elsewhere ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024, "VmHWM"
    except OSError:
        pass
    import resource

    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale, "ru_maxrss"


def child_peak(home: str) -> None:
    """Run in a fresh process: print JSON {base_rss_mb, peak_rss_mb, method, seconds} of a cold build."""
    from features import build_features

    base, method = peak_rss_mb()
    t = time.perf_counter()
    build_features(SYMBOL, cutoff=CUTOFF, sets=SETS, store=Store(home), use_cache=False)
    seconds = time.perf_counter() - t
    peak, _ = peak_rss_mb()
    print(json.dumps({"base_rss_mb": base, "peak_rss_mb": peak, "method": method, "seconds": seconds}))


def fresh_cold_builds(store: Store, repeat: int) -> list[dict]:
    """:func:`child_peak` in ``repeat`` fresh processes (peak memory is per process)."""
    code = f"from bench.features import child_peak; child_peak({str(store.home)!r})"
    out = []
    for _ in range(repeat):
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent.parent)
        out.append(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def run_bench(years: int = 10, repeat: int = 5, seed: int = 42, home: Path | None = None,
              progress: Progress | None = None) -> dict:
    """Run the benchmark; return the measurements, ratios and target verdicts."""
    from features import build_features
    from bench.naive import naive_early_features

    step = progress or (lambda f, s: None)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    store = bench_store(years, seed, home, progress)
    path = store.path(SYMBOL, "1min")
    entry = store.entry(SYMBOL, "1min")
    cache = store.home / "cache" / "features"

    step(0.2, "bare read, cold and warm builds (interleaved)")
    bares, colds, warms = [], [], []
    for _ in range(repeat):  # interleaved, so a burst of load elsewhere hits all three alike
        t = time.perf_counter()
        pd.read_parquet(path)
        bares.append(time.perf_counter() - t)
        shutil.rmtree(cache, ignore_errors=True)
        t = time.perf_counter()
        ft = build_features(SYMBOL, cutoff=CUTOFF, sets=SETS, store=store)
        colds.append(time.perf_counter() - t)
        t = time.perf_counter()
        hit = build_features(SYMBOL, cutoff=CUTOFF, sets=SETS, store=store)
        warms.append(time.perf_counter() - t)
        assert hit.from_cache and not ft.from_cache
    bare, cold, warm = min(bares), min(colds), min(warms)

    step(0.55, "vectorized vs naive per-day apply")
    bars = pd.read_parquet(path)
    compute = _best(lambda: _vectorized_early(bars), repeat)
    fast, atr = _vectorized_early(bars)
    t = time.perf_counter()
    slow = naive_early_features(bars, Session(), CUTOFF, atr)
    apply = time.perf_counter() - t
    fast = fast[slow.columns]
    diff = np.nanmax(np.abs(fast.to_numpy() - slow.to_numpy()))
    same = bool(np.array_equal(np.isnan(fast.to_numpy()), np.isnan(slow.to_numpy()))
                and np.allclose(fast.to_numpy(), slow.to_numpy(), rtol=1e-12, atol=1e-12, equal_nan=True))
    del bars

    step(0.85, "peak memory of a fresh process")
    code = f"from bench.features import child_peak; child_peak({str(store.home)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    step(1.0, "done")

    result = {
        "bars": entry.rows, "days": len(ft.frame), "features": ft.frame.shape[1], "file_mb": entry.bytes / 1e6,
        "cpu_count": os.cpu_count(), "load_avg": load, "repeat": repeat,
        "bare_read_s": bare, "cold_s": cold, "warm_s": warm, "compute_s": compute, "apply_s": apply,
        "apply_same_numbers": same, "max_abs_diff": float(diff),
        "peak_rss_mb": mem["peak_rss_mb"], "base_rss_mb": mem["base_rss_mb"],
        "memory_method": f"peak RSS ({mem['method']}) of a fresh process doing the cold build",
    }
    result["ratios"] = {
        "cold_over_bare_read": cold / bare, "apply_over_cold": apply / cold,
        "apply_over_compute": apply / compute, "warm_over_cold": warm / cold,
    }
    result["targets"] = {
        "cold <= 2x bare read": cold <= 2 * bare,
        "apply >= 10x cold": apply >= 10 * cold,
        "warm <= 5% of cold": warm <= 0.05 * cold,
        "peak memory < 1 GB": mem["peak_rss_mb"] < 1024,
        "naive apply gives the same numbers": same,
    }
    return result


def format_report(r: dict) -> str:
    x = r["ratios"]
    lines = [
        f"feature benchmark: {r['bars']:,} one-minute bars (23-hour session), {r['days']} days, "
        f"{r['features']} features, file {r['file_mb']:.1f} MB, {r['cpu_count']} CPUs "
        f"(load average {r['load_avg'] or 0:.1f} at start), best of {r['repeat']}",
        f"  bare pandas.read_parquet     {r['bare_read_s']:8.3f} s",
        f"  cold build (empty cache)     {r['cold_s']:8.3f} s   {x['cold_over_bare_read']:.2f}x bare read",
        f"  warm build (cache hit)       {r['warm_s']:8.3f} s   {100 * x['warm_over_cold']:.2f}% of cold",
        f"  vectorized compute only      {r['compute_s']:8.3f} s",
        f"  naive groupby().apply        {r['apply_s']:8.3f} s   {x['apply_over_cold']:.0f}x cold build, "
        f"{x['apply_over_compute']:.0f}x vectorized compute; same numbers: {r['apply_same_numbers']} "
        f"(max abs diff {r['max_abs_diff']:.1e})",
        f"  peak memory                  {r['peak_rss_mb']:8.0f} MB  ({r['memory_method']}; "
        f"{r['base_rss_mb']:.0f} MB after imports)",
        "targets:",
        *(f"  [{'PASS' if ok else 'FAIL'}] {name}" for name, ok in r["targets"].items()),
    ]
    return "\n".join(lines)
