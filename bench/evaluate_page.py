"""Benchmark: the /evaluate page and the /backtest slider in headless Chromium, on the default run.

Usage::

    .venv/bin/python -m bench.evaluate_page [--repeat 3] [--home DIR] [--keep] [--detail] [--json]

What it does:

1. Writes the sample data into a fresh temporary ``ALMANAC_HOME`` (or ``--home``) and
   trains the default spec (``configs/es-rest-of-day-lgbm.yaml``) twice with the command
   line (``python -m almanac train``): the newest run is the one /evaluate opens with, the
   other one is "another run".
2. ``--repeat`` times (at least 3), each with a freshly started ``python app.py`` (so no
   server-side cache survives from one repeat to the next) and a fresh browser context
   (Debian's ``/usr/bin/chromium``, the launch flags of the browser tests):

   * **navbar**: open ``/``, click "Evaluate" in the navbar, stop the clock when every
     chart of the page is drawn (each graph holds plotly's ``_fullData``, no callback is
     in flight, no loading spinner shows);
   * **another run**: choose the other run in the run picker; every chart redrawn;
   * **another fold**: choose "Fold 3"; every chart that depends on the fold redrawn;
   * **slider**: on /backtest, one notch of the threshold slider (the arrow key), until
     the four charts it changes are redrawn; the median of :data:`SLIDER_STEPS` steps.

   Bytes are the decoded response bodies of the Dash callbacks
   (``/_dash-update-component``) between the action and the last chart drawn.
3. Prints every timing, then min and median per row (goal: ≤ 2 s for each, ≤ 300 kB for
   the navbar click). ``--detail`` prints each callback's outputs, server time and bytes,
   and each ``Plotly.react``/``newPlot`` call's duration in the page.

A benchmark script, not a test: it asserts nothing. :func:`measure` returns the figures
as a dict (for ``bench all``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.ui import CHROMIUM, CHROMIUM_ARGS, start_app, stop_app  # noqa: E402

DEFAULT_SPEC = ROOT / "configs" / "es-rest-of-day-lgbm.yaml"
VIEWPORT = {"width": 1366, "height": 900}
TIMEOUT_MS = 180_000
#: The charts of a binary run's /evaluate page, and those that follow the fold selector.
GRAPHS = ("confusion-matrix-graph", "roc-graph", "calibration-graph", "evaluate-cv-graph", "shap-summary-graph",
          "shap-bar-graph", "shap-dependence-graph", "drift-graph", "psi-graph")  # permutation: on demand
FOLD_GRAPHS = ("confusion-matrix-graph", "roc-graph", "calibration-graph", "shap-summary-graph", "shap-bar-graph",
               "shap-dependence-graph", "drift-graph", "psi-graph")
#: The /backtest charts one threshold-slider step redraws (the heatmap and deciles do not change).
SLIDER_GRAPHS = ("equity-curve-graph", "backtest-drawdown-graph", "backtest-rolling-graph", "backtest-monthly-graph")
#: Slider steps timed per repeat (each one notch, 0.01, to the right).
SLIDER_STEPS = 3
CALLBACK_PATH = "/_dash-update-component"

# Plotly's draw calls timed in the page (plotly.js is loaded lazily by dcc.Graph: the wrapper
# is installed when window.Plotly is first assigned)
TIMING_SCRIPT = """(() => {
  window.__plotCalls = [];
  let P;
  const wrap = (obj, name) => { const f = obj[name]; if (!f || f.__timed) return;
    const g = function (gd, ...rest) { const t0 = performance.now(); const r = f.call(this, gd, ...rest);
      const id = (gd && gd.id) || (gd && gd.parentElement && gd.parentElement.id) || '?';
      const done = () => window.__plotCalls.push({fn: name, id, ms: performance.now() - t0,
                                                  sync: syncMs});
      const syncMs = performance.now() - t0;
      if (r && r.then) r.then(done, done); else done(); return r; };
    g.__timed = true; obj[name] = g; };
  Object.defineProperty(window, 'Plotly', { configurable: true,
    get() { return P; }, set(v) { P = v; if (v) { wrap(v, 'newPlot'); wrap(v, 'react'); } } });
})();"""

# every chart in ``ids`` drawn anew: present, holding data that was not there before the
# action (``window.__old``), and no loading spinner left
DRAWN = """(ids) => { const old = window.__old || new WeakSet();
  if (document.querySelector('._dash-loading-callback, .dash-spinner, .dash-default-spinner')) return false;
  return ids.every(id => { const g = document.querySelector('#' + id + ' .js-plotly-plot') ||
                                     document.querySelector('#' + id + '.js-plotly-plot');
    return g && g._fullData && g._fullData.length && !old.has(g._fullData); }); }"""
MARK_OLD = """(ids) => { window.__old = new WeakSet();
  for (const id of ids) { const g = document.querySelector('#' + id + ' .js-plotly-plot') ||
                                     document.querySelector('#' + id + '.js-plotly-plot');
    if (g && g._fullData) window.__old.add(g._fullData); } }"""


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "n": len(values), "all": values}


def prepare_home(home: Path, spec: Path = DEFAULT_SPEC) -> list[str]:
    """Sample data + the default spec trained twice; the run ids, newest first."""
    from almanac import registry
    from almanac.sample import ensure_sample_data
    from almanac.store import Store

    home.mkdir(parents=True, exist_ok=True)
    ensure_sample_data(Store(home))
    env = {**__import__("os").environ, "ALMANAC_HOME": str(home)}
    have = [r["run_id"] for r in registry.list_runs(home)]
    for _ in range(max(0, 2 - len(have))):
        done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(spec)], cwd=ROOT, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"training failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    return [r["run_id"] for r in registry.list_runs(home)][:2]


class Callbacks:
    """Dash callback requests of a page: how many are in flight, bytes and per-call detail."""

    def __init__(self, page):
        self.pending = 0
        self.calls: list[dict] = []
        self.t0 = time.perf_counter()
        self.started: dict = {}
        page.on("request", self._start)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._failed)

    @staticmethod
    def _is_callback(request) -> bool:
        return request.method == "POST" and CALLBACK_PATH in request.url

    def _start(self, request):
        if self._is_callback(request):
            self.pending += 1
            self.started[id(request)] = time.perf_counter() - self.t0

    def _failed(self, request):
        if self._is_callback(request):
            self.pending -= 1

    def _done(self, request):
        if not self._is_callback(request):
            return
        self.pending -= 1
        try:
            body = request.response().body()
            size = len(body)
        except Exception:  # noqa: BLE001 - a benchmark records what it can
            size = 0
        try:
            outputs = (request.post_data_json or {}).get("output", "?")
        except Exception:  # noqa: BLE001
            outputs = "?"
        timing = request.timing
        self.calls.append({"output": str(outputs)[:100], "bytes": size,
                           "at": (self.started.get(id(request), float("nan")), time.perf_counter() - self.t0),
                           "server_ms": max(0.0, timing.get("responseStart", 0) - timing.get("requestStart", 0)),
                           "total_ms": max(0.0, timing.get("responseEnd", 0))})

    def reset(self) -> None:
        self.calls = []
        self.t0 = time.perf_counter()

    def bytes(self) -> int:
        return sum(c["bytes"] for c in self.calls)


def _wait_drawn(page, cbs: Callbacks, ids, t0: float, timeout_ms: int = TIMEOUT_MS) -> float:
    """Seconds from ``t0`` until every chart in ``ids`` is drawn anew and no callback runs."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    deadline = t0 + timeout_ms / 1000
    while True:
        try:
            page.wait_for_function(DRAWN, arg=list(ids), polling="raf",
                                   timeout=max(1000, int((deadline - time.perf_counter()) * 1000)))
        except PlaywrightTimeout:
            missing = [i for i in ids if not page.evaluate(DRAWN, [i])]
            raise TimeoutError(f"charts not drawn after {timeout_ms / 1000:.0f} s: {missing}") from None
        seconds = time.perf_counter() - t0
        if cbs.pending <= 0:
            return seconds
        page.wait_for_timeout(20)  # a callback still in flight: its chart may change again
        if time.perf_counter() > deadline:
            raise TimeoutError("callbacks still running after the charts were drawn")


