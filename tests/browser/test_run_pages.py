"""The run pages in headless Chromium: /evaluate, /backtest and /models on real runs.

Two runs are trained once for this module, in the app's own ``ALMANAC_HOME``, with the
command line (``python -m almanac train --config ...``): the default spec (LightGBM) and
the same spec with a logistic regression (for the compare and delete flows). Every test
fails on a browser console error (``conftest.page``). Charts are checked through the
figure data plotly holds in the page; screenshots go to
``tests/screenshots/{evaluate,backtest,models}-*.png``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from playwright.sync_api import expect

from almanac import registry
from tests.browser.conftest import page_on, start_lab

#: The /backtest charts a moved control changes (pages.backtest.CHARTS).
SLIDER_GRAPHS = ["equity-curve-graph", "backtest-drawdown-graph", "backtest-rolling-graph", "backtest-monthly-graph"]

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "configs" / "es-rest-of-day-lgbm.yaml"
TRAIN_TIMEOUT_S = 600
CHART_MS = 60_000

# plotly's decoded traces (``_fullData``: binary-encoded arrays from plotly.py are typed arrays there)
FIGURE = """(id) => { const g = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!g || !g._fullData || !g._fullData.length) return null;
  return g._fullData.map(t => ({name: t.name || null, x: t.x ? Array.from(t.x).length : 0,
                           y: t.y ? Array.from(t.y).length : 0, z: t.z ? Array.from(t.z, r => Array.from(r)) : null,
                           last: t.y && t.y.length ? Number(t.y[t.y.length - 1]) : null})); }"""


def train(home: Path, config: Path) -> tuple[str, float]:
    """Train ``config`` with the command line in ``home``; (run id, seconds)."""
    env = {**os.environ, "ALMANAC_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(config)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S)
    assert done.returncode == 0, f"training {config.name} failed:\n{done.stderr[-3000:]}"
    run_id = done.stdout.strip().splitlines()[-1].strip()
    registry.check_run_id(run_id)
    return run_id, time.monotonic() - t0


@pytest.fixture(scope="module")
def runs(lab_server, tmp_path_factory) -> dict:
    """The default LightGBM run and a logistic twin, trained once in the app's home."""
    lgbm, s1 = train(lab_server.home, DEFAULT_CONFIG)
    spec = yaml.safe_load(DEFAULT_CONFIG.read_text())
    spec.update(name="es-rest-of-day-logistic", model={"kind": "logistic", "params": {}})
    logistic_config = tmp_path_factory.mktemp("configs") / "logistic.yaml"
    logistic_config.write_text(yaml.safe_dump(spec, sort_keys=False))
    logit, s2 = train(lab_server.home, logistic_config)
    print(f"\ntrained {lgbm} in {s1:.1f} s and {logit} in {s2:.1f} s (command line, incl. start-up)")
    return {"lgbm": lgbm, "logit": logit}


def figure(page, graph_id: str):
    """The traces of graph ``graph_id`` once plotly has drawn it (name, point counts, z)."""
    page.wait_for_function(f"() => ({FIGURE})('{graph_id}') !== null", timeout=CHART_MS)
    return page.evaluate(FIGURE, graph_id)


def stats_text(page) -> str:
    return page.locator("#backtest-stats-table").inner_text()


# ----------------------------------------------------------------------------- empty states
def test_empty_states_point_to_train(chromium, tmp_path, screenshot_dir):
    """Before any run exists each run page says so and links to /train (a lab of its own: the
    session's lab holds the runs other browser tests trained)."""
    with start_lab(tmp_path) as lab, page_on(chromium, lab) as page:
        assert registry.list_runs(lab.home) == []
        _empty_states(page, screenshot_dir)


def _empty_states(page, screenshot_dir) -> None:
    for path in ("/evaluate", "/backtest", "/models"):
        page.goto(path)
        expect(page.locator(".almanac-empty")).to_contain_text("no runs yet — train one on /train")
        expect(page.locator(f"#{path[1:]}-to-train")).to_have_attribute("href", "/train")
        if path == "/evaluate":
            page.screenshot(path=str(screenshot_dir / "evaluate-empty.png"), full_page=True)
    page.click("#models-to-train-link")
    expect(page.locator("h1")).to_have_text("Train")


