"""The run report (ml.report gathers, viz.report renders): one offline HTML file holding
the run's numbers; the model card text."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from almanac.errors import AlmanacError
from tests.conftest import load_test_module


_te = load_test_module(Path(__file__).with_name("test_export.py"), "_almanac_test_export")  # builder, fixtures
build_run = _te.build_run
runs = _te.runs  # a fixture


def figure_data(html: str, div_id: str) -> list[dict]:
    """The data array passed to Plotly.newPlot for ``div_id``."""
    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', html)
    assert m, f"no figure {div_id}"
    data, _ = json.JSONDecoder().raw_decode(html, m.end())
    return data


def as_array(value) -> np.ndarray:
    """A trace array from the page: a list, or plotly's base64 typed array."""
    if isinstance(value, dict):
        import base64

        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
        shape = value.get("shape")
        return arr.reshape([int(n) for n in str(shape).split(",")]) if shape else arr
    return np.asarray(value)


def without_plotly_bundle(html: str) -> str:
    """The HTML with the inlined plotly.js bundle removed (it mentions URLs in strings)."""
    scripts = re.findall(r"<script[^>]*>.*?</script>", html, flags=re.S)
    bundles = [s for s in scripts if "plotly.js v" in s]
    assert len(bundles) == 1, "plotly.js must be inlined exactly once"
    return html.replace(bundles[0], "")


module_home = _te.module_home  # a fixture


@pytest.fixture(scope="module")
def binary_report(module_home):  # noqa: F811
    from cli.experiments import write_report

    run = build_run(module_home, "lightgbm", "binary")
    path = write_report(run["run_id"], module_home / "report.html")
    return run, path, path.read_text()


def test_report_is_self_contained(binary_report):
    _, path, html = binary_report
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", html)  # no external scripts
    assert not re.search(r"<link\b", html)  # no stylesheets or fonts from anywhere
    rest = without_plotly_bundle(html)
    for needle in ("http://", "https://", "cdn", "@import"):
        assert needle not in rest.lower()
    assert len(html) > 3_000_000  # the plotly bundle (~4.8 MB) really is inside


def test_report_holds_the_run_numbers(binary_report):
    from ml.report import fmt

    run, _, html = binary_report
    assert run["run_id"] in html
    sharpe = run["backtest"]["sharpe"]
    assert f"{sharpe:.4g}" == fmt(sharpe) and fmt(sharpe) in html
    assert "Trials counted for DSR" in html
    from ml.trials import deflated

    now = deflated(run)  # the registry's trials now (the same as runs show --json)
    assert f"DSR {fmt(now['dsr'], 'pct')}" in html and f"best of {now['n_trials']} trial(s)" in html
    assert "Report settings: threshold 0.55, long and short, 0.5 bp per side (the run&#x27;s recorded settings)." \
        in html
    assert "Always long" in html and 'class="warn"' not in html  # no warnings recorded: no box
    for div in ("fig-folds", "fig-confusion", "fig-roc", "fig-calibration", "fig-shap",
                "fig-equity", "fig-monthly"):
        assert f'id="{div}"' in html
    assert "threshold: 0.55" in html  # the spec as YAML
    assert "ab" * 32 in html  # data hashes
    run_dir = Path(run["path"])

    # confusion matrix at the spec's threshold equals sklearn's on the out-of-fold rows
    oof = pd.read_parquet(run_dir / "oof.parquet")
    cm = confusion_matrix(oof["y"].astype(int), (oof["prob"] >= 0.55).astype(int))
    assert np.array_equal(as_array(figure_data(html, "fig-confusion")[0]["z"]), cm)

    # equity trace = backtest.parquet equity
    daily = pd.read_parquet(run_dir / "backtest.parquet")
    equity = next(t for t in figure_data(html, "fig-equity") if t["name"] == "strategy")
    assert np.array_equal(as_array(equity["y"]), daily["equity"].to_numpy())

    # fold table rows: one per fold with its test range
    for f in run["folds"]:
        assert f"{f['test_start'][:10]} → {f['test_end'][:10]}" in html


def test_report_out_paths(runs, tmp_path):  # noqa: F811
    from almanac.settings import REPO_ROOT
    from cli.experiments import write_report

    run = build_run(runs, "logistic", "binary", run_id="20260101-000000-es-rod-logistic-x")
    path = write_report(run["run_id"], tmp_path)  # a folder: <run_id>.html inside
    assert path == tmp_path / f"{run['run_id']}.html" and path.stat().st_size > 0
    with pytest.raises(AlmanacError, match="assets/ is served publicly"):
        write_report(run["run_id"], REPO_ROOT / "assets" / "r.html")
    with pytest.raises(AlmanacError, match="does not exist"):
        write_report(run["run_id"], tmp_path / "nowhere" / "r.html")


