"""The /features page in headless Chromium: build on the sample data, see the table and charts.

Fails on any browser console error (``conftest.page``). Screenshots go to
``tests/screenshots/features-*.png``.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
TIMEOUT = 60_000  # ms: the first build reads 10 years of sample minute bars in a background job

# _fullData: plotly.js's decoded traces (numeric arrays arrive base64-encoded in .data)
GRAPH_POINTS = """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
  return g && g._fullData && g._fullData.length ? g._fullData.map(t => (t.x || t.z || []).length) : null; }"""


def wait_graph(page, container: str) -> list[int]:
    page.wait_for_function(f"() => {{ const g = document.querySelector('{container} .js-plotly-plot');"
                           " return g && g._fullData && g._fullData.length"
                           " && (g._fullData[0].x || g._fullData[0].z || []).length > 0; }",
                           timeout=TIMEOUT)
    return page.evaluate(GRAPH_POINTS, container)


def build(page) -> None:
    page.goto("/features")
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_have_text("Features")
    expect(page.locator("#features-symbol")).to_contain_text("ES")
    page.click("#features-build")
    expect(page.locator("#features-grid .ag-row").first).to_be_visible(timeout=TIMEOUT)


def test_build_shows_table_lineage_and_charts(page, lab_server, screenshot_dir):
    build(page)
    expect(page.locator(".alert-danger")).to_have_count(0)
    summary = page.locator("#features-summary-text")
    expect(summary).to_contain_text(re.compile(r"ES: 2,516 trading days \(2009-01-02 → 2018-12-31\) × 23 features"))
    expect(page.locator("#features-summary")).to_contain_text("VIX daily closes cover 2014-01-03")
    # paged grid: 20 rows per page, a date column and the feature columns
    expect(page.locator("#features-grid .ag-center-cols-container .ag-row")).to_have_count(20)
    expect(page.locator("#features-grid .ag-header-cell[col-id='or_range_atr']")).to_have_count(1)
    expect(page.locator("#features-grid .ag-paging-row-summary-panel")).to_contain_text("2,516")
    # lineage: as a header tooltip and in the lineage table
    page.locator("#features-grid .ag-header-cell[col-id='or_range_atr']").hover()
    expect(page.locator(".ag-tooltip")).to_contain_text("Known as of: 10:15 America/New_York on day D",
                                                       timeout=TIMEOUT)
    expect(page.locator("#features-lineage-grid .ag-center-cols-container .ag-row")).to_have_count(23)
    # charts: histogram, hit rates, history, correlation, importance -- none empty
    assert wait_graph(page, "#features-hist")[0] > 2000
    assert wait_graph(page, "#features-hits")[0] == 10
    assert wait_graph(page, "#features-time")[0] == 2516
    assert wait_graph(page, "#features-corr")[0] == 23
    assert wait_graph(page, "#features-importance")[0] >= 20
    expect(page.locator("#features-importance-note")).to_contain_text("the later days were not looked at")
    page.screenshot(path=str(screenshot_dir / "features-built.png"), full_page=True)

    # another feature and outcome
    page.click("#features-pick")
    page.get_by_role("option", name="or_delta", exact=True).click()
    page.get_by_text("day up (close > open)").click()
    page.wait_for_function("() => { const g = document.querySelector('#features-hits .js-plotly-plot');"
                           " return g && g.layout.title.text.startsWith('day up by or_delta'); }", timeout=TIMEOUT)
    expect(page.locator("#features-hist .gtitle")).to_contain_text("or_delta: distribution")
    page.locator("#features-explore-section").screenshot(path=str(screenshot_dir / "features-explore.png"))


def test_download_csv_and_bad_cutoff_alert(page, lab_server, tmp_path, screenshot_dir):
    build(page)
    with page.expect_download(timeout=TIMEOUT) as dl:
        page.click("#features-dl-csv")
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    assert path.name == "features_ES_1015.csv"
    df = pd.read_csv(path)
    assert len(df) == 2516 and df.columns[0] == "date" and "or_delta" in df.columns

    page.fill("#features-cutoff", "9:00")
    page.keyboard.press("Enter")
    page.click("#features-build")
    alert = page.locator("#features-build-msg .alert-danger")
    expect(alert).to_contain_text("cutoff 09:00 is outside the regular session 09:30–16:00", timeout=TIMEOUT)
    page.locator("#features-build-section").screenshot(path=str(screenshot_dir / "features-error.png"))


def test_daily_only_symbol_says_why_early_features_are_absent(page, lab_server):
    page.goto("/features")
    page.wait_for_load_state("networkidle")
    page.click("#features-symbol")
    page.get_by_role("option", name="CL", exact=True).click()
    expect(page.locator("#features-symbol-hint")).to_contain_text("daily bars only")
    page.click("#features-build")
    expect(page.locator("#features-summary")).to_contain_text(
        "early_session features absent: CL has no 1min bars (daily-only symbol)", timeout=TIMEOUT)
    expect(page.locator("#features-grid .ag-header-cell[col-id='gap_pct']")).to_have_count(0)
    expect(page.locator("#features-grid .ag-header-cell[col-id='VIX_z20']")).to_have_count(1, timeout=TIMEOUT)