# ----------------------------------------------------------------------------- /evaluate
def test_evaluate_charts_have_data(page, runs, lab_server, screenshot_dir):
    page.goto("/evaluate")  # default: the newest run (the logistic one)
    expect(page.locator("#run-select")).to_contain_text("ES rest_of_day logistic")
    page.goto(f"/evaluate?run={runs['lgbm']}")
    expect(page.locator("#run-select")).to_contain_text("ES rest_of_day lightgbm · AUC")

    cm = figure(page, "confusion-matrix-graph")
    assert sum(map(sum, cm[0]["z"])) > 1000  # every out-of-fold day is counted once
    roc = figure(page, "roc-graph")
    assert roc[1]["x"] > 10
    calibration = figure(page, "calibration-graph")
    assert calibration[1]["x"] >= 5
    shap = figure(page, "shap-summary-graph")
    # the runner explains a seeded sample of test days per fold, and the beeswarm draws at most 500
    # of them (coloured + grey "missing" traces); each sample is said under the chart
    per_row = {}
    for t in shap:
        per_row[t["name"].removesuffix(" (missing)")] = per_row.get(t["name"].removesuffix(" (missing)"), 0) + t["x"]
    assert len(per_row) == 12 and len(set(per_row.values())) == 1 and 100 < next(iter(per_row.values())) <= 500
    expect(page.locator("#evaluate-shap-note")).to_contain_text(re.compile(r"SHAP on \d+ sampled days per fold "
                                                                           r"\(seed \d+\)"))
    # the WebGL beeswarm is drawn at the screen's pixel ratio, not plotly's default of 2
    assert page.evaluate("() => [document.querySelector('#shap-summary-graph .js-plotly-plot')"
                         "._context.plotGlPixelRatio, window.devicePixelRatio]") == [1, 1]
    drift = figure(page, "drift-graph")
    assert drift[0]["x"] > 1000
    assert figure(page, "psi-graph")[0]["z"]
    assert figure(page, "shap-bar-graph")[0]["x"] >= 10
    assert figure(page, "shap-dependence-graph")[0]["x"] == next(iter(per_row.values()))  # every explained day
    # permutation importance is computed when asked (then kept with the run)
    expect(page.locator("#evaluate-permutation-ask")).to_be_visible()
    page.click("#evaluate-permutation-compute")
    assert figure(page, "permutation-graph")[0]["x"] >= 10
    expect(page.locator("#evaluate-permutation-ask")).to_be_hidden()
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "evaluate-binary.png"), full_page=True)

    # the run's warnings on top and the baselines beside its scores (injected, as the runner records them)
    from tests.browser.test_train_flow import inject_trust

    record = inject_trust(lab_server.home, registry.get_run(runs["lgbm"], lab_server.home))
    page.reload()
    banner = page.locator("#evaluate-warnings")
    expect(banner).to_be_visible(timeout=CHART_MS)
    expect(banner.locator(".almanac-warning-line")).to_have_count(2)
    table = page.locator("#evaluate-baselines-table")
    expect(table).to_contain_text("Prior day")
    expect(table).to_contain_text(f"{record['baselines']['majority']['metrics']['accuracy']:.1%}")
    expect(page.locator("#evaluate-baselines")).to_contain_text("ROC AUC lift over 0.5: +0.020")
    expect(page.locator("#evaluate-summary-line")).to_contain_text("base rate (up days)")
    expect(page.locator("#evaluate-report-table")).to_contain_text("base rate (up days)")
    cv = figure(page, "evaluate-cv-graph")
    assert cv[0]["y"] == 5  # five folds as points (intervals drawn as error bars)
    # the app's colours, not Dash's default purple/blue, on the slider and the spinners
    fill = page.evaluate("""() => getComputedStyle(document.querySelector('#evaluate-threshold [role=slider]'))
                                   .backgroundColor""")
    track = page.evaluate("""() => { const r = document.querySelector('#evaluate-threshold .dash-slider-range')
                                       || document.querySelector('#evaluate-threshold [data-orientation] span span');
                                     return r ? getComputedStyle(r).backgroundColor : null; }""")
    print(f"\nslider thumb {fill}, range {track}")
    assert "127, 75, 196" not in f"{fill} {track}"  # #7f4bc4, Dash's default purple
    assert fill == "rgb(24, 188, 156)"  # the theme's accent
    # dcc.Loading's default spinner (shown only while a chart loads): the stylesheet's colour
    spinner = page.evaluate("""() => { const s = document.createElement('div'); s.className = 'dash-default-spinner';
        const r = document.createElement('div'); s.appendChild(r); document.body.appendChild(s);
        const c = getComputedStyle(r).backgroundColor; s.remove(); return c; }""")
    assert spinner == "rgb(24, 188, 156)"
    page.screenshot(path=str(screenshot_dir / "evaluate-binary-warnings.png"), full_page=True)

    # the threshold slider scrubs the precomputed grid: the matrix changes, its total does not
    before = cm[0]["z"]
    page.locator("#evaluate-threshold [role=slider]").focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#confusion-matrix-graph .gtitle")).to_contain_text("at 0.55", timeout=CHART_MS)
    after = figure(page, "confusion-matrix-graph")[0]["z"]
    assert after != before and sum(map(sum, after)) == sum(map(sum, before))

    # one fold: every chart keeps only that fold's test days
    n_all = roc[1]["x"]
    page.click("#evaluate-fold")
    page.get_by_role("option", name="Fold 3").click()
    expect(page.locator("#confusion-matrix-graph .gtitle")).to_be_visible()
    page.wait_for_function(f"() => ({FIGURE})('roc-graph')[1].x < {n_all}", timeout=CHART_MS)
    cm_fold = figure(page, "confusion-matrix-graph")[0]["z"]
    assert 300 < sum(map(sum, cm_fold)) < sum(map(sum, after))
    page.wait_for_function(f"() => ({FIGURE})('shap-summary-graph').reduce((a, t) => a + t.x, 0) < {12 * 500}",
                           timeout=CHART_MS)  # the fold's ~400 days, all drawn
    page.screenshot(path=str(screenshot_dir / "evaluate-fold.png"), full_page=True)


