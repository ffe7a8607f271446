"""``/evaluate`` — judge a run out of sample, fold by fold, from its stored artifacts.

Everything on this page is read from the run folder (``almanac.registry.read_artifact``);
no model is loaded or fitted, so switching runs, folds or thresholds is instant.

* **Run and fold.** ``run-select`` (default: the newest run, or ``?run=<id>``) and a fold
  selector ("All folds" or one walk-forward fold): a fold keeps only the out-of-fold and
  SHAP rows of that fold's test period.
* **Trust.** The run's warnings (``run.json["warnings"]``) in one light yellow alert on
  top; the pooled scores beside the naive baselines on the same out-of-fold days
  (majority, prior day; always-long Sharpe; lifts with their bootstrap intervals, from
  ``run.json["baselines"]``); the base rate beside every accuracy (summary line and
  classification report). Runs trained before these were recorded show none of them.
* **Multi-head runs**: a head's page shows its parent's heads side by side and the gated
  backtest (:func:`pages._components.heads.multihead_view`).
* **Cards fit the task** (:func:`card_plan`): a card is hidden rather than left as an
  empty "not shown" box, and renamed when it holds something else (regression:
  "Prediction vs outcome" in the ROC card's place).
* **Scores per fold**: points with 95 % intervals around the no-skill line (binary ROC
  AUC: Hanley–McNeil from the fold's up and down days; regression IC: Fisher z), see
  :func:`viz.evaluation.fold_intervals`.
* **Classification** (binary runs). The threshold slider scrubs the run's precomputed
  threshold grid (``threshold_grid.json``: confusion counts at 0.30, 0.31, ..., 0.70) for
  "All folds"; for one fold the same grid is computed from that fold's stored
  probabilities (``ml.evaluation.threshold_grid``, a vectorized count). The
  classification report is scikit-learn's, on the counts of the confusion matrix shown.
  Multiclass runs show the confusion matrix and report of the most probable class;
  regression runs show predictions against outcomes instead (an info alert says which
  charts do not apply).
* **ROC and calibration** (binary): pooled curves from ``curves.json``, per fold from the
  fold's stored probabilities; Brier and ECE in the calibration chart's subtitle.
* **SHAP**: beeswarm and mean |SHAP| bars of the stored SHAP values (``shap.parquet``),
  coloured by the feature values of the same days (``dataset.parquet``); the dependence
  plot of a chosen feature; multiclass runs choose the class explained. The beeswarm
  draws a seeded sample of at most :data:`SHAP_DRAWN` days with WebGL (said under it;
  ranking, colours, bars and dependence use every row); when the runner explained a
  sample of each fold (``run.json["shap"]["rows_per_fold"]``) that is said too. The SHAP
  table is read once per run and the figures built once per run, fold and class (small
  LRU caches keyed by the run id and shap.parquet's mtime).
* **Permutation importance** of the last fold's saved model on its test rows
  (``run.json["importance_note"]``), computed on demand with a button and then cached in
  the run folder (:func:`ml.explain.run_permutation_importance`).
* **Scores by regime**: the out-of-fold days of each HMM regime (``oof.parquet["regime"]``,
  :mod:`ml.regimes`) scored apart, with their counts (:mod:`pages._components.regimes`).
* **Drift**: the rolling out-of-fold AUC (``drift.json``; cut to the fold's test period
  for one fold) and the PSI of every feature in every fold (training vs test rows).
"""

from __future__ import annotations

import logging
import math
from functools import lru_cache
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html

from almanac import registry
from almanac.errors import NotFoundError
from ml import evaluation
from ml.runinfo import label_unit
from pages._components import failure_alert, info_alert, page_header, section
from pages._components.context import triggered_id
from pages._components.similar import PROMPT, day_range, similar_controls, similar_view, snap
from pages._components.heads import multihead_view
from pages._components.runs import (base_rate, baselines_view, load_runs, pick_run, run_links, run_page, run_picker,
                                    run_warnings)
from pages._components.regimes import evaluate_section
from viz import evaluation as ve
from viz.theme import COLORS, fold_name, slim

dash.register_page(__name__, path="/evaluate", name="Evaluate", order=4, title="Evaluate · Almanac ML Lab",
                   description="Judge a run: per-fold scores, ROC, calibration, SHAP, drift.")

log = logging.getLogger(__name__)
ALL = "all"
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
SHAP_FEATURES = 12  # beeswarm rows
#: At most this many days are drawn in the beeswarm (a seeded sample, stated under the chart):
#: 12 rows × 500 points draw in a fraction of a second with WebGL and send ~100 kB.
SHAP_DRAWN = 500
SHAP_SEED = 0
METRIC = {"binary": ("roc_auc", "ROC AUC", 0.5), "multiclass": ("roc_auc", "ROC AUC (macro, one-vs-rest)", 0.5),
          "regression": ("ic", "IC (Spearman)", 0.0)}


