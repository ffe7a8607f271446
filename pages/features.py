"""``/features`` — build the feature table of a symbol as of a cutoff and explore it.

* Build: symbol, date range, cutoff, feature sets, cross-asset symbols. Building runs
  as a background job (progress bar, cancel button); it calls
  :func:`features.build_features`, which caches the table under the data home. The
  page keeps only the normalized configuration in a ``dcc.Store``; every other callback
  reloads the table from the cache on the server.
* Table: sortable, paged grid; each column header's tooltip is the feature's lineage
  (definition, data, window, known as of), repeated in the lineage table. Download as
  CSV or Parquet.
* Explore: a feature's distribution, history and hit rate of an outcome (day direction
  or rest-of-day direction) per quantile bin with its 95 % Wilson interval
  (:func:`viz.features.wilson_interval`); a rank-correlation heat map (cell numbers up
  to 12 features, hover above that); a quick
  mutual-information ranking computed on the earlier 70 % of days only.
* Similar days: for a day of the table (default the latest, today at the cutoff when
  today's bars reach it), its k most similar earlier days and their rest of the day
  (:func:`ml.similar.similar_in_table`, drawn by :func:`viz.similar.similar_days_figure`).
"""

from __future__ import annotations

import io
import logging

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html, no_update

from almanac.errors import SpecError
from almanac.sessions import INTRADAY_FREQS
from almanac.store import CatalogEntry, Store
from features import FEATURE_SETS, FeatureTable, build_features
from features.build import user_sets
from features.lineage import SEQUENCE_SETS
from features.explore import TRAIN_FRACTION, binned_hit_rates, mutual_information, rank_correlation
from pages._components import (empty_state, failure_alert, info_alert, page_header, page_token, read_catalog,
                               section)
from pages._components.similar import PROMPT, day_range, similar_controls, similar_view, snap
from viz.features import (correlation_figure, empty_figure, histogram_figure, hit_rate_figure,
                          importance_figure, timeseries_figure)

dash.register_page(__name__, path="/features", name="Features", order=2, title="Features · Almanac ML Lab",
                   description="Build features known at the cutoff (early session, cross-asset, regime) and explore them.")

log = logging.getLogger(__name__)
SET_LABELS = {"early_session": "Early session (minute bars up to the cutoff)",
              "cross_asset": "Cross-asset (other markets up to D-1)",
              "regime": "Regime (daily bars up to D-1)",
              "minute_path": "Minute path (ln price / open, each bar up to the cutoff)",
              "tables": "Your feature tables (joined by their known-at time)",
              "plugins": "Your plugins (audited for look-ahead; run in the build job)"}
PLUGIN_WARNING = ("A plugin is Python code you chose to run: it runs in the build job with your rights, never in "
                  "the web server, and the lab audits what it computes for look-ahead, not what it does.")
OUTCOMES = {"rest_of_day": "rest of day up (close > price at the cutoff)",
            "direction": "day up (close > open)"}
DEFAULT_CROSS = ("VIX", "CL")
PAGE_SIZE = 20
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


# ----------------------------------------------------------------------------- pure helpers
def _local_date(iso: str, tz: str) -> pd.Timestamp:
    ts = pd.Timestamp(iso)
    return (ts.tz_convert(tz).tz_localize(None) if ts.tzinfo else ts).normalize()


def symbol_span(entries: list[CatalogEntry], symbol: str) -> tuple[str, str] | None:
    """First and last date (YYYY-MM-DD) of the rows a build of ``symbol`` can have.

    Rows are the minute bars' trading days when the symbol has minute bars, else its
    daily dates.
    """
    mine = {e.freq: e for e in entries if e.symbol == symbol}
    e = next((mine[f] for f in INTRADAY_FREQS if f in mine), None) or mine.get("1d")
    if e is None:
        return None
    return f"{_local_date(e.start, e.tz):%Y-%m-%d}", f"{_local_date(e.end, e.tz):%Y-%m-%d}"


def symbol_hint(entries: list[CatalogEntry], symbol: str) -> str:
    freqs = sorted({e.freq for e in entries if e.symbol == symbol})
    intraday = [f for f in INTRADAY_FREQS if f in freqs]
    if intraday:
        return f"{symbol} has {intraday[0]} bars: every feature set is available."
    if freqs:
        return (f"{symbol} has daily bars only: early-session features will be absent and everything is "
                "known at the session open (regime and cross-asset from the previous day).")
    return ""