# ----------------------------------------------------------------------------- /backtest
def grid_total(page) -> int:
    """The number of rows the trades grid lists (its paging panel: "1 to 15 of N")."""
    text = page.locator("#backtest-trades .ag-paging-row-summary-panel").inner_text()
    return int(re.sub(r"\D", "", text.split("of")[-1]))


def inject_baselines(home: Path, run_id: str) -> dict:
    """Give a run trained before issue 9's runner a warning and recorded baselines (kept
    when the runner already wrote them); returns the record."""
    import json

    path = home / "runs" / run_id / "run.json"
    record = json.loads(path.read_text())
    if not record.get("warnings"):
        record["warnings"] = [{"code": "few_trades", "message": "browser test: a warning line from run.json"}]
    if not (record.get("baselines") or {}).get("prior_day"):
        record["baselines"] = {"prior_day": {"stats": {**record["backtest"], "sharpe": -0.1234, "trades": 999},
                                             "params": {"cost_bps": 1.0}},
                               "lift": {"sharpe": {"value": 0.5, "lo": -0.25, "hi": 1.25, "level": 0.95}}}
    path.write_text(json.dumps(record))
    return record


def test_backtest_slider_switch_and_downloads(page, runs, lab_server, screenshot_dir, tmp_path):
    record = inject_baselines(lab_server.home, runs["lgbm"])
    page.goto(f"/backtest?run={runs['lgbm']}")
    expect(page.locator("#backtest-stats-table")).to_contain_text("Trials counted for DSR", timeout=CHART_MS)
    # the run's warnings on top, one line each
    expect(page.locator("#backtest-warnings .alert-warning")).to_contain_text(record["warnings"][0]["message"])
    equity = figure(page, "equity-curve-graph")
    assert [t["name"] for t in equity] == ["buy and hold ES", "always long", "strategy"]
    assert all(t["x"] > 1000 for t in equity)
    assert figure(page, "backtest-monthly-graph")[0]["z"]
    assert figure(page, "backtest-drawdown-graph")[0]["y"] > 1000
    rolling = figure(page, "backtest-rolling-graph")
    assert rolling[0]["y"] > 1000 and rolling[1]["name"] == "whole period"
    heat = figure(page, "backtest-grid-graph")
    assert len(heat[0]["z"]) == 31 and len(heat[0]["z"][0]) == 9  # thresholds × costs
    run = registry.get_run(runs["lgbm"], lab_server.home)
    before = stats_text(page)
    header = page.locator("#backtest-stats-table thead").text_content()  # (shown upper case)
    assert "Model" in header and "Always long" in header and "Prior day" in header  # baseline columns
    lift = record["baselines"]["lift"]["sharpe"]  # the runner's own (or the injected one for an older run)

    def signed(x):
        return f"{x:+.2f}".replace("-", "−")
    shown = f"{signed(lift['value'])} (95 % CI {signed(lift['lo'])} to {signed(lift['hi'])})"
    assert "Lift over always long (Sharpe)" in before and shown in before, shown
    assert "Turnover" in before and "Cost drag" in before and "Volatility" in before
    assert f"{run['backtest']['trades']:,}" in before  # the run's own settings: its recorded trades
    assert grid_total(page) == run["backtest"]["trades"]  # the grid lists exactly the trades
    page.screenshot(path=str(screenshot_dir / "backtest-default.png"), full_page=True)

    # the log switch changes the axis in place (the figure is not redrawn from the server)
    last = equity[2]["last"]
    page.locator("#backtest-log").check()
    page.wait_for_function("() => document.querySelector('#equity-curve-graph .js-plotly-plot')"
                           "._fullLayout.yaxis.type === 'log'", timeout=CHART_MS)
    assert figure(page, "equity-curve-graph")[2]["last"] == last
    page.locator("#backtest-equity-section").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "backtest-log.png"), full_page=True)
    page.locator("#backtest-log").uncheck()
    page.wait_for_function("() => document.querySelector('#equity-curve-graph .js-plotly-plot')"
                           "._fullLayout.yaxis.type === 'linear'", timeout=CHART_MS)

    # the four charts a step changes are redrawn in place: the same plot elements, never mounted anew
    page.evaluate("(ids) => { window.__plots = ids.map(id => document.querySelector('#' + id + ' .js-plotly-plot')); }",
                  SLIDER_GRAPHS)
    page.locator("#threshold-slider [role=slider]").focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    expect(page.locator("#threshold-slider input[type=number]")).to_have_value("0.6")
    page.wait_for_function("(b) => document.querySelector('#backtest-stats-table').innerText !== b", arg=before,
                           timeout=CHART_MS)
    moved = stats_text(page)
    assert moved != before and f"{run['backtest']['trades']:,}" not in moved
    # the strategy's curve was patched in place: a new last value, the same days
    page.wait_for_function(f"() => ({FIGURE})('equity-curve-graph')[2].last !== {last}", timeout=CHART_MS)
    assert figure(page, "equity-curve-graph")[2]["x"] == equity[2]["x"]
    assert page.evaluate("(ids) => ids.map((id, i) => document.querySelector('#' + id + ' .js-plotly-plot') "
                         "=== window.__plots[i])", SLIDER_GRAPHS) == [True] * 4
    trades_row = next(line for line in moved.splitlines() if line.startswith("Trades"))
    assert grid_total(page) == int(re.sub(r"\D", "", trades_row.split("\t")[1]))

    page.locator("#backtest-long-only").check()
    page.wait_for_function("(b) => document.querySelector('#backtest-stats-table').innerText !== b", arg=moved,
                           timeout=CHART_MS)
    expect(page.locator("#backtest-trades .ag-row").first).to_contain_text("long")
    expect(page.locator("#backtest-trades")).not_to_contain_text("short")
    page.screenshot(path=str(screenshot_dir / "backtest-moved.png"), full_page=True)

    with page.expect_download(timeout=CHART_MS) as csv_dl:
        page.click("#backtest-csv-button")
    daily = pd.read_csv(csv_dl.value.path())
    assert len(daily) == run["n_oof"] and (daily["position"] >= 0).all()
    with page.expect_download(timeout=CHART_MS) as report_dl:
        page.click("#download-report-button")
    assert report_dl.value.suggested_filename == f"{runs['lgbm']}-report.html"
    html = Path(report_dl.value.path()).read_text()
    assert html.startswith("<!DOCTYPE html>") and runs["lgbm"] in html
    assert re.search(r"<(script|link)\b[^>]*\b(src|href)=[\"']?https?:", html) is None  # self-contained
    assert "Report settings: threshold 0.60, long only" in html  # the settings on screen, recorded
    assert "browser test: a warning line" in html or record["warnings"][0]["message"] in html
    expect(page.locator(".alert-danger")).to_have_count(0)


