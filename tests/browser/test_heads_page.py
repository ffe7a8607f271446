"""A multi-head run in headless Chromium: /evaluate and /backtest of a head show the heads side
by side (one row per head, each linking to its own run) and the gated backtest's equity.

One small multi-head spec (two years of the sample data, few trees) is trained once with the
command line in the app's own ``ALMANAC_HOME``. Every test fails on a browser console error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import expect

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
SPEC = {"name": "browser-heads", "data": {"symbol": "ES", "start": "2016-01-01", "end": "2018-12-31"},
        "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
        "model": {"kind": "lightgbm", "params": {"n_estimators": 30}},
        "heads": {"up": {"label": "rest_of_day"}, "day": {"label": "direction"},
                  "ret": {"label": "forward_return", "model": {"kind": "xgboost", "params": {"n_estimators": 30}}}},
        "validation": {"n_splits": 3, "gap": 1, "min_train": 250},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0, "signal": "up", "gate": {"head": "day", "min_proba": 0.55}}}
FIGURE = """(id) => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!g || !g._fullData) return null;
  return g._fullData.map(t => ({name: t.name, n: t.y ? Array.from(t.y).length : 0})); }"""


@pytest.fixture(scope="module")
def multi(lab_server, tmp_path_factory) -> dict:
    cfg = tmp_path_factory.mktemp("heads") / "heads.yaml"
    cfg.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(cfg), "--json"], cwd=ROOT,
                          env={**os.environ, "ALMANAC_HOME": str(lab_server.home)}, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("path, page_id", [("/evaluate", "evaluate"), ("/backtest", "backtest")])
def test_a_heads_page_shows_the_heads_side_by_side(page, lab_server, multi, path, page_id, screenshot_dir):
    up = multi["heads"]["up"]["run_id"]
    page.goto(f"{lab_server.url}{path}?run={up}")
    table = page.locator(f"#{page_id}-heads-table")
    expect(table).to_be_visible(timeout=60_000)
    rows = table.locator("tbody tr")
    expect(rows).to_have_count(3)
    assert [rows.nth(i).get_attribute("data-head") for i in range(3)] == ["up", "day", "ret"]
    for i, name in enumerate(["up", "day", "ret"]):  # each head links to its own run on this page
        href = rows.nth(i).locator("a").get_attribute("href")
        assert href == f"{path}?run={multi['heads'][name]['run_id']}"
    auc = multi["heads"]["day"]["metrics"]["roc_auc"]
    expect(rows.nth(1)).to_contain_text(f"ROC AUC {auc:.3f}")
    g = multi["gated_backtest"]
    expect(page.locator(f"#{page_id}-gated-line")).to_contain_text(f"Sharpe {g['sharpe']:.2f}")
    page.wait_for_function(f"() => {{ const f = ({FIGURE})('{page_id}-gated-equity'); return f && f.length === 3; }}",
                           timeout=30_000)
    traces = page.evaluate(FIGURE, f"{page_id}-gated-equity")
    assert [t["name"] for t in traces] == ["buy and hold", "up alone", "gated"]
    assert all(t["n"] == g["days"] for t in traces)  # the same out-of-fold days
    page.locator(f"#{page_id}-multihead").screenshot(path=str(screenshot_dir / f"{page_id}-multi-head.png"))
