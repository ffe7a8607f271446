"""Regime slices in headless Chromium: /evaluate's "Scores by regime" and /backtest's "By regime"
cards on a run of configs/es-rest-of-day-hmm.yaml (cut to 2010-2013 and CL to train in seconds),
trained with the command line in the app's own home. The numbers on screen are checked against
scikit-learn on the run's stored out-of-fold rows; every test fails on a browser console error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from playwright.sync_api import expect
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHART_MS = 60_000
BARS = """(id) => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!g || !g._fullData || !g._fullData.length) return null;
  return g._fullData.map(t => ({name: t.name || null, x: t.x ? Array.from(t.x) : [], y: t.y ? Array.from(t.y) : [],
                                text: t.text ? Array.from(t.text) : []})); }"""


@pytest.fixture(scope="module")
def run(lab_server, tmp_path_factory) -> dict:
    spec = yaml.safe_load((ROOT / "configs" / "es-rest-of-day-hmm.yaml").read_text())
    spec["data"]["end"] = "2013-12-31"
    spec["features"]["cross_assets"] = ["CL"]  # the sample VIX starts in 2014
    cfg = tmp_path_factory.mktemp("cfg") / "hmm.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(cfg), "--json"], cwd=ROOT,
                          env={**os.environ, "ALMANAC_HOME": str(lab_server.home)}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def traces(page, graph_id: str):
    page.wait_for_function(f"() => ({BARS})('{graph_id}') !== null", timeout=CHART_MS)
    return page.evaluate(BARS, graph_id)


def test_evaluate_scores_by_regime(page, run, screenshot_dir):
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    names = run["regimes"]["names"]
    page.goto(f"/evaluate?run={run['run_id']}")
    bars = traces(page, "evaluate-regimes-graph")[0]
    shown = [s for s in range(len(names)) if (oof["regime"] == s).any()]
    assert bars["x"] == [names[s] for s in shown]
    for s, y, text in zip(shown, bars["y"], bars["text"], strict=True):
        m = oof["regime"] == s
        assert y == pytest.approx(roc_auc_score(oof["y"][m], oof["prob"][m]), abs=1e-9)
        assert text.endswith(f"n={int(m.sum()):,}")
    table = page.locator("#evaluate-regimes-grid")
    assert table.locator("tbody tr").count() == len(shown)
    assert "DAYS" in table.inner_text().upper() and "ROC AUC" in table.inner_text().upper()
    page.locator("#evaluate-regimes-section").screenshot(path=str(screenshot_dir / "regimes-evaluate.png"))


def test_backtest_by_regime(page, run, screenshot_dir):
    page.goto(f"/backtest?run={run['run_id']}")
    expect(page.locator("#backtest-regimes-chart")).to_contain_text("turn the switch on", timeout=CHART_MS)
    page.locator("#backtest-regimes-show").check()
    lines = traces(page, "backtest-regimes-graph")
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    counts = oof["regime"].value_counts()
    names = run["regimes"]["names"]
    assert sorted(t["name"] for t in lines) == sorted(f"{names[s]} ({int(n):,} days)" for s, n in counts.items())
    table = page.locator("#backtest-regimes-grid")
    page.wait_for_function("() => document.querySelector('#backtest-stats-table') !== null", timeout=CHART_MS)
    rows = [r.split("\t") for r in table.locator("tbody tr").all_inner_texts()]
    trades = sum(int(r[2].replace(",", "")) for r in rows)  # the regimes' trades add up to the run's
    assert trades == run["backtest"]["trades"]
    page.locator("#backtest-regimes-section").screenshot(path=str(screenshot_dir / "regimes-backtest.png"))