def default_symbol(entries: list[CatalogEntry]) -> str | None:
    minute = [e.symbol for e in entries if e.freq != "1d"]
    return (minute or [e.symbol for e in entries] or [None])[0]


def build_kwargs(symbol, start, end, cutoff, sets, cross) -> dict:
    """The page's controls as :func:`build_features` arguments (validation happens there)."""
    if not symbol:
        raise SpecError("choose a symbol to build features for")
    return {"symbol": symbol, "cutoff": (cutoff or "").strip() or "10:15", "sets": tuple(sets or ()),
            "cross_assets": tuple(cross or ()), "start": (start or None) and str(start)[:10],
            "end": (end or None) and str(end)[:10]}


def load_table(config: dict) -> FeatureTable:
    """The feature table of a stored configuration (from the cache after a build)."""
    return build_features(config["symbol"], cutoff=config["cutoff"], sets=config["sets"],
                          cross_assets=config["cross_assets"], start=config["start"], end=config["end"],
                          run_plugins=False)  # the web server's process: from the cache, never a plugin run


def user_set_hint(home=None) -> list:
    """What the user brought (feature tables, plugins, read from their registries without running any
    plugin), and the plain warning about plugins; [] when there is nothing."""
    from almanac.errors import AlmanacError
    from almanac.plugins import Plugins
    from almanac.tables import Tables

    try:
        tables, plugins = Tables(home).list("features"), Plugins(home).list()
    except AlmanacError:
        return []
    out = []
    if tables:
        out.append(html.Div("Feature tables: " + "; ".join(f"{t.name} ({', '.join(t.columns)}; known at {t.rule})"
                                                          for t in tables)))
    if plugins:
        out.append(html.Div("Plugins: " + "; ".join(
            f"{p.name} ({', '.join(f['name'] for f in p.features)}; sha256 {p.sha256[:12]})" for p in plugins)))
        out.append(html.Div(PLUGIN_WARNING, id="features-plugin-warning"))
    return out



def lineage_text(name: str, lin: dict) -> str:
    return (f"{name} [{lin.get('set', '')}]: {lin['definition']}\nKnown as of: {lin['known_as_of']}\n"
            f"Window: {lin['window']}\nData: {', '.join(lin['datasets'])}")


