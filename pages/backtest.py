"""``/backtest`` — trade a run's out-of-fold signal and see what it would have earned.

The backtest is recomputed at once from what the run stored: its out-of-fold
predictions (``oof.parquet``) and the session prices of the same days
(``dataset.parquet``: cutoff price, close, previous close). Nothing is refitted and no
model is loaded, so the controls answer instantly:

* ``threshold-slider``: trade long when P(up) ≥ t and short when P(up) ≤ 1 − t (binary
  runs; a regression run trades the sign of its predicted return, so the threshold does
  not apply and the slider is disabled);
* long only (no short days) and costs in basis points per side.

Each change calls :func:`ml.backtester.backtest` with the rules of the runner
(:func:`backtest_frame`). The deflated Sharpe ratio counts every trial on the run's
symbol and label (:func:`almanac.registry.trial_sharpes`), with this run's recorded
Sharpe replaced by the Sharpe of the settings on screen (:func:`dsr_trials`); at the
run's own settings the statistics are those in ``run.json`` (plus any trials recorded
since). Multiclass runs (day types, not directions) have no backtest.

Downloads: the run's self-contained HTML report (:func:`ml.report.report_data` rendered by
:func:`viz.report.render_report`; it shows the run's recorded settings) and the daily
series of the settings on screen (CSV).
"""

from __future__ import annotations

import logging
import math

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from almanac import registry
from ml.backtester import BacktestResult, backtest, monthly_returns
from ml.runinfo import trading_rules
from ml.trials import dsr_trials
from ml.report import STAT_ROWS, fmt, report_data
from ml.runner import _backtest_frame
from pages._components import failure_alert, info_alert, page_header, page_token, section
from pages._components.runs import load_runs, pick_run, run_links, run_page, run_picker
from viz.backtest import drawdown_figure, equity_figure, monthly_returns_figure
from viz.report import render_report

dash.register_page(__name__, path="/backtest", name="Backtest", order=5, title="Backtest · Almanac ML Lab",
                   description="Trade the signal only when the model is confident: equity, drawdown, "
                               "Sharpe after costs.")

log = logging.getLogger(__name__)
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
THRESHOLD_MIN, THRESHOLD_MAX = 0.5, 0.8
EQUITY_HEIGHT = 560  # about the height of the statistics table beside it


# ----------------------------------------------------------------------------- domain glue
def backtest_frame(run: dict) -> pd.DataFrame:
    """One row per out-of-fold day: date, prob, cutoff_price, close, prev_close.

    ``prob`` is the stored P(up) (binary) or 1 / 0 for a positive / negative predicted
    return (regression), NaN on days without both prices: the runner's own rule
    (``ml.runner._backtest_frame``), so the run's recorded backtest is reproduced.
    """
    run_id = run["run_id"]
    oof = registry.read_artifact(run_id, "oof.parquet")
    data = registry.read_artifact(run_id, "dataset.parquet", columns=["cutoff_price", "close", "prev_close"])
    rows = data.reindex(pd.DatetimeIndex(oof["date"], name="date"))
    pred = oof["prob" if run["task"] == "binary" else "pred"].to_numpy(dtype="float64")
    return _backtest_frame(rows, pred, run["task"])


def recompute(run: dict, threshold: float, cost_bps: float, long_only: bool) -> BacktestResult:
    """The run's backtest at these settings, with the DSR over the registry's trials."""
    frame = backtest_frame(run)
    kw = dict(threshold=float(threshold), cost_bps=float(cost_bps) if cost_bps is not None else float("nan"),
              long_only=bool(long_only))
    own = backtest(frame, **kw).stats["sharpe"]
    spec = run.get("spec") or {}
    trials = registry.trial_sharpes((spec.get("data") or {}).get("symbol"), (spec.get("label") or {}).get("kind"))
    recorded = (run.get("backtest") or {}).get("sharpe")
    return backtest(frame, trial_sharpes=dsr_trials(trials, recorded, own), **kw)


def stats_table(stats: dict) -> pd.DataFrame:
    """Statistic / Value rows in the report's order and formats (ml.report.STAT_ROWS)."""
    return pd.DataFrame([{"Statistic": label, "Value": fmt(stats.get(key), kind)}
                         for key, label, kind in STAT_ROWS if key in stats])


def trades_rows(trades: pd.DataFrame) -> list[dict]:
    """The trades grid's rows (dates as text, returns in percent)."""
    t = trades.assign(date=pd.to_datetime(trades["date"]).dt.strftime("%Y-%m-%d"),
                      gross_return=trades["gross_return"] * 100, net_return=trades["net_return"] * 100)
    return t.to_dict("records")


# ----------------------------------------------------------------------------- layout
def _graph(graph_id: str, fig) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=fig, config=GRAPH_CONFIG, className="almanac-graph")