def _select(page, dropdown_id: str, option: str | int) -> None:
    """Open the dropdown and click the option of that text (or at that position)."""
    page.click(f"#{dropdown_id}")
    options = page.get_by_role("option")
    (options.nth(option) if isinstance(option, int) else options.filter(has_text=option).first).click()


def one_repeat(browser, home: Path, runs: list[str], log_path: Path, detail: bool = False) -> dict:
    proc, url = start_app(home, log_path)
    try:
        context = browser.new_context(viewport=VIEWPORT, base_url=url)
        context.add_init_script(TIMING_SCRIPT)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        cbs = Callbacks(page)
        page.goto("/")
        page.wait_for_load_state("networkidle")
        out = {}
        steps = []

        def step(name, action, ids):
            page.evaluate(MARK_OLD, list(GRAPHS))
            page.evaluate("() => { window.__plotCalls = []; }")
            cbs.reset()
            t0 = time.perf_counter()
            action()
            seconds = _wait_drawn(page, cbs, ids, t0)
            page.wait_for_timeout(300)  # late callbacks would count in bytes
            out[name] = {"seconds": seconds, "bytes": cbs.bytes()}
            if detail:
                steps.append((name, list(cbs.calls), page.evaluate("() => window.__plotCalls")))

        step("navbar", lambda: page.click("#almanac-navbar a[href='/evaluate']"), GRAPHS)
        # runs are listed newest first: the second option is the other run (two runs trained
        # in the same minute have the same label)
        step("run", lambda: _select(page, "run-select", 1), GRAPHS)
        step("fold", lambda: _select(page, "evaluate-fold", "Fold 3"), FOLD_GRAPHS)
        # the same click again, server caches and plotly.js warm (reported, not a goal row)
        page.click("#almanac-navbar a[href='/']")
        page.wait_for_load_state("networkidle")
        step("navbar_again", lambda: page.click("#almanac-navbar a[href='/evaluate']"), GRAPHS)
        # /backtest: one notch of the threshold slider (keyboard), each chart it changes redrawn
        page.click("#almanac-navbar a[href='/backtest']")
        _wait_drawn(page, cbs, SLIDER_GRAPHS, time.perf_counter())
        page.wait_for_timeout(300)
        slider = []
        for _ in range(SLIDER_STEPS):
            page.evaluate(MARK_OLD, list(SLIDER_GRAPHS))
            page.evaluate("() => { window.__plotCalls = []; }")
            cbs.reset()
            page.locator("#threshold-slider [role=slider]").focus()
            t0 = time.perf_counter()
            page.keyboard.press("ArrowRight")
            seconds = _wait_drawn(page, cbs, SLIDER_GRAPHS, t0)
            page.wait_for_timeout(300)
            slider.append({"seconds": seconds, "bytes": cbs.bytes()})
            if detail:
                steps.append((f"slider step {len(slider)}", list(cbs.calls), page.evaluate("() => window.__plotCalls")))
        out["slider"] = {"seconds": statistics.median(x["seconds"] for x in slider),
                         "bytes": statistics.median(x["bytes"] for x in slider)}
        context.close()
        if errors:
            out["errors"] = errors
        if detail:
            for name, calls, plots in steps:
                head = out.get(name) or {"seconds": float("nan"), "bytes": sum(c["bytes"] for c in calls)}
                print(f"  [{name}] {head['seconds']:.2f} s, {head['bytes'] / 1e3:.1f} kB")
                for c in sorted(calls, key=lambda c: -c["bytes"]):
                    print(f"      callback {c['bytes'] / 1e3:8.1f} kB  server {c['server_ms']:7.0f} ms  "
                          f"sent {c['at'][0]:5.2f} s, done {c['at'][1]:5.2f} s  {c['output']}")
                for p in sorted(plots, key=lambda p: -p["ms"]):
                    print(f"      {p['fn']:8s} {p['ms']:7.0f} ms (sync {p['sync']:6.0f})  {p['id']}")
        return out
    finally:
        stop_app(proc)