# ----------------------------------------------------------------------------- /models
def test_export_downloads_a_bundle_that_predicts_like_the_run(page, runs, lab_server, tmp_path):
    from ml import persist
    from ml.export import load_bundle, predictions

    page.goto(f"/models?run={runs['lgbm']}")  # preselects the run
    expect(page.locator("#export-model-button")).to_be_enabled(timeout=CHART_MS)
    with page.expect_download(timeout=CHART_MS) as dl:
        page.click("#export-model-button")
    assert dl.value.suggested_filename == f"{runs['lgbm']}.zip"
    path = tmp_path / dl.value.suggested_filename
    dl.value.save_as(path)
    expect(page.locator("#models-message")).to_contain_text("Exported")
    bundle = load_bundle(path)
    run = registry.get_run(runs["lgbm"], lab_server.home)
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    expected = model.predict_proba(data[run["feature_names"]])[:, 1]
    assert np.array_equal(predictions(bundle, data)["prob"].to_numpy(), expected)
    assert not any((lab_server.home / "tmp").iterdir())  # the temporary export is removed


def check_row(page, run_id: str) -> None:
    page.locator(f'#models-grid .ag-row[row-id="{run_id}"] input.ag-checkbox-input').first.check()


def test_compare_two_runs(page, runs, screenshot_dir):
    page.goto("/models")
    expect(page.locator("#models-grid .ag-row").first).to_be_visible()
    page.screenshot(path=str(screenshot_dir / "models-registry.png"), full_page=True)
    check_row(page, runs["lgbm"])
    check_row(page, runs["logit"])
    expect(page.locator("#models-selection")).to_contain_text("2 runs selected")
    lines = [t for t in figure(page, "models-compare-equity-graph") if not t["name"].startswith("buy and hold")]
    assert len(lines) == 2 and all(t["x"] > 1000 for t in lines)
    assert {t["name"].split(" ")[0] for t in lines} == {"lightgbm", "logistic"}
    cv = figure(page, "models-compare-cv-graph")
    assert len(cv) == 2 and all(t["y"] == 5 for t in cv)
    expect(page.locator("#models-compare-table")).to_contain_text("Sharpe ratio (annualized)")
    expect(page.locator("#models-compare-table")).to_contain_text("Trials counted for DSR")
    # numbers right-aligned; the better value of ranked rows marked
    align = page.evaluate("""() => getComputedStyle(document.querySelector('#models-compare-table td.almanac-num'))
                                   .textAlign""")
    assert align == "right"
    assert page.locator("#models-compare-table td.almanac-best").count() >= 5
    page.locator("#models-compare-section").scroll_into_view_if_needed()
    page.screenshot(path=str(screenshot_dir / "models-compare.png"), full_page=True)


