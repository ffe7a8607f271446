"""``/backtest`` — trade a run's out-of-fold signal and see what it would have earned.

The backtest is recomputed at once from what the run stored: its out-of-fold
predictions (``oof.parquet``) and the session prices of the same days
(``dataset.parquet``: cutoff price, close, previous close). Nothing is refitted and no
model is loaded (:mod:`ml.replay`), so the controls answer instantly:

* ``threshold-slider``: trade long when P(up) ≥ t and short when P(up) ≤ 1 − t (binary
  runs; a regression run trades the sign of its predicted return, so the threshold does
  not apply and the slider is disabled);
* long only (no short days) and costs in basis points per side.

Beside the model: the run's warnings on top (``run["warnings"]``), an "always long"
baseline on the same days at the cost on screen (equity chart and statistics column), the
"prior day" baseline recorded at training (``run["baselines"]``) and the Sharpe lift over
always long with its bootstrap interval. The DSR and its trial count come from
:mod:`ml.trials` (every complete run on the symbol and label now): at the run's own
settings they equal ``runs show --json``, /models and the report; at other settings this
run's Sharpe is swapped for the one on screen. Below: drawdown, a rolling 126-day Sharpe,
monthly returns, the factor exposure (Fama–French alpha, betas and Newey–West t-statistics of
the monthly returns, :mod:`ml.factors`), a threshold × cost heatmap of Sharpe and DSR (computed once per run and
long-only choice, never on a slider step), the decile chart of a regression run, trades.
By regime: the same backtest on the days of each HMM regime, with counts of days and trades
(:mod:`pages._components.regimes`). Multiclass runs (day types, not directions) have no backtest: one sentence says so; nor do runs on a
table dataset (:data:`NO_TABLE_BACKTEST`).

Downloads: the run's self-contained HTML report at the settings on screen (recorded in
the report; :func:`ml.report.report_data` rendered by :func:`viz.report.render_report`)
and the daily series of the settings on screen (CSV).
"""

from __future__ import annotations

import logging

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, Patch, State, callback, dcc, html, no_update

from almanac import registry
from ml import factors, replay
from ml.backtester import BacktestResult, monthly_returns
from ml.modelcard import stat_columns
from ml.report import report_data
from ml.runinfo import trading_rules, untraded
from pages._components import failure_alert, info_alert, page_header, page_token, section
from pages._components.feedback import warning_alert
from pages._components.layout import SWITCHED_OFF, show_switch
from pages._components.regimes import backtest_section
from pages._components.heads import multihead_view
from pages._components.runs import NO_TABLE_BACKTEST, load_runs, pick_run, run_links, run_page, run_picker, table_run
from viz.backtest import (decile_figure, drawdown_figure, equity_figure, monthly_returns_figure, monthly_updates,
                          rolling_sharpe_figure, sharpe_grid_figure, trace_updates)
from viz.factors import factor_figure
from viz.report import render_report

dash.register_page(__name__, path="/backtest", name="Backtest", order=5, title="Backtest · Almanac ML Lab",
                   description="Trade the signal only when the model is confident: equity, drawdown, "
                               "Sharpe after costs, beside the naive baselines.")

log = logging.getLogger(__name__)

GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
THRESHOLD_MIN, THRESHOLD_MAX = 0.5, 0.8
EQUITY_HEIGHT = 560  # about the height of the statistics table beside it
SHOWN, HIDDEN = {}, {"display": "none"}
MODEL, ALWAYS_LONG, PRIOR_DAY = "Model", "Always long", "Prior day"


# ----------------------------------------------------------------------------- domain glue
def backtest_frame(run: dict) -> pd.DataFrame:
    """The run's out-of-fold days and prices (:func:`ml.replay.backtest_frame`)."""
    return replay.backtest_frame(run)


