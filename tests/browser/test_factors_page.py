"""The factor exposure panel of /backtest in headless Chromium, on a real run of the sample data.

The default spec is trained once with the command line in the app's home; the panel must show
the numbers of :func:`ml.factors.run_exposure` at the settings on screen, follow the cost box,
draw both strategies' betas and show a red alert (not a traceback) for an emptied cost box.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from almanac import registry
from ml import factors
from tests.conftest import load_test_module

pytestmark = pytest.mark.browser
CHART_MS = 60_000


_rp = load_test_module(Path(__file__).with_name("test_run_pages.py"), "_almanac_browser_run_pages")  # train, figure


@pytest.fixture(scope="module")
def run_id(lab_server) -> str:
    rid, _ = _rp.train(lab_server.home, _rp.DEFAULT_CONFIG)
    return rid


def _alpha(run: dict, cost: float) -> tuple[str, str]:
    out = factors.run_exposure(run, 0.55, cost, False)
    return f"{out['model']['coef']['alpha']:.2%}", f"{out['always_long']['t']['Mkt-RF']:.2f}"


def test_factor_panel_shows_the_regression_and_follows_the_cost(page, lab_server, run_id, screenshot_dir):
    run = registry.get_run(run_id, lab_server.home)
    page.goto(f"/backtest?run={run_id}")
    expect(page.locator("#backtest-factors")).to_contain_text("turn the switch on", timeout=CHART_MS)  # off at first
    page.locator("#backtest-factors-show").check()
    table = page.locator("#backtest-factors-table")
    alpha, t_mkt_long = _alpha(run, 1.0)
    expect(table).to_contain_text(alpha, timeout=CHART_MS)
    expect(table).to_contain_text(t_mkt_long)
    expect(page.locator("#backtest-factors-notes")).to_contain_text(
        "Dec 2018 is outside the factor data (Jul 1926 – Nov 2018)")
    traces = _rp.figure(page, "backtest-factors-graph")
    assert [t["name"] for t in traces] == ["Model", "Always long"] and all(t["x"] == 3 for t in traces)
    page.locator("#backtest-factors-section").scroll_into_view_if_needed()
    page.locator("#backtest-factors-section").screenshot(path=str(screenshot_dir / "backtest-factors.png"))

    page.fill("#backtest-cost", "0")
    page.keyboard.press("Enter")
    alpha0, _ = _alpha(run, 0.0)
    assert alpha0 != alpha
    expect(table).to_contain_text(alpha0, timeout=CHART_MS)

    page.fill("#backtest-cost", "")
    page.keyboard.press("Enter")
    expect(page.locator("#backtest-factors .alert-danger")).to_contain_text(
        "backtest cost_bps must be a number >= 0", timeout=CHART_MS)


def test_similar_days_wait_for_find_and_move_a_weekend_to_the_day_before(page, lab_server, run_id, screenshot_dir):
    """/evaluate's similar-days panel computes nothing on load; "Find" draws the neighbours of the
    picked out-of-fold day, and a Saturday is answered with the Friday before it, said above."""
    import pandas as pd

    oof = pd.read_parquet(lab_server.home / "runs" / run_id / "oof.parquet")
    last = f"{oof['date'].max():%Y-%m-%d}"
    page.goto(f"/evaluate?run={run_id}")
    panel = page.locator("#evaluate-similar")
    expect(panel).to_contain_text("press Find similar days", timeout=CHART_MS)
    expect(page.locator("#evaluate-similar-day")).to_have_value(last)
    page.click("#evaluate-similar-go")
    traces = _rp.figure(page, "evaluate-similar-graph")
    title = page.locator("#evaluate-similar-graph .gtitle").text_content()
    assert title.startswith(f"ES {last}: 10 most similar earlier days"), title
    saturday = next(d for d in pd.date_range("2017-06-01", periods=8) if d.dayofweek == 5)
    friday = f"{oof['date'][oof['date'] < saturday].max():%Y-%m-%d}"
    box = page.locator("#evaluate-similar-day")
    box.fill(f"{saturday:%Y-%m-%d}")
    box.press("Enter")
    page.click("#evaluate-similar-go")
    expect(panel).to_contain_text(f"{saturday:%Y-%m-%d} has no row here", timeout=CHART_MS)
    expect(panel).to_contain_text(f"showing {friday}")
    expect(page.locator("#evaluate-similar-graph .gtitle")).to_contain_text(f"ES {friday}: 10 most similar",
                                                                           timeout=CHART_MS)
    assert len(traces) >= 12  # 10 neighbours, their mean, the query day (and the bar of what followed)
    page.locator("#evaluate-similar-section").scroll_into_view_if_needed()
    page.locator("#evaluate-similar-section").screenshot(path=str(screenshot_dir / "similar-days-evaluate.png"))
