"""``/data`` — the catalog, a bar chart of any dataset, and the importer.

* Catalog: one grid row per dataset (symbol, frequency, range, rows, kind, source);
  sample datasets are flagged ``sample`` and say where they come from.
* Chart: pick a dataset (or click its row). Minute data shows one trading day (date
  picker limited to the dataset's range; default the last day), daily data a date range
  (default the last ~6 months). Only that window and the needed columns are read
  (``Store.read_bars`` with start, end, columns). Each render returns a *new*
  ``dcc.Graph`` into an empty container (docs/design.md §11).
* Import: drop a CSV (comma, semicolon or tab; plain, .gz or .zip) or Parquet file,
  check the symbol (default: from the file name), optionally choose the bar size, the
  exchange calendar, the time zone, end-stamped bars or allow prices <= 0 (spreads), press
  Import. The file-layout controls (delimiter, decimal mark, epoch unit, date order) open
  by themselves when a refusal names one of their flags. An upload over
  ``ALMANAC_MAX_UPLOAD_MB`` is refused from its encoded length, before it is decoded.
  The import runs as a background job; success shows the stored range and any warnings, a refusal shows the
  importer's one-line message, and the store is unchanged.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html, no_update

from almanac.errors import DataError
from almanac.importer import Layout, check_upload_size, import_bytes
from almanac.sessions import session_of
from almanac.settings import get_limits
from almanac.store import CatalogEntry, Store
from pages._components import (
    empty_state, failure_alert, info_alert, page_header, page_token, read_catalog, section,
    success_alert, warning_alert,
)
from viz.bars import bars_figure

dash.register_page(__name__, path="/data", name="Data", order=1, title="Data · Almanac ML Lab",
                   description="See the bars on disk, chart any dataset, import CSV or Parquet files.")

log = logging.getLogger(__name__)
FREQ_NAMES = {"1min": "1-minute", "5min": "5-minute", "15min": "15-minute", "30min": "30-minute", "1h": "1-hour",
              "1d": "daily"}
#: calendars offered in the import form (any exchange_calendars name may be typed)
COMMON_CALENDARS = ("XNYS", "XNAS", "CMES", "XCBF", "IEPA", "XLON", "XETR", "XPAR", "XAMS", "XSWX", "XTSE",
                    "XTKS", "XHKG", "XASX", "XSES", "XBOM")
#: the import's flags that the layout controls set: a refusal naming one opens them
LAYOUT_FLAGS = ("--delimiter", "--decimal", "--epoch", "--date-order", "--stamp", "--tz", "--calendar")
DAILY_WINDOW_DAYS = 182  # default daily chart: the last ~6 months
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


# ----------------------------------------------------------------------------- pure helpers
def dataset_key(symbol: str, freq: str) -> str:
    """``"ES|1min"``: how a dataset is named in the dropdown and the grid's row ids."""
    return f"{symbol}|{freq}"


def split_key(key: str) -> tuple[str, str]:
    symbol, _, freq = str(key).partition("|")
    return symbol, freq


def local_date(iso: str, tz: str) -> pd.Timestamp:
    """The exchange-local calendar date (naive midnight) of a catalog start/end string."""
    ts = pd.Timestamp(iso)
    if ts.tzinfo is not None:
        ts = ts.tz_convert(tz).tz_localize(None)
    return ts.normalize()


def catalog_rows(entries: list[CatalogEntry]) -> list[dict]:
    """The grid's rows: one per dataset, with dates in the exchange's local calendar."""
    return [{
        "dataset": dataset_key(e.symbol, e.freq),
        "symbol": e.symbol,
        "freq": FREQ_NAMES.get(e.freq, e.freq),
        "calendar": session_of(e).calendar or "none",
        "first": f"{local_date(e.start, e.tz):%Y-%m-%d}",
        "last": f"{local_date(e.end, e.tz):%Y-%m-%d}",
        "rows": e.rows,
        "kind": "sample" if e.sample else "imported",
        "source": e.source,
        "columns": ", ".join(c for c in e.columns if c not in ("timestamp", "date")),
        "bytes": e.bytes,
        "imported_at": e.imported_at.replace("T", " ")[:16],
    } for e in entries]


def dataset_options(entries: list[CatalogEntry]) -> list[dict]:
    return [{"label": f"{e.symbol} · {FREQ_NAMES.get(e.freq, e.freq)}" + (" · sample" if e.sample else ""),
             "value": dataset_key(e.symbol, e.freq)} for e in entries]