def test_regression_report_shows_prediction_scatter(runs, tmp_path):  # noqa: F811
    from cli.experiments import write_report

    run = build_run(runs, "random_forest", "regression", run_id="20260101-000000-es-fwd-rf-y")
    html = write_report(run["run_id"], tmp_path / "r.html").read_text()
    assert 'id="fig-prediction"' in html and 'id="fig-roc"' not in html
    # the decile chart: mean realized return of the out-of-fold days in each predicted decile
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    bars = figure_data(html, "fig-deciles")[0]
    lowest = oof.sort_values("pred", kind="stable")["y"].to_numpy()[: int(as_array(bars["customdata"])[0])]
    assert as_array(bars["y"])[0] == pytest.approx(lowest.mean()) and as_array(bars["customdata"]).sum() == len(oof)
    assert "Classification at threshold" not in html
    assert f"{run['metrics']['r2']:.4g}" in html


def test_model_card_sections_and_numbers():
    from ml.modelcard import model_card

    meta = {"run_id": "r1", "name": "ES test", "format_version": 1, "task": "binary",
            "classes": ["down", "up"], "feature_names": ["a|b"], "threshold": 0.6,
            "features": [{"name": "a|b", "lineage": {"known_as_of": "10:15", "definition": "x"}}],
            "label": {"kind": "rest_of_day", "horizon_days": 0, "description": "close > cutoff"},
            "training": {"start": "2019-01-02", "end": "2020-08-11", "n_rows": 420},
            "metrics": {"roc_auc": 0.61234, "accuracy": 0.5678},
            "backtest": {"sharpe": 1.2345, "psr": 0.97, "dsr": 0.81, "n_trials": 7},
            "spec": {"data": {"symbol": "ES"}, "features": {"cutoff": "10:15"}},
            "files": {"model/model.txt": "0" * 64}, "data_hashes": {"ES 1min": "f" * 64}}
    card = model_card(meta)
    assert card.startswith("# Model card: ES test")
    assert "| ROC AUC | 0.6123 |" in card and "| Accuracy | 56.8% |" in card
    assert "| Sharpe ratio (annualized) | 1.234 |" in card or "| Sharpe ratio (annualized) | 1.235 |" in card
    assert "| DSR: PSR against the best of n trials | 81.0% |" in card
    assert "for the 7 trial(s)" in card
    assert "`a\\|b`" in card  # pipes escaped inside tables
    assert "2019-01-02 to 2020-08-11 (420 trading days)" in card


def test_multiclass_report_confusion_by_argmax(runs, tmp_path):  # noqa: F811
    from cli.experiments import write_report

    run = build_run(runs, "logistic", "multiclass", run_id="20260101-000000-es-arch-log-m")
    # the runner's multiclass SHAP layout: one block of rows per class
    feats = run["feature_names"]
    dates = pd.bdate_range("2020-01-01", periods=3)
    blocks = [pd.DataFrame({"date": dates, "fold": 0, "class": c,
                            **{f: (i + 1) * np.array([1.0, -1.0, 0.5]) * (j + 1) for j, f in enumerate(feats)}})
              for i, c in enumerate(run["classes"])]
    pd.concat(blocks).to_parquet(Path(run["path"]) / "shap.parquet", index=False)
    html = write_report(run["run_id"], tmp_path / "m.html").read_text()
    bars = figure_data(html, "fig-shap")[0]
    # mean |SHAP| of feature j in class i = (i + 1)(j + 1) * 2.5/3; summed over i = 1..4: 10
    expected = {f: 10 * (j + 1) * 2.5 / 3 for j, f in enumerate(feats)}
    assert dict(zip(bars["y"], as_array(bars["x"]), strict=True)) == pytest.approx(expected)
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    proba = oof[[f"prob_{c}" for c in run["classes"]]].to_numpy()
    cm = confusion_matrix(oof["y"].astype(int), proba.argmax(axis=1), labels=range(4))
    data = figure_data(html, "fig-confusion")[0]
    assert np.array_equal(as_array(data["z"]), cm)
    assert data["x"] == run["classes"]
    assert "No backtest in this run" in html and 'id="fig-roc"' not in html


def test_report_states_the_shap_sample():
    """A run whose SHAP values cover a sample of each fold's days says so under the chart;
    a run from before the sample (no run.json shap, or rows_per_fold None) says nothing."""
    from ml.report import shap_sample_note

    assert shap_sample_note({"shap": {"rows_per_fold": 100, "rows": 500, "seed": 3}}) == (
        "SHAP on at most 100 sampled days per fold (500 days, seed 3); mean |SHAP| over those days.")
    assert shap_sample_note({"shap": {"rows_per_fold": None, "rows": 2013, "seed": 0}}) is None
    assert shap_sample_note({}) is None


def test_report_html_carries_the_shap_note(binary_report):
    run, _, html = binary_report
    note = "sampled days per fold"
    assert (note in html) == (run.get("shap", {}).get("rows_per_fold") is not None)