def test_rename_and_annotate_a_run(page, runs, lab_server, screenshot_dir):
    page.goto("/models")
    check_row(page, runs["lgbm"])
    name = registry.get_run(runs["lgbm"], lab_server.home)["name"]
    expect(page.locator("#models-name")).to_have_value(name)
    page.fill("#models-name", "lgbm, renamed in the browser")
    page.fill("#models-notes", "a note\nsecond line")
    page.click("#models-labels-save")
    expect(page.locator("#models-message")).to_contain_text("Saved")
    row = page.locator(f'#models-grid .ag-row[row-id="{runs["lgbm"]}"]').first
    expect(row).to_contain_text("lgbm, renamed in the browser")
    expect(row).to_contain_text("a note · second line")
    run = registry.get_run(runs["lgbm"], lab_server.home)
    assert (run["name"], run["user_notes"]) == ("lgbm, renamed in the browser", "a note\nsecond line")
    page.screenshot(path=str(screenshot_dir / "models-labels.png"), full_page=True)
    page.fill("#models-name", "")  # refused: a run keeps a name; nothing changes
    page.click("#models-labels-save")
    expect(page.locator("#models-message .alert-danger")).to_contain_text("the run name is empty")
    assert registry.get_run(runs["lgbm"], lab_server.home)["name"] == "lgbm, renamed in the browser"