# ----------------------------------------------------------------------------- reading the run
def fold_number(fold: str | int | None) -> int | None:
    """The fold index of the fold selector's value (None for "all")."""
    return None if fold in (None, "", ALL) else int(fold)


def fold_options(run: dict) -> list[dict]:
    """"All folds" + one option per fold: "Fold 1 · test 2010-12-31 → 2012-08-06" (value "0":
    the run's fold id, from 0), named as in the charts (:func:`viz.theme.fold_name`)."""
    opts = [{"label": f"All folds ({run.get('n_oof') or '?'} out-of-fold days)", "value": ALL}]
    for f in run.get("folds") or []:
        opts.append({"label": f"{fold_name(f['fold'])} · test {str(f.get('test_start'))[:10]} → "
                              f"{str(f.get('test_end'))[:10]} ({f.get('n_test', '?')} days)",
                     "value": str(f["fold"])})
    return opts


def oof_rows(run_id: str, fold) -> pd.DataFrame:
    """The run's out-of-fold rows (date, fold, y, prob / pred / prob_<class>), one fold or all."""
    oof = registry.read_artifact(run_id, "oof.parquet")
    k = fold_number(fold)
    return oof if k is None else oof[oof["fold"] == k].reset_index(drop=True)


def threshold_table(run_id: str, fold) -> pd.DataFrame:
    """Confusion counts per threshold: the stored grid (all folds) or the fold's own grid."""
    k = fold_number(fold)
    if k is None:
        return pd.DataFrame(registry.read_artifact(run_id, "threshold_grid.json")["grid"])
    oof = oof_rows(run_id, k)
    return evaluation.threshold_grid(oof["y"], oof["prob"])


def grid_row(grid: pd.DataFrame, threshold: float) -> dict:
    """The grid row whose threshold is closest to ``threshold``."""
    i = int(np.argmin(np.abs(grid["threshold"].to_numpy(dtype="float64") - float(threshold))))
    return grid.iloc[i].to_dict()


def binary_confusion(row: dict) -> np.ndarray:
    """``[[tn, fp], [fn, tp]]`` (rows actual down/up, columns predicted down/up)."""
    return np.array([[row["tn"], row["fp"]], [row["fn"], row["tp"]]], dtype="int64")