def default_dataset(entries: list[CatalogEntry]) -> str | None:
    """The dataset charted on arrival: the first daily OHLC one, else the first with OHLC, else the first."""
    def ohlc(e):
        return {"open", "high", "low"} <= set(e.columns)

    for pick in (lambda e: ohlc(e) and e.freq == "1d", ohlc, lambda e: True):
        for e in entries:
            if pick(e):
                return dataset_key(e.symbol, e.freq)
    return None


def default_window(entry: CatalogEntry) -> dict:
    """Date bounds and the default window of a dataset's chart (ISO date strings).

    Minute data: ``day`` = the last day with bars. Daily data: ``start`` .. ``end`` =
    the last :data:`DAILY_WINDOW_DAYS` calendar days (clipped to the first date).
    """
    lo, hi = local_date(entry.start, entry.tz), local_date(entry.end, entry.tz)
    out = {"min": f"{lo:%Y-%m-%d}", "max": f"{hi:%Y-%m-%d}"}
    if entry.freq != "1d":
        out["day"] = out["max"]
    else:
        out["start"] = f"{max(lo, hi - pd.Timedelta(days=DAILY_WINDOW_DAYS)):%Y-%m-%d}"
        out["end"] = out["max"]
    return out


def symbol_from_filename(filename: str | None) -> str:
    """Default symbol for an upload: the file name's leading letters and digits, upper-cased.

    ``"ES_1min_2024.csv"`` → ``"ES"``, ``"vix.parquet"`` → ``"VIX"``; ``""`` if none.
    """
    stem = re.sub(r"\.[^.]*$", "", str(filename or ""))
    m = re.match(r"[A-Za-z0-9]+", stem)
    return m.group(0).upper() if m else ""


def upload_size(contents: str | None) -> int:
    """The decoded size of a ``dcc.Upload`` data URL, from its length (nothing is decoded or copied)."""
    if not contents:
        return 0
    comma = contents.find(",")
    n = len(contents) - comma - 1
    return n * 3 // 4 - (contents.endswith("==") + contents.endswith("="))


def decode_upload(contents: str, filename: str) -> bytes:
    """The bytes of a ``dcc.Upload`` data URL (``data:<type>;base64,<payload>``).

    An upload over the ``upload_bytes`` limit is refused from its length, before decoding."""
    if contents.find(",") < 0:
        raise DataError(f"{filename}: the upload arrived damaged; choose the file again")
    check_upload_size(upload_size(contents), filename)
    try:
        return base64.b64decode(contents[contents.index(",") + 1:], validate=True)
    except (ValueError, binascii.Error):
        raise DataError(f"{filename}: the upload arrived damaged; choose the file again") from None


# ----------------------------------------------------------------------------- layout
def _grid(entries: list[CatalogEntry]) -> dag.AgGrid:
    columns = [
        {"field": "symbol", "headerName": "Symbol", "width": 100, "pinned": "left",
         "cellClass": "almanac-cell-symbol"},
        {"field": "freq", "headerName": "Bars", "width": 95},
        {"field": "calendar", "headerName": "Calendar", "width": 100,
         "headerTooltip": "exchange calendar: holidays and early closes ('none': every weekday with data)"},
        {"field": "first", "headerName": "First", "width": 108},
        {"field": "last", "headerName": "Last", "width": 108},
        {"field": "rows", "headerName": "Rows", "width": 100, "type": "rightAligned",
         "valueFormatter": {"function": "d3.format(',')(params.value)"}},
        {"field": "kind", "headerName": "Kind", "width": 95,
         "cellClassRules": {"almanac-kind-sample": "params.value === 'sample'",
                            "almanac-kind-imported": "params.value === 'imported'"}},
        {"field": "source", "headerName": "Source", "flex": 1, "minWidth": 320, "tooltipField": "source",
         "wrapText": True, "autoHeight": True, "cellClass": "almanac-cell-wrap"},
        {"field": "columns", "headerName": "Columns", "width": 150, "tooltipField": "columns"},
        {"field": "bytes", "headerName": "Size", "width": 90, "type": "rightAligned",
         "valueFormatter": {"function": "params.value >= 1e6 ? d3.format('.1f')(params.value / 1e6) + ' MB'"
                                        " : d3.format('.1f')(params.value / 1e3) + ' kB'"}},
        {"field": "imported_at", "headerName": "Written (UTC)", "width": 140},
    ]
    return dag.AgGrid(
        id="data-catalog", rowData=catalog_rows(entries), columnDefs=columns,
        getRowId="params.data.dataset",
        defaultColDef={"sortable": True, "resizable": True, "filter": False},
        dashGridOptions={"domLayout": "autoHeight", "tooltipShowDelay": 300,
                         "rowSelection": {"mode": "singleRow", "checkboxes": False, "enableClickSelection": True},
                         "localeText": {"noRowsToShow": "No datasets yet: import a file on the right."}},
        className="almanac-grid", style={"width": "100%"},
    )


