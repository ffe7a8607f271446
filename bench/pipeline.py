"""``bench pipeline``: time every stage of the default experiment on the sample data.

:func:`run_bench` writes the sample data into a temporary ``ALMANAC_HOME`` (not timed
as part of the pipeline), runs the default spec ``configs/es-rest-of-day-lgbm.yaml``
twice -- *cold* (features computed) and *warm* (features from the cache, as on every rerun
of a spec) -- and then times fitting the five fold models alone on the same rows (same
model, same parameters, same threads). Targets: a whole run at most 3x the fold fits;
SHAP and writing not dominating (each well under half of the run).

:func:`main` is the command-line entry (``python -m almanac bench pipeline [--json]``).
Figures are printed, never asserted in tests (docs/design.md §9).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from unittest.mock import patch

import pandas as pd

from almanac.settings import REPO_ROOT

DEFAULT_SPEC = REPO_ROOT / "configs" / "es-rest-of-day-lgbm.yaml"
#: Stages in the order the runner goes through them (run.json "timings").
STAGES = ("validate", "features", "labels", "fit", "predict", "shap", "drift", "evaluation",
          "permutation_importance", "backtest", "baselines", "final_model", "writing")
TARGET_RATIO = 3.0


def _fold_fits(run: dict, spec) -> list[float]:
    """Seconds to fit each fold's model alone, on the run's own rows and folds."""
    from ml.models import make_model

    folder = Path(run["path"])
    data = pd.read_parquet(folder / "dataset.parquet")
    X, y = data[run["feature_names"]], data["y"].astype("int64")
    out = []
    for f in run["folds"]:
        rows = (data.index >= pd.Timestamp(f["train_start"])) & (data.index <= pd.Timestamp(f["train_end"]))
        model = make_model(spec.model.kind, run["task"], spec.model.params, seed=spec.seed)
        t = time.perf_counter()
        model.fit(X[rows], y[rows])
        out.append(time.perf_counter() - t)
    return out


def run_bench(spec_path: Path | str = DEFAULT_SPEC, progress=None) -> dict:
    """The benchmark figures as a dict (see the module doc)."""
    from almanac.sample import ensure_sample_data
    from almanac.spec import load_spec
    from almanac.store import Store
    from ml import threads
    from ml.runner import run_experiment

    threads.limit_threads()
    step = progress or (lambda f, s: None)
    spec = load_spec(spec_path)
    with tempfile.TemporaryDirectory(prefix="almanac-bench-") as tmp:
        with patch.dict(os.environ, {"ALMANAC_HOME": tmp}):  # everything the run touches stays in the temp home
            store = Store(tmp)
            step(0.0, "generating the sample data")
            t = time.perf_counter()
            ensure_sample_data(store)
            setup = time.perf_counter() - t
            runs = []
            for i, name in enumerate(("cold", "warm")):
                runs.append(run_experiment(spec, store=store,
                                           progress=lambda f, s, i=i, n=name: step(0.1 + 0.4 * i + 0.4 * f,
                                                                                  f"{n} run: {s}")))
            step(0.9, "fold fits alone")
            fits = _fold_fits(runs[-1], spec)
    step(1.0, "done")
    fit_total = sum(fits)
    result = {
        "spec": str(spec_path), "model": spec.model.kind, "n_splits": spec.validation.n_splits,
        "threads": threads.N_THREADS, "rows": runs[0]["n_rows"], "features": len(runs[0]["feature_names"]),
        "oof_rows": runs[0]["n_oof"], "sample_data_seconds": setup,
        "fold_fits_alone": fits, "fold_fits_alone_total": fit_total, "target_ratio": TARGET_RATIO,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for run, name in zip(runs, ("cold", "warm"), strict=True):
        t = run["timings"]
        total = t["total"]
        result[name] = {
            "stages": {s: t.get(s, 0.0) for s in STAGES}, "other": total - sum(t.get(s, 0.0) for s in STAGES),
            "total": total, "ratio_to_fold_fits": total / fit_total,
            "shap_share": t.get("shap", 0.0) / total, "writing_share": t.get("writing", 0.0) / total,
            "meets_target": total <= TARGET_RATIO * fit_total,
        }
    return result


def format_report(r: dict) -> str:
    lines = [f"Pipeline benchmark: {Path(r['spec']).name} on the sample data — {r['rows']} days x "
             f"{r['features']} features, {r['n_splits']} walk-forward folds ({r['oof_rows']} out-of-fold days), "
             f"{r['model']}, {r['threads']} thread(s)",
             f"setup (not timed below): sample data written to a temporary ALMANAC_HOME in "
             f"{r['sample_data_seconds']:.1f} s",
             "",
             f"{'stage':<24}{'cold run':>10}{'warm run':>10}   share (warm)"]
    warm_total = r["warm"]["total"]
    for s in STAGES:
        c, w = r["cold"]["stages"][s], r["warm"]["stages"][s]
        lines.append(f"{s:<24}{c:>9.2f}s{w:>9.2f}s   {w / warm_total:6.1%}")
    lines.append(f"{'other':<24}{r['cold']['other']:>9.2f}s{r['warm']['other']:>9.2f}s")
    lines.append(f"{'total':<24}{r['cold']['total']:>9.2f}s{warm_total:>9.2f}s")
    lines.append("")
    fits = ", ".join(f"{x:.2f}" for x in r["fold_fits_alone"])
    lines.append(f"fitting the {len(r['fold_fits_alone'])} fold models alone: {r['fold_fits_alone_total']:.2f} s "
                 f"({fits})")
    for name in ("cold", "warm"):
        x = r[name]
        verdict = "meets" if x["meets_target"] else "MISSES"
        lines.append(f"{name} run / fold fits = {x['ratio_to_fold_fits']:.1f}x  ({verdict} the target "
                     f"<= {r['target_ratio']:.0f}x); SHAP {x['shap_share']:.0%}, writing {x['writing_share']:.0%} "
                     "of the run")
    lines.append(f"peak memory (RSS): {r['peak_rss_mb']:.0f} MB")
    lines.append("stages: features = build_features (cold: computed, warm: from the cache); fit/predict/shap/"
                 "drift = summed over the folds (SHAP on each fold's sampled test days, run.json shap); "
                 "permutation importance: computed on demand, not part of the run (ml.explain); baselines = ml.baselines with the bootstrap; "
                 "final_model = the wait for the refit on all rows + save, which runs in a second thread beside evaluation, backtest and baselines")
    return "\n".join(lines)


def main(args) -> int:
    """``bench pipeline [--json]``: run :func:`run_bench` and print the figures."""
    from cli import print_json, progress_printer

    result = run_bench(getattr(args, "spec", None) or DEFAULT_SPEC, progress=progress_printer("bench "))
    if getattr(args, "json", False):
        print_json(result)
    else:
        print(format_report(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":  # pragma: no cover - manual use: python -m bench.pipeline [--json]
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    raise SystemExit(main(parser.parse_args()))


__all__ = ["run_bench", "format_report", "main", "DEFAULT_SPEC", "STAGES"]