def report_frame(cm: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """scikit-learn's classification report of confusion matrix ``cm``, computed from the
    matrix itself (cell [i, j] = rows of actual class i predicted j), so it matches the
    matrix on screen exactly; the rows and numbers of ``classification_report(...,
    output_dict=True, zero_division=0)`` (tests hold them equal), without importing
    scikit-learn into the web server.
    """
    m = np.asarray(cm, dtype="float64")
    tp, support, predicted = np.diag(m), m.sum(axis=1), m.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    total = m.sum()
    rows = [{"class": name, "precision": float(precision[i]), "recall": float(recall[i]),
             "f1-score": float(f1[i]), "support": int(support[i])} for i, name in enumerate(classes)]
    rows.append({"class": "accuracy", "precision": None, "recall": None,
                 "f1-score": float(tp.sum() / total) if total else 0.0, "support": int(total)})
    weights = support / total if total else np.zeros_like(support)
    for name, w in (("macro avg", np.full(len(classes), 1.0 / len(classes))), ("weighted avg", weights)):
        rows.append({"class": name, "precision": float(w @ precision), "recall": float(w @ recall),
                     "f1-score": float(w @ f1), "support": int(total)})
    return pd.DataFrame(rows)


def confusion_counts(y: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """The k × k confusion matrix (rows actual, columns predicted), as scikit-learn's."""
    return np.bincount(np.asarray(y, "int64") * k + np.asarray(pred, "int64"), minlength=k * k).reshape(k, k)


def with_base_rate(table: pd.DataFrame, cm: np.ndarray, task: str) -> pd.DataFrame:
    """The report with a row under "accuracy" holding what it has to beat, from the same
    matrix: the share of up days (binary) or of the most frequent class (multiclass)."""
    rows = np.asarray(cm, dtype="int64").sum(axis=1)
    total = int(rows.sum())
    if total == 0:
        return table
    name = "base rate (up days)" if task == "binary" else "majority class share"
    share = rows[1] / total if task == "binary" and len(rows) == 2 else rows.max() / total
    extra = pd.DataFrame([{"class": name, "precision": None, "recall": None, "f1-score": float(share),
                           "support": total}])
    at = int(np.flatnonzero(table["class"].to_numpy() == "accuracy")[0]) + 1 if "accuracy" in set(table["class"]) \
        else len(table)
    return pd.concat([table.iloc[:at], extra, table.iloc[at:]], ignore_index=True)


def classification_view(run: dict, fold, threshold: float) -> tuple[np.ndarray, list[str], float | None]:
    """(confusion matrix, class names, threshold or None) of a binary or multiclass run."""
    run_id, classes = run["run_id"], list(run.get("classes") or ["down", "up"])
    if run["task"] == "binary":
        row = grid_row(threshold_table(run_id, fold), threshold)
        return binary_confusion(row), classes, float(row["threshold"])
    oof = oof_rows(run_id, fold)
    proba = oof[[f"prob_{c}" for c in classes]].to_numpy(dtype="float64")
    cm = confusion_counts(oof["y"].to_numpy(), proba.argmax(axis=1), len(classes))
    return cm, classes, None


def fold_metric(run: dict, fold, key: str):
    """A pooled metric (all folds) or the fold's own value, from run.json."""
    k = fold_number(fold)
    if k is None:
        return (run.get("metrics") or {}).get(key)
    return next((f.get(key) for f in run.get("folds") or [] if int(f["fold"]) == k), None)


def curves_view(run: dict, fold) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ROC table fpr/tpr, reliability bins) of a binary run, pooled or for one fold."""
    if fold_number(fold) is None:
        curves = registry.read_artifact(run["run_id"], "curves.json")
        return pd.DataFrame({k: curves["roc"][k] for k in ("fpr", "tpr")}), pd.DataFrame(curves["reliability"])
    oof = oof_rows(run["run_id"], fold)
    return evaluation.roc_table(oof["y"], oof["prob"]), evaluation.reliability_curve(oof["y"], oof["prob"])


def _stamp(run: dict, name: str) -> int:
    """The artifact's modification time (ns): a cache key that changes if the file does."""
    try:
        return Path(run["path"], name).stat().st_mtime_ns
    except (KeyError, OSError, TypeError):
        return 0


@lru_cache(maxsize=4)
def _shap_table(run_id: str, names: tuple[str, ...], stamp: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SHAP rows with fold/class, the feature values of the same days) of a run, read once
    per run (``stamp``: shap.parquet's mtime) and shared by every callback and fold."""
    shap = registry.read_artifact(run_id, "shap.parquet")
    values = registry.read_artifact(run_id, "dataset.parquet", columns=list(names))
    values = values.reindex(pd.DatetimeIndex(shap["date"])).reset_index(drop=True)
    return shap.reset_index(drop=True), values


def _shap_rows(run_id: str, names: tuple[str, ...], stamp: int, fold, class_index) -> tuple[pd.DataFrame,
                                                                                          pd.DataFrame]:
    shap, values = _shap_table(run_id, names, stamp)
    keep = np.ones(len(shap), dtype=bool)
    k = fold_number(fold)
    if k is not None:
        keep &= (shap["fold"] == k).to_numpy()
    if "class" in shap.columns:
        keep &= (shap["class"] == int(class_index or 0)).to_numpy()
    cols = list(names)
    return shap.loc[keep, cols].reset_index(drop=True), values.loc[keep, cols].reset_index(drop=True)


def shap_view(run: dict, fold, class_index: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SHAP values, feature values) of the same days: rows = days of the fold (or all),
    columns = the run's features; multiclass runs: the values of ``class_index``."""
    return _shap_rows(run["run_id"], tuple(run["feature_names"]), _stamp(run, "shap.parquet"), fold, class_index)


def shap_note(run: dict, rows: int, drawn: int) -> str | None:
    """What the SHAP charts rest on when it is not every out-of-fold day: the runner's
    sample (``run.json["shap"]["rows_per_fold"]``) and the beeswarm's drawn sample."""
    parts = []
    rec = run.get("shap") if isinstance(run.get("shap"), dict) else {}
    if rec.get("rows_per_fold"):
        parts.append(f"SHAP on {int(rec['rows_per_fold']):,} sampled days per fold"
                     + (f" (seed {rec['seed']})" if rec.get("seed") is not None else "") + ".")
    if drawn < rows:
        parts.append(f"The beeswarm draws a seeded sample of {drawn:,} of the {rows:,} explained days; its ranking "
                     f"and colours, the mean |SHAP| bars and the dependence plot use all {rows:,}.")
    return " ".join(parts) or None


@lru_cache(maxsize=16)
def _shap_figures(run_id: str, names: tuple[str, ...], stamp: int, fold, class_index, drawn: int) -> tuple:
    """(beeswarm, mean |SHAP| bars, explained rows, drawn rows), built once per run, fold,
    class and sample size (the figures are not changed afterwards)."""
    shap, values = _shap_rows(run_id, names, stamp, fold, class_index)
    summary = slim(ve.shap_summary_figure(shap, values, max_display=SHAP_FEATURES, max_points=drawn, seed=SHAP_SEED))
    bars = slim(ve.shap_bar_figure(shap.abs().mean(), max_display=SHAP_FEATURES))
    return summary, bars, len(shap), min(len(shap), drawn)


def drift_view(run: dict, fold) -> tuple[pd.DataFrame, dict, int | None]:
    """(rolling AUC rows date/auc, PSI {fold: {feature: psi}}, window) for all folds or one."""
    drift = registry.read_artifact(run["run_id"], "drift.json")
    roll = pd.DataFrame({"date": pd.to_datetime(drift["rolling_auc"]["date"]),
                         "auc": np.asarray(drift["rolling_auc"]["auc"], dtype="float64")})
    psi = drift.get("psi") or {}
    k = fold_number(fold)
    if k is not None:
        f = next(f for f in run["folds"] if int(f["fold"]) == k)
        roll = roll[(roll["date"] >= pd.Timestamp(f["test_start"])) & (roll["date"] <= pd.Timestamp(f["test_end"]))]
        psi = {str(k): psi.get(str(k), {})}
    return roll, psi, drift["rolling_auc"].get("window")


def not_applicable(run: dict) -> list[str]:
    """What this run's task has no chart for (one sentence each)."""
    task = run.get("task")
    if task == "multiclass":
        return ["ROC, calibration and the threshold slider apply to binary (up/down) runs: this run predicts "
                f"{len(run.get('classes') or [])} day types, so the confusion matrix shows the most probable class; "
                "the rolling AUC is not recorded for multiclass runs."]
    if task == "regression" and label_unit(run) != "return":  # time_to_touch, max_excursion
        return [f"The confusion matrix, classification report, ROC and calibration apply to classifiers: this run "
                f"predicts {label_unit(run)}, so its predictions are plotted against the outcomes instead; the "
                "rolling AUC ranks up days and does not apply to a label that is not a direction."]
    if task == "regression":
        return ["The confusion matrix, classification report, ROC and calibration apply to classifiers: this run "
                "predicts a return, so its predictions are plotted against the outcomes instead; the rolling "
                "AUC ranks up days (outcome > 0) by the predicted return."]
    return []


#: The cards whose place and title follow the run's task (see :func:`card_plan`).
CARDS = ("confusion", "roc", "calibration", "report", "cv", "drift", "psi")


def card_plan(task: str | None) -> dict[str, dict]:
    """Which cards a run of ``task`` gets: ``{card: {"lg": width or 0 (hidden), "title": ...}}``.

    A card never holds something other than its title says, and no card is an empty
    "not shown" box: binary runs get every card; multiclass runs the confusion matrix and
    report of the most probable class (no ROC, calibration or rolling AUC); regression
    runs predictions against outcomes in place of the ROC card (no confusion matrix,
    report or calibration). The cards of one row wrap, so the shown ones fill it."""
    plan = {"confusion": (4, "Confusion matrix"), "roc": (4, "ROC curve"), "calibration": (4, "Calibration"),
            "report": (5, "Classification report"), "cv": (7, "Scores per fold"),
            "drift": (7, "Drift: rolling out-of-fold AUC"), "psi": (5, "Drift: feature PSI per fold")}
    if task == "multiclass":
        plan.update(confusion=(5, "Confusion matrix (most probable class)"), roc=(0, "ROC curve"),
                    calibration=(0, "Calibration"), report=(7, "Classification report"), cv=(12, "Scores per fold"),
                    drift=(0, "Drift: rolling out-of-fold AUC"), psi=(12, "Drift: feature PSI per fold"))
    elif task == "regression":
        plan.update(confusion=(0, "Confusion matrix"), roc=(6, "Prediction vs outcome"), calibration=(0, "Calibration"),
                    report=(0, "Classification report"), cv=(6, "Scores per fold"),
                    drift=(7, "Drift: rolling out-of-fold AUC (up days ranked by the prediction)"))
    return {k: {"lg": w, "title": t} for k, (w, t) in plan.items()}


# ----------------------------------------------------------------------------- layout
def _graph(graph_id: str, fig, slimmed: bool = False, config: dict | None = None) -> dcc.Graph:
    """The chart, with its template cut to what it uses (:func:`viz.theme.slim`: ~6 kB less
    each; ``slimmed``: already done, e.g. a cached figure, which is never changed)."""
    return dcc.Graph(id=graph_id, figure=fig if slimmed else slim(fig), config={**GRAPH_CONFIG, **(config or {})},
                     className="almanac-graph")


def gl_pixel_ratio(device_ratio) -> float:
    """plotly's ``plotGlPixelRatio`` for a screen of this device pixel ratio: the screen's own
    resolution, 1 to 4 (plotly draws a WebGL canvas at twice its size unless told, four
    times the pixels a standard screen shows); plotly's 2 when the ratio is unknown."""
    try:
        ratio = float(device_ratio)
    except (TypeError, ValueError):
        return 2.0
    return min(4.0, max(1.0, ratio)) if math.isfinite(ratio) else 2.0


def _box(box_id: str, min_height: int = 380) -> dcc.Loading:
    return dcc.Loading(html.Div(id=box_id, style={"minHeight": f"{min_height}px"}), type="default", delay_show=400,
                       color=COLORS["up"])


def _card(name: str, lg: int, card) -> dbc.Col:
    return dbc.Col(card, lg=lg, id=f"evaluate-{name}-col")


def _controls(runs: list[dict], value: str | None) -> dbc.Row:
    return dbc.Row([
        dbc.Col(run_picker(runs, value), lg=6),
        dbc.Col([dbc.Label("Folds", html_for="evaluate-fold", className="mb-1"),
                 dcc.Dropdown(id="evaluate-fold", options=[{"label": "All folds", "value": ALL}], value=ALL,
                              clearable=False, searchable=False)], lg=4),
        dbc.Col(html.Div(id="evaluate-links", className="pt-lg-4"), lg=2),
    ], className="g-3 align-items-start")


def layout(run: str | None = None, **_query):
    runs, problem = load_runs(log)
    slider = dcc.Slider(id="evaluate-threshold", min=0.3, max=0.7, step=0.01, value=0.5,
                        marks={t: f"{t:.1f}" for t in (0.3, 0.4, 0.5, 0.6, 0.7)}, updatemode="drag")
    header = page_header("Evaluate", "Judge a trained run out of sample, fold by fold, before trusting it. "
                                     "Everything here is read from the run's stored results: nothing is refitted.",
                         page_id="evaluate")
    return run_page("evaluate", header, problem, runs, [
        section("Run", _controls(runs, pick_run(runs, run)), html.Div(id="evaluate-summary", className="mt-3"),
                dcc.Store(id="evaluate-pixel-ratio"), section_id="evaluate-run-section"),
        dbc.Row([
            _card("confusion", 4, section(
                "Confusion matrix",
                html.Div([dbc.Label("Threshold: predict up when P(up) ≥", className="mb-0 almanac-hint"), slider],
                         id="evaluate-threshold-wrap", className="mb-2"),
                _box("evaluate-confusion"), section_id="evaluate-confusion-section")),
            _card("roc", 4, section("ROC curve", _box("evaluate-roc"), section_id="evaluate-roc-section")),
            _card("calibration", 4, section("Calibration", _box("evaluate-calibration", 440),
                                            section_id="evaluate-calibration-section")),
            _card("report", 5, section("Classification report", html.Div(id="evaluate-report"),
                                       subtitle="precision, recall and F1 per class (binary runs: at the threshold "
                                                "above)", section_id="evaluate-report-section")),
            _card("cv", 7, section("Scores per fold", _box("evaluate-cv", 360), section_id="evaluate-cv-section")),
        ], className="g-3 mt-1"),
        evaluate_section(),  # scores by HMM regime (pages._components.regimes)
        dbc.Row([
            dbc.Col(section("SHAP summary",
                            html.Div([dbc.Label("Class explained", html_for="evaluate-shap-class", className="mb-1"),
                                      dcc.Dropdown(id="evaluate-shap-class", clearable=False, searchable=False)],
                                     id="evaluate-shap-class-wrap", style={"display": "none"}, className="mb-2"),
                            _box("evaluate-shap", 460),
                            html.Div(id="evaluate-shap-note", className="almanac-hint mt-1"),
                            subtitle="one point per explained out-of-fold day; colour = the feature's value that "
                                     "day",
                            section_id="evaluate-shap-section"), lg=7),
            dbc.Col(section("Mean |SHAP|", _box("evaluate-shap-bar", 460), section_id="evaluate-shap-bar-section"),
                    lg=5),
        ], className="g-3 mt-1"),
        dbc.Row([
            dbc.Col(section("SHAP dependence",
                            dcc.Dropdown(id="evaluate-feature", clearable=False, className="mb-2"),
                            _box("evaluate-dependence"), section_id="evaluate-dependence-section"), lg=6),
            dbc.Col(section("Permutation importance",
                            html.Div([
                                html.P("Computed when you ask, then kept with the run: each feature of the last "
                                       "fold's test rows is shuffled and the last fold's saved model re-scored.",
                                       className="almanac-hint mb-2"),
                                dbc.Button("Compute permutation importance", id="evaluate-permutation-compute",
                                           n_clicks=0, color="primary", size="sm")],
                                id="evaluate-permutation-ask", style={"display": "none"}),
                            _box("evaluate-permutation", 0),
                            html.Div(id="evaluate-permutation-note", className="almanac-hint mt-1"),
                            section_id="evaluate-permutation-section"), lg=6),
        ], className="g-3 mt-1"),
        dbc.Row([
            _card("drift", 7, section("Drift: rolling out-of-fold AUC", _box("evaluate-drift", 340),
                                      section_id="evaluate-drift-section")),
            _card("psi", 5, section("Drift: feature PSI per fold", _box("evaluate-psi", 400),
                                    subtitle="population stability index of each feature, training vs test rows: "
                                             "< 0.1 stable, 0.1–0.25 moderate, > 0.25 major shift",
                                    section_id="evaluate-psi-section")),
        ], className="g-3 mt-1"),
        section("Similar days", similar_controls("evaluate", "Out-of-fold day"),
                dcc.Loading(html.Div(id="evaluate-similar", className="mt-2"), delay_show=300),
                subtitle="An out-of-fold day's most similar earlier days in this run's features (scaler fitted on "
                         "the days before it only), and how the rest of their day went.",
                section_id="evaluate-similar-section", class_name="mt-3"),
    ])


# ----------------------------------------------------------------------------- callbacks
def _summary(run: dict) -> list:
    """Warnings first, then one line about the run (accuracy with its base rate), the
    baselines beside the model's scores, and what this task has no chart for."""
    spec = run.get("spec") or {}
    m = run.get("metrics") or {}
    scores = [f"{name} {m[k]:.3f}" for k, name in (("roc_auc", "AUC"), ("accuracy", "accuracy"), ("ic", "IC"),
                                                   ("r2", "R²")) if isinstance(m.get(k), (int, float))]
    rate = base_rate(run)
    if rate and isinstance(m.get("accuracy"), (int, float)):
        scores = [f"{s} ({rate[0]} {rate[1]:.3f})" if s.startswith("accuracy") else s for s in scores]
    score = ", ".join(scores)
    dr = run.get("date_range") or {}
    line = html.Div([html.Strong(run.get("name") or run["run_id"]), " · ",
                     f"{registry.subject(run)} · label {(spec.get('label') or {}).get('kind')} "
                     f"({run.get('task')}) · model {(spec.get('model') or {}).get('kind')} · "
                     f"{dr.get('start', '?')} → {dr.get('end', '?')} · {run.get('n_oof', '?')} out-of-fold days"
                     + (f" · pooled {score}" if score else "")], className="almanac-hint", id="evaluate-summary-line")
    notes = not_applicable(run)
    return [run_warnings(run, "evaluate"), line, baselines_view(run, "evaluate"),
            info_alert(" ".join(notes)) if notes else None,
            multihead_view(run, "evaluate")]  # a head of a multi-head run: its heads side by side


@callback(
    *[Output(f"evaluate-{c}-col", "lg") for c in CARDS], *[Output(f"evaluate-{c}-col", "style") for c in CARDS],
    *[Output(f"evaluate-{c}-section-title", "children") for c in CARDS],
    Input("run-select", "value"),
)
def arrange_cards(run_id):
    """Show, size and title the cards for the chosen run's task (:func:`card_plan`)."""
    task = None
    if run_id:
        try:
            task = registry.get_run(run_id).get("task")
        except Exception:  # noqa: BLE001 - setup_run shows why
            task = None
    plan = card_plan(task)
    return (*[plan[c]["lg"] or 12 for c in CARDS],
            *[{"display": "block"} if plan[c]["lg"] else {"display": "none"} for c in CARDS],
            *[plan[c]["title"] for c in CARDS])


@callback(
    Output("evaluate-fold", "options"), Output("evaluate-fold", "value"),
    Output("evaluate-feature", "options"), Output("evaluate-feature", "value"),
    Output("evaluate-shap-class", "options"), Output("evaluate-shap-class", "value"),
    Output("evaluate-shap-class-wrap", "style"),
    Output("evaluate-threshold", "disabled"), Output("evaluate-threshold", "value"),
    Output("evaluate-summary", "children"), Output("evaluate-links", "children"),
    Output("evaluate-threshold-wrap", "style"),
    Input("run-select", "value"),
)
def setup_run(run_id):
    """Fill the fold, feature and class choices of the chosen run; reset the threshold to 0.5
    (the slider is shown for binary runs only)."""
    hidden = {"display": "none"}
    if not run_id:
        return [], ALL, [], None, [], None, hidden, True, 0.5, None, None, hidden
    try:
        run = registry.get_run(run_id)
        ranked = registry.read_artifact(run_id, "importance.parquet", columns=["feature"])["feature"].tolist()
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return [], ALL, [], None, [], None, hidden, True, 0.5, failure_alert(
            exc, log, f"reading run {run_id}"), None, hidden
    classes = run.get("classes") or []
    multi = run.get("task") == "multiclass"
    return (fold_options(run), ALL, [{"label": f, "value": f} for f in ranked], ranked[0] if ranked else None,
            [{"label": c, "value": i} for i, c in enumerate(classes)] if multi else [], 0 if multi else None,
            {"display": "block"} if multi else hidden,
            run.get("task") != "binary", 0.5, _summary(run), run_links(run_id, "/evaluate"),
            {"display": "block"} if run.get("task") == "binary" else hidden)


@callback(
    Output("evaluate-confusion", "children"), Output("evaluate-report", "children"),
    Input("run-select", "value"), Input("evaluate-fold", "value"), Input("evaluate-threshold", "value"),
)
def render_confusion(run_id, fold, threshold):
    """Confusion matrix and classification report at the slider's threshold (precomputed grid)."""
    if not run_id:
        return None, None
    try:
        run = registry.get_run(run_id)
        if run["task"] == "regression":  # the cards are hidden (card_plan)
            return None, None
        cm, classes, t = classification_view(run, fold, threshold if threshold is not None else 0.5)
        table = with_base_rate(report_frame(cm, classes), cm, run["task"])
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"reading the predictions of {run_id}"), None
    shown = table.assign(**{c: table[c].map(lambda v: "" if v is None or pd.isna(v) else f"{v:.3f}")
                            for c in ("precision", "recall", "f1-score")})
    return (_graph("confusion-matrix-graph", ve.confusion_matrix_figure(cm, classes, t)),
            dbc.Table.from_dataframe(shown, striped=True, hover=True, size="sm", className="almanac-table mb-0",
                                     id="evaluate-report-table"))


@callback(
    Output("evaluate-roc", "children"), Output("evaluate-calibration", "children"), Output("evaluate-cv", "children"),
    Input("run-select", "value"), Input("evaluate-fold", "value"),
)
def render_curves(run_id, fold):
    """ROC and calibration (binary) or predictions vs outcomes (regression); scores per fold."""
    if not run_id:
        return None, None, None
    try:
        run = registry.get_run(run_id)
        metric, label, ref = METRIC.get(run["task"], METRIC["binary"])
        cv = _graph("evaluate-cv-graph", ve.cv_scores_figure(pd.DataFrame(run.get("folds") or []), metric, ref,
                                                             label=label))
        if run["task"] == "binary":
            roc, rel = curves_view(run, fold)
            return (_graph("roc-graph", ve.roc_figure(roc["fpr"], roc["tpr"], fold_metric(run, fold, "roc_auc"))),
                    _graph("calibration-graph", ve.calibration_figure(rel, fold_metric(run, fold, "brier"),
                                                                      fold_metric(run, fold, "ece"))), cv)
        if run["task"] == "regression":
            oof = oof_rows(run_id, fold)
            fig = ve.prediction_scatter_figure(oof["pred"], oof["y"], fold_metric(run, fold, "ic"),
                                               fold_metric(run, fold, "r2"), unit=label_unit(run),
                                               censored=oof.get("censored"))  # time_to_touch
            return _graph("evaluate-scatter-graph", fig), None, cv
        return None, None, cv  # multiclass: no ROC or calibration card (card_plan)
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"reading the curves of {run_id}"), None, None