def measure(repeat: int = 3, home: Path | None = None, detail: bool = False, progress=print) -> dict:
    """Train (when needed) and time the page ``repeat`` times; min/median per row."""
    from playwright.sync_api import sync_playwright

    repeat = max(3, repeat)
    tmp = None if home else tempfile.mkdtemp(prefix="almanac-bench-evaluate-")
    home = (home or Path(tmp) / "home").resolve()
    try:
        t0 = time.perf_counter()
        runs = prepare_home(home)
        progress(f"ALMANAC_HOME={home}: runs {runs[0]} (opened) and {runs[1]} (selected), "
                 f"ready in {time.perf_counter() - t0:.1f} s")
        results = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                for i in range(repeat):
                    r = one_repeat(browser, home, runs, home.parent / f"bench-evaluate-app-{i}.log", detail)
                    results.append(r)
                    progress(f"repeat {i + 1}: navbar -> all charts {r['navbar']['seconds']:.2f} s "
                             f"({r['navbar']['bytes'] / 1e3:.0f} kB) · another run {r['run']['seconds']:.2f} s "
                             f"({r['run']['bytes'] / 1e3:.0f} kB) · another fold {r['fold']['seconds']:.2f} s "
                             f"({r['fold']['bytes'] / 1e3:.0f} kB) · navbar again {r['navbar_again']['seconds']:.2f} s"
                             f" · /backtest slider step {r['slider']['seconds']:.2f} s "
                             f"({r['slider']['bytes'] / 1e3:.0f} kB)"
                             + (f" · page errors {r['errors']}"
                                                                        if r.get("errors") else ""))
            finally:
                browser.close()
        return {name: {"seconds": stats([r[name]["seconds"] for r in results]),
                       "bytes": stats([r[name]["bytes"] for r in results])}
                for name in ("navbar", "run", "fold", "navbar_again", "slider")}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def format_report(result: dict) -> str:
    names = {"navbar": "navbar click -> every chart drawn", "run": "selecting another run",
             "fold": "selecting another fold", "navbar_again": "navbar click again (warm; no goal)",
             "slider": "/backtest: one threshold-slider step"}
    lines = [f"/evaluate, default run, headless Chromium (min / median of {result['navbar']['seconds']['n']}):"]
    for key, name in names.items():
        s, b = result[key]["seconds"], result[key]["bytes"]
        lines.append(f"  {name:36s} {s['min']:6.2f} / {s['median']:6.2f} s   "
                     f"callbacks sent {b['min'] / 1e3:7.1f} / {b['median'] / 1e3:7.1f} kB")
    lines.append("  goal: <= 2 s for each; <= 300 kB sent by the callbacks; slider step <= 0.35 s, <= 60 kB")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="repeats, each with a fresh app (at least 3)")
    ap.add_argument("--home", type=Path, help="ALMANAC_HOME to use (kept; default: a fresh temporary folder)")
    ap.add_argument("--detail", action="store_true", help="print each callback and each plotly draw")
    ap.add_argument("--json", action="store_true", help="print the result as JSON as well")
    args = ap.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: install it with `apt-get install chromium`")
    result = measure(args.repeat, args.home, args.detail)
    print(format_report(result))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