def recompute(run: dict, threshold: float, cost_bps: float, long_only: bool,
              frame: pd.DataFrame | None = None) -> BacktestResult:
    """The run's backtest at these settings, DSR over the registry's trials (ml.replay). An
    empty cost box is refused by the backtest (not replaced by the recorded cost)."""
    return replay.replay(run, threshold, _cost(cost_bps), bool(long_only), frame=frame)


def _cost(cost_bps) -> float:
    return float("nan") if cost_bps is None else cost_bps


def stats_table(stats: dict, always_long: dict | None = None, prior_day: dict | None = None,
                lift: str | None = None) -> pd.DataFrame:
    """Statistic / Model / Always long / Prior day rows in the report's order and formats
    (:func:`ml.modelcard.stat_columns`); a baseline column only when given, ``lift`` (text)
    a row under the model's Sharpe."""
    columns = [(MODEL, stats)] + ([(ALWAYS_LONG, always_long)] if always_long is not None else []) \
        + ([(PRIOR_DAY, prior_day)] if prior_day is not None else [])
    header, rows = stat_columns(columns, lift)
    return pd.DataFrame(rows, columns=header)


def day_rows(frame: pd.DataFrame) -> list[dict]:
    """Every out-of-fold day that has a signal, once per run: date, prob (P(up) as stored,
    full precision: the grid applies the threshold to it), entry, exit and the
    cutoff-to-close move in percent. The grid turns them into the trades of the settings
    on screen (:func:`trade_columns`, :func:`trade_filter`)."""
    df = frame.sort_values("date")
    df = df[np.isfinite(df["prob"].to_numpy(dtype="float64"))]
    return pd.DataFrame({"date": pd.to_datetime(df["date"]).dt.strftime("%Y-%m-%d"),
                         "prob": df["prob"].astype("float64"),
                         "entry": df["cutoff_price"].astype("float64").round(4),
                         "exit": df["close"].astype("float64").round(4),
                         "move": ((df["close"] / df["cutoff_price"] - 1.0) * 100).astype("float64")}
                        ).to_dict("records")


def warnings_banner(run: dict):
    """The run's warnings, one line each, in a light warning alert (None without any)."""
    alert = warning_alert(replay.warnings_of(run), title="Warnings of this run")
    if alert is not None:  # light: a note to read, not an error
        alert.style = {"backgroundColor": "#FEF5E7", "borderColor": "#F8D7A0", "color": "#7D5A1E"}
    return alert


# ----------------------------------------------------------------------------- layout
def _graph(graph_id: str, fig) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=fig, config=GRAPH_CONFIG, className="almanac-graph")


def _box(box_id: str, min_height: int, *children) -> dcc.Loading:
    box = html.Div(list(children) or None, id=box_id, style={"minHeight": f"{min_height}px"})
    return dcc.Loading(box, type="default", delay_show=400)


def blank(height: int) -> dict:
    """A figure with nothing drawn (no axes), the charts' state before a backtest is shown."""
    hidden = {"visible": False}
    return {"data": [], "layout": {"height": height, "xaxis": hidden, "yaxis": hidden,
                                   "margin": {"l": 0, "r": 0, "t": 0, "b": 0}}}


#: The charts a moved control changes: (box, graph, height before the first backtest). Each graph
#: stays in its box for the page's life and the callback writes its figure (a ``dash.Patch`` of the
#: changed y values for a moved control): plotly redraws in place. Written as the box's children,
#: each step mounted a new graph, which drew anew (about twice the time of the redraw).
CHARTS = (("backtest-equity", "equity-curve-graph", EQUITY_HEIGHT), ("backtest-drawdown", "backtest-drawdown-graph", 280),
          ("backtest-rolling", "backtest-rolling-graph", 280), ("backtest-monthly", "backtest-monthly-graph", 280))
BLANKS = tuple(blank(h) for _, _, h in CHARTS)


def _chart_box(box_id: str) -> dcc.Loading:
    _, graph_id, height = next(c for c in CHARTS if c[0] == box_id)
    return _box(box_id, height, _graph(graph_id, blank(height)))


