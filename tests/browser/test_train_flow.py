"""The /train page in headless Chromium: train with the defaults, leave and come back
mid-run, cancel a running job, refuse an invalid spec.

Fails on any browser console error (``conftest.page``). Screenshots go to
``tests/screenshots/train-*.png``. The registry is checked directly on the app's
``ALMANAC_HOME`` (``almanac.registry.list_runs(home)``).
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from almanac import registry

pytestmark = pytest.mark.browser
TIMEOUT = 180_000  # ms: a default training run on the sample data (features + 5 folds + final fit)

# the bars as plotly.js drew them (_fullData: numeric arrays arrive base64-packed in g.data)
CV_BARS = """() => { const g = document.querySelector('#cv-scores-graph .js-plotly-plot');
  if (!g || !g._fullData || !g._fullData.length) return null;
  const t = g._fullData[0];
  return {type: t.type, x: Array.from(t.x), y: Array.from(t.y), title: g.layout.title.text}; }"""

PROGRESS_ABOVE = """(v) => { const b = document.querySelector('#train-progress .progress-bar');
  return (b && Number(b.getAttribute('aria-valuenow')) > v) || !!document.querySelector('#cv-scores-graph'); }"""


def open_train(page):
    page.goto("/train")
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_have_text("Train")
    expect(page.locator("#train-button")).to_be_enabled()


def job_status(home, page) -> dict:
    """The status file of the tab's current job (its id is in the session store)."""
    job = page.evaluate("() => JSON.parse(window.sessionStorage.getItem('train-job'))")
    return json.loads((home / "jobs" / "status" / f"{job['job_id']}.json").read_text())


def set_number(page, name: str, value) -> None:
    page.fill(f'[id=\'{{"name":"{name}","type":"train-field"}}\']', str(value))


def test_train_defaults_leave_and_come_back(page, lab_server, screenshot_dir):
    before = {r["run_id"] for r in registry.list_runs(lab_server.home)}
    open_train(page)
    expect(page.locator("#train-result")).to_contain_text("No run yet")
    page.click("#train-yaml-toggle")
    expect(page.locator("#train-yaml")).to_contain_text("cross_assets: [VIX, CL]")
    page.screenshot(path=str(screenshot_dir / "train-empty.png"), full_page=True)

    page.click("#train-button")
    expect(page.locator("#train-progress")).to_be_visible(timeout=10_000)
    expect(page.locator("#train-button")).to_be_disabled()
    expect(page.locator("#cancel-button")).to_be_enabled()
    expect(page.locator("#train-stage")).to_contain_text(re.compile(r"fold \d of 5"), timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "train-running.png"), full_page=True)

    # leave for the overview mid-run (client-side navigation), then come back
    page.click("#almanac-navbar >> text=Overview")
    expect(page.locator("h1")).to_have_text("Almanac ML Lab")
    page.click("#almanac-navbar >> text=Train")
    expect(page.locator("h1")).to_have_text("Train")
    expect(page.locator("#train-stage")).to_contain_text(re.compile(r"Training|Queued|Finished"))
    came_back = page.locator("#train-stage").inner_text()
    if "Finished" not in came_back:  # still running: the page shows it running, and the bar moves on
        expect(page.locator("#train-button")).to_be_disabled()
        expect(page.locator("#train-progress")).to_be_visible()
        now = int(page.locator("#train-progress .progress-bar").get_attribute("aria-valuenow") or 0)
        page.wait_for_function(PROGRESS_ABOVE, arg=now, timeout=TIMEOUT)

    page.wait_for_selector("#cv-scores-graph .js-plotly-plot", timeout=TIMEOUT)
    bars = page.evaluate(CV_BARS)
    assert bars["type"] == "scatter" and len(bars["x"]) == 5 and len(bars["y"]) == 5  # points with intervals
    assert bars["title"] == "ROC AUC per fold"
    expect(page.locator("#train-stage")).to_have_text("Finished")
    expect(page.locator("#train-button")).to_be_enabled()
    expect(page.locator("#cancel-button")).to_be_disabled()
    expect(page.locator(".alert-danger")).to_have_count(0)

    runs = {r["run_id"]: r for r in registry.list_runs(lab_server.home)}
    new = set(runs) - before
    assert len(new) == 1
    run_id = new.pop()
    expect(page.locator("#train-run-id")).to_have_text(run_id)
    expect(page.locator("#train-fold-table tbody tr")).to_have_count(5)
    expect(page.locator("#train-to-evaluate")).to_have_attribute("href", f"/evaluate?run={run_id}")
    expect(page.locator("#train-to-backtest")).to_have_attribute("href", f"/backtest?run={run_id}")
    # the chart shows the run's own per-fold scores
    folds = registry.get_run(run_id, lab_server.home)["folds"]
    assert bars["y"] == pytest.approx([f["roc_auc"] for f in folds])
    page.screenshot(path=str(screenshot_dir / "train-done.png"), full_page=True)

    # a reload of the tab still shows the result (session store + status file)
    page.reload()
    page.wait_for_selector("#cv-scores-graph .js-plotly-plot", timeout=30_000)
    expect(page.locator("#train-run-id")).to_have_text(run_id)

    # the warnings and baselines the runner records (injected: this branch may predate them)
    run = registry.get_run(run_id, lab_server.home)
    inject_trust(lab_server.home, run)
    page.reload()
    page.wait_for_selector("#cv-scores-graph .js-plotly-plot", timeout=30_000)
    banner = page.locator("#train-warnings")
    expect(banner).to_be_visible()
    expect(banner.locator(".almanac-warning-line")).to_have_count(2)
    expect(banner).to_contain_text("fold 2 has 80 test days")
    table = page.locator("#train-baselines-table")
    expect(table).to_contain_text("Majority")
    expect(table).to_contain_text(f"{run['metrics']['accuracy']:.1%}")
    expect(table).to_contain_text("51.0%")  # the prior-day accuracy injected
    expect(page.locator("#train-baselines")).to_contain_text("Sharpe lift over always long: +0.250")
    expect(page.locator("#train-pooled-metrics")).to_contain_text("base rate (up days)")
    # checked switches and check boxes in the theme's accent (not Bootstrap's or Dash's defaults)
    checked = page.evaluate("""() => getComputedStyle(document.querySelector('.form-check-input:checked'))
                                      .backgroundColor""")
    assert checked == "rgb(24, 188, 156)"
    page.screenshot(path=str(screenshot_dir / "train-done-warnings.png"), full_page=True)