def _import_form() -> list:
    return [
        dcc.Upload(id="data-upload", multiple=False, accept=".csv,.txt,.tsv,.gz,.zip,.parquet,.pq,.parq",
                   className="almanac-upload",
                   children=html.Div([html.Div("Drop a CSV or Parquet file here", className="fw-bold"),
                                      html.Div("comma, semicolon or tab; .gz and .zip too", className="almanac-hint"),
                                      html.Div(["or ", html.Span("choose a file", className="almanac-link")])])),
        dcc.Store(id="data-upload-limit", data=get_limits().upload_bytes),
        dcc.Store(id="data-upload-ok"),    # the file, only when within the limit (assets/upload.js)
        dcc.Store(id="data-upload-size"),  # its size in bytes, measured in the browser
        html.Div("No file chosen.", id="data-upload-status", className="almanac-upload-status"),
        dbc.Row([
            dbc.Col([dbc.Label("Symbol", html_for="data-symbol"),
                     dbc.Input(id="data-symbol", placeholder="e.g. ES", type="text")], xs=3),
            dbc.Col([dbc.Label("Bars", html_for="data-freq"),
                     dbc.Select(id="data-freq", value="auto",
                                options=[{"label": "detect", "value": "auto"}]
                                + [{"label": name, "value": f} for f, name in FREQ_NAMES.items()])], xs=3),
            dbc.Col([dbc.Label("Calendar", html_for="data-calendar"),
                     dbc.Input(id="data-calendar", placeholder="default", type="text", list="data-calendars"),
                     html.Datalist(id="data-calendars", children=[html.Option(value=c) for c in COMMON_CALENDARS])],
                    xs=6),
        ], className="g-2 mt-1"),
        dbc.Row([
            dbc.Col([dbc.Label("Time zone", html_for="data-tz"),
                     dbc.Input(id="data-tz", placeholder="the calendar's zone", type="text")], xs=6),
            dbc.Col([dbc.Label("Bars stamped at", html_for="data-stamp"),
                     dbc.Select(id="data-stamp", value="start",
                                options=[{"label": "their start", "value": "start"},
                                         {"label": "their end", "value": "end"}])], xs=6),
        ], className="g-2 mt-1"),
        dbc.Button("File layout…", id="data-layout-toggle", color="link", size="sm", n_clicks=0,
                   className="px-0 mt-1"),
        dbc.Collapse(dbc.Row([
            dbc.Col([dbc.Label("Delimiter", html_for="data-delimiter"),
                     dbc.Select(id="data-delimiter", value="auto",
                                options=[{"label": "detect", "value": "auto"}, {"label": "comma", "value": ","},
                                         {"label": "semicolon", "value": ";"}, {"label": "tab", "value": "tab"}])],
                    xs=6),
            dbc.Col([dbc.Label("Decimal mark", html_for="data-decimal"),
                     dbc.Select(id="data-decimal", value="auto",
                                options=[{"label": "point (default)", "value": "auto"},
                                         {"label": "point, comma = thousands", "value": "."},
                                         {"label": "comma", "value": ","}])], xs=6),
            dbc.Col([dbc.Label("Epoch times", html_for="data-epoch"),
                     dbc.Select(id="data-epoch", value="auto",
                                options=[{"label": "detect", "value": "auto"}, {"label": "seconds", "value": "s"},
                                         {"label": "milliseconds", "value": "ms"}])], xs=6),
            dbc.Col([dbc.Label("Date order", html_for="data-date-order"),
                     dbc.Select(id="data-date-order", value="auto",
                                options=[{"label": "detect", "value": "auto"},
                                         {"label": "day first", "value": "dmy"},
                                         {"label": "month first", "value": "mdy"}])], xs=6),
        ], className="g-2"), id="data-layout", is_open=False),
        dbc.Switch(id="data-allow-nonpositive", value=False, className="mt-2",
                   label="Allow zero and negative prices (a spread)"),
        html.Div("Bars: 1, 5, 15, 30-minute, 1-hour or daily; leave on detect unless the spacing is irregular. "
                 "Calendar: an exchange_calendars name (XNYS for the sample symbols; none for others: every "
                 "weekday with data). Time zone: only for times without a UTC offset; default the calendar's.",
                 className="almanac-hint mt-1"),
        html.Div([
            dbc.Button("Import", id="data-import-btn", color="primary", n_clicks=0, className="mt-3"),
            html.Span("Importing a symbol again replaces its dataset.", className="almanac-hint ms-3"),
        ], className="d-flex align-items-center"),
        html.Div(id="data-import-result", className="mt-3"),
    ]