def _box(box_id: str, min_height: int) -> dcc.Loading:
    return dcc.Loading(html.Div(id=box_id, style={"minHeight": f"{min_height}px"}), type="default", delay_show=400)


def _trades_grid() -> dag.AgGrid:
    pct = {"function": "params.value == null ? '' : d3.format('.3f')(params.value) + ' %'"}
    price = {"function": "params.value == null ? '' : d3.format(',.2f')(params.value)"}
    return dag.AgGrid(
        id="backtest-trades", rowData=[],
        columnDefs=[{"field": "date", "headerName": "Day", "width": 120},
                    {"field": "side", "headerName": "Side", "width": 90,
                     "cellClassRules": {"text-success fw-bold": "params.value === 'long'",
                                        "text-danger fw-bold": "params.value === 'short'"}},
                    {"field": "entry", "headerName": "Entry (cutoff price)", "flex": 1, "type": "rightAligned",
                     "valueFormatter": price},
                    {"field": "exit", "headerName": "Exit (close)", "flex": 1, "type": "rightAligned",
                     "valueFormatter": price},
                    {"field": "gross_return", "headerName": "Gross return", "flex": 1, "type": "rightAligned",
                     "valueFormatter": pct},
                    {"field": "net_return", "headerName": "Net return (after costs)", "flex": 1,
                     "type": "rightAligned", "valueFormatter": pct}],
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={"pagination": True, "paginationPageSize": 15, "paginationPageSizeSelector": False,
                         "domLayout": "autoHeight",
                         "localeText": {"noRowsToShow": "No trades at these settings: lower the threshold."}},
        className="almanac-grid", style={"width": "100%"},
    )


def _controls() -> dbc.Row:
    marks = {t: f"{t:.2f}" for t in np.round(np.arange(THRESHOLD_MIN, THRESHOLD_MAX + 1e-9, 0.05), 2)}
    return dbc.Row([
        dbc.Col([dbc.Label("Threshold: long when P(up) ≥ t, short when P(up) ≤ 1 − t", className="mb-1"),
                 dcc.Slider(id="threshold-slider", min=THRESHOLD_MIN, max=THRESHOLD_MAX, step=0.01, value=0.55,
                            marks=marks, updatemode="mouseup")], lg=6),
        dbc.Col([dbc.Label("Positions", className="mb-1"),
                 dbc.Switch(id="backtest-long-only", label="Long only (no short days)", value=False)], lg=2),
        dbc.Col([dbc.Label("Costs (bp per side)", html_for="backtest-cost", className="mb-1"),
                 dbc.Input(id="backtest-cost", type="number", min=0, step=0.5, value=1.0, debounce=True)], lg=2),
        dbc.Col([dbc.Button("Download HTML report", id="download-report-button", color="primary",
                            title="the run's report, at the trading rules it was trained with",
                            size="sm", className="w-100 mb-2"),
                 dbc.Button("Daily series (CSV)", id="backtest-csv-button", color="primary", outline=True,
                            size="sm", className="w-100"),
                 dcc.Download(id="backtest-report-download"), dcc.Download(id="backtest-csv-download")], lg=2),
    ], className="g-3 align-items-start")


def layout(run: str | None = None, **_query):
    runs, problem = load_runs(log)
    header = page_header("Backtest", "Trade a run's out-of-fold signal from the cutoff to the close. Moving the "
                                     "controls recomputes the backtest from the stored predictions: nothing is "
                                     "refitted.", page_id="backtest")
    return run_page("backtest", header, problem, runs, [
        page_token("backtest-token"),
        section("Run and trading rules",
                dbc.Row([dbc.Col(run_picker(runs, pick_run(runs, run)), lg=6),
                         dbc.Col(html.Div(id="backtest-links", className="pt-lg-4"), lg=6)], className="g-3"),
                html.Div(id="backtest-summary", className="mt-2"),
                html.Hr(), _controls(), html.Div(id="backtest-message", className="mt-2"),
                section_id="backtest-run-section"),
        dbc.Row([
            dbc.Col(section("Equity curve", _box("backtest-equity", EQUITY_HEIGHT), section_id="backtest-equity-section"),
                    lg=8),
            dbc.Col(section("Statistics", html.Div(id="backtest-stats"),
                            subtitle="daily returns of the out-of-fold days. DSR: against every run on this "
                                     "symbol and label in the registry, this one at the settings above",
                            section_id="backtest-stats-section"), lg=4),
        ], className="g-3 mt-1"),
        dbc.Row([
            dbc.Col(section("Drawdown", _box("backtest-drawdown", 280), section_id="backtest-drawdown-section"),
                    lg=6),
            dbc.Col(section("Monthly returns", _box("backtest-monthly", 280),
                            section_id="backtest-monthly-section"), lg=6),
        ], className="g-3 mt-1"),
        section("Trades", _trades_grid(), subtitle="one trade per traded day: in at the cutoff, out at the close",
                class_name="mt-3", section_id="backtest-trades-section"),
    ])


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output("threshold-slider", "value"), Output("threshold-slider", "disabled"),
    Output("backtest-long-only", "value"), Output("backtest-cost", "value"),
    Output("backtest-summary", "children"), Output("backtest-links", "children"),
    Input("run-select", "value"),
)
def setup_run(run_id):
    """Start from the run's recorded trading rules."""
    if not run_id:
        return no_update, True, no_update, no_update, None, None
    try:
        run = registry.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return no_update, True, no_update, no_update, failure_alert(exc, log, f"reading run {run_id}"), None
    rules = trading_rules(run)
    t = min(max(float(rules["threshold"]), THRESHOLD_MIN), THRESHOLD_MAX)
    summary = html.Div([html.Strong(run.get("name") or run_id), f" · {run.get('task')} · trained with threshold "
                        f"{float(rules['threshold']):.2f}, {'long only' if rules['long_only'] else 'long and short'}, "
                        f"{rules['cost_bps']:g} bp per side"
                        + (" · a regression run trades the sign of its predicted return: the threshold does not "
                           "apply" if run.get("task") == "regression" else "")], className="almanac-hint")
    return t, run.get("task") != "binary", bool(rules["long_only"]), float(rules["cost_bps"]), summary, \
        run_links(run_id, "/backtest")