WARNINGS = [{"code": "short_test_fold", "message": "fold 2 has 80 test days, fewer than 100: its scores are noisy"},
            {"code": "few_trades", "message": "the backtest made 21 trades, fewer than 30: its Sharpe is noise"}]


def inject_trust(home, run: dict) -> dict:
    """Write ``warnings`` and ``baselines`` (as ml/runner.py records them) into the run's
    run.json; majority = the run's own base rate."""
    rate = (run.get("metrics") or {}).get("base_rate", 0.53)
    baselines = {
        "always_long": {"stats": {"sharpe": 0.35, "trades": 900}, "params": {"cost_bps": 1.0, "threshold": None,
                                                                            "long_only": True}},
        "majority": {"metrics": {"accuracy": max(rate, 1 - rate), "brier": 0.2491, "log_loss": 0.6921,
                                 "roc_auc": 0.5, "base_rate": rate}},
        "prior_day": {"metrics": {"accuracy": 0.51, "roc_auc": 0.502, "brier": 0.3, "log_loss": 0.9},
                      "stats": {"sharpe": -0.2}},
        "lift": {"sharpe": {"value": 0.25, "lo": -0.4, "hi": 0.9, "level": 0.95},
                 "roc_auc": {"value": 0.02, "lo": -0.01, "hi": 0.05, "level": 0.95},
                 "bootstrap": {"method": "stationary", "block_days": 20, "resamples": 1000, "seed": 0}},
    }
    path = home / "runs" / run["run_id"] / "run.json"
    record = json.loads(path.read_text())
    record.update(warnings=WARNINGS, baselines=baselines)
    path.write_text(json.dumps(record, indent=1))
    return record