@callback(
    Output("evaluate-shap", "children"), Output("evaluate-shap-bar", "children"),
    Output("evaluate-shap-note", "children"),
    Input("run-select", "value"), Input("evaluate-fold", "value"), Input("evaluate-shap-class", "value"),
    Input("evaluate-pixel-ratio", "data"),
)
def render_shap(run_id, fold, class_index, pixel_ratio=None):
    """Beeswarm (a seeded sample of at most :data:`SHAP_DRAWN` days, said under it; WebGL at
    the screen's pixel ratio, :func:`gl_pixel_ratio`) and mean |SHAP| bars (every day) of the
    stored SHAP values of the fold (or all folds)."""
    if not run_id:
        return None, None, None
    try:
        run = registry.get_run(run_id)
        if run.get("kind") == "ensemble":  # no SHAP values of its own (ml.ensemble): say so, no empty chart
            return info_alert(run.get("importance_note"), title="An ensemble"), None, None
        summary, bars, rows, drawn = _shap_figures(run_id, tuple(run["feature_names"]), _stamp(run, "shap.parquet"),
                                                   fold_number(fold), class_index, SHAP_DRAWN)
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"reading the SHAP values of {run_id}"), None, None
    return (_graph("shap-summary-graph", summary, slimmed=True,
                   config={"plotGlPixelRatio": gl_pixel_ratio(pixel_ratio)}),
            _graph("shap-bar-graph", bars, slimmed=True), shap_note(run, rows, drawn))


