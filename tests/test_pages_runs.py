"""The run pages (/evaluate, /backtest, /models), the run picker and viz.compare, as plain
functions on real run folders.

A module fixture writes a small seeded market (ES 5-minute bars, VIX daily) and trains
four runs with the real runner (binary LightGBM, binary logistic, regression, multiclass);
the callbacks then read those folders. Numbers are checked against hand computations on
the stored out-of-fold rows or against scikit-learn, and the slider callbacks are run
with the model factory and the model loader made to raise (nothing may refit or load a
model).
"""

from __future__ import annotations

import io
import zipfile
from contextvars import copy_context
from pathlib import Path

import numpy as np
import pandas as pd
import dash
import pytest
import dash
from dash import dcc
from dash._callback_context import context_value
from dash._utils import AttributeDict
from sklearn.metrics import confusion_matrix, roc_curve

from almanac import registry
from tests.conftest import texts

SPEC = {
    "name": "tiny",
    "data": {"symbol": "ES"},
    "features": {"sets": ["early_session", "cross_asset", "regime"], "cutoff": "10:15", "cross_assets": ["VIX"]},
    "label": {"kind": "rest_of_day"},
    "model": {"kind": "lightgbm", "params": {"n_estimators": 25}},
    "validation": {"n_splits": 3, "gap": 1, "min_train": 150},
    "backtest": {"threshold": 0.52, "cost_bps": 1.0},
}
DAYS = 330


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def lab(tmp_path_factory, page_module):
    """A home with a small market and four runs; ALMANAC_HOME points at it; pages imported."""
    from bench.synthetic import futures_minutes

    from almanac.store import Store
    from ml.runner import run_experiment

    home = tmp_path_factory.mktemp("runs-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ALMANAC_HOME", str(home))
    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=DAYS, seed=3, step=5, overnight=False),
                source="test")
    rng = np.random.default_rng(4)
    dates = pd.bdate_range("2018-01-02", periods=DAYS + 150)
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": 15 * np.exp(np.cumsum(rng.normal(0, .05,
                                                                                                   len(dates))))}),
                source="test")
    runs = {
        "lgbm": run_experiment(SPEC, store=store),
        "logit": run_experiment({**SPEC, "name": "tiny-logit", "model": {"kind": "logistic", "params": {}}},
                                store=store),
        "reg": run_experiment({**SPEC, "name": "tiny-reg", "label": "forward_return"}, store=store),
        "multi": run_experiment({**SPEC, "name": "tiny-arch", "label": "archetype",
                                 "features": {"sets": ["early_session", "regime"]}}, store=store),
    }
    from ml.explain import run_permutation_importance

    run_permutation_importance(runs["lgbm"]["run_id"])  # as a click on /evaluate's button would (kept after)
    yield {"home": home, "runs": runs, "pages": {n: page_module(n) for n in ("evaluate", "backtest", "models")}}
    mp.undo()


@pytest.fixture
def no_models(monkeypatch):
    """Fitting or loading a model raises: slider callbacks must only read stored artifacts."""
    import ml.models
    import ml.persist
    import ml.runner

    def refuse(*_a, **_k):
        raise AssertionError("a page callback tried to build or load a model")

    for mod, name in ((ml.models, "make_model"), (ml.runner, "make_model"), (ml.persist, "load_model"),
                      (ml.persist, "save_model")):
        monkeypatch.setattr(mod, name, refuse)


def oof(run) -> pd.DataFrame:
    return pd.read_parquet(Path(run["path"]) / "oof.parquet")


def in_callback(func, prop_id: str, *args):
    """Call a callback that reads ``dash.ctx.triggered_id`` as if ``prop_id`` fired it."""
    def run():
        context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": 1}]))
        return func(*args)
    return copy_context().run(run)