def _position_js(threshold: float, long_only: bool) -> str:
    """The backtester's signal rule (ml.backtester: long when P(up) >= t, short when P(up)
    <= 1 - t unless long only, 1e-12 of float tolerance) as a JavaScript expression on a
    grid row: the same doubles give the same sides."""
    t = repr(float(threshold))
    short = "false" if long_only else f"params.data.prob <= 1 - {t} + 1e-12"
    return f"(params.data.prob >= {t} - 1e-12 ? 1 : ({short} ? -1 : 0))"


def trade_columns(threshold: float, long_only: bool, cost_bps) -> list[dict]:
    """The trades grid's columns at these settings: side, gross and net return are worked out
    in the browser from each day's P(up) and cutoff-to-close move, so a moved control sends
    these few lines instead of every trade."""
    pct = {"function": "params.value == null ? '' : d3.format('.3f')(params.value) + ' %'"}
    price = {"function": "params.value == null ? '' : d3.format(',.2f')(params.value)"}
    pos = _position_js(threshold, long_only)
    try:
        cost = float(cost_bps)
    except (TypeError, ValueError):
        cost = 0.0
    cost_pct = repr(2.0 * cost / 100.0) if np.isfinite(cost) else "0"  # entry + exit, in percent
    return [{"field": "date", "headerName": "Day", "width": 120},
            {"colId": "side", "headerName": "Side", "width": 90,
             "valueGetter": {"function": f"{pos} > 0 ? 'long' : ({pos} < 0 ? 'short' : '')"},
             "cellClassRules": {"text-success fw-bold": "params.value === 'long'",
                                "text-danger fw-bold": "params.value === 'short'"}},
            {"field": "entry", "headerName": "Entry (cutoff price)", "flex": 1, "type": "rightAligned",
             "valueFormatter": price},
            {"field": "exit", "headerName": "Exit (close)", "flex": 1, "type": "rightAligned",
             "valueFormatter": price},
            {"colId": "gross_return", "headerName": "Gross return", "flex": 1, "type": "rightAligned",
             "valueGetter": {"function": f"{pos} * params.data.move"}, "valueFormatter": pct},
            {"colId": "net_return", "headerName": "Net return (after costs)", "flex": 1, "type": "rightAligned",
             "valueGetter": {"function": f"{pos} * params.data.move - Math.abs({pos}) * {cost_pct}"},
             "valueFormatter": pct}]


def trade_filter(threshold: float, long_only: bool) -> dict:
    """The grid's external filter: only the days traded at these settings are listed."""
    return {"function": f"{_position_js(threshold, long_only)} !== 0"}


def _trades_grid() -> dag.AgGrid:
    return dag.AgGrid(
        id="backtest-trades", rowData=[], columnDefs=trade_columns(0.55, False, 1.0),
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={"pagination": True, "paginationPageSize": 15, "paginationPageSizeSelector": False,
                         "domLayout": "autoHeight", "isExternalFilterPresent": {"function": "true"},
                         "doesExternalFilterPass": trade_filter(0.55, False),
                         "localeText": {"noRowsToShow": "No trades at these settings: lower the threshold.",
                                        "noMatchingRows": "No trades at these settings: lower the threshold."}},
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
                            title="the run's report at the threshold, positions and cost on screen (recorded in the report)",
                            size="sm", className="w-100 mb-2"),
                 dbc.Button("Daily series (CSV)", id="backtest-csv-button", color="primary", outline=True,
                            size="sm", className="w-100"),
                 dcc.Download(id="backtest-report-download"), dcc.Download(id="backtest-csv-download")], lg=2),
    ], className="g-3 align-items-start")


