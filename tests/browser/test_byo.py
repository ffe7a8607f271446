"""Your own features and data in headless Chromium (issue 14): train the option-delta sample table
from /train (target field, the no-backtest sentence, R² out of fold), see /backtest say there is no
backtest, and see /features and /data offer an imported table and an audited plugin.

Fails on any browser console error (``conftest.page``). Screenshots: ``docs/screenshots/byo-*.png``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import pytest
from playwright.sync_api import expect

from almanac import registry
from tests.browser.conftest import page_on, start_lab

pytestmark = pytest.mark.browser
TIMEOUT = 240_000  # ms: writing the sample table, then 5 folds of HistGB on 62,850 rows
DOCS = __import__("pathlib").Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def lab_server(tmp_path_factory, chromium_path):
    """A lab of this module's own: the runs and tables trained here stay out of the shared
    lab, whose run pages test their empty states before anything is trained."""
    with start_lab(tmp_path_factory.mktemp("byo-lab")) as server:
        yield server


@pytest.fixture
def page(chromium, lab_server):
    with page_on(chromium, lab_server) as pg:
        yield pg


def field(name: str) -> str:
    return f'[id=\'{{"name":"{name}","type":"train-field"}}\']'


def cli(home, *args) -> subprocess.CompletedProcess:
    root = DOCS.parents[1]
    return subprocess.run([sys.executable, "-m", "almanac", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "ALMANAC_HOME": str(home)}, timeout=300)


def test_train_the_option_delta_sample_table(page, lab_server):
    DOCS.mkdir(parents=True, exist_ok=True)
    page.goto("/train")
    page.wait_for_load_state("networkidle")
    page.select_option(field("symbol"), "table:spx_option_delta")
    expect(page.locator(field("target"))).to_have_value("delta")
    expect(page.locator("#train-table-note")).to_have_text(
        "A table dataset has no backtest: its rows are samples, not trading days to trade.")
    page.select_option(field("kind"), "hist_gb")
    page.fill('[id=\'{"kind":"hist_gb","name":"max_iter","type":"train-param"}\']', "300")
    page.click("#train-yaml-toggle")
    expect(page.locator("#train-yaml")).to_contain_text("table: spx_option_delta")
    expect(page.locator("#train-button")).to_be_enabled()
    page.click("#train-button")
    expect(page.locator("#train-run-id")).to_be_visible(timeout=TIMEOUT)
    expect(page.locator("#train-no-backtest")).to_be_visible()
    expect(page.locator("#train-to-backtest")).to_have_count(0)
    run_id = page.locator("#train-run-id").inner_text()
    run = registry.get_run(run_id, lab_server.home)
    assert run["task"] == "regression" and run["metrics"]["r2"] >= 0.99
    page.screenshot(path=str(DOCS / "byo-train-option-delta.png"), full_page=True)

    page.goto(f"/backtest?run={run_id}")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#backtest-message")).to_contain_text("No backtest for a table dataset", timeout=30_000)


def test_features_and_data_offer_a_table_and_a_plugin(page, lab_server, tmp_path):
    csv = tmp_path / "macro.csv"
    csv.write_text("Date,score\n" + "".join(f"2018-06-{d:02d},{d}\n" for d in range(1, 29)))
    assert cli(lab_server.home, "data", "import-features", str(csv), "--name", "macro", "--known-at", "16:00")\
        .returncode == 0
    plugin = tmp_path / "or_skew.py"
    plugin.write_text(textwrap.dedent('''
        from almanac.plugins import feature

        @feature(name="or_skew", description="skewness of 1-minute returns before the cutoff")
        def or_skew(window, daily):
            r = window.groupby("date")["close"].pct_change()
            return r.groupby(window["date"]).skew()
    '''))
    added = cli(lab_server.home, "plugins", "add", str(plugin))
    assert added.returncode == 0, added.stderr
    page.goto("/features")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#features-user-sets")).to_contain_text("macro (score; known at 16:00")
    expect(page.locator("#features-plugin-warning")).to_contain_text("A plugin is Python code you chose to run")
    page.get_by_label(re.compile("Your plugins")).check()
    page.get_by_label(re.compile("Your feature tables")).check()
    page.click("#features-build")
    expect(page.locator("#features-summary")).to_contain_text("table macro", timeout=120_000)
    page.screenshot(path=str(DOCS / "byo-features.png"), full_page=True)
    page.goto("/data")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#data-tables-table")).to_contain_text("known at 16:00")
