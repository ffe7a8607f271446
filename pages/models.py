"""``/models`` — the run registry: compare runs, export a model bundle, delete, mark active.

* **Table** (``models-grid``): one row per complete run, newest first — when (UTC), name,
  symbol, label, model, the main pooled score (AUC, or IC for a regression), accuracy and
  its base rate, backtest Sharpe, DSR and the number of trials behind it
  (:func:`ml.trials.deflated`: every complete run on the same symbol and label now, the
  number every page shows), the user's notes, and whether the run is the
  *active* model of its symbol and label (``almanac.registry.set_active``). Rows are
  selected with their check boxes (``?run=<id>`` preselects one).
* **One run selected**: export its model bundle (``export-model-button``: a background
  job runs :func:`ml.export.export_run` into a temporary folder under
  ``ALMANAC_HOME/tmp``, the zip is sent to the browser and the folder removed — the
  export loads the model to check it, so it never runs in the server process), mark it
  active, or delete it (after a confirmation dialog; the table refreshes).
  Its name and notes can be edited (``registry.update_run_labels``).
* **Prediction service** (``models-service``): whether ``python -m almanac serve`` is running
  (:func:`ml.serving.service_status`: its status file, confirmed by ``/api/v1/health``) and the
  ``curl`` lines that call it for the selected run.
* **Ensemble** (``models-ensemble-button``): the selected runs (same symbol, label, cutoff and
  fold dates) averaged or stacked into a new run (:func:`ml.ensemble.make_ensemble`); a red
  alert names the first field that differs when they cannot be combined.
* **Two or more selected**: compare them side by side — metrics table (numbers
  right-aligned, the naive baselines beside each run's scores, the better value of each
  ranked row marked ▲), overlaid equity curves of their out-of-fold backtests, per-fold
  scores (:mod:`viz.compare`).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import dash
import dash_ag_grid as dag
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from almanac import registry
from almanac.errors import NotFoundError
from almanac.settings import get_settings
from pages._components import failure_alert, info_alert, page_header, page_token, section, success_alert
from ml.runinfo import label_kind, spec_value
from ml.trials import current_trials, deflated
from pages._components.runs import created_text, load_runs, main_score, run_links, run_page, short_label
from pages._components.service import service_panel
from viz.compare import compare_rows, cv_compare_figure, equity_overlay_figure, shared_metric

dash.register_page(__name__, path="/models", name="Models", order=6, title="Models · Almanac ML Lab",
                   description="Browse runs, compare them, export versioned model bundles other programs can load.")

log = logging.getLogger(__name__)
GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
METRIC_LABELS = {"roc_auc": ("ROC AUC", 0.5), "ic": ("IC (Spearman)", 0.0), "r2": ("R²", 0.0),
                 "accuracy": ("Accuracy", None)}


# ----------------------------------------------------------------------------- pure helpers
def trials_now(run_ids: list[str]) -> dict[str, dict]:
    """``{run_id: {"n_trials", "dsr"}}`` from :func:`ml.trials.deflated`: every complete run on
    the same symbol and label in the registry now (the number /backtest, the report and
    ``runs show --json`` show). A run that cannot be read gets Nones."""
    out = {}
    trials: dict[tuple, list[float]] = {}  # each (symbol, label)'s trials read once, not once per run
    for rid in run_ids:
        try:
            run = registry.get_run(rid)
            key = (spec_value(run, "data", "symbol"), label_kind(run))
            if key not in trials:
                trials[key] = current_trials(run)
            out[rid] = deflated(run, trials=trials[key])
        except Exception:  # noqa: BLE001 - e.g. deleted meanwhile: no number rather than no page
            log.warning("could not compute the DSR of run %s", rid, exc_info=True)
            out[rid] = {"n_trials": None, "dsr": None}
    return out


def grid_rows(runs: list[dict], trials: dict[str, dict] | None = None) -> list[dict]:
    """One grid row per run summary (``registry.list_runs``); DSR and trials from ``trials``
    (:func:`trials_now`; computed here when not given)."""
    trials = trials_now([r["run_id"] for r in runs]) if trials is None else trials
    rows = []
    for r in runs:
        score = main_score(r)
        metrics = r.get("metrics") or {}
        now = trials.get(r["run_id"]) or {}
        rows.append({
            "run_id": r["run_id"], "when": created_text(r), "name": r.get("name"), "symbol": r.get("symbol"),
            "label": r.get("label"), "model": r.get("model"), "task": r.get("task"),
            "score": f"{score[0]} {score[1]:.3f}" if score else None,
            "accuracy": metrics.get("accuracy"), "base_rate": metrics.get("base_rate"),
            "sharpe": r.get("sharpe"), "dsr": now.get("dsr"), "n_trials": now.get("n_trials"),
            "notes": (r.get("user_notes") or "").replace("\n", " · "),
            "active": "active" if r.get("active") else "",
        })
    return rows


def selected_ids(selected: list[dict] | dict | None) -> list[str]:
    """Run ids of the grid's selected rows, in selection order.

    ``selected`` is the grid's ``selectedRows``: a list of row dicts, or ``{"ids": [...]}``
    (how the layout preselects a row, before the grid reports the rows themselves)."""
    if isinstance(selected, dict):
        return [str(i) for i in selected.get("ids") or []]
    return [r["run_id"] for r in selected or [] if isinstance(r, dict) and r.get("run_id")]


def compare_runs(run_ids: list[str]) -> dict:
    """What the compare view needs, read from the runs' folders.

    ``{"names": {run_id: short label}, "records": {name: {metrics, backtest, baselines}},
    "equity": {name: backtest daily frame}, "folds": {name: fold table},
    "benchmark": (name, frame) | None}``; a run without a backtest has no equity entry.
    """
    summaries = {r["run_id"]: r for r in registry.list_runs()}
    names, records, equity, folds, benchmark = {}, {}, {}, {}, None
    for rid in run_ids:
        run = registry.get_run(rid)
        name = short_label(summaries.get(rid) or registry.summary(run))
        names[rid] = name
        bt = run.get("backtest")
        records[name] = {"metrics": run.get("metrics"), "baselines": run.get("baselines"),
                         "backtest": {**bt, **deflated(run)} if isinstance(bt, dict) else bt}
        folds[name] = pd.DataFrame(run.get("folds") or [])
        try:
            equity[name] = registry.read_artifact(rid, "backtest.parquet", columns=["date", "equity",
                                                                                   "benchmark_equity"])
        except NotFoundError:
            continue
        if benchmark is None:
            sym = ((run.get("spec") or {}).get("data") or {}).get("symbol", "")
            benchmark = (f"buy and hold {sym}".strip(), equity[name])
    return {"names": names, "records": records, "equity": equity, "folds": folds, "benchmark": benchmark}


def compare_table(records: dict) -> dbc.Table:
    """The compare table: numbers right-aligned, the better value of each ranked row
    marked (bold on green, ``almanac-best``; :func:`viz.compare.compare_rows`)."""
    names = list(records)
    rows = compare_rows(records)
    head = html.Thead(html.Tr([html.Th("Metric")] + [html.Th(n, className="almanac-num") for n in names]))
    body = html.Tbody([
        html.Tr([html.Td(r["metric"])] + [
            html.Td(cell, className="almanac-num" + (" almanac-best" if n in r["best"] else ""),
                    title="the better value of this row" if n in r["best"] else None)
            for n, cell in zip(names, r["cells"], strict=True)])
        for r in rows])
    return dbc.Table([head, body], striped=True, hover=True, size="sm", id="models-compare-table",
                     responsive=True, className="almanac-table almanac-compare-table")


# ----------------------------------------------------------------------------- layout
def _mono(text: str) -> html.Span:
    """Monospaced text in the alert's own colour (Bootstrap's pink <code> is unreadable on green)."""
    return html.Span(text, className="font-monospace")


def _grid(rows: list[dict], preselect: str | None) -> dag.AgGrid:
    num3 = {"function": "params.value == null ? '–' : d3.format('.3f')(params.value)"}
    pct = {"function": "params.value == null ? '–' : d3.format('.1%')(params.value)"}
    columns = [
        {"field": "when", "headerName": "When (UTC)", "width": 142},
        {"field": "name", "headerName": "Name", "flex": 1, "minWidth": 130, "tooltipField": "run_id"},
        {"field": "symbol", "headerName": "Symbol", "width": 88},
        {"field": "label", "headerName": "Label", "width": 110},
        {"field": "model", "headerName": "Model", "width": 100},
        {"field": "score", "headerName": "Main score", "width": 105},
        {"field": "accuracy", "headerName": "Accuracy", "width": 100, "type": "rightAligned",
         "valueFormatter": pct},
        {"field": "base_rate", "headerName": "Base rate", "width": 100, "type": "rightAligned",
         "valueFormatter": pct, "headerTooltip": "share of up days: what the accuracy has to beat"},
        {"field": "sharpe", "headerName": "Sharpe", "width": 85, "type": "rightAligned", "valueFormatter": num3},
        {"field": "dsr", "headerName": "DSR", "width": 80, "type": "rightAligned", "valueFormatter": pct},
        {"field": "n_trials", "headerName": "Trials", "width": 75, "type": "rightAligned"},
        {"field": "notes", "headerName": "Notes", "flex": 1, "minWidth": 90, "tooltipField": "notes"},
        {"field": "active", "headerName": "Active", "width": 76,
         "cellClass": "almanac-active-cell", "cellStyle": {"fontWeight": "700", "color": "#18BC9C"}},
    ]
    return dag.AgGrid(
        id="models-grid", rowData=rows, columnDefs=columns, getRowId="params.data.run_id",
        selectedRows={"ids": [preselect]} if preselect and any(r["run_id"] == preselect for r in rows) else [],
        defaultColDef={"sortable": True, "resizable": True},
        dashGridOptions={"domLayout": "autoHeight", "tooltipShowDelay": 300,
                         "rowSelection": {"mode": "multiRow", "checkboxes": True, "headerCheckbox": False,
                                          "enableClickSelection": True},
                         "localeText": {"noRowsToShow": "No runs yet: train one on the Train page."}},
        className="almanac-grid", style={"width": "100%"},
    )


def _toolbar() -> html.Div:
    return html.Div([
        dbc.Button("Export model (.zip)", id="export-model-button", color="primary", disabled=True,
                   className="me-2"),
        dbc.Button("Mark active", id="models-activate-button", color="success", outline=True, disabled=True,
                   className="me-2"),
        dbc.Button("Delete…", id="models-delete-button", color="danger", outline=True, disabled=True,
                   className="me-3"),
        *_ensemble_controls(),
        html.Span("Select a run to export, activate or delete it; select two or more to compare them.",
                  id="models-selection", className="almanac-hint"),
        html.Div(id="models-links", className="mt-2"),
        dbc.Collapse(dbc.Row([
            dbc.Col([dbc.Label("Name", html_for="models-name", className="mb-1 small fw-bold"),
                     dbc.Input(id="models-name", type="text", size="sm", maxLength=registry.NAME_MAX_CHARS)], lg=4),
            dbc.Col([dbc.Label("Notes", html_for="models-notes", className="mb-1 small fw-bold"),
                     dbc.Textarea(id="models-notes", size="sm", rows=2, maxLength=registry.NOTES_MAX_CHARS)], lg=6),
            dbc.Col(dbc.Button("Save name and notes", id="models-labels-save", color="primary", outline=True,
                               size="sm", n_clicks=0), lg=2, className="d-flex align-items-end"),
        ], className="g-2 mt-1"), id="models-labels-wrap", is_open=False),
        dcc.Download(id="models-export-download"),
    ], className="mb-3")


def _ensemble_controls() -> list:
    """Method choice and the button that combines the selected runs (ml.ensemble)."""
    return [dbc.Select(id="models-ensemble-method", value="mean", size="sm", className="d-inline-block me-2",
                       style={"width": "auto"}, options=[{"label": "Ensemble: mean", "value": "mean"},
                                                         {"label": "Ensemble: stack (logistic, per fold)",
                                                          "value": "stack"}]),
            dbc.Button("Make ensemble", id="models-ensemble-button", color="primary", outline=True, disabled=True,
                       className="me-3", n_clicks=0,
                       title="combine the selected runs (same symbol, label, cutoff and fold dates) into a new run")]


def _delete_modal() -> dbc.Modal:
    return dbc.Modal([
        dbc.ModalHeader(dbc.ModalTitle("Delete this run?")),
        dbc.ModalBody(id="models-delete-body"),
        dbc.ModalFooter([dbc.Button("Cancel", id="models-delete-cancel", color="secondary", className="me-2"),
                         dbc.Button("Delete the run", id="models-delete-confirm", color="danger")]),
    ], id="models-delete-modal", is_open=False, centered=True)


def layout(run: str | None = None, **_query):
    runs, problem = load_runs(log)
    header = page_header("Models", "Every run the lab has recorded: compare them, export a model bundle another "
                                   "program can load, keep one active model per market and label.",
                         page_id="models")
    return run_page("models", header, problem, runs, [
        page_token("models-token"),
        dcc.Store(id="models-rev"),
        section("Runs", _toolbar(), _grid(grid_rows(runs), run), html.Div(id="models-message", className="mt-3"),
                subtitle="Newest first. Sharpe and DSR: the run's out-of-fold backtest at its own trading rules; "
                         "Trials: the complete runs on the same symbol and label now (the DSR deflates by them).",
                section_id="models-runs-section"),
        html.Div(id="models-compare", className="mt-3"),
        section("Prediction service", html.Div(id="models-service"), section_id="models-service-section",
                subtitle="python -m almanac serve: the active models over REST (/api/v1), with the same numbers "
                         "as predict", class_name="mt-3"),
        _delete_modal(),
    ])


# ----------------------------------------------------------------------------- callbacks
@callback(
    Output("export-model-button", "disabled"), Output("models-activate-button", "disabled"),
    Output("models-delete-button", "disabled"), Output("models-selection", "children"),
    Output("models-links", "children"),
    Output("models-labels-wrap", "is_open"), Output("models-name", "value"), Output("models-notes", "value"),
    Input("models-grid", "selectedRows"),
)
def selection_state(selected):
    """Enable the single-run actions for exactly one selected run; fill its name and notes."""
    ids = selected_ids(selected)
    one = len(ids) == 1
    text = ("Select a run to export, activate or delete it; select two or more to compare them." if not ids else
            f"Selected: {ids[0]}" if one else f"{len(ids)} runs selected: compared below.")
    name = notes = ""
    editable = one
    if one:
        try:
            run = registry.get_run(ids[0])
            name, notes = run.get("name") or "", run.get("user_notes") or ""
        except Exception:  # noqa: BLE001 - e.g. deleted meanwhile: no editor
            editable = False
    return (not one, not one, not one, text, run_links(ids[0], "/models") if one else None,
            editable, name, notes)


@callback(Output("models-ensemble-button", "disabled"), Input("models-grid", "selectedRows"))
def ensemble_state(selected):
    """An ensemble needs two or more selected runs."""
    return len(selected_ids(selected)) < 2


@callback(
    Output("models-message", "children", allow_duplicate=True), Output("models-rev", "data", allow_duplicate=True),
    Input("models-ensemble-button", "n_clicks"),
    State("models-grid", "selectedRows"), State("models-ensemble-method", "value"), State("models-rev", "data"),
    prevent_initial_call=True,
)
def make_ensemble(n_clicks, selected, method, rev):
    """Combine the selected runs into a new run; a refusal (e.g. different fold dates) is a red alert."""
    from ml.ensemble import make_ensemble as combine_runs

    ids = selected_ids(selected)
    if not n_clicks or len(ids) < 2:
        return no_update, no_update
    try:
        run = combine_runs(ids, method=method or "mean")
    except Exception as exc:  # noqa: BLE001 - shown as an alert (a refusal: its one line)
        return failure_alert(exc, log, f"combining {len(ids)} runs"), no_update
    score = main_score(registry.summary(run))
    return success_alert([_mono(run["run_id"]), f" made ({method} of {len(ids)} runs"
                          + (f", {score[0]} {score[1]:.3f}" if score else "") + "): select it to compare, "
                          "evaluate or export it."], title="Ensemble made"), (rev or 0) + 1


@callback(
    Output("models-service", "children"),
    Input("models-grid", "selectedRows"), Input("models-rev", "data"),
)
def service_state(selected, _rev):
    """Is the REST service running, and the curl lines for the one selected run."""
    from ml.serving import curl_lines, run_example, service_status

    status = service_status()
    ids = selected_ids(selected)
    if len(ids) != 1:
        return service_panel(status, None, None)
    try:
        ex = run_example(ids[0])
    except Exception as exc:  # noqa: BLE001 - e.g. deleted meanwhile: an alert instead of the lines
        return [*service_panel(status, None, None), failure_alert(exc, log, f"reading run {ids[0]}")]
    lines = curl_lines(ex["run_id"], ex["row"], ex["symbol"], ex["label"], status["url"],
                       status.get("token_required", False))
    return service_panel(status, lines, ex["run_id"])


@callback(
    Output("models-message", "children", allow_duplicate=True), Output("models-rev", "data", allow_duplicate=True),
    Input("models-labels-save", "n_clicks"),
    State("models-grid", "selectedRows"), State("models-name", "value"), State("models-notes", "value"),
    State("models-rev", "data"),
    prevent_initial_call=True,
)
def save_labels(n_clicks, selected, name, notes, rev):
    """Rename the selected run and set its notes (``registry.update_run_labels``: a refused
    name or note changes nothing and says why)."""
    ids = selected_ids(selected)
    if not n_clicks or len(ids) != 1:
        return no_update, no_update
    try:
        run = registry.update_run_labels(ids[0], name=name or "", notes=notes or "")
    except Exception as exc:  # noqa: BLE001 - shown as an alert (a refusal: its one line)
        return failure_alert(exc, log, f"renaming run {ids[0]}"), no_update
    return success_alert([_mono(ids[0]), f" is now named “{run['name']}”."], title="Saved"), (rev or 0) + 1


@callback(
    Output("models-compare", "children"),
    Input("models-grid", "selectedRows"),
)
def render_compare(selected):
    """Metrics table, overlaid equity curves and per-fold scores of the selected runs (two or more)."""
    ids = selected_ids(selected)
    if len(ids) < 2:
        return None
    try:
        data = compare_runs(ids)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, "comparing the selected runs")
    table = compare_table(data["records"])
    metric = shared_metric(list(data["folds"].values()))
    label, ref = METRIC_LABELS.get(metric, (metric, None))
    cv = (dcc.Graph(id="models-compare-cv-graph", config=GRAPH_CONFIG,
                    figure=cv_compare_figure(data["folds"], metric, label, ref)) if metric else
          info_alert("these runs share no per-fold score (different tasks).", title="No per-fold comparison"))
    return section(
        f"Compare {len(ids)} runs",
        table,
        dbc.Row([
            dbc.Col(dcc.Graph(id="models-compare-equity-graph", config=GRAPH_CONFIG,
                              figure=equity_overlay_figure(data["equity"], data["benchmark"])), lg=7),
            dbc.Col(cv, lg=5),
        ], className="g-3 mt-1"),
        subtitle="pooled out-of-fold metrics, the naive baselines on the same days and each run's recorded "
                 "backtest; the better value of each row is marked",
        section_id="models-compare-section",
    )


@callback(
    Output("models-delete-modal", "is_open"), Output("models-delete-body", "children"),
    Input("models-delete-button", "n_clicks"), Input("models-delete-cancel", "n_clicks"),
    State("models-grid", "selectedRows"),
    prevent_initial_call=True,
)
def open_delete(_open, _cancel, selected):
    """Ask before deleting the selected run."""
    ids = selected_ids(selected)
    if ctx.triggered_id != "models-delete-button" or len(ids) != 1:
        return False, no_update
    try:
        run = registry.get_run(ids[0])
    except Exception as exc:  # noqa: BLE001 - e.g. deleted meanwhile: shown in the dialog
        return True, failure_alert(exc, log, f"reading run {ids[0]}")
    return True, [html.P(["Run ", html.Code(ids[0]), f" ({run.get('name')}, created "
                          f"{created_text(run)} UTC) and all its files — predictions, SHAP values, backtest and "
                          "model — will be removed."]),
                  html.P("This cannot be undone. Exported bundles and reports stay where you saved them.",
                         className="mb-0 almanac-hint")]


@callback(
    Output("models-message", "children"), Output("models-rev", "data"),
    Output("models-delete-modal", "is_open", allow_duplicate=True),
    Input("models-delete-confirm", "n_clicks"), Input("models-activate-button", "n_clicks"),
    State("models-grid", "selectedRows"), State("models-rev", "data"),
    prevent_initial_call=True,
)
def change_registry(_delete, _activate, selected, rev):
    """Delete the selected run (after the dialog) or mark it as the active model."""
    ids = selected_ids(selected)
    if len(ids) != 1:
        return no_update, no_update, False
    rid = ids[0]
    try:
        if ctx.triggered_id == "models-delete-confirm":
            registry.delete_run(rid)
            message = success_alert(["deleted run ", _mono(rid), "."], title="Deleted")
        else:
            entry = registry.set_active(rid)
            message = success_alert([_mono(rid), f" is now the active model for {entry['symbol']} / "
                                                     f"{entry['label']}."], title="Active model")
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"changing run {rid}"), no_update, False
    return message, (rev or 0) + 1, False


@callback(
    Output("models-grid", "rowData"), Output("models-grid", "selectedRows"),
    Input("models-rev", "data"),
    prevent_initial_call=True,
)
def refresh_grid(_rev):
    """Re-read the registry after a change (selection kept for runs that still exist)."""
    runs, _problem = load_runs(log)
    return grid_rows(runs), no_update


@callback(
    Output("models-export-download", "data"), Output("models-message", "children", allow_duplicate=True),
    Input("export-model-button", "n_clicks"),
    State("models-grid", "selectedRows"), State("models-token", "data"),
    background=True,
    running=[(Output("export-model-button", "disabled"), True, False),
             (Output("export-model-button", "children"), "Exporting…", "Export model (.zip)")],
    prevent_initial_call=True,
)
def export_model(_n, selected, _token):
    """Export the selected run's model bundle and send it (a background job: it loads the model)."""
    from ml.export import export_run

    ids = selected_ids(selected)
    if len(ids) != 1:
        return no_update, info_alert("select exactly one run to export.", title="Nothing exported")
    tmp_root = get_settings().private_dir(get_settings().home / "tmp")
    folder = Path(tempfile.mkdtemp(prefix="export-", dir=tmp_root))
    try:
        path = export_run(ids[0], folder / f"{ids[0]}.zip")
        payload = dcc.send_bytes(path.read_bytes(), path.name)
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return no_update, failure_alert(exc, log, f"exporting run {ids[0]}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return payload, success_alert(["model bundle of ", _mono(ids[0]), " downloaded: load it with ",
                                   _mono("ml.export.load_bundle"), " or ", _mono("python -m almanac predict")],
                                  title="Exported")