def _body() -> html.Div:
    """The backtest's cards (hidden for a multiclass run, which has no backtest)."""
    log_switch = dbc.Switch(id="backtest-log", label="Log scale", value=False, className="mb-1")
    return html.Div(id="backtest-body", children=[
        dbc.Row([
            dbc.Col(section("Equity curve", log_switch, _chart_box("backtest-equity"),
                            section_id="backtest-equity-section"), lg=8),
            dbc.Col(section("Statistics", html.Div(id="backtest-stats"), html.Div(id="backtest-stats-note"),
                            subtitle="daily returns of the out-of-fold days. Always long: the same days at the "
                                     "cost above; prior day: as recorded at training. DSR: against every run "
                                     "on this symbol and label in the registry, this one at the settings above",
                            section_id="backtest-stats-section"), lg=4),
        ], className="g-3 mt-1"),
        dbc.Row([
            dbc.Col(section("Drawdown", _chart_box("backtest-drawdown"), section_id="backtest-drawdown-section"),
                    lg=6),
            dbc.Col(section("Rolling Sharpe", _chart_box("backtest-rolling"), section_id="backtest-rolling-section"),
                    lg=6),
        ], className="g-3 mt-1"),
        backtest_section(),  # statistics and equity by HMM regime (pages._components.regimes)
        section("Threshold × cost", _box("backtest-grid", 240),
                subtitle="Sharpe and DSR at every threshold and cost, from the stored predictions (nothing "
                         "refitted); follows the long-only switch",
                class_name="mt-3", section_id="backtest-grid-section"),
        section("Monthly returns", _chart_box("backtest-monthly"), class_name="mt-3",
                section_id="backtest-monthly-section"),
        section("Factor exposure", show_switch("backtest-factors-show", "the factor exposure"),
                _box("backtest-factors", 0),
                subtitle="the monthly returns regressed on the Fama–French three factors (Jul 1926 – Nov 2018): "
                         "alpha, betas, Newey–West t-statistics; follows the controls above",
                class_name="mt-3", section_id="backtest-factors-section"),
        html.Div(section("Predicted deciles", _box("backtest-deciles", 320),
                         subtitle="a regression run: mean realized return of the days in each decile of "
                                  "the predicted return", section_id="backtest-deciles-section"),
                 id="backtest-deciles-wrap", className="mt-3", style=HIDDEN),
        section("Trades", _trades_grid(), subtitle="one trade per traded day: in at the cutoff, out at the close",
                class_name="mt-3", section_id="backtest-trades-section"),
    ])