def graph_data(node, graph_id: str):
    """The figure of dcc.Graph ``graph_id`` inside a component tree (None if absent)."""
    if isinstance(node, dcc.Graph) and node.id == graph_id:
        return node.figure
    children = getattr(node, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = graph_data(child, graph_id)
            if found is not None:
                return found
    return None


def find(node, cid):
    """The component with id ``cid`` inside a component tree (None if absent)."""
    if getattr(node, "id", None) == cid:
        return node
    children = node if isinstance(node, (list, tuple)) else getattr(node, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if child is not None and not isinstance(child, (str, int, float)):
            found = find(child, cid)
            if found is not None:
                return found
    return None


# ----------------------------------------------------------------------------- run picker
def test_run_label_options_and_pick():
    from pages._components.runs import pick_run, run_label, run_options, short_label

    new = {"run_id": "20261122-081500-es-rest-of-day-lightgbm-1a2b3c", "created_at": "2026-11-22T08:15:00+00:00",
           "symbol": "ES", "label": "rest_of_day", "model": "lightgbm", "metrics": {"roc_auc": 0.5312}}
    old = {"run_id": "20261121-070000-es-forward-return-hist-gb-ffffff", "created_at": "2026-11-21T07:00:59+00:00",
           "symbol": "ES", "label": "forward_return", "model": "hist_gb", "metrics": {"ic": -0.0449, "r2": 0.1}}
    assert run_label(new) == "2026-11-22 08:15 · ES rest_of_day lightgbm · AUC 0.53"
    assert run_label(old) == "2026-11-21 07:00 · ES forward_return hist_gb · IC -0.04"
    assert short_label(new) == "lightgbm rest_of_day · 11-22 08:15 · 1a2b3c"
    assert [o["value"] for o in run_options([new, old])] == [new["run_id"], old["run_id"]]
    assert pick_run([new, old]) == new["run_id"]
    assert pick_run([new, old], old["run_id"]) == old["run_id"]
    assert pick_run([new, old], "no-such-run") == new["run_id"]
    assert pick_run([], "x") is None


def test_empty_registry_shows_the_way_to_train(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path))
    for name, page in lab["pages"].items():
        tree = page.layout()
        assert "no runs yet — train one on /train" in " ".join(texts(tree).split()), name
        assert "href='/train'" in repr(tree) or 'href="/train"' in repr(tree), name


def test_layouts_default_to_the_newest_run_or_the_query(lab):
    runs = lab["runs"]
    newest = registry.list_runs()[0]["run_id"]
    for page in lab["pages"].values():
        assert "run-select" in repr(page.layout()) or page is lab["pages"]["models"]
    ev = lab["pages"]["evaluate"]
    assert f"value='{newest}'" in repr(ev.layout())
    assert f"value='{runs['logit']['run_id']}'" in repr(ev.layout(run=runs["logit"]["run_id"]))


# ----------------------------------------------------------------------------- /evaluate
def test_confusion_matrix_at_threshold_matches_hand_counts(lab, no_models):
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    o = oof(run)
    for fold, rows in (("all", o), ("1", o[o["fold"] == 1])):
        for t in (0.45, 0.52, 0.6):
            graph, report = ev.render_confusion(run["run_id"], fold, t)
            z = np.asarray(graph.figure["data"][0]["z"])
            up, hat = rows["y"] == 1, rows["prob"] >= t
            assert z.tolist() == [[int((~up & ~hat).sum()), int((~up & hat).sum())],
                                  [int((up & ~hat).sum()), int((up & hat).sum())]]
            precision_up = (up & hat).sum() / hat.sum()
            assert f"{precision_up:.3f}" in texts(report)
    assert graph.id == "confusion-matrix-graph"


def test_report_frame_equals_sklearn_on_the_counts():
    from pages.evaluate import report_frame
    from sklearn.metrics import precision_recall_fscore_support

    cm = np.array([[5, 3, 0], [2, 7, 1], [0, 4, 9]])
    table = report_frame(cm, ["a", "b", "c"]).set_index("class")
    true = np.repeat([0, 0, 0, 1, 1, 1, 2, 2, 2], cm.ravel())
    pred = np.repeat([0, 1, 2, 0, 1, 2, 0, 1, 2], cm.ravel())
    p, r, f, s = precision_recall_fscore_support(true, pred)
    assert np.allclose(table.loc[["a", "b", "c"], "precision"], p)
    assert np.allclose(table.loc[["a", "b", "c"], "recall"], r)
    assert table.loc[["a", "b", "c"], "support"].tolist() == s.tolist() == [8, 10, 13]
    assert table.loc["accuracy", "f1-score"] == pytest.approx(21 / 31)


def test_roc_and_calibration_pooled_and_per_fold(lab, no_models):
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    roc, cal, cv = ev.render_curves(run["run_id"], "all")
    assert roc.id == "roc-graph" and cal.id == "calibration-graph"
    o = oof(run)
    fpr, tpr, _ = roc_curve(o["y"], o["prob"])
    assert np.allclose(roc.figure["data"][1]["x"], fpr) and np.allclose(roc.figure["data"][1]["y"], tpr)
    subtitle = cal.figure["layout"]["title"]["subtitle"]["text"]
    assert f"Brier {run['metrics']['brier']:.4f}" in subtitle and f"ECE {run['metrics']['ece']:.4f}" in subtitle
    assert np.allclose(np.asarray(cv.figure["data"][0]["y"], float), [f["roc_auc"] for f in run["folds"]])
    roc0, cal0, _ = ev.render_curves(run["run_id"], "0")
    f0 = o[o["fold"] == 0]
    fpr0, _, _ = roc_curve(f0["y"], f0["prob"])
    assert np.allclose(roc0.figure["data"][1]["x"], fpr0)
    assert sum(cal0.figure["data"][2]["y"]) == len(f0)  # the histogram counts the fold's days only


def test_shap_and_dependence_filter_the_fold(lab, no_models):
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    shap = pd.read_parquet(Path(run["path"]) / "shap.parquet")
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    summary, bar, note = ev.render_shap(run["run_id"], "2", None)
    # every day of the fold drawn: only the runner's per-fold sample is said (run.json["shap"])
    assert summary.id == "shap-summary-graph" and note == "SHAP on 100 sampled days per fold (seed 0)."
    n2 = int((shap["fold"] == 2).sum())
    drawn = {}  # a feature's days: its coloured trace + its grey "(missing)" trace
    for t in summary.figure["data"]:
        name = (t["name"] or "").removesuffix(" (missing)")
        drawn[name] = drawn.get(name, 0) + len(t["x"])
    assert set(drawn.values()) == {n2}
    top = bar.figure["data"][0]["y"][-1]  # largest bar on top
    assert bar.figure["data"][0]["x"][-1] == pytest.approx(shap.loc[shap["fold"] == 2, top].abs().mean())
    feature = run["feature_names"][0]
    dep = ev.render_dependence(run["run_id"], "2", feature, None)
    rows = shap[shap["fold"] == 2]
    assert np.allclose(dep.figure["data"][0]["y"], rows[feature])
    assert np.allclose(dep.figure["data"][0]["x"], data.loc[pd.DatetimeIndex(rows["date"]), feature], equal_nan=True)


def test_shap_beeswarm_draws_a_stated_sample(lab, no_models, monkeypatch):
    """More explained days than SHAP_DRAWN: the beeswarm draws a seeded sample (the same
    days in every row) and says so under the chart; the bars keep every day's mean."""
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    shap = pd.read_parquet(Path(run["path"]) / "shap.parquet")
    monkeypatch.setattr(ev, "SHAP_DRAWN", 60)
    summary, bar, note = ev.render_shap(run["run_id"], "all", None)
    from viz.evaluation import beeswarm_sample

    rows = beeswarm_sample(len(shap), 60, ev.SHAP_SEED)
    top = bar.figure["data"][0]["y"][-1]
    trace = next(t for t in summary.figure["data"] if t["name"] == top)
    assert {t["type"] for t in summary.figure["data"]} <= {"scatter", "scattergl"}
    values = pd.read_parquet(Path(run["path"]) / "dataset.parquet").reindex(pd.DatetimeIndex(shap["date"]))[top]
    has = values.notna().to_numpy()[rows]
    assert np.array_equal(np.asarray(trace["x"]), shap[top].to_numpy()[rows][has].astype("float32"))
    assert bar.figure["data"][0]["x"][-1] == pytest.approx(shap[top].abs().mean())  # every day
    assert note == (f"SHAP on 100 sampled days per fold (seed 0). The beeswarm draws a seeded sample of 60 of the "
                    f"{len(shap):,} explained days; its ranking and colours, the mean |SHAP| bars and the dependence "
                    f"plot use all {len(shap):,}.")
    # a run whose SHAP the runner computed on a sample of each fold says so (run.json["shap"])
    assert ev.shap_note({"shap": {"rows_per_fold": 300, "rows": 900, "seed": 7}}, 900, 900) == \
        "SHAP on 300 sampled days per fold (seed 7)."
    assert ev.shap_note({"shap": {"rows_per_fold": None, "rows": 900, "seed": 7}}, 900, 900) is None
    assert ev.shap_note({}, 900, 900) is None


def test_the_beeswarm_draws_webgl_at_the_screens_pixel_ratio(lab, no_models):
    """plotly draws a WebGL canvas at plotGlPixelRatio times its size (2 unless told): the
    beeswarm gets the screen's device pixel ratio, read in the browser, within plotly's 1-4."""
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    assert [ev.gl_pixel_ratio(r) for r in (1, 1.25, 2, 3, 8, 0.5, None, "?", float("nan"))] == \
        [1.0, 1.25, 2.0, 3.0, 4.0, 1.0, 2.0, 2.0, 2.0]
    for ratio, want in ((1, 1.0), (2.5, 2.5), (None, 2.0)):
        summary, bars, _ = ev.render_shap(run["run_id"], "all", None, ratio)
        assert summary.config == {**ev.GRAPH_CONFIG, "plotGlPixelRatio": want}
        assert bars.config == ev.GRAPH_CONFIG


def test_callback_payloads_stay_small(lab, no_models):
    """What the page's callbacks send for a run, in bytes (the JSON Dash sends): every
    chart's template is cut to what it uses, and the whole page stays far below 300 kB."""
    from plotly.io.json import to_json_plotly

    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    rid = run["run_id"]
    outputs = {"setup": ev.setup_run(rid), "confusion": ev.render_confusion(rid, "all", 0.5),
               "curves": ev.render_curves(rid, "all"), "shap": ev.render_shap(rid, "all", None),
               "dependence": ev.render_dependence(rid, "all", run["feature_names"][0], None),
               "permutation": in_callback(ev.render_permutation, "run-select.value", rid, 0),  # cached
               "drift": ev.render_drift(rid, "all")}
    sizes = {k: len(to_json_plotly(v)) for k, v in outputs.items()}
    print(f"\ncallback bytes: {sizes}")
    graphs = [g for v in outputs.values() for g in (v if isinstance(v, tuple) else (v,)) if hasattr(g, "figure")]
    assert len(graphs) == 10
    for g in graphs:
        template = to_json_plotly(g.figure["layout"]["template"] if isinstance(g.figure, dict)
                                  else g.figure.layout.template)
        assert len(template) < 3_500, g.id  # the full template is ~8 kB
    assert sum(sizes.values()) < 150_000  # a small run (~170 out-of-fold days)


def test_permutation_importance_is_computed_when_asked_then_kept(lab):
    """A new run shows the button, not a chart; a click draws exactly the numbers of
    ml.explain.run_permutation_importance, and from then on the run shows them at once."""
    from ml.explain import PERMUTATION_FILE, run_permutation_importance

    ev, run = lab["pages"]["evaluate"], lab["runs"]["logit"]
    rid, cached = run["run_id"], Path(run["path"]) / PERMUTATION_FILE
    cached.unlink(missing_ok=True)
    box, note, ask = in_callback(ev.render_permutation, "run-select.value", rid, 0)
    assert box is None and ask == {"display": "block"} and "computed on demand" in note
    assert not cached.exists()
    box, note, ask = in_callback(ev.render_permutation, "evaluate-permutation-compute.n_clicks", rid, 1)
    assert ask == {"display": "none"} and cached.exists()
    want = run_permutation_importance(rid).set_index("feature")["perm_importance_mean"]
    bars = graph_data(box, "permutation-graph")["data"][0]
    shown = dict(zip(bars["y"], bars["x"], strict=True))
    assert shown and all(abs(v - want[f]) < 1e-12 for f, v in shown.items())
    box2, _, ask2 = in_callback(ev.render_permutation, "run-select.value", rid, 0)  # kept: no button again
    assert ask2 == {"display": "none"} and graph_data(box2, "permutation-graph") is not None


def test_drift_rolling_auc_and_psi(lab, no_models):
    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    import json

    drift = json.loads((Path(run["path"]) / "drift.json").read_text())
    line, heat = ev.render_drift(run["run_id"], "all")
    assert line.id == "drift-graph" and heat.id == "psi-graph"
    assert np.allclose(np.asarray(line.figure["data"][0]["y"], float),
                       np.asarray(drift["rolling_auc"]["auc"], float), equal_nan=True)
    assert heat.figure["layout"]["title"]["text"] == "Feature drift (PSI)"
    line1, heat1 = ev.render_drift(run["run_id"], "1")
    f1 = run["folds"][1]
    x = pd.to_datetime(pd.Series(line1.figure["data"][0]["x"]))
    assert x.min() >= pd.Timestamp(f1["test_start"]) and x.max() <= pd.Timestamp(f1["test_end"])
    assert list(heat1.figure["data"][0]["x"]) == ["Fold 2"]


def test_multiclass_and_regression_say_what_does_not_apply(lab, no_models):
    ev = lab["pages"]["evaluate"]
    multi, reg = lab["runs"]["multi"], lab["runs"]["reg"]
    graph, _report = ev.render_confusion(multi["run_id"], "all", 0.5)
    o = oof(multi)
    proba = o[[f"prob_{c}" for c in multi["classes"]]].to_numpy()
    assert np.asarray(graph.figure["data"][0]["z"]).tolist() == confusion_matrix(
        o["y"].astype(int), proba.argmax(1), labels=range(len(multi["classes"]))).tolist()
    roc, cal, _ = ev.render_curves(multi["run_id"], "all")
    assert roc is None and cal is None  # their cards are hidden, not empty "not shown" boxes
    assert "not recorded for multiclass" in texts(ev.setup_run(multi["run_id"])[9])
    confusion, report = ev.render_confusion(reg["run_id"], "all", 0.5)
    assert confusion is None and report is None
    scatter, cal, _ = ev.render_curves(reg["run_id"], "all")
    assert scatter.id == "evaluate-scatter-graph" and cal is None
    cards = dict(zip(ev.CARDS, ev.arrange_cards(reg["run_id"])[len(ev.CARDS) * 2:]))
    assert cards["roc"] == "Prediction vs outcome"  # the card holding the scatter says so
    shown = dict(zip(ev.CARDS, ev.arrange_cards(multi["run_id"])[len(ev.CARDS):len(ev.CARDS) * 2]))
    assert {c for c, st in shown.items() if st["display"] == "none"} == {"roc", "calibration", "drift"}
    setup = ev.setup_run(multi["run_id"])
    assert setup[7] is True and setup[11] == {"display": "none"}  # no threshold slider
    assert [o["label"] for o in setup[4]] == multi["classes"]  # the class explained by SHAP is a choice


def test_evaluate_shows_warnings_baselines_and_base_rates(lab, no_models):
    import json

    ev, run = lab["pages"]["evaluate"], lab["runs"]["lgbm"]
    path = Path(run["path"]) / "run.json"
    original = path.read_text()
    record = json.loads(original)
    path.write_text(json.dumps({k: v for k, v in record.items() if k not in ("warnings", "baselines")}))
    summary = ev.setup_run(run["run_id"])[9]  # a run trained before issue 9 has neither key
    assert find(summary, "evaluate-warnings") is None and find(summary, "evaluate-baselines") is None
    record.update(warnings=[{"code": "class_imbalance", "message": "up days are 18 % of the labelled days"}],
                  baselines={**BASE, "majority": {"metrics": {"accuracy": 0.532, "roc_auc": 0.5}}})
    path.write_text(json.dumps(record))
    try:
        summary = ev.setup_run(run["run_id"])[9]
        banner = find(summary, "evaluate-warnings")
        assert banner.color == "warning" and "18 % of the labelled days" in texts(banner)
        assert "53.2%" in texts(find(summary, "evaluate-baselines-table"))
        assert "Sharpe lift over always long: +0.100 (95% interval -0.500 … +0.700)" in texts(summary)
        rate = record["metrics"]["base_rate"]
        assert f"base rate (up days) {rate:.3f}" in texts(find(summary, "evaluate-summary-line"))
    finally:
        path.write_text(original)  # the run as the runner wrote it, for the tests after this one
    # the report's base rate is the up share of the matrix shown
    graph, report = ev.render_confusion(run["run_id"], "1", 0.5)
    z = np.asarray(graph.figure["data"][0]["z"])
    rows = {r.children[0].children: r for r in report.children[1].children}
    assert rows["base rate (up days)"].children[3].children == f"{z[1].sum() / z.sum():.3f}"
    # per-fold AUC: points with Hanley-McNeil intervals from each fold's up and down days
    _, _, cv = ev.render_curves(run["run_id"], "all")
    trace = cv.figure["data"][0]
    f0 = run["folds"][0]
    pos = round(f0["base_rate"] * f0["n"])
    lo, hi = ev.ve.auc_interval(f0["roc_auc"], pos, f0["n"] - pos)
    assert trace["mode"] == "markers" and trace["error_y"]["array"][0] == pytest.approx(hi - f0["roc_auc"])


# ----------------------------------------------------------------------------- /backtest
def test_backtest_at_the_runs_settings_reproduces_run_json(lab, no_models):
    from ml.trials import deflated

    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    threshold, disabled, long_only, cost, *_ = bt.setup_run(run["run_id"])
    assert (threshold, disabled, long_only, cost) == (0.52, False, False, 1.0)
    record = registry.get_run(run["run_id"])
    stats = bt.recompute(record, threshold, cost, long_only).stats
    rec = run["backtest"]
    for key in ("sharpe", "total_return", "max_drawdown", "trades", "win_rate", "psr"):
        assert stats[key] == pytest.approx(rec[key], rel=1e-12), key
    # logit was trained later on the same symbol and label: it counts as a trial now, and
    # the page shows exactly ml.trials.deflated (the number of runs show --json and /models)
    now = deflated(record)
    assert stats["n_trials"] == now["n_trials"] == 2 and rec["n_trials"] == 1
    assert stats["dsr"] == now["dsr"]


def hand_equity(run, threshold, cost, long_only=False, always_long=False):
    """Equity of the run's out-of-fold days traded by hand from dataset.parquet."""
    o = oof(run)
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet").loc[pd.DatetimeIndex(o["date"])]
    move = (data["close"] / data["cutoff_price"] - 1).to_numpy()
    if always_long:
        pos = np.ones(len(o))
    else:
        pos = np.where(o["prob"] >= threshold, 1, np.where((o["prob"] <= 1 - threshold) & (not long_only), -1, 0))
    net = pos * move - np.abs(pos) * 2 * cost / 1e4
    return np.cumprod(1 + net)


def trace(fig, name):
    return next(t for t in fig["data"] if t["name"] == name)


def test_threshold_long_only_and_costs_change_the_trades(lab, no_models):
    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    o = oof(run)
    table, note, equity, dd, rolling, monthly, days, message, drawn, columns, grid = bt.render_backtest(
        run["run_id"], 0.6, False, 2.0)
    assert drawn == run["run_id"]
    assert message is None and table.id == "backtest-stats-table" and equity.layout.height == bt.EQUITY_HEIGHT
    n = int(((o["prob"] >= 0.6) | (o["prob"] <= 0.4)).sum())
    assert f"{n:,}" in texts(table)
    # the grid gets every day with a signal once; it keeps the traded ones by the backtester's rule
    assert len(days) == len(o) and [d["prob"] for d in days] == o.sort_values("date")["prob"].tolist()
    rule = grid.to_plotly_json()["operations"][0]["params"]["value"]["function"]
    assert rule == "(params.data.prob >= 0.6 - 1e-12 ? 1 : (params.data.prob <= 1 - 0.6 + 1e-12 ? -1 : 0)) !== 0"
    net = next(c for c in columns if c.get("colId") == "net_return")["valueGetter"]["function"]
    assert net.endswith("* 0.04")  # 2 bp per side: 0.04 % a round trip
    assert "Trials counted for DSR" in texts(table)
    assert [t["name"] for t in equity["data"]] == ["buy and hold ES", "always long", "strategy"]
    assert trace(equity, "strategy")["y"][-1] == pytest.approx(hand_equity(run, 0.6, 2.0)[-1])
    # always long: every out-of-fold day, the same 2 bp per side, by hand
    assert np.allclose(trace(equity, "always long")["y"], hand_equity(run, 0.6, 2.0, always_long=True),
                       rtol=1e-12)
    *_, grid_long = bt.render_backtest(run["run_id"], 0.6, True, 2.0)
    rule = grid_long.to_plotly_json()["operations"][0]["params"]["value"]["function"]
    assert rule == "(params.data.prob >= 0.6 - 1e-12 ? 1 : (false ? -1 : 0)) !== 0"


def test_a_moved_control_patches_only_the_changed_y_values(lab, no_models):
    """Same run on screen: the slider sends the new y values (float32), not the figures."""
    import base64
    import json

    from plotly.utils import PlotlyJSONEncoder

    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    full = in_callback(bt.render_backtest, "run-select.value", run["run_id"], 0.6, False, 2.0, False, None)
    moved = in_callback(bt.render_backtest, "threshold-slider.value", run["run_id"], 0.6, False, 2.0, False,
                        run["run_id"])
    ops = moved[2].to_plotly_json()["operations"]
    assert [o["location"] for o in ops] == [["data", 2, "y"]]  # strategy only: cost unchanged
    y = np.frombuffer(base64.b64decode(ops[0]["params"]["value"]["bdata"]), dtype="float32")
    assert np.allclose(y, trace(full[2], "strategy")["y"], rtol=1e-6)
    assert moved[3].to_plotly_json()["operations"][0]["location"] == ["data", 0, "y"]
    assert texts(moved[0]) == texts(full[0]) and moved[8] == run["run_id"]
    assert len(full[6]) == run["n_oof"] and moved[6] is dash.no_update  # the day rows go once per run
    size = lambda out: len(json.dumps(out[:6], cls=PlotlyJSONEncoder))  # noqa: E731 - figures and table
    assert size(moved) < size(full) / 3
    assert len(json.dumps(moved, cls=PlotlyJSONEncoder)) < 60_000  # issue 10: a slider step under 60 kB
    costly = in_callback(bt.render_backtest, "backtest-cost.value", run["run_id"], 0.6, False, 3.0, False,
                         run["run_id"])
    assert len(costly[2].to_plotly_json()["operations"]) == 2  # always long follows the cost
    # each chart stays in its box, blank until a backtest is shown: the callback writes its figure
    layout = bt.layout()
    for box, graph_id, height in bt.CHARTS:
        assert find(find(layout, box), graph_id).figure == bt.blank(height)
    other = in_callback(bt.render_backtest, "threshold-slider.value", run["run_id"], 0.6, False, 2.0, False,
                        "another-run")
    assert [t["name"] for t in other[2]["data"]][-1] == "strategy"  # charts of another run on screen: drawn anew


def test_a_step_reads_no_file_and_always_long_follows_the_cost(lab, no_models, monkeypatch):
    """The run's days and always long are kept per run, file version and cost: a moved control
    reads nothing, and the numbers are those computed afresh."""
    from ml import replay

    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    in_callback(bt.render_backtest, "run-select.value", run["run_id"], 0.6, False, 2.0, False, None)
    reads = []
    read = replay._artifact
    monkeypatch.setattr(replay, "_artifact", lambda *a, **k: reads.append(a[1]) or read(*a, **k))
    for threshold, cost in ((0.61, 2.0), (0.62, 3.0), (0.6, 2.0)):
        moved = in_callback(bt.render_backtest, "threshold-slider.value", run["run_id"], threshold, False, cost,
                            False, run["run_id"])
        assert moved[7] is None  # no alert
    assert reads == []
    record = registry.get_run(run["run_id"])
    for cost in (2.0, 3.0, 0.0):
        fresh = replay.always_long(replay._read_frame(record), cost)
        kept = replay.always_long_of(record, cost)
        assert kept.stats == pytest.approx(fresh.stats, nan_ok=True, rel=0, abs=0) and kept.params == fresh.params
        pd.testing.assert_frame_equal(kept.daily, fresh.daily)
    cached = replay.always_long_of(registry.get_run(run["run_id"]), 3.0)
    cached.stats["sharpe"] = 99.0  # a caller's change stays its own
    assert replay.always_long_of(registry.get_run(run["run_id"]), 3.0).stats["sharpe"] != 99.0


def test_statistics_have_baseline_columns_volatility_turnover_and_cost_drag(lab, no_models):
    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    table, note, *_ = bt.render_backtest(run["run_id"], 0.55, False, 3.0)
    header = texts(table.children[0])
    assert "Model" in header and "Always long" in header and "Prior day" in header  # recorded by the runner
    text = texts(table)
    for label in ("Volatility (annualized)", "Turnover (× capital per year)", "Cost drag (return per year)",
                  "Lift over always long (Sharpe)"):
        assert label in text
    o = oof(run)
    traded = ((o["prob"] >= 0.55) | (o["prob"] <= 0.45)).to_numpy()
    assert f"{252 * 2 * traded.mean():.4g}" in text  # turnover: entry and exit of each traded day, per year
    assert f"{252 * traded.mean() * 2 * 3.0 / 1e4:.1%}" in text  # cost drag per year
    assert "504" in text  # always long trades every day: 504× a year
    assert "Turnover" in texts(note) and "per year" in texts(note)


def test_warnings_baselines_and_lift_from_run_json(lab, no_models):
    """Keys written by the runner since issue 9 (injected here into an older run's record)."""
    import json

    bt, run = lab["pages"]["backtest"], lab["runs"]["logit"]
    path = Path(run["path"]) / "run.json"
    original = path.read_text()
    record = json.loads(original)
    prior = {**record["backtest"], "sharpe": -0.123456, "trades": 77}
    record["warnings"] = [{"code": "few_trades", "message": "only 12 trades: the statistics are fragile"},
                          {"code": "short_test_fold", "message": "fold 1 has 60 test days (fewer than 100)"}]
    record["baselines"] = {"prior_day": {"stats": prior, "params": {"cost_bps": 1.0}},
                           "lift": {"sharpe": {"value": 0.4242, "lo": -0.11, "hi": 0.95, "level": 0.95}}}
    path.write_text(json.dumps(record))
    try:
        out = bt.setup_run(run["run_id"])
        banner = out[6]
        assert banner.color == "warning" and "only 12 trades" in texts(banner) and "fold 1 has 60" in texts(banner)
        table = bt.render_backtest(run["run_id"], 0.52, False, 1.0)[0]  # the recorded settings
        assert "Prior day" in texts(table.children[0]) and "-0.1235" in texts(table)
        assert "+0.42 (95 % CI −0.11 to +0.95)" in texts(table)
        moved = bt.render_backtest(run["run_id"], 0.6, False, 1.0)[0]  # elsewhere: the difference on screen
        assert "95 % CI" not in texts(moved)
        html = bt.report_text(run["run_id"], 0.52, False, 1.0)
        assert "only 12 trades: the statistics are fragile" in html and 'class="warn"' in html
        assert "Prior day (at training)" in html and "+0.42 (95 % CI −0.11 to +0.95)" in html
        older = {k: v for k, v in record.items() if k not in ("warnings", "baselines")}
        path.write_text(json.dumps(older))
        assert bt.setup_run(run["run_id"])[6] is None  # a run trained before issue 9: no banner
    finally:
        path.write_text(original)


def test_heatmap_cells_equal_backtest_at_those_settings(lab, no_models):
    from ml.backtester import backtest
    from ml.trials import current_trials, dsr_trials

    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    graph = bt.render_grid(run["run_id"], False)
    assert graph.id == "backtest-grid-graph"
    sharpe, dsr = graph.figure["data"][0], graph.figure["data"][1]
    z_s, z_d = np.asarray(sharpe["z"]), np.asarray(dsr["z"])
    record = registry.get_run(run["run_id"])
    frame = bt.backtest_frame(record)
    for t, c in ((0.5, 0.0), (0.55, 1.0), (0.6, 5.0), (0.52, 10.0)):
        i, j = list(sharpe["y"]).index(f"{t:.2f}"), list(sharpe["x"]).index(f"{c:g}")
        own = backtest(frame, t, c).stats
        want = backtest(frame, t, c, trial_sharpes=dsr_trials(current_trials(record), run["backtest"]["sharpe"],
                                                              own["sharpe"])).stats
        assert z_s[i, j] == pytest.approx(want["sharpe"], rel=1e-9)
        assert z_d[i, j] == pytest.approx(want["dsr"], rel=1e-9, abs=1e-12)
    long_only = bt.render_grid(run["run_id"], True).figure["data"][0]
    assert not np.allclose(np.asarray(long_only["z"]), z_s, equal_nan=True)


def test_log_switch_patches_only_the_axis(page_module):
    toggle_log = page_module("backtest").toggle_log

    ops = toggle_log(True, "some-run").to_plotly_json()["operations"]
    assert ops == [{"operation": "Assign", "location": ["layout", "yaxis", "type"],
                    "params": {"value": "log"}}]
    assert toggle_log(False, "some-run").to_plotly_json()["operations"][0]["params"]["value"] == "linear"
    assert toggle_log(True, None) is dash.no_update  # no chart on screen


def test_regression_and_multiclass_backtests(lab, no_models):
    bt = lab["pages"]["backtest"]
    reg, multi = lab["runs"]["reg"], lab["runs"]["multi"]
    setup = bt.setup_run(reg["run_id"])
    assert setup[1] is True  # the threshold does not apply
    assert setup[8] == {} and setup[9].id == "backtest-deciles-graph"  # the decile chart
    bars = setup[9].figure["data"][0]
    o = oof(reg)
    order = np.argsort(o["pred"].to_numpy(), kind="stable")
    first = o["y"].to_numpy()[order[: len(o) // 10 + (len(o) % 10 > 0)]]
    assert bars["y"][0] == pytest.approx(first.mean()) and sum(bars["customdata"]) == len(o)
    stats = bt.recompute(registry.get_run(reg["run_id"]), 0.7, 1.0, False).stats
    assert stats["sharpe"] == pytest.approx(reg["backtest"]["sharpe"], rel=1e-12)  # any threshold: sign of pred
    assert len(bt.render_grid(reg["run_id"], False).figure["data"][0]["y"]) == 1  # one row: the sign
    out = bt.render_backtest(multi["run_id"], 0.55, False, 1.0)
    assert out[:7] == (None, None, *bt.BLANKS, []) and "No backtest" in texts(out[7])
    assert out[8] is None
    assert "not a direction" in texts(out[7])
    setup = bt.setup_run(multi["run_id"])
    assert setup[7] == {"display": "none"} and setup[8] == {"display": "none"}  # no empty cards
    assert setup[10:] == (True, True, True) and "no trading rules" in texts(setup[4])  # nothing to set
    assert bt.render_grid(multi["run_id"], False) is None


def test_bad_cost_is_a_visible_message(lab):
    out = lab["pages"]["backtest"].render_backtest(lab["runs"]["lgbm"]["run_id"], 0.55, False, None)
    assert "cost_bps must be a number" in texts(out[7])


def figure_data(html: str, div_id: str) -> list[dict]:
    """The data array the report passes to Plotly.newPlot for ``div_id``."""
    import json
    import re

    m = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', html)
    assert m, f"no figure {div_id}"
    return json.JSONDecoder().raw_decode(html, m.end())[0]


def as_array(value) -> np.ndarray:
    """A trace array of the report: a list or plotly's base64 typed array."""
    if isinstance(value, dict):
        import base64

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value)


def test_report_follows_the_settings_on_screen_and_records_them(lab, no_models):
    from ml.report import fmt
    from ml.trials import deflated

    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    html = bt.report_text(run["run_id"], 0.6, True, 2.0)
    assert "Report settings: threshold 0.60, long only, 2 bp per side (set on /backtest; the run was trained " \
           "with threshold 0.52, long and short, 1 bp per side)." in html
    strategy = next(t for t in figure_data(html, "fig-equity") if t["name"] == "strategy")
    page = bt.render_backtest(run["run_id"], 0.6, True, 2.0)[2]
    assert np.allclose(as_array(strategy["y"]), trace(page, "strategy")["y"], rtol=1e-12)
    assert any(t["name"] == "always long" for t in figure_data(html, "fig-equity"))
    # at the recorded settings: the DSR and trial count of ml.trials.deflated, as runs show --json
    recorded = bt.report_text(run["run_id"], 0.52, False, 1.0)
    now = deflated(registry.get_run(run["run_id"]))
    assert "(the run&#x27;s recorded settings)." in recorded
    assert f"DSR {fmt(now['dsr'], 'pct')}" in recorded and f"best of {now['n_trials']} trial(s)" in recorded


def test_dsr_trials_swaps_this_runs_recorded_sharpe():
    from ml.trials import dsr_trials

    assert dsr_trials([0.5, 1.2, 0.8], 1.2, 2.0) == [0.5, 0.8, 2.0]
    assert dsr_trials([0.5, 1.2, 1.2], 1.2, 2.0) == [0.5, 1.2, 2.0]
    out = dsr_trials([float("nan"), 0.3], float("nan"), 1.0)
    assert out == [0.3, 1.0]
    assert dsr_trials([], 1.0, 1.5) == [1.5]


def test_csv_download_holds_the_daily_series(lab, no_models):
    bt, run = lab["pages"]["backtest"], lab["runs"]["lgbm"]
    sent = bt.download_csv(1, run["run_id"], 0.55, True, 0.0)
    daily = pd.read_csv(io.StringIO(sent["content"]))
    assert sent["filename"].endswith(".csv") and len(daily) == run["n_oof"]
    assert (daily["position"] >= 0).all()
    assert daily["equity"].iloc[-1] == pytest.approx(np.prod(1 + daily["strategy_return"]))


# ----------------------------------------------------------------------------- /models
def test_grid_rows_and_compare(lab, no_models):
    m, runs = lab["pages"]["models"], lab["runs"]
    rows = {r["run_id"]: r for r in m.grid_rows(registry.list_runs())}
    assert rows[runs["reg"]["run_id"]]["score"] == f"IC {runs['reg']['metrics']['ic']:.3f}"
    assert rows[runs["lgbm"]["run_id"]]["sharpe"] == runs["lgbm"]["backtest"]["sharpe"]
    selected = [rows[runs["lgbm"]["run_id"]], rows[runs["logit"]["run_id"]]]
    view = m.render_compare(selected)
    equity = graph_data(view, "models-compare-equity-graph")
    lines = [t for t in equity["data"] if not t["name"].startswith("buy and hold")]
    assert len(lines) == 2
    for t, key in zip(lines, ("lgbm", "logit"), strict=True):
        daily = pd.read_parquet(Path(runs[key]["path"]) / "backtest.parquet")
        assert np.allclose(t["y"], daily["equity"])
    cv = graph_data(view, "models-compare-cv-graph")
    points = [t for t in cv["data"] if t["type"] == "scatter"]
    assert [list(t["y"]) for t in points] == [[f["roc_auc"] for f in runs[k]["folds"]] for k in ("lgbm", "logit")]
    assert all(t["error_y"]["array"] is not None for t in points)  # Hanley-McNeil from each fold's counts
    assert f"{runs['logit']['backtest']['sharpe']:.3f}" in texts(view)
    assert m.render_compare(selected[:1]) is None
    assert m.selection_state(selected)[:3] == (True, True, True)
    assert m.selection_state(selected[:1])[:3] == (False, False, False)
    # one number everywhere: the trials and DSR of ml.trials.deflated (every complete run on
    # the symbol and label now), in the grid and in the compare table
    from ml.trials import deflated

    for key in ("lgbm", "logit"):
        now = deflated(registry.get_run(runs[key]["run_id"]))
        assert now["n_trials"] == 2  # both binary rest_of_day runs on ES
        row = rows[runs[key]["run_id"]]
        assert (row["n_trials"], row["dsr"]) == (now["n_trials"], now["dsr"])
    table = find(view, "models-compare-table")
    trs = {str(tr.children[0].children): tr.children[1:] for tr in table.children[1].children}
    assert [td.children for td in trs["Trials counted for DSR (same symbol and label, now)"]] == ["2", "2"]
    assert all("almanac-num" in td.className for tds in trs.values() for td in tds)  # right-aligned
    auc = [runs[k]["metrics"]["roc_auc"] for k in ("lgbm", "logit")]
    marked = ["almanac-best" in td.className for td in trs["ROC AUC (pooled out-of-fold)"]]
    assert marked == [auc[0] > auc[1], auc[1] > auc[0]]
    assert "Base rate (up days)" in trs and not any("almanac-best" in td.className
                                                     for td in trs["Base rate (up days)"])


def test_models_edit_name_and_notes(lab):
    m, run_id = lab["pages"]["models"], lab["runs"]["logit"]["run_id"]
    state = m.selection_state([{"run_id": run_id}])
    assert state[5:] == (True, registry.get_run(run_id)["name"], "")
    msg, rev = m.save_labels(1, [{"run_id": run_id}], "logit, C=1", "baseline model\nkeep", 4)
    assert rev == 5 and "Saved" in texts(msg)
    stored = registry.get_run(run_id)
    assert (stored["name"], stored["user_notes"]) == ("logit, C=1", "baseline model\nkeep")
    assert {r["run_id"]: r["notes"] for r in m.grid_rows(registry.list_runs())}[run_id] == "baseline model · keep"
    before = (Path(stored["path"]) / "run.json").read_bytes()
    msg, rev = m.save_labels(2, [{"run_id": run_id}], "bad\nname", "x", 5)
    assert rev is dash.no_update and "the run name holds a line break" in texts(msg)
    assert (Path(stored["path"]) / "run.json").read_bytes() == before


def test_export_sends_a_bundle_that_predicts_like_the_run_model(lab):
    from ml import persist
    from ml.export import load_bundle, predictions

    m, run = lab["pages"]["models"], lab["runs"]["lgbm"]
    sent, message = m.export_model(1, [{"run_id": run["run_id"]}], "token")
    assert sent["filename"] == f"{run['run_id']}.zip" and sent["base64"]
    import base64

    path = Path(lab["home"]) / "downloaded.zip"
    path.write_bytes(base64.b64decode(sent["content"]))
    assert zipfile.is_zipfile(path)
    bundle = load_bundle(path)
    data = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    model = persist.load_model(Path(run["path"]) / "model", run["final_model"])
    expected = model.predict_proba(data[run["feature_names"]])[:, 1]
    assert np.array_equal(predictions(bundle, data)["prob"].to_numpy(), expected)
    assert list((Path(lab["home"]) / "tmp").iterdir()) == []  # the temporary export folder is gone
    assert "Exported" in texts(message)


def test_activate_then_delete_with_confirmation(lab):
    m, runs = lab["pages"]["models"], lab["runs"]
    row = [{"run_id": runs["reg"]["run_id"], "name": "tiny-reg", "when": "x"}]
    is_open, body = in_callback(m.open_delete, "models-delete-button.n_clicks", 1, None, row)
    assert is_open is True and runs["reg"]["run_id"] in texts(body)
    assert in_callback(m.open_delete, "models-delete-cancel.n_clicks", 1, 1, row)[0] is False
    msg, rev, _ = in_callback(m.change_registry, "models-activate-button.n_clicks", None, 1, row, None)
    assert rev == 1 and [a["run_id"] for a in registry.active_runs()] == [runs["reg"]["run_id"]]
    rows, _ = m.refresh_grid(rev)
    assert {r["run_id"]: r["active"] for r in rows}[runs["reg"]["run_id"]] == "active"
    msg, rev, is_open = in_callback(m.change_registry, "models-delete-confirm.n_clicks", 1, 1, row, rev)
    assert rev == 2 and is_open is False and "deleted" in texts(msg)
    assert runs["reg"]["run_id"] not in {r["run_id"] for r in registry.list_runs()}
    assert registry.active_runs() == []


BASE = {"always_long": {"stats": {"sharpe": 0.3}}, "majority": {"metrics": {"accuracy": 0.532, "log_loss": 0.691}},
        "prior_day": {"metrics": {"accuracy": 0.5}},
        "lift": {"sharpe": {"value": 0.1, "lo": -0.5, "hi": 0.7, "level": 0.95}}}


# ----------------------------------------------------------------------------- viz.compare
def test_compare_figures_and_table():
    from viz.compare import cv_compare_figure, equity_overlay_figure, format_value, metrics_table

    d = pd.DataFrame({"date": pd.bdate_range("2020-01-01", periods=3), "equity": [1.0, 1.1, 1.21],
                      "benchmark_equity": [1.0, 0.9, 1.0]})
    fig = equity_overlay_figure({"A": d, "B": d.assign(equity=[1.0, 0.95, 0.9]), "C": None}, ("buy and hold", d))
    assert [t.name for t in fig.data] == ["buy and hold", "A", "B"]
    assert list(fig.data[2].y) == [1.0, 0.95, 0.9] and list(fig.data[0].y) == [1.0, 0.9, 1.0]
    assert "multiclass" in equity_overlay_figure({"A": None}).layout.annotations[0].text
    folds = {"A": pd.DataFrame({"fold": [0, 1], "roc_auc": [0.55, 0.6]}),
             "B": pd.DataFrame({"fold": [1, 0], "roc_auc": [0.4, 0.5]})}
    cv = cv_compare_figure(folds, "roc_auc", "ROC AUC", 0.5)
    assert [list(t.y) for t in cv.data[:2]] == [[0.55, 0.6], [0.5, 0.4]] and list(cv.data[1].x) == ["Fold 1", "Fold 2"]
    assert cv.layout.shapes[0].y0 == 0.5 and cv.data[0].mode == "markers"
    table = metrics_table({"A": {"metrics": {"roc_auc": 0.5512, "accuracy": 0.6}, "backtest": {"sharpe": 1.23456}},
                           "B": {"metrics": {"roc_auc": 0.5}, "backtest": None}})
    rows = table.set_index("Metric")
    assert rows.loc["ROC AUC (pooled out-of-fold)"].tolist() == ["0.551", "0.500"]
    assert rows.loc["Accuracy"].tolist() == ["60.0%", "—"]
    assert rows.loc["Sharpe ratio (annualized)"].tolist() == ["1.235", "—"]
    assert "Log loss" not in rows.index  # no run has it
    from viz.compare import compare_rows

    rows = {r["metric"]: r for r in compare_rows({
        "A": {"metrics": {"roc_auc": 0.55, "log_loss": 0.69, "accuracy": 0.52, "base_rate": 0.53},
              "backtest": {"sharpe": 0.4}, "baselines": BASE},
        "B": {"metrics": {"roc_auc": 0.58, "log_loss": 0.70, "accuracy": 0.52, "base_rate": 0.53},
              "backtest": {"sharpe": 0.1}}})}
    assert rows["ROC AUC (pooled out-of-fold)"]["best"] == ["B"]
    assert rows["Log loss"]["best"] == ["A"]  # lower is better
    assert rows["Accuracy"]["best"] == []  # a tie marks nothing
    assert rows["Base rate (up days)"]["best"] == []  # not ranked
    assert rows["Majority baseline accuracy"]["cells"] == ["53.2%", "—"]
    assert rows["Always-long Sharpe (same days, same costs)"]["cells"] == ["0.300", "—"]
    assert rows["Sharpe lift over always long"]["best"] == []  # one run has it
    assert (format_value(float("nan")), format_value(1234.4, "int"), format_value(None)) == ("—", "1,234", "—")


@pytest.mark.parametrize("cm", [[[50, 10], [20, 40]], [[5, 0, 1], [2, 0, 3], [0, 0, 9]], [[0, 0], [0, 4]]])
def test_report_frame_equals_scikit_learns_classification_report(page_module, cm):
    """The page computes the report from the matrix (no scikit-learn in the web server)."""
    from sklearn.metrics import classification_report

    ev = page_module("evaluate")
    k = len(cm)
    counts = np.asarray(cm).ravel()
    true = np.repeat(np.repeat(np.arange(k), k), counts)
    pred = np.repeat(np.tile(np.arange(k), k), counts)
    names = [f"c{i}" for i in range(k)]
    want = classification_report(true, pred, labels=list(range(k)), target_names=names, output_dict=True,
                                 zero_division=0)
    got = ev.report_frame(np.asarray(cm), names).set_index("class")
    for name, row in want.items():
        if name == "accuracy":
            assert got.loc["accuracy", "f1-score"] == pytest.approx(row, abs=1e-12)
            continue
        for col in ("precision", "recall", "f1-score", "support"):
            assert got.loc[name, col] == pytest.approx(row[col], abs=1e-12), (name, col)
    assert ev.confusion_counts(true, pred, k).tolist() == np.asarray(cm).tolist()


def test_one_trial_count_and_dsr_on_backtest_models_report_and_runs_show(lab, no_models, capsys):
    """Issue 9: /backtest said 2 trials while the report and /models said 1. The first run was
    trained alone (1 trial then); a second run on ES rest_of_day makes it 2 everywhere now."""
    import json

    from cli import main
    from ml import replay
    from ml.report import report_data
    from ml.trials import deflated

    run = registry.get_run(lab["runs"]["lgbm"]["run_id"])
    assert run["backtest"]["n_trials_at_training"] == 1  # frozen when it was trained
    now = deflated(run)
    assert now["n_trials"] == 2 and now["dsr"] is not None
    # runs show --json
    assert main(["runs", "show", run["run_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["backtest"]
    assert (shown["n_trials"], shown["dsr"]) == (2, pytest.approx(now["dsr"], abs=1e-12))
    # /models: grid rows and the compare table's record
    models = lab["pages"]["models"]
    trials = models.trials_now([run["run_id"]])[run["run_id"]]
    assert (trials["n_trials"], trials["dsr"]) == (2, pytest.approx(now["dsr"], abs=1e-12))
    assert models.grid_rows([registry.summary(run)], {run["run_id"]: trials})[0]["n_trials"] == 2
    # the report at the recorded settings: the statistics behind its cards and table, and its text
    from ml import report as report_module

    stats = report_module._backtest_data(Path(run["path"]), run, replay.settings(run))["stats_obj"]
    assert (stats["n_trials"], stats["dsr"]) == (2, pytest.approx(now["dsr"], abs=1e-12))
    table = dict((row[0], row[1]) for row in report_data(run)["backtest"]["stats"])
    assert table["Trials counted for DSR"] == "2"
    # /backtest at the recorded settings
    on_screen = replay.replay(run).stats
    assert (on_screen["n_trials"], on_screen["dsr"]) == (2, pytest.approx(now["dsr"], abs=1e-12))