@callback(
    Output("backtest-stats", "children"), Output("backtest-equity", "children"),
    Output("backtest-drawdown", "children"), Output("backtest-monthly", "children"),
    Output("backtest-trades", "rowData"), Output("backtest-message", "children"),
    Input("run-select", "value"), Input("threshold-slider", "value"), Input("backtest-long-only", "value"),
    Input("backtest-cost", "value"),
)
def render_backtest(run_id, threshold, long_only, cost_bps):
    """Recompute the backtest from the stored out-of-fold predictions at these settings."""
    if not run_id:
        return None, None, None, None, [], None
    try:
        run = registry.get_run(run_id)
        if run.get("task") == "multiclass":
            note = info_alert(run.get("backtest_note") or "a multiclass run predicts a day type, not a direction.",
                              title="No backtest for this run")
            return None, None, None, None, [], note
        result = recompute(run, threshold, cost_bps, long_only)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return None, None, None, None, [], failure_alert(exc, log, f"backtesting run {run_id}")
    symbol = ((run.get("spec") or {}).get("data") or {}).get("symbol", "")
    table = dbc.Table.from_dataframe(stats_table(result.stats), striped=True, hover=True, size="sm",
                                     className="almanac-table mb-0", id="backtest-stats-table")
    return (table,
            _graph("equity-curve-graph", equity_figure(result.daily, benchmark_name=f"buy and hold {symbol}".strip(),
                                                       height=EQUITY_HEIGHT)),
            _graph("backtest-drawdown-graph", drawdown_figure(result.daily)),
            _graph("backtest-monthly-graph", monthly_returns_figure(monthly_returns(result.daily))),
            trades_rows(result.trades), None)


@callback(
    Output("backtest-csv-download", "data"),
    Input("backtest-csv-button", "n_clicks"),
    State("run-select", "value"), State("threshold-slider", "value"), State("backtest-long-only", "value"),
    State("backtest-cost", "value"),
    prevent_initial_call=True,
)
def download_csv(_n, run_id, threshold, long_only, cost_bps):
    """The daily series (date, prob, signal, position, strategy_return, equity, ...) as CSV."""
    if not run_id:
        return no_update
    try:
        daily = recompute(registry.get_run(run_id), threshold, cost_bps, long_only).daily
    except Exception as exc:  # noqa: BLE001 - logged; the button does nothing
        log.error("CSV of run %s failed", run_id, exc_info=exc)
        return no_update
    name = f"{run_id}-backtest-t{float(threshold):.2f}-{'long' if long_only else 'longshort'}-{cost_bps}bp.csv"
    return dcc.send_data_frame(daily.to_csv, name, index=False, date_format="%Y-%m-%d")


@callback(
    Output("backtest-report-download", "data"), Output("backtest-message", "children", allow_duplicate=True),
    Input("download-report-button", "n_clicks"),
    State("run-select", "value"), State("backtest-token", "data"),
    background=True,
    running=[(Output("download-report-button", "disabled"), True, False),
             (Output("download-report-button", "children"), "Preparing the report…", "Download HTML report")],
    prevent_initial_call=True,
)
def download_report(_n, run_id, _token):
    """The run's self-contained HTML report (a background job: it renders every chart)."""
    if not run_id:
        return no_update, no_update
    try:
        text = render_report(report_data(registry.get_run(run_id)))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return no_update, failure_alert(exc, log, f"writing the report of {run_id}")
    return dcc.send_string(text, f"{run_id}-report.html"), no_update