def layout(run: str | None = None, **_query):
    runs, problem = load_runs(log)
    header = page_header("Backtest", "Trade a run's out-of-fold signal from the cutoff to the close. Moving the "
                                     "controls recomputes the backtest from the stored predictions: nothing is "
                                     "refitted.", page_id="backtest")
    return run_page("backtest", header, problem, runs, [
        page_token("backtest-token"), dcc.Store(id="backtest-drawn"),
        html.Div(id="backtest-warnings"),
        section("Run and trading rules",
                dbc.Row([dbc.Col(run_picker(runs, pick_run(runs, run)), lg=6),
                         dbc.Col(html.Div(id="backtest-links", className="pt-lg-4"), lg=6)], className="g-3"),
                html.Div(id="backtest-summary", className="mt-2"),
                html.Hr(), _controls(), html.Div(id="backtest-message", className="mt-2"),
                section_id="backtest-run-section"),
        _body(),
    ])


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output("threshold-slider", "value"), Output("threshold-slider", "disabled"),
    Output("backtest-long-only", "value"), Output("backtest-cost", "value"),
    Output("backtest-summary", "children"), Output("backtest-links", "children"),
    Output("backtest-warnings", "children"), Output("backtest-body", "style"),
    Output("backtest-deciles-wrap", "style"), Output("backtest-deciles", "children"),
    Output("backtest-long-only", "disabled"), Output("backtest-cost", "disabled"),
    Output("backtest-csv-button", "disabled"),
    Input("run-select", "value"),
)
def setup_run(run_id):
    """Start from the run's recorded trading rules; show its warnings; fit the cards to its
    task (no backtest cards for a multiclass run, the decile chart for a regression run)."""
    if not run_id:
        return no_update, True, no_update, no_update, None, None, None, HIDDEN, HIDDEN, None, True, True, True
    try:
        run = registry.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return (no_update, True, no_update, no_update, failure_alert(exc, log, f"reading run {run_id}"), None,
                None, HIDDEN, HIDDEN, None, True, True, True)
    rules = trading_rules(run)
    task = run.get("task")
    table = table_run(run)
    flat = untraded(run) is not None  # multiclass, or a label that is not a direction (tradeable, ...)
    t = min(max(float(rules["threshold"]), THRESHOLD_MIN), THRESHOLD_MAX)
    rules_text = (NO_TABLE_BACKTEST if table else
                  "no trading rules: a multiclass run has no backtest" if task == "multiclass" else
                  f"no trading rules: {untraded(run)}" if flat else
                  f"trained with threshold {float(rules['threshold']):.2f}, "
                  f"{'long only' if rules['long_only'] else 'long and short'}, {rules['cost_bps']:g} bp per side")
    summary = html.Div([html.Strong(run.get("name") or run_id), f" · {task} · {rules_text}"
                        + (" · a regression run trades the sign of its predicted return: the threshold does not "
                           "apply" if task == "regression" and not table else "")], className="almanac-hint")
    deciles = None
    if table:  # no backtest at all: no cards, no deciles, no controls
        return (t, True, bool(rules["long_only"]), float(rules["cost_bps"]), summary, run_links(run_id, "/backtest"),
                warnings_banner(run), HIDDEN, HIDDEN, None, True, True, True)
    if task == "regression" and not flat:
        try:
            deciles = _graph("backtest-deciles-graph", decile_figure(replay.deciles(run)))
        except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
            deciles = failure_alert(exc, log, f"grouping the predictions of {run_id} in deciles")
    summary = [summary, multihead_view(run, "backtest", "/backtest")]  # a head: its heads and the gated backtest
    return (t, task != "binary", bool(rules["long_only"]), float(rules["cost_bps"]), summary,
            run_links(run_id, "/backtest"), warnings_banner(run), HIDDEN if flat else SHOWN,
            SHOWN if task == "regression" and not flat else HIDDEN, deciles, *[flat] * 3)


def _full_render(run_id, drawn) -> bool:
    """Draw every chart anew (a new run, the first call, after an error or outside a
    callback); else only the y values that changed go out (``dash.Patch``)."""
    if drawn != run_id:
        return True
    try:
        props = dash.ctx.triggered_prop_ids
    except Exception:  # noqa: BLE001 - called as a plain function (tests): draw everything
        return True
    return not props or "run-select.value" in props


def _cost_changed() -> bool:
    try:
        return "backtest-cost.value" in dash.ctx.triggered_prop_ids
    except Exception:  # noqa: BLE001 - outside a callback
        return True


def _patch(updates: dict[int, dict]) -> Patch:
    """A Patch of a figure: new y values of the traces at these positions."""
    p = Patch()
    for i, y in updates.items():
        p["data"][i]["y"] = y
    return p