def _window_controls(entries: list[CatalogEntry]) -> dbc.Row:
    return dbc.Row([
        dbc.Col([dbc.Label("Dataset", html_for="data-dataset"),
                 dcc.Dropdown(id="data-dataset", clearable=False, searchable=True,
                              options=dataset_options(entries), value=default_dataset(entries),
                              placeholder="Choose a dataset")], md=4),
        dbc.Col(html.Div([dbc.Label("Trading day"),
                          dcc.DatePickerSingle(id="data-day", display_format="YYYY-MM-DD",
                                               first_day_of_week=1)],
                         id="data-day-wrap", style={"display": "none"}), md="auto"),
        dbc.Col(html.Div([dbc.Label("Date range"),
                          dcc.DatePickerRange(id="data-range", display_format="YYYY-MM-DD",
                                              first_day_of_week=1, minimum_nights=0)],
                         id="data-range-wrap", style={"display": "none"}), md="auto"),
    ], className="g-3 align-items-end mb-2")


def table_rows(home=None) -> list[dict]:
    """One row per user table (almanac.tables): feature tables with their known-at rule, dataset tables
    with their time and group columns; sample tables flagged."""
    from almanac.tables import Tables

    rows = []
    for e in Tables(home).list():
        how = f"known at {e.rule}" if e.kind == "features" else f"time {e.key}" + (f", group {e.group}" if e.group else "")
        rows.append({"table": e.name, "kind": "feature table" if e.kind == "features" else "dataset",
                     "rows": f"{e.rows:,}", "columns": ", ".join(e.columns), "rule": how,
                     "source": ("sample: " if e.sample else "") + e.source})
    return rows


def tables_section():
    """The user's tables (read-only here; imported from the command line)."""
    try:
        rows = table_rows()
    except DataError as exc:
        return section("Your tables", failure_alert(exc, log, "reading the table catalog"), class_name="mt-3")
    body = (dbc.Table.from_dataframe(pd.DataFrame(rows), size="sm", striped=True, className="almanac-table mb-1",
                                     id="data-tables-table") if rows else
            html.Div("No tables yet.", className="almanac-hint"))
    return section("Your tables", body,
                   html.Div(["Feature tables join a build by their known-at time: ",
                             html.Code("python -m almanac data import-features FILE --name NAME --known-at 16:00"),
                             "; any table becomes a dataset for experiments: ",
                             html.Code("python -m almanac data import-table FILE --name NAME --time COLUMN"),
                             ". The option-delta sample table is written the first time an experiment uses it."],
                            className="almanac-hint"),
                   section_id="data-tables-section", class_name="mt-3")


def layout(**_query):
    entries, problem = read_catalog(log)
    return html.Div([
        page_token("data-token"),
        dcc.Store(id="data-catalog-rev"),
        page_header("Market data",
                    "The bars on disk: click a dataset to chart it, or import your own CSV or Parquet file.",
                    page_id="data"),
        problem,
        section("Catalog", _grid(entries),
                subtitle="Sample datasets are generated or shipped with the lab; the source column says which. "
                         "Click a row to chart it.", section_id="data-catalog-section"),
        tables_section(),
        dbc.Row([
            dbc.Col(section("Chart", _window_controls(entries),
                            dcc.Loading(html.Div(id="data-chart", className="almanac-chart"), type="default",
                                        delay_show=300),
                            section_id="data-chart-section"), lg=8),
            dbc.Col(section("Import bars", *_import_form(), section_id="data-import-section"), lg=4),
        ], className="g-3 mt-1"),
    ])


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output("data-day", "min_date_allowed"), Output("data-day", "max_date_allowed"),
    Output("data-day", "date"), Output("data-day", "initial_visible_month"),
    Output("data-range", "min_date_allowed"), Output("data-range", "max_date_allowed"),
    Output("data-range", "start_date"), Output("data-range", "end_date"),
    Output("data-range", "initial_visible_month"),
    Output("data-day-wrap", "style"), Output("data-range-wrap", "style"),
    Input("data-dataset", "value"),
)
def window_controls(dataset):
    """Bound the date pickers to the chosen dataset and set its default window."""
    hidden, shown = {"display": "none"}, {"display": "block"}
    if not dataset:
        return (no_update,) * 9 + (hidden, hidden)
    try:
        w = default_window(Store().entry(*split_key(dataset)))
    except Exception as exc:  # noqa: BLE001 - the chart callback shows the alert
        log.info("no window for %s: %s", dataset, exc)
        return (no_update,) * 9 + (hidden, hidden)
    if "day" in w:
        return (w["min"], w["max"], w["day"], w["day"]) + (no_update,) * 5 + (shown, hidden)
    return (no_update,) * 4 + (w["min"], w["max"], w["start"], w["end"], w["end"], hidden, shown)


