"""/models in headless Chromium: select two runs, make an ensemble; incompatible runs get a red alert.

Three runs are trained once with the command line in the app's own home: the default spec
(LightGBM), its logistic twin (same folds: they combine) and ``es-direction-logistic``
(another label: refused). The console must stay free of errors (``conftest.page``).
"""

from __future__ import annotations

import pytest
import yaml
from playwright.sync_api import expect

from almanac import registry
from tests.browser.test_run_pages import DEFAULT_CONFIG, ROOT, train

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def runs(lab_server, tmp_path_factory) -> dict:
    lgbm, _ = train(lab_server.home, DEFAULT_CONFIG)
    logit, _ = train(lab_server.home, ROOT / "configs" / "es-rest-of-day-logistic.yaml")
    spec = yaml.safe_load((ROOT / "configs" / "es-direction-logistic.yaml").read_text())
    cfg = tmp_path_factory.mktemp("configs") / "direction.yaml"
    cfg.write_text(yaml.safe_dump(spec, sort_keys=False))
    direction, _ = train(lab_server.home, cfg)
    return {"lgbm": lgbm, "logit": logit, "direction": direction}


def tick(page, run_id: str, on: bool = True) -> None:
    box = page.locator(f"#models-grid .ag-row[row-id='{run_id}'] .ag-selection-checkbox input").first
    box.check() if on else box.uncheck()


def test_models_makes_an_ensemble_and_refuses_another_label_in_red(page, lab_server, runs, screenshot_dir):
    page.goto("/models")
    button = page.locator("#models-ensemble-button")
    expect(page.locator(f"#models-grid .ag-row[row-id='{runs['lgbm']}']")).to_be_visible(timeout=60_000)
    tick(page, runs["lgbm"])
    expect(button).to_be_disabled()  # one run: nothing to combine
    tick(page, runs["direction"])
    expect(button).to_be_enabled()
    before = {r["run_id"] for r in registry.list_runs(lab_server.home)}
    button.click()
    alert = page.locator("#models-message .alert")
    expect(alert).to_contain_text("differ in label (rest_of_day vs direction)", timeout=60_000)
    assert "alert-danger" in alert.get_attribute("class")
    assert {r["run_id"] for r in registry.list_runs(lab_server.home)} == before
    page.screenshot(path=str(screenshot_dir / "models-ensemble-refused.png"))

    tick(page, runs["direction"], on=False)
    tick(page, runs["logit"])
    page.select_option("#models-ensemble-method", "stack")
    button.click()
    expect(alert).to_contain_text("made (stack of 2 runs, AUC", timeout=120_000)
    made = {r["run_id"] for r in registry.list_runs(lab_server.home)} - before
    assert len(made) == 1
    rid = made.pop()
    run = registry.get_run(rid, lab_server.home)
    assert run["kind"] == "ensemble" and [p["run_id"] for p in run["ensemble"]["parts"]] == \
        [runs["lgbm"], runs["logit"]]
    expect(page.locator(f"#models-grid .ag-row[row-id='{rid}']")).to_be_visible(timeout=30_000)
    page.screenshot(path=str(screenshot_dir / "models-ensemble.png"), full_page=True)
