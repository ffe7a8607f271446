"""Benchmark: training from the browser vs the command line, same spec, sample data.

Usage::

    .venv/bin/python -m bench.ui [--repeat 3] [--home DIR] [--keep]

What it does:

1. Starts ``python app.py`` on a free port with ``ALMANAC_HOME`` = a fresh temporary
   folder (or ``--home``); on an empty home the app writes the sample data first.
2. Opens ``/train`` in headless Chromium (``/usr/bin/chromium``) and downloads the form's
   default spec with "Download YAML", so the command line runs exactly what the UI runs.
3. Warm-up: one ``python -m almanac train --config spec.yaml`` (it fills the feature
   cache that every later run, UI or CLI, reuses), reported as "first run".
4. ``--repeat`` times, alternating: **UI** = reload ``/train``, click Train, stop the clock
   when the per-fold chart (``#cv-scores-graph``) is drawn with its bars; **CLI** = wall
   time of ``python -m almanac train --config spec.yaml`` (process start to exit).
5. Prints every timing, the run's own ``timings.total`` (the pipeline inside the job),
   the medians and the ratio UI / CLI (target: at most 1.5).

A benchmark script, not a test: it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]
# the per-fold chart of a run not in ``old`` (after a reload the tab shows its previous result)
CHART_DRAWN = """(old) => { const g = document.querySelector('#cv-scores-graph .js-plotly-plot');
  const id = document.querySelector('#train-run-id');
  return !!(g && id && !old.includes(id.textContent) && g._fullData && g._fullData.length
            && g._fullData[0].type === 'bar' && Array.from(g._fullData[0].y || []).length > 0); }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(home: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "ALMANAC_HOME": str(home), "HOST": "127.0.0.1", "PORT": str(port), "ALMANAC_DEBUG": "0"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"the app did not answer on {url}; see {log_path}")


def stop_app(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """Stop an app started by :func:`start_app`: SIGTERM (it cleans up like Ctrl-C), then
    SIGKILL if it has not exited within ``grace_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace_s)


def run_cli(home: Path, spec: Path) -> tuple[float, str]:
    """Wall seconds of ``python -m almanac train --config spec`` and the new run's id."""
    from almanac import registry

    before = {r["run_id"] for r in registry.list_runs(home)}
    env = {**os.environ, "ALMANAC_HOME": str(home)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"the CLI failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    new = {r["run_id"] for r in registry.list_runs(home)} - before
    return seconds, new.pop() if len(new) == 1 else "?"


def run_ui(page, url: str, home: Path) -> tuple[float, str]:
    """Seconds from the Train click to the drawn per-fold chart, and the new run's id."""
    from almanac import registry

    before = {r["run_id"] for r in registry.list_runs(home)}
    page.goto(url + "/train")
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => { const b = document.querySelector('#train-button'); return b && !b.disabled; }")
    t0 = time.perf_counter()
    page.click("#train-button")
    page.wait_for_function(CHART_DRAWN, arg=sorted(before), timeout=600_000, polling=50)
    seconds = time.perf_counter() - t0
    new = {r["run_id"] for r in registry.list_runs(home)} - before
    return seconds, new.pop() if len(new) == 1 else "?"


def job_seconds(home: Path, run_id: str) -> float:
    from almanac import registry

    try:
        return float(registry.get_run(run_id, home)["timings"]["total"])
    except Exception:  # noqa: BLE001 - a benchmark prints what it can
        return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed UI and CLI runs each (default 3)")
    ap.add_argument("--home", type=Path, help="ALMANAC_HOME to use (default: a fresh temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    tmp = None if args.home else tempfile.mkdtemp(prefix="almanac-bench-ui-")
    home = (args.home or Path(tmp) / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / "bench-ui-app.log"
    print(f"ALMANAC_HOME={home}  (app log: {log_path})")
    t0 = time.perf_counter()
    proc, url = start_app(home, log_path)
    print(f"app answered after {time.perf_counter() - t0:.1f} s on {url}")
    rows = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1366, "height": 900}, accept_downloads=True).new_page()
            page.goto(url + "/train")
            page.wait_for_load_state("networkidle")
            page.wait_for_function("() => !document.querySelector('#train-button').disabled")
            with page.expect_download() as dl:
                page.click("#train-yaml-download-button")
            spec = home.parent / dl.value.suggested_filename
            dl.value.save_as(spec)
            print(f"spec (the form's defaults): {spec}\n" + "".join(f"    {line}\n" for line in
                                                                      spec.read_text().splitlines()))
            first, rid = run_cli(home, spec)
            print(f"first run, CLI (builds the feature cache): {first:6.2f} s  "
                  f"(pipeline {job_seconds(home, rid):.2f} s)")
            for i in range(args.repeat):
                ui, ui_id = run_ui(page, url, home)
                cli, cli_id = run_cli(home, spec)
                rows.append((ui, cli, job_seconds(home, ui_id), job_seconds(home, cli_id)))
                print(f"run {i + 1}: UI click -> chart {ui:6.2f} s (pipeline {rows[-1][2]:.2f} s)   "
                      f"CLI {cli:6.2f} s (pipeline {rows[-1][3]:.2f} s)")
            browser.close()
    finally:
        stop_app(proc)
    ui_med = statistics.median(r[0] for r in rows)
    cli_med = statistics.median(r[1] for r in rows)
    result = {"ui_click_to_chart_s": round(ui_med, 2), "cli_train_s": round(cli_med, 2),
              "ratio_ui_over_cli": round(ui_med / cli_med, 3),
              "pipeline_in_ui_job_s": round(statistics.median(r[2] for r in rows), 2),
              "pipeline_in_cli_s": round(statistics.median(r[3] for r in rows), 2), "repeat": len(rows)}
    print(f"\nmedian of {len(rows)}: UI click -> CV chart {ui_med:.2f} s, CLI train {cli_med:.2f} s, "
          f"ratio UI/CLI = {ui_med / cli_med:.2f} (target <= 1.5)")
    print(json.dumps(result))
    if tmp and not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