# the screen's pixel ratio (assets/pixel_ratio.js), read in the browser when the page loads
clientside_callback(
    ClientsideFunction(namespace="almanac", function_name="pixelRatio"),
    Output("evaluate-pixel-ratio", "data"), Input("run-select", "value"),
)


@callback(
    Output("evaluate-dependence", "children"),
    Input("run-select", "value"), Input("evaluate-fold", "value"), Input("evaluate-feature", "value"),
    Input("evaluate-shap-class", "value"),
)
def render_dependence(run_id, fold, feature, class_index):
    """SHAP value of the chosen feature against its value, one point per day."""
    if not run_id or not feature:
        return None
    try:
        if registry.get_run(run_id).get("kind") == "ensemble":
            return info_alert("SHAP dependence: see the ensemble's parts on this page.", title="An ensemble")
        shap, values = shap_view(registry.get_run(run_id), fold, class_index)
        if feature not in shap.columns:  # the run changed and the feature list is not updated yet
            return dash.no_update
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"reading the SHAP values of {run_id}")
    return _graph("shap-dependence-graph", ve.shap_dependence_figure(feature, values[feature], shap[feature]))


def _permutation_note(run: dict) -> str | None:
    note = run.get("importance_note")
    return (note[0].upper() + note[1:] + ". The fold selector does not apply here.") if note else None