def _significant(a: np.ndarray, digits: int = 6) -> np.ndarray:
    """Values rounded to ``digits`` significant digits (display only; downloads keep all)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.floor(np.log10(np.abs(a)))
    mag = np.where(np.isfinite(mag), mag, 0)
    scale = 10.0 ** (digits - 1 - mag)
    return np.round(a * scale) / scale


def grid_rows(frame: pd.DataFrame) -> list[dict]:
    """Grid rows: ``date`` as YYYY-MM-DD and features rounded to 6 significant digits (NaN -> null)."""
    values = _significant(frame.to_numpy(dtype="float64"))
    out = pd.DataFrame(values, columns=frame.columns).astype(object)
    out = out.where(pd.notna(out), None)
    out.insert(0, "date", pd.DatetimeIndex(frame.index).strftime("%Y-%m-%d"))
    return out.to_dict("records")


def grid_columns(ft: FeatureTable) -> list[dict]:
    fmt = {"function": "params.value == null ? '—' : d3.format('.4~g')(params.value)"}
    cols = [{"field": "date", "headerName": "date", "pinned": "left", "width": 112, "sort": "asc",
             "headerTooltip": "trading day D (exchange-local date)"}]
    for name in ft.frame.columns:
        lin = ft.lineage.get(name, {})
        cols.append({"field": name, "headerName": name, "type": "rightAligned", "valueFormatter": fmt,
                     "headerTooltip": lineage_text(name, lin) if lin else name,
                     "width": max(118, 9 * len(name) + 34), "headerClass": f"almanac-set-{lin.get('set', '')}"})
    return cols


def lineage_rows(ft: FeatureTable) -> list[dict]:
    return [{"feature": name, "set": lin.get("set", ""), "known as of": lin["known_as_of"],
             "window": lin["window"], "data": ", ".join(lin["datasets"]), "definition": lin["definition"]}
            for name, lin in ((n, ft.lineage[n]) for n in ft.frame.columns)]


def outcome_series(ft: FeatureTable, outcome: str) -> pd.Series:
    """0/1 outcome per day from the session table (``ml.labelers``), NaN where unknown."""
    from ml.labelers import make_label

    return make_label(outcome, ft.sessions.reset_index()).reindex(ft.frame.index)


def summary_text(ft: FeatureTable) -> str:
    c = ft.config
    first, last = ft.frame.index[0], ft.frame.index[-1]
    cross = f" · cross-asset {', '.join(c['cross_assets'])}" if c["cross_assets"] else ""
    return (f"{c['symbol']}: {len(ft.frame):,} trading days ({first:%Y-%m-%d} → {last:%Y-%m-%d}) × "
            f"{ft.frame.shape[1]} features · cutoff {c['cutoff']} · sets {', '.join(c['sets'])}{cross}"
            )


def to_csv_bytes(ft: FeatureTable) -> bytes:
    return ft.table().to_csv(index=False, date_format="%Y-%m-%d").encode()


def to_parquet_bytes(ft: FeatureTable) -> bytes:
    buf = io.BytesIO()
    ft.table().to_parquet(buf, index=False)
    return buf.getvalue()


def file_stem(config: dict) -> str:
    return f"features_{config['symbol']}_{config['cutoff'].replace(':', '')}"


def _graph(graph_id: str, fig) -> dcc.Graph:
    return dcc.Graph(id=graph_id, figure=fig, config=GRAPH_CONFIG, className="almanac-graph")


# ----------------------------------------------------------------------------- layout
def _controls(entries: list[CatalogEntry]) -> list:
    symbols = sorted({e.symbol for e in entries})
    sym = default_symbol(entries)
    span = symbol_span(entries, sym) if sym else None
    cross_default = [s for s in DEFAULT_CROSS if s in symbols and s != sym]
    return [
        dbc.Row([
            dbc.Col([dbc.Label("Symbol", html_for="features-symbol"),
                     dcc.Dropdown(id="features-symbol", options=symbols, value=sym, clearable=False)], md=2),
            dbc.Col([dbc.Label("Days"),
                     dcc.DatePickerRange(id="features-range", display_format="YYYY-MM-DD", first_day_of_week=1,
                                         minimum_nights=0, start_date=span[0] if span else None,
                                         end_date=span[1] if span else None,
                                         min_date_allowed=span[0] if span else None,
                                         max_date_allowed=span[1] if span else None)], md="auto"),
            dbc.Col([dbc.Label("Cutoff (local)", html_for="features-cutoff"),
                     dbc.Input(id="features-cutoff", value="10:15", type="text", placeholder="HH:MM",
                               debounce=True)], md=1, style={"minWidth": "7rem"}),
            dbc.Col([dbc.Label("Cross-asset symbols", html_for="features-cross"),
                     dcc.Dropdown(id="features-cross", multi=True, value=cross_default,
                                  options=[s for s in symbols if s != sym], placeholder="none")], md=3),
        ], className="g-3 align-items-end"),
        dbc.Row([
            dbc.Col([dbc.Label("Feature sets"),
                     dbc.Checklist(id="features-sets", value=list(FEATURE_SETS), inline=True,
                                   options=[{"label": SET_LABELS[s], "value": s} for s in [*FEATURE_SETS, *SEQUENCE_SETS, *user_sets()]])], md=9),
        ], className="g-3 mt-1"),
        html.Div(user_set_hint(), id="features-user-sets", className="almanac-hint mt-1"),
        html.Div(symbol_hint(entries, sym) if sym else "", id="features-symbol-hint", className="almanac-hint mt-1"),
        html.Div([
            dbc.Button("Build features", id="features-build", color="primary", n_clicks=0),
            dbc.Button("Cancel", id="features-cancel", color="secondary", outline=True, n_clicks=0,
                       className="ms-2", style={"display": "none"}),
            html.Div(dbc.Progress(id="features-progress", value=0, label="", striped=True, animated=True,
                                  style={"height": "1.4rem"}),
                     id="features-progress-wrap", className="ms-3 flex-grow-1", style={"display": "none"}),
        ], className="d-flex align-items-center mt-3"),
        html.Div(id="features-build-msg", className="mt-3"),
    ]


def _explore_controls() -> dbc.Row:
    return dbc.Row([
        dbc.Col([dbc.Label("Feature", html_for="features-pick"),
                 dcc.Dropdown(id="features-pick", options=[], value=None, clearable=False,
                              placeholder="build features first")], md=4),
        dbc.Col([dbc.Label("Outcome"),
                 dbc.RadioItems(id="features-outcome", value="rest_of_day", inline=True,
                                options=[{"label": v, "value": k} for k, v in OUTCOMES.items()])], md=6),
        dbc.Col([dbc.Label("Bins", html_for="features-bins"),
                 dbc.Select(id="features-bins", value="10",
                            options=[{"label": f"{q} quantiles", "value": str(q)} for q in (5, 10, 20)])], md=2),
    ], className="g-3 align-items-end")


def layout(**_query):
    entries, problem = read_catalog(log)
    waiting = empty_state("No features yet", "Choose a symbol and press Build features.")

    def later(what: str) -> html.Div:
        return html.Div(f"{what} appears here after a build.", className="almanac-hint")

    return html.Div([
        page_token("features-token"),
        dcc.Store(id="features-config"),
        dcc.Download(id="features-download"),
        page_header("Features", "One row per trading day, every value known at the cutoff of its day (or at the "
                    "open, for daily data). Hover a column header for its lineage.", page_id="features"),
        problem,
        section("Build", *_controls(entries), section_id="features-build-section"),
        html.Div(id="features-summary", className="mt-3"),
        section("Feature table",
                html.Div([dbc.Button("Download CSV", id="features-dl-csv", color="primary", outline=True,
                                     size="sm", n_clicks=0, disabled=True),
                          dbc.Button("Download Parquet", id="features-dl-parquet", color="primary", outline=True,
                                     size="sm", n_clicks=0, disabled=True, className="ms-2")],
                         className="mb-2"),
                html.Div(waiting, id="features-table"),
                subtitle="Sortable and paged; values rounded for display (downloads keep full precision).",
                section_id="features-table-section", class_name="mt-3"),
        section("Lineage", html.Div(later("Each feature's lineage"), id="features-lineage"),
                subtitle="Which data each feature reads, over which window, and from when it is known.",
                section_id="features-lineage-section", class_name="mt-3"),
        section("Explore a feature", _explore_controls(),
                dbc.Row([dbc.Col(dcc.Loading(html.Div(later("A feature's distribution"), id="features-hist"),
                                             delay_show=300), lg=6),
                         dbc.Col(dcc.Loading(html.Div(id="features-hits"), delay_show=300), lg=6)],
                        className="g-3 mt-1"),
                dcc.Loading(html.Div(id="features-time"), delay_show=300),
                section_id="features-explore-section", class_name="mt-3"),
        section("Similar days", similar_controls("features"),
                dcc.Loading(html.Div(later("The similar days"), id="features-similar", className="mt-2"),
                            delay_show=300),
                subtitle="The most similar earlier days in the standardized feature space (scaler fitted on the "
                         "days before the chosen one only), and how the rest of their day went.",
                section_id="features-similar-section", class_name="mt-3"),
        dbc.Row([
            dbc.Col(section("Correlation",
                            dcc.Loading(html.Div(later("The correlation heat map"), id="features-corr"),
                                        delay_show=300),
                            section_id="features-corr-section"), lg=7),
            dbc.Col(section("Quick importance", dcc.Loading(html.Div(later("The ranking"), id="features-importance"),
                                                    delay_show=300),
                            subtitle=f"Mutual information with the chosen outcome, estimated on the earlier "
                                     f"{TRAIN_FRACTION:.0%} of days only, so the later days stay unseen.",
                            section_id="features-importance-section"), lg=5),
        ], className="g-3 mt-1"),
    ])


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output("features-range", "min_date_allowed"), Output("features-range", "max_date_allowed"),
    Output("features-range", "start_date"), Output("features-range", "end_date"),
    Output("features-cross", "options"), Output("features-cross", "value"),
    Output("features-symbol-hint", "children"),
    Input("features-symbol", "value"), State("features-cross", "value"),
    prevent_initial_call=True,
)
def symbol_changed(symbol, cross):
    """Bound the dates to the symbol's data and offer the other symbols as cross assets."""
    entries = Store().catalog()
    span = symbol_span(entries, symbol)
    if span is None:
        return (no_update,) * 7
    others = sorted({e.symbol for e in entries} - {symbol})
    return (span[0], span[1], span[0], span[1], others, [c for c in (cross or []) if c != symbol],
            symbol_hint(entries, symbol))


