"""``python -m almanac bench all``: every row of the speed table that needs no browser, in one run.

Each figure is measured ``repeat`` times (at least 3) and printed as min and median; ratios
are taken within the run, so a burst of load elsewhere on a shared machine hits both sides.
Rows (issue 10's table):

* ``app_start``: ``python app.py`` on a data home with data (the sample data, written
  first, not timed), from process start to the first HTTP 200 of ``/``; and which heavy
  libraries ``import app`` loads (goal: none of scipy.stats, sklearn, lightgbm, xgboost, shap).
* ``train_vs_plain``: the whole ``almanac train`` process of the default spec with the
  features cached, vs :mod:`bench.plain` (same folds, same LightGBM parameters, a final
  refit, one thread), alternated; ratio of medians and per-pair min.
* ``pipeline``: in-process, a warm run's total / (five fold fits + final refit).
* ``features_10y`` / ``features_20y``: cold ``features build`` of 10 and 20 years of
  23-hour minute bars in fresh processes: time and peak RSS (:func:`bench.features.child_peak`).
* ``cross_asset_reads``: how often a build opens or reads each minute file, and which
  columns (a count, measured once: it does not vary).
* ``data_import``: ``data import`` of N minute bars (default 7M = 20 years) from CSV and
  from Parquet, each in a fresh process: time and peak RSS.
* /evaluate and one /backtest threshold-slider step are timed in headless Chromium by
  :mod:`bench.evaluate_page` when /usr/bin/chromium exists ("not measured" otherwise).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from unittest.mock import patch

from bench.ui import free_port, stop_app

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("scipy.stats", "sklearn", "lightgbm", "xgboost", "shap")
DEFAULT_SPEC = ROOT / "configs" / "es-rest-of-day-lgbm.yaml"
BROWSER_ROWS = ("/evaluate: navbar click to every chart drawn", "/evaluate: data sent by callbacks",
                "/backtest: one threshold-slider step")


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "n": len(values), "all": values}


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "ALMANAC_HOME": str(home), **extra}


def _py(code: str, home: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(home), capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sample_home(root: Path) -> Path:
    from almanac.sample import ensure_sample_data
    from almanac.store import Store

    home = root / "home"
    home.mkdir(exist_ok=True)
    ensure_sample_data(Store(home))
    return home


# ------------------------------------------------------------------ app start

def app_start_once(home: Path, timeout_s: float = 60.0) -> float:
    """Seconds from starting ``python app.py`` to its first HTTP 200 on ``/``."""
    port = free_port()
    env = _env(home, HOST="127.0.0.1", PORT=str(port), ALMANAC_DEBUG="0")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - t0 < timeout_s:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    if r.status == 200:
                        return time.perf_counter() - t0
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"app.py exited with {proc.returncode} before answering") from None
                time.sleep(0.02)
        raise RuntimeError(f"app.py did not answer within {timeout_s:.0f} s")
    finally:
        stop_app(proc)


def app_start(home: Path, repeat: int) -> dict:
    code = ("import sys, json\nimport app\n"
            f"print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + '.') for h in {HEAVY!r}))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(home), capture_output=True, text=True,
                         check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": stats([app_start_once(home) for _ in range(repeat)]),
            "heavy_loaded": sorted({m.split(".")[0] if not m.startswith("scipy.stats") else "scipy.stats"
                                    for m in loaded})}


# ------------------------------------------------------------------ train vs plain script

def _latest_run(home: Path) -> Path:
    runs = [p for p in (home / "runs").iterdir() if (p / "run.json").is_file()]
    return max(runs, key=lambda p: p.stat().st_mtime)


def train_vs_plain(home: Path, repeat: int, spec: Path = DEFAULT_SPEC) -> dict:
    from almanac.spec import load_spec
    from ml.models import make_model

    cli = [sys.executable, "-m", "almanac", "train", "--config", str(spec)]
    subprocess.run(cli, cwd=ROOT, env=_env(home), capture_output=True, check=True)  # fills the feature cache
    run_dir = _latest_run(home)
    run = json.loads((run_dir / "run.json").read_text())
    sp = load_spec(spec)
    model = make_model(sp.model.kind, run["task"], sp.model.params, seed=sp.seed)
    params_path = Path(home) / "plain-params.json"
    params_path.write_text(json.dumps(model.get_params()))
    plain = [sys.executable, "-m", "bench.plain", str(run_dir / "dataset.parquet"), str(run_dir / "run.json"),
             str(params_path)]
    trains, plains = [], []
    for _ in range(repeat):  # alternated
        for cmd, out in ((cli, trains), (plain, plains)):
            t = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, env=_env(home), capture_output=True, check=True)
            out.append(time.perf_counter() - t)
    ratios = [a / b for a, b in zip(trains, plains)]
    return {"train_s": stats(trains), "plain_s": stats(plains), "ratio": stats(ratios),
            "ratio_of_medians": statistics.median(trains) / statistics.median(plains)}


# ------------------------------------------------------------------ pipeline in-process

def pipeline_ratio(home: Path, repeat: int, spec: Path = DEFAULT_SPEC) -> dict:
    import pandas as pd

    from almanac.spec import load_spec
    from almanac.store import Store
    from ml import threads
    from ml.models import make_model
    from ml.runner import run_experiment

    threads.limit_threads()
    sp = load_spec(spec)
    with patch.dict(os.environ, {"ALMANAC_HOME": str(home)}):  # restored on the way out
        store = Store(home)
        run_experiment(sp, store=store)  # features cached
        totals, fits, ratios = [], [], []
        for _ in range(repeat):
            run = run_experiment(sp, store=store)
            data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
            X, y = data[run["feature_names"]], data["y"]
            known = y.notna().to_numpy()
            t = time.perf_counter()
            for f in run["folds"]:
                rows = known & (data.index >= pd.Timestamp(f["train_start"])) & (data.index <= pd.Timestamp(f["train_end"]))
                make_model(sp.model.kind, run["task"], sp.model.params, seed=sp.seed).fit(X[rows], y[rows].astype("int64"))
            make_model(sp.model.kind, run["task"], sp.model.params, seed=sp.seed).fit(X[known], y[known].astype("int64"))
            fit = time.perf_counter() - t
            total = run["timings"]["total"]
            totals.append(total)
            fits.append(fit)
            ratios.append(total / fit)
    return {"run_total_s": stats(totals), "fits_s": stats(fits), "ratio": stats(ratios)}


# ------------------------------------------------------------------ features

def features(years: int, repeat: int, home: Path | None, progress=None) -> dict:
    from bench.features import bench_store, fresh_cold_builds

    store = bench_store(years, home=home, progress=progress)
    runs = fresh_cold_builds(store, repeat)
    return {"bars": store.entry("BENCH", "1min").rows, "seconds": stats([r["seconds"] for r in runs]),
            "peak_rss_mb": stats([r["peak_rss_mb"] for r in runs]),
            "base_rss_mb": statistics.median(r["base_rss_mb"] for r in runs)}


def cross_asset_reads(root: Path) -> dict:
    """Files opened or read whole, and columns read, by one build with a minute-bar cross asset."""
    from contextlib import contextmanager

    from almanac.store import Store
    from bench.synthetic import synthetic_store
    from features import build_features

    class Spy(Store):
        def __init__(self, home):
            super().__init__(home)
            self.reads: dict[str, int] = {}
            self.columns: dict[str, set] = {}

        def _count(self, name, cols):
            self.reads[name] = self.reads.get(name, 0) + 1
            self.columns.setdefault(name, set()).update(cols)

        def read_bars(self, symbol, freq="1min", start=None, end=None, columns=None, entry=None):
            df = super().read_bars(symbol, freq, start, end, columns, entry)
            self._count(f"{symbol} {freq}", df.columns)
            return df

        if hasattr(Store, "open_parquet"):
            @contextmanager
            def open_parquet(self, entry):
                name = f"{entry.symbol} {entry.freq}"
                self.reads[name] = self.reads.get(name, 0) + 1
                with super().open_parquet(entry) as pf:
                    real = pf.read_row_groups

                    def read_row_groups(groups, columns=None, **kw):
                        self.columns.setdefault(name, set()).update(columns or pf.schema_arrow.names)
                        return real(groups, columns=columns, **kw)

                    pf.read_row_groups = read_row_groups
                    yield pf

    spy = Spy(root / "cross")
    synthetic_store(spy, minute_start="2017-06-01", days=250, step=1)
    build_features("ES", sets=("early_session", "cross_asset", "regime"), cross_assets=("NQ", "VIX"),
                   store=spy, use_cache=False)
    return {name: {"reads": n, "columns": sorted(spy.columns.get(name, ()))} for name, n in sorted(spy.reads.items())}


# ------------------------------------------------------------------ data import

def data_import(root: Path, rows: int, repeat: int) -> dict:
    from bench.data import _bars

    df = _bars(rows)
    files = {"csv": root / "bars.csv", "parquet": root / "bars.parquet"}
    df.to_csv(files["csv"], index=False)
    df.to_parquet(files["parquet"], index=False)
    del df
    out = {"rows": rows}
    for kind, path in files.items():
        secs, peaks = [], []
        for i in range(repeat):
            home = root / f"import-{kind}-{i}"
            code = ("import json, time\nfrom almanac.importer import import_file\nfrom almanac.store import Store\n"
                    "from bench.features import peak_rss_mb\n"
                    f"t = time.perf_counter(); import_file({str(path)!r}, 'BX', freq='1min', tz='UTC', "
                    f"store=Store({str(home)!r}))\n"
                    "print(json.dumps({'seconds': time.perf_counter() - t, 'peak': peak_rss_mb()[0]}))")
            r = _py(code, home)
            secs.append(r["seconds"])
            peaks.append(r["peak"])
        out[kind] = {"seconds": stats(secs), "peak_rss_mb": stats(peaks)}
    return out


# ------------------------------------------------------------------ all

def run_all(repeat: int = 3, rows: int = 7_000_000, feature_years=(10, 20), home: Path | None = None,
            progress=None) -> dict:
    step = progress or (lambda f, s: None)
    result: dict = {"repeat": repeat, "cpu_count": os.cpu_count(),
                    "load_avg_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    with tempfile.TemporaryDirectory(prefix="almanac-bench-all-") as tmp:
        tmp = Path(tmp)
        step(0.0, "sample data home")
        sample = _sample_home(tmp)
        step(0.05, "app start")
        result["app_start"] = app_start(sample, repeat)
        step(0.15, "almanac train vs a plain script")
        result["train_vs_plain"] = train_vs_plain(sample, repeat)
        step(0.3, "pipeline in-process")
        result["pipeline"] = pipeline_ratio(sample, repeat)
        for i, years in enumerate(feature_years):
            step(0.45 + 0.1 * i, f"features build, {years} years")
            result[f"features_{years}y"] = features(years, repeat, home, progress=None)
        step(0.65, "cross-asset reads")
        result["cross_asset_reads"] = cross_asset_reads(tmp)
        step(0.7, f"data import of {rows:,} minute bars")
        result["data_import"] = data_import(tmp, rows, repeat)
    missing = list(BROWSER_ROWS)
    if Path("/usr/bin/chromium").exists():
        step(0.85, "/evaluate and the /backtest slider in headless Chromium")
        from bench import evaluate_page

        result["evaluate_page"] = evaluate_page.measure(repeat, progress=lambda *a: None)
        missing = []
    result["load_avg_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    result["not_measured"] = {row: "needs a browser (Playwright + Chromium): not measured by bench all"
                              for row in missing}
    step(1.0, "done")
    return result


def _mm(s: dict, unit: str = "s", fmt: str = ".2f") -> str:
    return f"min {s['min']:{fmt}} {unit}, median {s['median']:{fmt}} {unit}".replace(" x", "x")


def format_report(r: dict) -> str:
    a, tp, pl, di = r["app_start"], r["train_vs_plain"], r["pipeline"], r["data_import"]
    lines = [f"bench all: {r['repeat']} repeats each, {r['cpu_count']} CPUs, load average "
             f"{r['load_avg_start'] or 0:.1f} at start, {r['load_avg_end'] or 0:.1f} at end",
             "| where | measured (min, median) | goal |", "|---|---|---|"]
    missing = r.get("not_measured", {row: "needs a browser" for row in BROWSER_ROWS})
    for row, why in missing.items():
        lines.append(f"| {row} | not measured ({why}) | see issue |")
    if "evaluate_page" in r:
        from bench import evaluate_page

        ev = r["evaluate_page"]
        for key, name in (("navbar", "navbar click to every chart drawn"), ("run", "selecting another run"),
                          ("fold", "selecting another fold")):
            sec, sent = ev[key]["seconds"], ev[key]["bytes"]
            lines.append(f"| /evaluate: {name} (default run, headless Chromium) | {_mm(sec)}; callbacks sent "
                         f"min {sent['min'] / 1e3:.0f} kB, median {sent['median'] / 1e3:.0f} kB | <= 2 s; <= 300 kB |")
        if "slider" in ev:
            sec, sent = ev["slider"]["seconds"], ev["slider"]["bytes"]
            lines.append(f"| /backtest: one threshold-slider step (default run, headless Chromium) | {_mm(sec)}; "
                         f"callbacks sent min {sent['min'] / 1e3:.0f} kB, median {sent['median'] / 1e3:.0f} kB | "
                         "<= 0.35 s; <= 60 kB |")
        del evaluate_page
    heavy = ", ".join(a["heavy_loaded"]) or "none"
    lines += [
        f"| `python app.py`, data home with data: start to first HTTP 200 | {_mm(a['seconds'])}; "
        f"`import app` loads: {heavy} | <= 1.5 s; none |",
        f"| `almanac train` (default spec, features cached) / plain script | ratio {_mm(tp['ratio'], 'x')} "
        f"(train {_mm(tp['train_s'])}; plain {_mm(tp['plain_s'])}) | <= 1.3x |",
        f"| pipeline in-process: run total / (five fold fits + final refit) | ratio {_mm(pl['ratio'], 'x')} "
        f"(run {_mm(pl['run_total_s'])}; fits {_mm(pl['fits_s'])}) | <= 1.8x |",
    ]
    for key in sorted(k for k in r if k.startswith("features_")):
        f = r[key]
        lines.append(f"| `features build`, {key[9:-1]} years ({f['bars']:,} bars), fresh process | peak RSS "
                     f"{_mm(f['peak_rss_mb'], 'MB', '.0f')}; time {_mm(f['seconds'])} "
                     f"({f['base_rss_mb']:.0f} MB after imports) | <= 300 MB (10 y), <= 400 MB (20 y) |")
    reads = "; ".join(f"{k}: {v['reads']}x ({', '.join(v['columns'])})" for k, v in r["cross_asset_reads"].items())
    lines.append(f"| cross-asset minute symbols (reads per file, columns) | {reads} | read once, only the columns used |")
    for kind in ("csv", "parquet"):
        x = di[kind]
        lines.append(f"| `data import` of {di['rows']:,} minute bars, {kind} | {_mm(x['seconds'])}; peak RSS "
                     f"{_mm(x['peak_rss_mb'], 'MB', '.0f')} | <= 25 s, <= 800 MB |")
    return "\n".join(lines)


def main(args) -> int:
    from cli import print_json, progress_printer

    result = run_all(repeat=args.repeat, rows=args.rows, feature_years=tuple(args.years),
                     home=Path(args.home) if args.home else None, progress=progress_printer("bench all "))
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0
