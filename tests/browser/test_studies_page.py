"""/studies in headless Chromium: a search and an ablation on the sample data, a refused
study, a cancelled one. Screenshots of the search and the ablation go to docs/screenshots/.

Fails on any browser console error (``conftest.page``). The studies and runs are checked
directly in the app's ``ALMANAC_HOME``.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from almanac import registry

pytestmark = pytest.mark.browser
TIMEOUT = 420_000  # ms: a few trials on the sample data (features built once, then cached)
DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "screenshots"

BASE = """name: es-small
data: {symbol: ES, start: 2016-01-01, end: 2018-12-31}
features: {sets: [early_session, regime], cutoff: '10:15', cross_assets: []}
label: {kind: rest_of_day}
model: {kind: lightgbm, params: {n_estimators: 40}}
validation: {scheme: expanding, n_splits: 3, gap: 1, min_train: 250}
backtest: {threshold: 0.55, cost_bps: 1.0, long_only: false}
"""
ABLATION_BASE = BASE.replace("[early_session, regime], cutoff: '10:15', cross_assets: []",
                             "[early_session, cross_asset, regime], cutoff: '10:15', cross_assets: [VIX]")


def studies_on_disk(home) -> set[str]:
    root = home / "studies"
    return {p.name for p in root.iterdir() if not p.name.startswith(".")} if root.is_dir() else set()


def fill(page, selector: str, value) -> None:
    page.fill(selector, str(value))
    page.press(selector, "Tab")  # debounced inputs report on blur


def wait_finished(page):
    expect(page.locator("#studies-stage")).to_have_text(re.compile("Finished|Failed|Cancelled"), timeout=TIMEOUT)


def test_search_ablation_refusal_and_cancel(page, lab_server):
    DOCS.mkdir(parents=True, exist_ok=True)
    home = lab_server.home
    # the Train form's spec is the base of a new study
    page.goto("/train")
    page.wait_for_load_state("networkidle")
    page.click("#almanac-navbar >> text=Studies")
    expect(page.locator("h1")).to_have_text("Studies")
    expect(page.locator("#studies-base")).to_have_value(re.compile("name: es-rest-of-day-lightgbm"))
    expect(page.locator("#studies-view")).to_contain_text("No study yet")

    fill(page, "#studies-base", BASE)
    fill(page, "#studies-name", "es-small-search")
    fill(page, "#studies-n-trials", 10)
    fill(page, "#studies-holdout", "2018-07-01")
    page.click("#studies-yaml-toggle")
    expect(page.locator("#studies-yaml")).to_contain_text(re.compile(r"model.params.num_leaves:\s+int: \[4, 64\]\s+"
                                                                     r"log: true"))

    # a bad study: a red alert, Start disabled
    fill(page, "#studies-n-trials", 0)
    expect(page.locator("#studies-form-feedback .alert-danger")).to_contain_text(
        "study field budget.n_trials: 0 is out of range: use at least 1")
    expect(page.locator("#studies-start")).to_be_disabled()
    fill(page, "#studies-n-trials", 10)
    expect(page.locator("#studies-form-feedback .alert-danger")).to_have_count(0)

    fill(page, "#studies-holdout", "2016-06-01")  # too few days before it for 3 folds after 250 days
    expect(page.locator("#studies-form-feedback .alert-danger")).to_contain_text(
        "study field holdout.start: 2016-06-01 leaves too few days before it for the validation scheme")
    expect(page.locator("#studies-start")).to_be_disabled()
    fill(page, "#studies-holdout", "2018-07-01")

    # a study the data refuses (checked first thing in the job): a red alert, no study folder
    before = studies_on_disk(home)
    fill(page, "#studies-base", BASE.replace("symbol: ES", "symbol: NQ"))
    page.click("#studies-start")
    wait_finished(page)
    expect(page.locator("#studies-submit-feedback .alert-danger")).to_contain_text(
        "spec field data.symbol: NQ has no data in the store")
    assert studies_on_disk(home) == before

    # the search
    fill(page, "#studies-base", BASE)
    page.click("#studies-start")
    expect(page.locator("#studies-progress-wrap")).to_be_visible(timeout=10_000)
    expect(page.locator("#studies-stage")).to_contain_text(re.compile(r"trial \d+/10"), timeout=TIMEOUT)
    wait_finished(page)
    expect(page.locator("#studies-stage")).to_have_text("Finished")
    verdict = page.locator("#studies-verdict")
    expect(verdict).to_have_text(re.compile(r"best CV 0\.\d{3} → holdout 0\.\d{3} · DSR \d\.\d{2} over 10 trials"))
    expect(page.locator("#studies-trials-table tbody tr")).to_have_count(10)
    (sid,) = studies_on_disk(home) - before
    runs = [r for r in registry.list_runs(home) if r.get("study_id") == sid]
    assert runs and all(r["trial"] is not None for r in runs)
    link = page.locator("#studies-trials-table a").first
    expect(link).to_have_attribute("href", re.compile(r"^/evaluate\?run="))
    page.wait_for_selector("#studies-chart .js-plotly-plot", timeout=30_000)
    for tab in ("Importances", "Parallel coordinates", "Slices"):
        page.click(f"#studies-tabs >> text={tab}")
        page.wait_for_selector("#studies-chart .js-plotly-plot", timeout=30_000)
    page.click("#studies-tabs >> text=History")
    page.wait_for_selector("#studies-chart .js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(DOCS / "studies-search.png"), full_page=True)
    page.click("#studies-promote")
    expect(page.locator("#studies-promote-feedback .alert-success")).to_contain_text("is now the active model")
    assert {a["run_id"] for a in registry.active_runs(home)} & {r["run_id"] for r in runs}

    # the ablation: 3 sets -> 7 combinations
    page.click("#studies-yaml-toggle")  # hide the YAML again
    page.check("#studies-kind >> text=ablation")
    expect(page.locator("#studies-space-wrap")).to_be_hidden()
    fill(page, "#studies-name", "es-small-ablation")
    fill(page, "#studies-base", ABLATION_BASE)
    fill(page, "#studies-holdout", "")
    page.click("#studies-start")
    expect(page.locator("#studies-stage")).to_contain_text(re.compile(r"trial \d/7"), timeout=TIMEOUT)
    wait_finished(page)
    expect(page.locator("#studies-stage")).to_have_text("Finished")
    expect(page.locator("#studies-ablation-table tbody tr")).to_have_count(7)
    expect(page.locator("#studies-ablation-table tbody tr").last).to_contain_text("early_session + cross_asset + "
                                                                                  "regime")
    page.wait_for_selector("#studies-ablation-graph .js-plotly-plot", timeout=30_000)
    page.screenshot(path=str(DOCS / "studies-ablation.png"), full_page=True)

    # cancel a running search: completed trials kept, nothing half-written
    page.check("#studies-kind >> text=search")
    fill(page, "#studies-name", "es-small-cancel")
    fill(page, "#studies-base", BASE)
    fill(page, "#studies-n-trials", 30)
    page.click("#studies-start")
    expect(page.locator("#studies-stage")).to_contain_text(re.compile(r"trial [2-9]/30"), timeout=TIMEOUT)
    page.click("#studies-cancel")
    expect(page.locator("#studies-stage")).to_contain_text("Cancelled", timeout=60_000)
    assert not list((home / "runs").glob(".tmp-*"))
    expect(page.locator("#studies-pick")).to_contain_text("es-small-cancel")