@callback(
    Output("features-config", "data"), Output("features-build-msg", "children"),
    Input("features-build", "n_clicks"),
    State("features-symbol", "value"), State("features-range", "start_date"), State("features-range", "end_date"),
    State("features-cutoff", "value"), State("features-sets", "value"), State("features-cross", "value"),
    State("features-token", "data"),
    background=True,
    progress=[Output("features-progress", "value"), Output("features-progress", "label")],
    running=[(Output("features-build", "disabled"), True, False),
             (Output("features-cancel", "style"), {"display": "inline-block"}, {"display": "none"}),
             (Output("features-progress-wrap", "style"), {"display": "block"}, {"display": "none"})],
    cancel=[Input("features-cancel", "n_clicks")],
    prevent_initial_call=True,
)
def run_build(set_progress, n_clicks, symbol, start, end, cutoff, sets, cross, token):
    """Build the features (a background job; ``token`` keys it to this page load)."""
    def progress(fraction: float, stage: str) -> None:
        set_progress((int(round(100 * fraction)), stage))

    try:
        ft = build_features(**build_kwargs(symbol, start, end, cutoff, sets, cross), progress=progress)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return no_update, failure_alert(exc, log, f"building features for {symbol}")
    return {"config": ft.config, "key": ft.cache_key}, None


