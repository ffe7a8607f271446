"""The "by regime" cards of /evaluate and /backtest, and their callbacks.

Every out-of-fold day of a run on a symbol carries the regime of its fold's HMM
(``oof.parquet["regime"]``, :mod:`ml.regimes`). /evaluate shows the run's scores on the days
of each regime (the fold selector applies), /backtest the strategy's statistics and equity
on the days of each regime at the settings on screen, each with its count of days (and
trades). A run trained without the hmm_regime set gets its folds' HMMs fitted the first time
a card asks (:func:`ml.run_regimes.ensure`, about a second, then kept with the run).
"""

from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, callback, dcc, html

from almanac import registry
from ml import regimes, replay, run_regimes
from ml.runinfo import untraded
from pages._components.feedback import failure_alert, info_alert
from pages._components.layout import SWITCHED_OFF, section, show_switch
from viz.regimes import regime_equity_figure, regime_scores_figure
from viz.theme import slim

log = logging.getLogger(__name__)
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
#: (column, header, format) shown per task.
SCORE_COLUMNS = {
    "binary": [("n", "Days", "{:,}"), ("base_rate", "Up days", "{:.1%}"), ("roc_auc", "ROC AUC", "{:.3f}"),
               ("accuracy", "Accuracy", "{:.3f}"), ("brier", "Brier", "{:.4f}"), ("log_loss", "Log loss", "{:.4f}")],
    "multiclass": [("n", "Days", "{:,}"), ("accuracy", "Accuracy", "{:.3f}"),
                   ("balanced_accuracy", "Balanced acc.", "{:.3f}"), ("roc_auc", "ROC AUC", "{:.3f}"),
                   ("log_loss", "Log loss", "{:.4f}")],
    "regression": [("n", "Days", "{:,}"), ("ic", "IC", "{:.3f}"), ("hit_rate", "Hit rate", "{:.3f}"),
                   ("mae", "MAE", "{:.5f}"), ("rmse", "RMSE", "{:.5f}")],
}
HEADLINE = {"binary": ("roc_auc", "ROC AUC", 0.5), "multiclass": ("roc_auc", "ROC AUC", 0.5),
            "regression": ("ic", "IC", 0.0)}
BACKTEST_COLUMNS = [("days", "Days", "{:,}"), ("trades", "Trades", "{:,}"), ("total_return", "Total return", "{:.1%}"),
                    ("mean_return", "Mean / day", "{:.3%}"), ("sharpe", "Sharpe", "{:.2f}"),
                    ("win_rate", "Win rate", "{:.1%}"), ("share_of_days", "Share of days", "{:.0%}")]


def _fmt(value, fmt: str) -> str:
    try:
        return fmt.format(value) if value is not None and np.isfinite(float(value)) else "—"
    except (TypeError, ValueError):
        return "—"


def view(table: pd.DataFrame, columns) -> pd.DataFrame:
    """``table`` (one row per regime) with the chosen columns, formatted for the page."""
    out = {"Regime": table["regime"].astype(str).tolist()}
    for key, header, fmt in columns:
        out[header] = [_fmt(v, fmt) for v in table[key]] if key in table.columns else ["—"] * len(table)
    return pd.DataFrame(out)


def method_note(run: dict) -> str:
    rec = run.get("regimes") or {}
    used = "the model also saw the regime probabilities (feature set hmm_regime)" if rec.get("features") else \
        "the model did not see them (no hmm_regime feature set)"
    return f"{rec.get('n_states', '?')} states ({', '.join(rec.get('names') or [])}): {rec.get('method', '')}; {used}."


def _graph(graph_id: str, fig) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=slim(fig), config=GRAPH_CONFIG, className="almanac-graph")


def _table(df: pd.DataFrame, table_id: str) -> dbc.Table:
    return dbc.Table.from_dataframe(df, striped=True, hover=True, size="sm", className="almanac-table mb-0",
                                    id=table_id)