@callback(
    Output("data-chart", "children"),
    Input("data-dataset", "value"), Input("data-day", "date"),
    Input("data-range", "start_date"), Input("data-range", "end_date"),
)
def render_chart(dataset, day, start, end):
    """Read the chosen window of the dataset and return a new graph (or an alert)."""
    if not dataset:
        return empty_state("Nothing to chart", "Choose a dataset above, or import one.")
    symbol, freq = split_key(dataset)
    try:
        entry = Store().entry(symbol, freq)
        lo, hi = (day, day) if freq != "1d" else (start, end)
        if lo and hi and pd.Timestamp(lo) > pd.Timestamp(hi):
            return info_alert(f"the start {lo[:10]} is after the end {hi[:10]}: pick an earlier start.",
                              title="Empty range")
        columns = [c for c in BAR_COLUMNS if c in entry.columns]
        bars = Store().read_bars(symbol, freq, start=lo, end=hi, columns=columns)
        if bars.empty:
            when = f"{pd.Timestamp(lo):%a %Y-%m-%d}" if freq != "1d" else f"{lo[:10]} to {hi[:10]}"
            w = default_window(entry)
            return info_alert(f"{symbol} has no {FREQ_NAMES.get(freq, freq)} bars on {when} (market closed?); "
                              f"pick a trading day between {w['min']} and {w['max']}.", title="No bars")
        fig = bars_figure(bars, symbol, freq, tz=entry.tz, sample=entry.sample,
                          session=(entry.session_open, entry.session_close))
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"charting {symbol} {freq}")
    return dcc.Graph(id="data-graph", figure=fig, className="almanac-graph",
                     config={"displaylogo": False, "responsive": True,
                             "modeBarButtonsToRemove": ["lasso2d", "select2d"],
                             "toImageButtonOptions": {"filename": f"{symbol}_{freq}", "scale": 2}})


clientside_callback(
    ClientsideFunction(namespace="almanac", function_name="uploadGate"),
    Output("data-upload-ok", "data"), Output("data-upload-size", "data"),
    Input("data-upload", "contents"), State("data-upload-limit", "data"),
    prevent_initial_call=True,
)


@callback(
    Output("data-upload-status", "children"), Output("data-symbol", "value"),
    Input("data-upload-size", "data"), State("data-upload", "filename"),
    prevent_initial_call=True,
)
def describe_upload(size, filename):
    """Name the chosen file and suggest a symbol from its name. Only the size the browser
    measured reaches the server here, never the file (see assets/upload.js)."""
    if not filename or size is None:
        return "No file chosen.", no_update
    size = int(size)
    try:
        check_upload_size(size, filename)
    except DataError as exc:
        return html.Span(exc.message, className="text-danger"), symbol_from_filename(filename)
    return [html.Strong(filename), f" · {size / 1024:,.1f} KB · ready to import"], symbol_from_filename(filename)