@callback(
    Output("features-summary", "children"), Output("features-table", "children"),
    Output("features-lineage", "children"), Output("features-corr", "children"),
    Output("features-pick", "options"), Output("features-pick", "value"),
    Output("features-dl-csv", "disabled"), Output("features-dl-parquet", "disabled"),
    Input("features-config", "data"), State("features-pick", "value"),
    prevent_initial_call=True,
)
def show_results(data, picked):
    """Summary and notes, the grid, the lineage table and the correlation heat map."""
    if not data:
        return (no_update,) * 8
    try:
        ft = load_table(data["config"])
        grid = dag.AgGrid(
            id="features-grid", rowData=grid_rows(ft.frame), columnDefs=grid_columns(ft),
            defaultColDef={"sortable": True, "resizable": True, "filter": False},
            dashGridOptions={"pagination": True, "paginationPageSize": PAGE_SIZE,
                             "paginationPageSizeSelector": [PAGE_SIZE, 50, 100], "domLayout": "autoHeight",
                             "tooltipShowDelay": 200, "suppressFieldDotNotation": True,
                             "enableCellTextSelection": True},
            className="almanac-grid", style={"width": "100%"})
        lineage = dag.AgGrid(
            id="features-lineage-grid", rowData=lineage_rows(ft),
            columnDefs=[{"field": "feature", "pinned": "left", "width": 165, "cellClass": "almanac-cell-symbol"},
                        {"field": "set", "width": 115},
                        *({"field": f, "headerName": f, "width": w, "wrapText": True, "autoHeight": True,
                           "cellClass": "almanac-cell-wrap"}
                          for f, w in (("known as of", 165), ("window", 215), ("data", 175))),
                        {"field": "definition", "flex": 1, "minWidth": 300, "wrapText": True, "autoHeight": True,
                         "cellClass": "almanac-cell-wrap"}],
            defaultColDef={"sortable": True, "resizable": True},
            dashGridOptions={"domLayout": "autoHeight", "suppressFieldDotNotation": True},
            className="almanac-grid", style={"width": "100%"})
        corr = _graph("features-corr-graph", correlation_figure(rank_correlation(ft.frame)))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, "showing the features"), *(no_update,) * 7
    notes = ([info_alert(html.Ul([html.Li(n) for n in ft.notes], className="mb-0"), title="Notes")]
             if ft.notes else [])
    summary = [html.Div(summary_text(ft), id="features-summary-text", className="almanac-hint mb-2"), *notes]
    names = list(ft.frame.columns)
    pick = picked if picked in names else names[0]
    return summary, grid, lineage, corr, names, pick, False, False