@callback(
    Output("evaluate-permutation", "children"), Output("evaluate-permutation-note", "children"),
    Output("evaluate-permutation-ask", "style"),
    Input("run-select", "value"), Input("evaluate-permutation-compute", "n_clicks"),
)
def render_permutation(run_id, n_clicks):
    """Permutation importance: drawn when the run has it (computed once, then cached in the
    run folder); else a button computes it (ml.explain.run_permutation_importance, about
    a quarter of a second with LightGBM on the default run)."""
    hidden, shown = {"display": "none"}, {"display": "block"}
    if not run_id:
        return None, None, hidden
    from ml import explain

    try:
        run = registry.get_run(run_id)
        folder = registry.run_path(run_id)
        ready = (folder / explain.PERMUTATION_FILE).exists() or not run.get("permutation")
        asked = dash.ctx.triggered_id == "evaluate-permutation-compute" and n_clicks
        if not ready and not asked:
            return None, _permutation_note(run), shown
        importance = explain.run_permutation_importance(run_id)
    except NotFoundError as exc:
        return info_alert(exc.message, title="No permutation importance"), None, hidden
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"computing the permutation importance of {run_id}"), None, hidden
    return (_graph("permutation-graph", ve.permutation_importance_figure(importance)), _permutation_note(run),
            hidden)