@pytest.mark.parametrize("config, task", [("es-forward-return-xgb.yaml", "regression"),
                                          ("es-archetype-rf.yaml", "multiclass")])
def test_evaluate_fits_the_task(page, lab_server, screenshot_dir, config, task):
    """Regression and multiclass runs: no card titled "ROC curve" holding something else,
    no empty "not shown" card; the shown cards have charts."""
    run_id, seconds = train(lab_server.home, ROOT / "configs" / config)
    print(f"\ntrained {run_id} ({task}) in {seconds:.1f} s")
    page.goto(f"/evaluate?run={run_id}")
    cv = figure(page, "evaluate-cv-graph")
    assert cv[0]["y"] >= 4  # one point per fold
    assert figure(page, "psi-graph")[0]["z"]
    titles = page.locator(".almanac-section:visible .almanac-section-title").all_inner_texts()
    assert "ROC curve" not in titles and "Calibration" not in titles
    if task == "regression":
        assert "Prediction vs outcome" in titles and "Confusion matrix" not in titles
        assert figure(page, "evaluate-scatter-graph")[1]["x"] > 1000
    else:
        assert figure(page, "confusion-matrix-graph")[0]["z"]
        expect(page.locator("#evaluate-report-table")).to_contain_text("majority class share")
    for section in page.locator(".almanac-section:visible").all():  # no empty "not shown" cards
        assert "Not shown" not in section.inner_text() and "No ROC" not in section.inner_text()
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.wait_for_timeout(500)
    page.screenshot(path=str(screenshot_dir / f"evaluate-{task}.png"), full_page=True)


def test_mark_active_then_delete_with_confirmation(page, runs, lab_server, screenshot_dir):
    page.goto("/models")
    check_row(page, runs["logit"])
    page.click("#models-activate-button")
    expect(page.locator("#models-message")).to_contain_text("active model for ES / rest_of_day")
    expect(page.locator(f'#models-grid .ag-row[row-id="{runs["logit"]}"]').first).to_contain_text("active")

    page.click("#models-delete-button")
    expect(page.locator("#models-delete-modal")).to_be_visible()
    expect(page.locator("#models-delete-body")).to_contain_text(runs["logit"])
    page.wait_for_function("() => { const m = document.querySelector('.modal.show');"
                           " return m && getComputedStyle(m).opacity === '1'; }")  # faded in
    page.screenshot(path=str(screenshot_dir / "models-delete-confirm.png"))
    page.click("#models-delete-cancel")  # cancel keeps the run
    expect(page.locator("#models-delete-modal")).to_be_hidden()
    assert runs["logit"] in {r["run_id"] for r in registry.list_runs(lab_server.home)}

    page.click("#models-delete-button")
    page.click("#models-delete-confirm")
    expect(page.locator("#models-message")).to_contain_text("deleted run")
    expect(page.locator(f'#models-grid .ag-row[row-id="{runs["logit"]}"]')).to_have_count(0)
    assert runs["logit"] not in {r["run_id"] for r in registry.list_runs(lab_server.home)}
    assert not (lab_server.home / "runs" / runs["logit"]).exists()
    expect(page.locator(f'#models-grid .ag-row[row-id="{runs["lgbm"]}"]').first).to_be_visible()