@callback(
    Output("features-similar-day", "min_date_allowed"), Output("features-similar-day", "max_date_allowed"),
    Output("features-similar-day", "date"), Output("features-similar-day", "initial_visible_month"),
    Output("features-similar", "children"),
    Input("features-config", "data"),
    prevent_initial_call=True,
)
def similar_days_of_table(data):
    """The picker bounded by the built table's days, the latest chosen; the panel waits for "Find"."""
    if not data:
        return no_update, no_update, no_update, no_update, no_update
    try:
        days = [f"{d:%Y-%m-%d}" for d in load_table(data["config"]).frame.index]
    except Exception:  # noqa: BLE001 - show_results says what went wrong
        days = []
    return (*day_range(days), html.Div(PROMPT, className="almanac-hint"))


@callback(
    Output("features-similar", "children", allow_duplicate=True),
    Input("features-similar-go", "n_clicks"),
    State("features-similar-day", "date"), State("features-similar-k", "value"), State("features-config", "data"),
    prevent_initial_call=True,
)
def similar_days(n_clicks, day, k, data):
    if not data or not day or not n_clicks:
        return no_update
    from ml.similar import similar_in_table

    try:
        table = load_table(data["config"])
        day, note = snap(str(day)[:10], [f"{d:%Y-%m-%d}" for d in table.frame.index])
        return similar_view(*similar_in_table(table, day, k if k is not None else 0), note=note,
                            graph_id="features-similar-graph")
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, "finding similar days")


@callback(
    Output("features-hist", "children"), Output("features-hits", "children"), Output("features-time", "children"),
    Input("features-pick", "value"), Input("features-outcome", "value"), Input("features-bins", "value"),
    State("features-config", "data"),
    prevent_initial_call=True,
)
def explore(feature, outcome, bins, data):
    """Distribution, hit rate per quantile bin and history of one feature."""
    if not data or not feature:
        return (no_update,) * 3
    try:
        ft = load_table(data["config"])
        if feature not in ft.frame:
            return (no_update,) * 3
        x = ft.frame[feature]
        y = outcome_series(ft, outcome)
        table = binned_hit_rates(x, y, int(bins or 10))
        base = float(y[x.notna()].mean()) if y[x.notna()].notna().any() else None
        return (_graph("features-hist-graph", histogram_figure(x, feature)),
                _graph("features-hits-graph", hit_rate_figure(table, feature, OUTCOMES[outcome].split(" (")[0], base)),
                _graph("features-time-graph", timeseries_figure(x, feature)))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"exploring {feature}"), no_update, no_update


@callback(
    Output("features-importance", "children"),
    Input("features-config", "data"), Input("features-outcome", "value"),
    prevent_initial_call=True,
)
def importance(data, outcome):
    """Mutual information of every feature with the outcome on the earlier days only."""
    if not data:
        return no_update
    try:
        ft = load_table(data["config"])
        mi, info = mutual_information(ft.frame, outcome_series(ft, outcome))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, "estimating feature importance")
    if info["start"] is None:
        return _graph("features-importance-graph", empty_figure("not enough days with an outcome"))
    title = f"{OUTCOMES[outcome].split(' (')[0]}: days {info['start']:%Y-%m-%d} → {info['end']:%Y-%m-%d}"
    return [_graph("features-importance-graph", importance_figure(mi, title=title)),
            html.Div(f"Estimated on the first {info['days']:,} days that have an outcome "
                     f"({info['fraction']:.0%}); the later days were not looked at. A screen, not a model.",
                     id="features-importance-note", className="almanac-hint")]


@callback(
    Output("features-download", "data"),
    Input("features-dl-csv", "n_clicks"), Input("features-dl-parquet", "n_clicks"),
    State("features-config", "data"),
    prevent_initial_call=True,
)
def download(_csv, _parquet, data):
    """The current feature table as a CSV or Parquet file (``date`` + feature columns)."""
    if not data:
        return no_update
    ft = load_table(data["config"])
    stem = file_stem(ft.config)
    if dash.ctx.triggered_id == "features-dl-parquet":
        return dcc.send_bytes(to_parquet_bytes(ft), f"{stem}.parquet")
    return dcc.send_bytes(to_csv_bytes(ft), f"{stem}.csv")