@callback(
    Output("data-import-result", "children"), Output("data-catalog-rev", "data"),
    Input("data-import-btn", "n_clicks"),
    State("data-upload-ok", "data"), State("data-upload", "filename"), State("data-symbol", "value"),
    State("data-freq", "value"), State("data-tz", "value"), State("data-token", "data"),
    State("data-allow-nonpositive", "value"), State("data-upload-size", "data"),
    State("data-calendar", "value"), State("data-stamp", "value"), State("data-delimiter", "value"),
    State("data-decimal", "value"), State("data-epoch", "value"), State("data-date-order", "value"),
    background=True,
    running=[(Output("data-import-btn", "disabled"), True, False),
             (Output("data-import-btn", "children"), "Importing…", "Import")],
    prevent_initial_call=True,
)
def run_import(n_clicks, contents, filename, symbol, freq, tz, token, allow_nonpositive=False, size=None,
               calendar=None, stamp=None, delimiter=None, decimal=None, epoch=None, date_order=None):
    """Validate and store the uploaded file (a background job; ``token`` keys it to this page load).
    The layout controls give the importer's flags ("auto" = detect).

    ``contents`` is the file only when the browser found it within the upload limit;
    ``size`` is what the browser measured, so a refused file is named without being sent."""
    if filename and not contents and size:
        try:
            check_upload_size(int(size), filename)
        except DataError as exc:
            return failure_alert(exc, log, f"importing {filename}"), no_update
    if not contents or not filename:
        return warning_alert(["choose a CSV or Parquet file first"], title="Nothing to import"), no_update
    symbol = (symbol or "").strip() or symbol_from_filename(filename)

    def pick(value):
        return None if value in (None, "", "auto") else value

    try:
        layout_ = Layout(delimiter="\t" if delimiter == "tab" else pick(delimiter), decimal=pick(decimal),
                         epoch=pick(epoch), date_order=pick(date_order))
        result = import_bytes(decode_upload(contents, filename), filename, symbol,
                              freq=pick(freq), tz=(tz or "").strip() or None,
                              allow_nonpositive=bool(allow_nonpositive),
                              calendar=(calendar or "").strip() or None, stamp=pick(stamp) or "start",
                              layout=layout_)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        alert = failure_alert(exc, log, f"importing {filename}")
        if isinstance(exc, DataError) and any(f in exc.message for f in LAYOUT_FLAGS):
            alert = [alert, html.Div("Set it with the controls above: the file layout options are open.",
                                     className="almanac-hint", id="data-layout-hint")]
        return alert, no_update
    e = result.entry
    cal = session_of(e).calendar
    done = success_alert([f"stored {e.rows:,} {FREQ_NAMES.get(e.freq, e.freq)} bars of ",
                          html.Strong(e.symbol), f" from {local_date(e.start, e.tz):%Y-%m-%d} to "
                          f"{local_date(e.end, e.tz):%Y-%m-%d}, "
                          + (f"{cal} calendar." if cal else "no exchange calendar.")]
                         + [html.Div(n, className="almanac-hint") for n in result.notes],
                         title=f"Imported {filename}")
    return [done, warning_alert(result.warnings)], {"select": dataset_key(e.symbol, e.freq),
                                                    "sha256": e.sha256, "at": e.imported_at}


@callback(
    Output("data-layout", "is_open"),
    Input("data-layout-toggle", "n_clicks"), Input("data-import-result", "children"),
    State("data-layout", "is_open"),
    prevent_initial_call=True,
)
def layout_controls(n_clicks, result, is_open):
    """The file-layout controls: toggled by their link, opened when a refusal names a flag they set."""
    if dash.ctx.triggered_id == "data-layout-toggle":
        return not is_open
    return True if needs_layout(result) else no_update


def needs_layout(result) -> bool:
    """Whether an import's result (components, or their JSON) is a refusal naming a flag the
    file-layout controls set (:data:`LAYOUT_FLAGS`)."""
    return "data-layout-hint" in str(result)


@callback(
    Output("data-catalog", "rowData"), Output("data-dataset", "options"),
    Output("data-dataset", "value", allow_duplicate=True),
    Input("data-catalog-rev", "data"),
    prevent_initial_call=True,
)
def refresh_catalog(rev):
    """After an import: reload the catalog into the grid and dropdown, and chart the new dataset."""
    if not rev:
        return no_update, no_update, no_update
    try:
        entries = Store().catalog()
    except Exception as exc:  # noqa: BLE001 - logged; the page keeps its current table
        log.error("reloading the catalog failed", exc_info=exc)
        return no_update, no_update, no_update
    return catalog_rows(entries), dataset_options(entries), rev.get("select") or no_update


@callback(
    Output("data-dataset", "value", allow_duplicate=True),
    Input("data-catalog", "cellClicked"),
    prevent_initial_call=True,
)
def chart_clicked_row(clicked):
    """Clicking any cell of a catalog row charts that dataset (row id = ``"SYMBOL|freq"``)."""
    return (clicked or {}).get("rowId") or no_update