@callback(
    Output("backtest-stats", "children"), Output("backtest-stats-note", "children"),
    *[Output(graph_id, "figure") for _, graph_id, _ in CHARTS],
    Output("backtest-trades", "rowData"), Output("backtest-message", "children"),
    Output("backtest-drawn", "data"), Output("backtest-trades", "columnDefs"),
    Output("backtest-trades", "dashGridOptions"),
    Input("run-select", "value"), Input("threshold-slider", "value"), Input("backtest-long-only", "value"),
    Input("backtest-cost", "value"), State("backtest-log", "value"), State("backtest-drawn", "data"),
)
def render_backtest(run_id, threshold, long_only, cost_bps, log_scale=False, drawn=None):
    """Recompute the backtest (and always long, at the same cost) from the stored
    out-of-fold predictions at these settings. A new run draws every chart; a moved
    control sends only the statistics, the changed y values (float32), the monthly table
    and the trades grid's rule (its rows, every day with a signal, go once per run:
    :func:`day_rows`); ``backtest-drawn`` holds the run whose charts are on screen."""
    empty = (None, None, *BLANKS, [])
    if not run_id:
        return (*empty, None, None, no_update, no_update)
    full = _full_render(run_id, drawn)
    try:
        run = registry.get_run(run_id)
        if table_run(run):
            return (*empty, info_alert(NO_TABLE_BACKTEST, title="No backtest for a table dataset"), None, no_update,
                    no_update)
        if run.get("task") == "multiclass":
            note = info_alert("this run predicts a day type (" + ", ".join(map(str, run.get("classes") or []))
                              + "), not a direction, so there is no signal to trade: see its classification "
                                "scores on /evaluate.", title="No backtest for a multiclass run")
            return (*empty, note, None, no_update, no_update)
        if untraded(run):  # a label that is not a direction: tradeable, time_to_touch, max_excursion
            return (*empty, info_alert(untraded(run) + ": see its scores on /evaluate.",
                                       title="No backtest for this label"), None, no_update, no_update)
        frame = replay.backtest_frame(run)
        result = recompute(run, threshold, cost_bps, long_only, frame=frame)
        long_run = replay.always_long_of(run, result.params["cost_bps"])
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        alert = failure_alert(exc, log, f"backtesting run {run_id}")
        if full:
            return (*empty, alert, None, no_update, no_update)
        return (*[no_update] * 7, alert, no_update, no_update, no_update)  # the last good charts stay
    symbol = ((run.get("spec") or {}).get("data") or {}).get("symbol", "")
    baselines = replay.recorded_baselines(run)
    prior = (baselines.get("prior_day") or {}).get("stats")
    table = dbc.Table.from_dataframe(
        stats_table(result.stats, long_run.stats, prior if isinstance(prior, dict) else None,
                    replay.lift(run, result.params, result.stats, long_run.stats)),
        striped=True, hover=True, size="sm", className="almanac-table mb-0", id="backtest-stats-table")
    prior_cost = ((baselines.get("prior_day") or {}).get("params") or {}).get("cost_bps",
                                                                             trading_rules(run)["cost_bps"])
    note = html.Div([
        "Volatility: annualized std of the daily returns. Turnover: traded notional per year in multiples "
        "of the capital (entry and exit each count; trading every day = 504×). Cost drag: return lost to "
        "costs per year.",
        f" Prior day: recorded at training ({prior_cost:g} bp per side)." if isinstance(prior, dict) else "",
    ], className="almanac-hint mt-2")
    rolling = replay.rolling_sharpe(result.daily)
    monthly_table = monthly_returns(result.daily)
    p = result.params
    columns = trade_columns(p["threshold"], p["long_only"], p["cost_bps"])
    grid_options = Patch()
    grid_options["doesExternalFilterPass"] = trade_filter(p["threshold"], p["long_only"])
    if not full:
        up = trace_updates(result.daily, long_run.daily if _cost_changed() else None, rolling,
                           result.stats.get("sharpe"))
        monthly = Patch()
        for key, value in monthly_updates(monthly_table).items():
            monthly["data"][0][key] = value
        return (table, no_update, _patch(up["equity"]), _patch(up["drawdown"]), _patch(up["rolling"]), monthly,
                no_update, None, run_id, columns, grid_options)
    return (table, note,
            equity_figure(result.daily, benchmark_name=f"buy and hold {symbol}".strip(), height=EQUITY_HEIGHT,
                          log_scale=bool(log_scale), baseline=long_run.daily),
            drawdown_figure(result.daily),
            rolling_sharpe_figure(result.daily, rolling, replay.ROLLING_DAYS, result.stats.get("sharpe")),
            monthly_returns_figure(monthly_table), day_rows(frame), None, run_id, columns, grid_options)