def evaluate_section() -> dbc.Card:
    return section("Scores by regime", dbc.Row([
        dbc.Col(dcc.Loading(html.Div(id="evaluate-regimes-chart", style={"minHeight": "320px"}), delay_show=400),
                lg=5),
        dbc.Col([html.Div(id="evaluate-regimes-table"), html.Div(id="evaluate-regimes-note",
                                                                className="almanac-hint mt-2")], lg=7),
    ], className="g-3"), subtitle="the out-of-fold days of each HMM regime (the fold selector applies), with "
                                   "their count: a score on few days swings by chance",
        class_name="mt-3", section_id="evaluate-regimes-section")


def backtest_section() -> dbc.Card:
    return section("By regime", show_switch("backtest-regimes-show", "the backtest by regime"), dbc.Row([
        dbc.Col(dcc.Loading(html.Div(id="backtest-regimes-chart"), delay_show=400),
                lg=7),
        dbc.Col([html.Div(id="backtest-regimes-table"), html.Div(id="backtest-regimes-note",
                                                                className="almanac-hint mt-2")], lg=5),
    ], className="g-3"), subtitle="the backtest at the settings above, on the days of each HMM regime: statistics "
                                   "with their counts of days and trades, equity of each regime's days alone",
        class_name="mt-3", section_id="backtest-regimes-section")


@callback(Output("evaluate-regimes-chart", "children"), Output("evaluate-regimes-table", "children"),
          Output("evaluate-regimes-note", "children"),
          Input("run-select", "value"), Input("evaluate-fold", "value"))
def render_evaluate_regimes(run_id, fold):
    if not run_id:
        return None, None, None
    try:
        run, oof = run_regimes.ensure(run_id)  # fitted on first view for a run without hmm_regime
        if fold not in (None, "", "all"):
            oof = oof[oof["fold"] == int(fold)].reset_index(drop=True)
        table = regimes.oof_scores(run, oof)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"scoring run {run_id} by regime"), None, None
    if table is None:
        return info_alert(regimes.NO_REGIMES, title="No regimes"), None, None
    task = run["task"]
    key, label, ref = HEADLINE[task]
    return (_graph("evaluate-regimes-graph", regime_scores_figure(table, key, label, ref)),
            _table(view(table, SCORE_COLUMNS[task]), "evaluate-regimes-grid"), method_note(run))


@callback(Output("backtest-regimes-chart", "children"), Output("backtest-regimes-table", "children"),
          Output("backtest-regimes-note", "children"),
          Input("run-select", "value"), Input("threshold-slider", "value"), Input("backtest-long-only", "value"),
          Input("backtest-cost", "value"), Input("backtest-regimes-show", "value"))
def render_backtest_regimes(run_id, threshold, long_only, cost_bps, show=True):
    """The backtest on each regime's days at the settings on screen, once the card's switch is
    on (off by default: a threshold step should not pay for it)."""
    if not run_id:
        return None, None, None
    try:
        if not show:
            if untraded(registry.get_run(run_id)):  # multiclass, a table, a label that is not a direction
                return None, None, None  # no backtest at all (the page says why)
            return html.Div(SWITCHED_OFF, className="almanac-hint"), None, None
        run, oof = run_regimes.ensure(run_id)  # fitted on first view for a run without hmm_regime
        if untraded(run):
            return None, None, None  # no backtest at all (the page says why)
        if "regime" not in oof.columns or not regimes.names_of(run):
            return info_alert(regimes.NO_REGIMES, title="No regimes"), None, None
        cost = float("nan") if cost_bps is None else cost_bps
        result = replay.replay(run, threshold, cost, bool(long_only))
        table, curves = regimes.backtest_by_regime(result.daily, regimes.oof_regime_series(oof),
                                                   regimes.names_of(run))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"backtesting run {run_id} by regime"), None, None
    return (_graph("backtest-regimes-graph", regime_equity_figure(curves)),
            _table(view(table, BACKTEST_COLUMNS), "backtest-regimes-grid"), method_note(run))


__all__ = ["backtest_section", "evaluate_section", "method_note", "view"]