@callback(
    Output("evaluate-drift", "children"), Output("evaluate-psi", "children"),
    Input("run-select", "value"), Input("evaluate-fold", "value"),
)
def render_drift(run_id, fold):
    """Rolling out-of-fold AUC over time and the PSI heatmap (all folds or one)."""
    if not run_id:
        return None, None
    try:
        run = registry.get_run(run_id)
        roll, psi, window = drift_view(run, fold)
    except NotFoundError as exc:
        return info_alert(exc.message, title="No drift data"), None
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"reading the drift of {run_id}"), None
    # the figure's own title (with the PSI bands) is too long for this column: bands in the subtitle
    psi_graph = _graph("psi-graph", ve.psi_figure(psi).update_layout(title_text="Feature drift (PSI)"))
    if run["task"] == "multiclass":
        return None, psi_graph  # no rolling AUC card (card_plan)
    if roll.empty and label_unit(run) not in ("", "return"):  # time_to_touch, max_excursion
        return info_alert(f"this run predicts {label_unit(run)}, not a direction, so there are no up days to "
                          "rank.", title="No rolling AUC"), psi_graph
    if roll.empty:
        return info_alert("too few out-of-fold days for a rolling AUC.", title="No rolling AUC"), psi_graph
    return _graph("drift-graph", ve.rolling_auc_figure(roll["date"], roll["auc"], window)), psi_graph