def factor_panel(out: dict):
    """The factor table (model and always long, :func:`ml.factors.display_table`) beside the
    betas chart, with the outside-months line and the method under them."""
    columns = [(MODEL, out["model"]), (ALWAYS_LONG, out["always_long"])]
    header, rows, notes = factors.display_table(columns)
    table = dbc.Table.from_dataframe(pd.DataFrame(rows, columns=header), striped=True, hover=True, size="sm",
                                     className="almanac-table mb-0", id="backtest-factors-table")
    return html.Div([dbc.Row([dbc.Col(table, lg=6), dbc.Col(_graph("backtest-factors-graph",
                                                                     factor_figure(columns)), lg=6)],
                             className="g-3"),
                     html.Div([html.Div(n) for n in notes], className="almanac-hint mt-2",
                              id="backtest-factors-notes")])


@callback(
    Output("backtest-factors", "children"),
    Input("run-select", "value"), Input("threshold-slider", "value"), Input("backtest-long-only", "value"),
    Input("backtest-cost", "value"), Input("backtest-factors-show", "value"),
)
def render_factors(run_id, threshold, long_only, cost_bps, show=True):
    """Factor exposure of the backtest at the settings on screen (nothing refitted), once its
    switch is on (off by default: a threshold step should not pay for a regression)."""
    if not run_id:
        return None
    try:
        run = registry.get_run(run_id)
        if run.get("task") == "multiclass" or table_run(run):
            return None
        if not show:
            return html.Div(SWITCHED_OFF, className="almanac-hint")
        return factor_panel(factors.run_exposure(run, threshold, _cost(cost_bps), long_only))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"regressing the backtest of {run_id} on the Fama–French factors")


@callback(
    Output("backtest-grid", "children"),
    Input("run-select", "value"), Input("backtest-long-only", "value"),
)
def render_grid(run_id, long_only):
    """The threshold × cost heatmap: once per run and long-only choice (not on slider steps)."""
    if not run_id:
        return None
    try:
        run = registry.get_run(run_id)
        if untraded(run) or table_run(run):
            return None
        fig = sharpe_grid_figure(replay.grid(run, bool(long_only)))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"computing the threshold × cost grid of {run_id}")
    return _graph("backtest-grid-graph", fig)


@callback(
    Output("equity-curve-graph", "figure", allow_duplicate=True),
    Input("backtest-log", "value"), State("backtest-drawn", "data"),
    prevent_initial_call=True,
)
def toggle_log(log_scale, drawn="run"):
    """Switch the equity chart's y axis between linear and log in place (a Patch of its
    figure: no data resent); nothing while no chart is drawn."""
    if not drawn:
        return no_update
    fig = Patch()
    fig["layout"]["yaxis"]["type"] = "log" if log_scale else "linear"
    return fig


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


def report_text(run_id: str, threshold, long_only, cost_bps) -> str:
    """The HTML report of ``run_id`` at the settings on screen (recorded in the report)."""
    return render_report(report_data(registry.get_run(run_id), threshold=threshold, cost_bps=_cost(cost_bps),
                                     long_only=bool(long_only)))


@callback(
    Output("backtest-report-download", "data"), Output("backtest-message", "children", allow_duplicate=True),
    Input("download-report-button", "n_clicks"),
    State("run-select", "value"), State("backtest-token", "data"), State("threshold-slider", "value"),
    State("backtest-long-only", "value"), State("backtest-cost", "value"),
    background=True,
    running=[(Output("download-report-button", "disabled"), True, False),
             (Output("download-report-button", "children"), "Preparing the report…", "Download HTML report")],
    prevent_initial_call=True,
)
def download_report(_n, run_id, _token, threshold=None, long_only=None, cost_bps=None):
    """The run's self-contained HTML report at the settings on screen (a background job: it
    renders every chart)."""
    if not run_id:
        return no_update, no_update
    try:
        text = report_text(run_id, threshold, long_only, cost_bps)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return no_update, failure_alert(exc, log, f"writing the report of {run_id}")
    return dcc.send_string(text, f"{run_id}-report.html"), no_update