def test_cancel_stops_the_job_and_registers_nothing(page, lab_server, screenshot_dir):
    import psutil

    before = {r["run_id"] for r in registry.list_runs(lab_server.home)}
    open_train(page)
    # a slower model so the job is surely still running when Cancel is pressed
    page.fill('[id=\'{"kind":"lightgbm","name":"n_estimators","type":"train-param"}\']', "3000")
    expect(page.locator("#train-button")).to_be_enabled()
    page.click("#train-button")
    expect(page.locator("#train-stage")).to_contain_text("Training", timeout=30_000)
    status = job_status(lab_server.home, page)
    assert status["state"] == "running" and psutil.pid_exists(status["pid"])
    page.click("#cancel-button")
    expect(page.locator("#train-stage")).to_contain_text("Cancelled", timeout=20_000)
    expect(page.locator("#train-result")).to_contain_text("nothing was registered")
    expect(page.locator("#train-button")).to_be_enabled()
    page.screenshot(path=str(screenshot_dir / "train-cancelled.png"), full_page=True)

    proc_gone = not psutil.pid_exists(status["pid"]) or \
        psutil.Process(status["pid"]).status() == psutil.STATUS_ZOMBIE
    assert proc_gone, "the job process is still running"
    assert job_status(lab_server.home, page)["state"] == "cancelled"
    assert {r["run_id"] for r in registry.list_runs(lab_server.home)} == before
    assert list((lab_server.home / "runs").glob(".tmp-*")) == []  # no half-written run left behind
    # and the server keeps serving
    page.click("#almanac-navbar >> text=Overview")
    expect(page.locator("h1")).to_have_text("Almanac ML Lab")


def test_invalid_spec_shows_an_alert_and_blocks_train(page, lab_server, screenshot_dir):
    open_train(page)
    page.fill('[id=\'{"name":"start","type":"train-field"}\']', "2018-06-01")
    page.fill('[id=\'{"name":"end","type":"train-field"}\']', "2017-01-31")
    alert = page.locator("#train-form-feedback .alert-danger")
    expect(alert).to_contain_text("start 2018-06-01 is after end 2017-01-31")
    expect(page.locator("#train-button")).to_be_disabled()
    page.locator("#train-form-section").screenshot(path=str(screenshot_dir / "train-invalid.png"))
    # fixing it re-enables Train
    page.fill('[id=\'{"name":"end","type":"train-field"}\']', "")
    expect(alert).to_have_count(0)
    expect(page.locator("#train-button")).to_be_enabled()


def test_a_spec_the_data_cannot_serve_is_refused_with_its_reason(page, lab_server):
    open_train(page)
    set_number(page, "min_train", 2500)  # the sample has 2,516 trading days of ES minute bars
    page.click("#train-button")
    alert = page.locator(".alert-danger")
    expect(alert).to_contain_text("fewer than the", timeout=30_000)
    expect(alert).to_contain_text("lower min_train or n_splits")
    expect(page.locator("#train-button")).to_be_enabled()


def field(name: str) -> str:
    return f'[id=\'{{"name":"{name}","type":"train-field"}}\']'


@pytest.mark.parametrize("label, task", [("forward_return", "regression"), ("archetype", "multiclass")])
def test_train_result_fits_the_task_and_keeps_name_and_notes(page, lab_server, screenshot_dir, label, task):
    """A regression and a multiclass run trained from the form: the per-fold chart shows
    their own score as points, the name and notes typed in the form are the run's."""
    open_train(page)
    page.fill(field("name"), f"ui {task} run")
    page.fill(field("notes"), "typed on /train\nsecond line")
    page.select_option(field("label"), label)
    page.select_option(field("kind"), "logistic")
    expect(page.locator("#train-button")).to_be_enabled()
    page.click("#train-button")
    page.wait_for_selector("#cv-scores-graph .js-plotly-plot", timeout=TIMEOUT)
    bars = page.evaluate(CV_BARS)
    assert bars["type"] == "scatter" and len(bars["y"]) == 5
    assert bars["title"] == ("IC (rank corr.) per fold" if task == "regression" else "accuracy per fold")
    expect(page.locator("#train-run-name")).to_have_text(f"ui {task} run")
    expect(page.locator("#train-run-notes")).to_contain_text("typed on /train")
    run = registry.get_run(page.locator("#train-run-id").inner_text(), lab_server.home)
    assert (run["name"], run["user_notes"], run["task"]) == (f"ui {task} run", "typed on /train\nsecond line", task)
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / f"train-done-{task}.png"), full_page=True)