@callback(
    Output("evaluate-similar-day", "min_date_allowed"), Output("evaluate-similar-day", "max_date_allowed"),
    Output("evaluate-similar-day", "date"), Output("evaluate-similar-day", "initial_visible_month"),
    Input("run-select", "value"),
)
def similar_days_of_run(run_id):
    """The picker bounded by the run's out-of-fold days, the latest chosen."""
    from ml.similar import run_days

    try:
        days = run_days(run_id) if run_id else []
    except Exception:  # noqa: BLE001 - a run without oof rows: no day to choose
        days = []
    return day_range(days)


@callback(
    Output("evaluate-similar", "children"),
    Input("evaluate-similar-go", "n_clicks"), Input("run-select", "value"),
    State("evaluate-similar-day", "date"), State("evaluate-similar-k", "value"),
)
def render_similar(n_clicks, run_id, day, k):
    """On "Find": the chosen out-of-fold day's neighbours in the run's features
    (ml.similar.similar_in_run); a new run clears the panel."""
    if not run_id or not day or not n_clicks or triggered_id() == "run-select":
        return html.Div(PROMPT, className="almanac-hint")
    from ml.similar import run_days, similar_in_run

    try:
        day, note = snap(str(day)[:10], run_days(run_id))
        return similar_view(*similar_in_run(run_id, day, k if k is not None else 0), note=note,
                            graph_id="evaluate-similar-graph")
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, "finding similar days")
