"""``/studies`` — search many experiments at once (Optuna) or ablate feature sets, honestly.

* **New study.** The base spec is the Train form's current spec (the Train page keeps it
  in the tab's session store ``spec-draft``; without one, the Train form's defaults), as
  YAML you may edit. The search space is a table of rows ``path · type · values · log``
  (:func:`space_to_search`), "Show as YAML" shows the study file that
  ``python -m almanac study run --config`` runs to the same trials. Every change is
  validated (:func:`check_study_form`, the kernel's rules: a red alert says what to fix).
* **Start** runs :func:`ml.study.run_study` as a background job
  (``pages._components.jobs.run_job``: status file, progress "trial k/n · best v",
  Cancel); the checks that need the data run first inside the job, so a bad study fails
  with a red alert and no study folder.
* **A study.** The holdout verdict ("best CV 0.574 → holdout 0.531 · DSR 0.41 over 40
  trials"), Optuna's charts (optimization history, fANOVA importances, parallel
  coordinates, slices; :mod:`viz.study`), the trials table (each complete trial links to
  its run on /evaluate), the ablation table and chart, and **Promote** (the best trial
  becomes the active model of its symbol and label).
"""

from __future__ import annotations

import logging
import math

import dash
import dash_bootstrap_components as dbc
import yaml
from dash import Input, Output, State, callback, dash_table, dcc, html, no_update

from almanac.errors import AlmanacError, SpecError
from almanac.settings import get_settings
from almanac.spec import parse_yaml
from almanac.study_spec import OBJECTIVE_METRICS, study_from_dict
from pages._components import error_alert, empty_state, failure_alert, info_alert, page_header, page_token, \
    section, success_alert
from pages._components import jobs
from pages._components.context import triggered_id

dash.register_page(__name__, path="/studies", name="Studies", order=7, title="Studies · Almanac ML Lab",
                   description="Search many experiments at once, ablate feature sets, score the winner on a "
                               "holdout.")

log = logging.getLogger(__name__)

JOB = "studies-job"
TYPES = ("choice", "int", "float", "subsets")
DEFAULT_ROWS = [
    {"path": "model.params.learning_rate", "type": "float", "values": "0.01, 0.2", "log": "yes"},
    {"path": "model.params.num_leaves", "type": "int", "values": "4, 64", "log": "yes"},
    {"path": "backtest.threshold", "type": "float", "values": "0.5, 0.6", "log": "no"},
]
METRICS = list(dict.fromkeys(m for ms in OBJECTIVE_METRICS.values() for m in ms))
CHARTS = {"history": "History", "importance": "Importances", "parallel": "Parallel coordinates",
          "slice": "Slices"}


# ----------------------------------------------------------------------------- pure helpers
def _scalar(text: str):
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t.strip("'\"")


def space_to_search(rows: list[dict] | None) -> dict:
    """The study's ``search`` mapping from the editor's rows (blank rows skipped)."""
    out: dict = {}
    for i, row in enumerate(rows or [], start=1):
        path = str(row.get("path") or "").strip()
        values = str(row.get("values") or "").strip()
        if not path and not values:
            continue
        kind = row.get("type") or "choice"
        if not path:
            raise SpecError(f"search row {i}: the path is empty: e.g. model.params.learning_rate")
        if kind not in TYPES:
            raise SpecError(f"search row {i} ({path}): type {kind!r} is not one of {', '.join(TYPES)}")
        if path in out:
            raise SpecError(f"search row {i}: {path} is listed twice: keep one row per path")
        parts = [p for p in (x.strip() for x in values.split(",")) if p]
        if kind in ("int", "float"):
            try:
                nums = [(int if kind == "int" else float)(p) for p in parts]
            except ValueError:
                raise SpecError(f"search row {i} ({path}): {values!r} is not two {kind} numbers: write low, high "
                                "e.g. 4, 64") from None
            dim: dict = {kind: nums}
        else:
            dim = {kind: [(_scalar(p) if kind == "choice" else p) for p in parts]}
        if str(row.get("log") or "no").lower() in ("yes", "true"):
            dim["log"] = True
        out[path] = dim
    return out


def form_to_study(fields: dict, rows: list[dict] | None, base_yaml: str | None) -> dict:
    """The study (as a dict) the form describes: name, kind, objective, budget, holdout, the
    base spec inline and (for a search) the search space."""
    base = parse_yaml(base_yaml or "", "the base spec")
    if not isinstance(base, dict):
        raise SpecError("the base spec is empty: write an experiment spec (data, features, label, model, ...)")
    study: dict = {"name": str(fields.get("name") or "").strip(), "kind": fields.get("kind") or "search",
                   "spec": base, "objective": {"metric": fields.get("metric") or "roc_auc"}}
    n = fields.get("n_trials")
    if study["kind"] == "search":
        try:
            study["budget"] = {"n_trials": int(n)}
        except (TypeError, ValueError):
            raise SpecError(f"the number of trials {n!r} is not a whole number: enter e.g. 20") from None
        study["search"] = space_to_search(rows)
    holdout = str(fields.get("holdout") or "").strip()
    if holdout:
        study["holdout"] = {"start": holdout}
    return study


def check_study_form(fields: dict, rows, base_yaml) -> tuple[dict | None, str | None, str | None]:
    """``(study dict, its YAML, None)`` when valid, else ``(None, None, one-line problem)``."""
    try:
        study = form_to_study(fields, rows, base_yaml)
        study_from_dict(study)
        return study, yaml.safe_dump(study, sort_keys=False, default_flow_style=None, width=100), None
    except AlmanacError as exc:
        return None, None, exc.message
    except Exception as exc:  # noqa: BLE001 - a bug: logged, a short message shown
        log.error("checking the study form failed", exc_info=exc)
        return None, None, f"the study could not be checked ({type(exc).__name__}); see the server log"


def default_base_yaml() -> str:
    """The Train form's default spec as YAML (the base when the Train page left none)."""
    from pages.train import DEFAULTS, build_spec, default_param_values

    return build_spec(DEFAULTS, {DEFAULTS["kind"]: default_param_values(DEFAULTS["kind"])}).to_yaml()


def _num(v, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and math.isfinite(v) else "–"


def verdict_text(report: dict) -> str | None:
    """"best CV 0.574 → holdout 0.531 · DSR 0.41 over 40 trials" (None without a holdout score)."""
    h = report.get("holdout")
    if not h:
        return None
    return (f"best CV {_num(h.get('cv_value'))} → holdout {_num(h.get('value'))} · DSR {_num(h.get('dsr'), 2)} "
            f"over {h.get('n_trials')} trials")


def run_study_job(study: dict, job_id: str, progress=None) -> dict:
    """The background job: run the study, record its id in the job's status."""
    from ml.study import run_study

    report = run_study(study, progress=progress, started=lambda sid: jobs.write_status(job_id, study_id=sid))
    return {"run_id": (report.get("best") or {}).get("run_id")}


def progress_view(status: dict | None) -> tuple[bool, int, str, str]:
    """(visible, percent, colour, text) of the progress bar for a job status."""
    if not status:
        return False, 0, "primary", ""
    state, pct = status.get("state"), int(round(100 * float(status.get("fraction") or 0)))
    stage = status.get("stage") or ""
    if state == "queued":
        return True, 2, "primary", "Queued: waiting for the job to start…"
    if state == "running":
        return True, max(pct, 2), "primary", f"Running: {stage}"
    if state == "done":
        return True, 100, "success", "Finished"
    if state == "cancelled":
        return True, pct, "secondary", "Cancelled: the completed trials are kept; start again to resume"
    return True, max(pct, 2), "danger", "Failed"


# ----------------------------------------------------------------------------- layout
def _labelled(label, control, width=12, hint=None):
    kids = [dbc.Label(label, className="mb-1 small fw-bold"), control]
    if hint:
        kids.append(html.Div(hint, className="almanac-hint"))
    return dbc.Col(kids, xs=width, className="mb-2")


def _form() -> list:
    return [
        dbc.Row([
            _labelled("Name", dbc.Input(id="studies-name", value="es-search", size="sm", debounce=True), 6),
            _labelled("Kind", dbc.RadioItems(id="studies-kind", value="search", inline=True,
                                             options=[{"label": "search", "value": "search"},
                                                      {"label": "ablation", "value": "ablation"}]), 6),
            _labelled("Objective", dcc.Dropdown(id="studies-metric", value="roc_auc", clearable=False,
                                                options=[{"label": m, "value": m} for m in METRICS]), 4),
            dbc.Col(_labelled("Trials", dbc.Input(id="studies-n-trials", type="number", value=20, step=1, size="sm",
                                                  debounce=True)), xs=4, id="studies-n-trials-wrap"),
            _labelled("Holdout from", dbc.Input(id="studies-holdout", type="text", value="", size="sm",
                                                placeholder="YYYY-MM-DD", debounce=True), 4),
        ], className="g-2"),
        html.Div([
        html.H3("Search space", className="almanac-subheading mt-1"),
        dash_table.DataTable(
            id="studies-space", data=DEFAULT_ROWS, editable=True, row_deletable=True,
            columns=[{"name": "path", "id": "path"},
                     {"name": "type", "id": "type", "presentation": "dropdown"},
                     {"name": "values (low, high or a list)", "id": "values"},
                     {"name": "log", "id": "log", "presentation": "dropdown"}],
            dropdown={"type": {"options": [{"label": t, "value": t} for t in TYPES], "clearable": False},
                      "log": {"options": [{"label": v, "value": v} for v in ("no", "yes")], "clearable": False}},
            style_cell={"fontSize": "0.85rem", "textAlign": "left", "padding": "4px"},
            style_table={"overflowX": "auto"}, css=[{"selector": ".Select-menu-outer", "rule": "display: block"}]),
        html.Div([dbc.Button("Add row", id="studies-add-row", size="sm", color="secondary", outline=True,
                             className="mt-1 me-2"),
                  html.Span("paths: features.sets (subsets), features.cutoff, model.kind, model.params.<name>, "
                            "backtest.threshold, backtest.long_only", className="almanac-hint")]),
        ], id="studies-space-wrap"),
        html.Div("An ablation trains the base spec with each feature set alone, each left out and all of them "
                 "(no search space, no trial budget).", id="studies-ablation-hint", className="almanac-hint",
                 style={"display": "none"}),
        html.H3("Base spec (from the Train form)", className="almanac-subheading mt-2"),
        dbc.Textarea(id="studies-base", rows=9, size="sm", debounce=True, style={"fontFamily": "monospace"}),
        html.Div(id="studies-form-feedback", className="mt-2"),
        html.Div([
            dbc.Button("Show as YAML", id="studies-yaml-toggle", size="sm", color="link", className="px-0"),
            dbc.Collapse(html.Pre(id="studies-yaml", className="almanac-yaml"), id="studies-yaml-collapse",
                         is_open=False),
        ]),
        html.Div([dbc.Button("Start study", id="studies-start", color="primary", className="me-2"),
                  dbc.Button("Cancel", id="studies-cancel", color="danger", outline=True, disabled=True)],
                 className="mt-2"),
        html.Div(id="studies-submit-feedback", className="mt-2"),
        html.Div([html.Div(id="studies-stage", className="mb-1 fw-bold"),
                  dbc.Progress(id="studies-progress", value=0, striped=True, style={"height": "1.2rem"})],
                 id="studies-progress-wrap", style={"display": "none"}, className="mt-2"),
    ]


def layout(**_query):
    return html.Div([
        page_token("studies-token"),
        dcc.Store(id="spec-draft", storage_type="session"),
        dcc.Store(id=JOB, storage_type="session"),
        dcc.Store(id="studies-status"),
        dcc.Store(id="studies-job-finished"),
        dcc.Interval(id="studies-poll", interval=700, disabled=True),
        page_header("Studies", "Search many experiments at once or ablate feature sets; every trial is a "
                               "walk-forward run, every trial counts in the DSR, the winner meets a holdout.",
                    page_id="studies"),
        dbc.Row([
            dbc.Col(section("New study", *_form(), section_id="studies-form-section"), lg=5),
            dbc.Col(section("Study", dcc.Dropdown(id="studies-pick", placeholder="choose a study",
                                                  clearable=False, className="mb-2"),
                            html.Div(id="studies-view"),
                            html.Div([
                                html.Div([dbc.Button("Promote the winner", id="studies-promote", size="sm",
                                                     color="success", disabled=True, className="me-2"),
                                          html.Span(id="studies-promote-feedback")], className="mb-2"),
                                html.Div([dbc.Tabs([dbc.Tab(label=v, tab_id=k) for k, v in CHARTS.items()],
                                                   id="studies-tabs", active_tab="history"),
                                          html.Div(id="studies-chart")], id="studies-charts"),
                                html.Div(id="studies-ablation"),
                                html.H3("Trials", className="almanac-subheading mt-2"),
                                html.Div(id="studies-trials"),
                            ], id="studies-detail", style={"display": "none"}),
                            section_id="studies-view-section"), lg=7),
        ], className="g-3"),
    ])


def _link(run_id):
    return dcc.Link(run_id, href=f"/evaluate?run={run_id}") if run_id else "–"


def trials_table(report: dict) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(c) for c in ("#", "state", report["objective"]["metric"], "params",
                                                      "run")]))
    body = []
    for t in report["trials"]:
        params = ", ".join(f"{k.split('.')[-1]}={_num(v) if isinstance(v, float) else v}"
                           for k, v in t["params"].items())
        best = (report.get("best") or {}).get("trial") == t["number"]
        body.append(html.Tr([html.Td(t["number"]), html.Td(f"{t['state']} · best" if best else t["state"]),
                             html.Td(_num(t["value"], 4)), html.Td(params, className="small"),
                             html.Td(_link(t["run_id"]), className="small")],
                            style={"fontWeight": 700, "backgroundColor": "#E8F8F5"} if best else None))
    return dbc.Table([head, html.Tbody(body)], size="sm", hover=True, className="almanac-table",
                     id="studies-trials-table")


def ablation_view(report: dict):
    from viz.study import ablation_figure

    rows = report.get("ablation") or []
    head = html.Thead(html.Tr([html.Th(c) for c in ("feature sets", report["objective"]["metric"], "95 % interval",
                                                      "Δ vs all", "Δ interval")]))
    body = [html.Tr([html.Td(" + ".join(a["sets"])), html.Td(_num(a["value"], 4)),
                     html.Td(f"{_num(a['ci_low'])} … {_num(a['ci_high'])}"), html.Td(_num(a["delta_vs_full"], 4)),
                     html.Td(f"{_num(a.get('delta_ci_low'))} … {_num(a.get('delta_ci_high'))}")]) for a in rows]
    return html.Div([
        html.H3("Ablation", className="almanac-subheading mt-2"),
        dcc.Graph(id="studies-ablation-graph", figure=ablation_figure(rows, report["objective"]["metric"]),
                  config={"displaylogo": False}),
        dbc.Table([head, html.Tbody(body)], size="sm", className="almanac-table", id="studies-ablation-table"),
    ])


def study_view(report: dict) -> dict:
    """The parts of the study panel: ``head`` (summary and verdict), ``ablation``,
    ``trials``, ``charts`` (a search has them) and ``promotable``."""
    verdict = verdict_text(report)
    best = report.get("best") or {}
    summary = (f"{report['name']} · {report['kind']} · {report['symbol']} / {report['label']} · "
               f"{report['n_trials']} of {report['budget']} trials ({report['n_complete']} complete, "
               f"{report['n_pruned']} pruned, {report['n_failed']} failed)")
    head = html.Div([
        html.Div(summary, className="almanac-hint mb-2", id="studies-summary"),
        dbc.Alert(verdict, color="info", id="studies-verdict", className="almanac-alert fw-bold") if verdict else
        html.Div(f"best {report['objective']['metric']} {_num(best.get('value'), 4)} (trial {best.get('trial')})"
                 if best else "no complete trial yet", id="studies-verdict", className="fw-bold mb-2"),
    ])
    return {"head": head, "ablation": ablation_view(report) if report["kind"] == "ablation" else None,
            "trials": trials_table(report), "charts": report["kind"] == "search",
            "promotable": bool(best.get("run_id"))}


# ----------------------------------------------------------------------------- callbacks
FORM = [State("studies-name", "value"), State("studies-kind", "value"), State("studies-metric", "value"),
        State("studies-n-trials", "value"), State("studies-holdout", "value"), State("studies-space", "data"),
        State("studies-base", "value")]


def _fields(name, kind, metric, n_trials, holdout) -> dict:
    return {"name": name, "kind": kind, "metric": metric, "n_trials": n_trials, "holdout": holdout}


@callback(Output("studies-base", "value"), Input("spec-draft", "data"))
def fill_base(draft):
    """The Train form's current spec, else its defaults."""
    if isinstance(draft, str) and draft.strip():
        return draft
    try:
        return default_base_yaml()
    except AlmanacError:
        return ""


@callback(Output("studies-space-wrap", "style"), Output("studies-n-trials-wrap", "style"),
          Output("studies-ablation-hint", "style"), Input("studies-kind", "value"))
def show_kind(kind):
    """A search has a space and a budget; an ablation has its fixed combinations."""
    shown, hidden = {"display": "block"}, {"display": "none"}
    return (hidden, hidden, shown) if kind == "ablation" else (shown, shown, hidden)


@callback(Output("studies-space", "data"), Input("studies-add-row", "n_clicks"), State("studies-space", "data"),
          prevent_initial_call=True)
def add_row(_n, rows):
    return [*(rows or []), {"path": "", "type": "float", "values": "", "log": "no"}]


@callback(Output("studies-form-feedback", "children"), Output("studies-yaml", "children"),
          Output("studies-start", "disabled"),
          Input("studies-name", "value"), Input("studies-kind", "value"), Input("studies-metric", "value"),
          Input("studies-n-trials", "value"), Input("studies-holdout", "value"), Input("studies-space", "data"),
          Input("studies-base", "value"), State("studies-status", "data"))
def validate(name, kind, metric, n_trials, holdout, rows, base, status):
    _, text, problem = check_study_form(_fields(name, kind, metric, n_trials, holdout), rows, base)
    running = bool(status) and status.get("state") in jobs.ACTIVE
    if problem:
        return error_alert(problem, title="Fix the study"), "", True
    return None, text, running


@callback(Output("studies-yaml-collapse", "is_open"), Output("studies-yaml-toggle", "children"),
          Input("studies-yaml-toggle", "n_clicks"), State("studies-yaml-collapse", "is_open"),
          prevent_initial_call=True)
def toggle_yaml(_n, is_open):
    return (not is_open), ("Show as YAML" if is_open else "Hide YAML")


@callback(Output(JOB, "data"), Output("studies-submit-feedback", "children"),
          Input("studies-start", "n_clicks"), *FORM, State("studies-token", "data"), prevent_initial_call=True)
def submit(n_clicks, name, kind, metric, n_trials, holdout, rows, base, token):
    if not n_clicks:
        return no_update, no_update
    study, _, problem = check_study_form(_fields(name, kind, metric, n_trials, holdout), rows, base)
    if problem:
        return no_update, error_alert(problem, title="Not started")
    try:
        job_id = jobs.job_id_for(token, n_clicks)
        if get_settings().redis_url:  # the job and its trials go through Redis: say so if it is away
            from ml.scale import ping

            ping()
    except AlmanacError as exc:
        return no_update, error_alert(exc.message, title="Not started")
    jobs.create_status(job_id, kind="study")
    return {"job_id": job_id}, None


@callback(Output("studies-job-finished", "data"),
          Input("studies-start", "n_clicks"), *FORM, State("studies-token", "data"),
          background=True, prevent_initial_call=True,
          running=[(Output("studies-start", "disabled"), True, False)])
def study_job(n_clicks, name, kind, metric, n_trials, holdout, rows, base, token):
    """The background job (a forked process): run the study, report through the status file."""
    if not n_clicks:
        return no_update
    study, _, problem = check_study_form(_fields(name, kind, metric, n_trials, holdout), rows, base)
    if problem:
        return no_update  # submit() shows why
    try:
        job_id = jobs.job_id_for(token, n_clicks)
    except AlmanacError:
        return no_update
    return jobs.run_job(job_id, run_study_job, study, job_id)


@callback(Output("studies-status", "data"), Output("studies-poll", "disabled"),
          Input("studies-poll", "n_intervals"), Input(JOB, "data"), State("studies-status", "data"))
def poll(_n, job, current):
    return jobs.next_status(job, current)


@callback(Output("studies-status", "data", allow_duplicate=True),
          Input("studies-cancel", "n_clicks"), State(JOB, "data"), prevent_initial_call=True)
def cancel(n_clicks, job):
    if not n_clicks or not (job or {}).get("job_id"):
        return no_update
    return jobs.cancel_job(job["job_id"]) or no_update


@callback(Output("studies-progress-wrap", "style"), Output("studies-progress", "value"),
          Output("studies-progress", "color"), Output("studies-progress", "animated"),
          Output("studies-stage", "children"), Output("studies-cancel", "disabled"),
          Output("studies-submit-feedback", "children", allow_duplicate=True),
          Input("studies-status", "data"), prevent_initial_call=True)
def show_job(status):
    visible, pct, color, text = progress_view(status)
    running = bool(status) and status.get("state") in jobs.ACTIVE
    alert = error_alert(status.get("error") or "the study failed; see the server log", title="Study failed") \
        if status and status.get("state") == "failed" else no_update
    return ({"display": "block" if visible else "none"}, pct, color, running, text, not running, alert)


@callback(Output("studies-pick", "options"), Output("studies-pick", "value"),
          Input("studies-status", "data"), State("studies-pick", "value"))
def list_options(status, current):
    """The studies to choose from; the job's study once it is stored (not re-read on every
    progress step of a running job)."""
    from ml.study import list_studies

    if (triggered_id() == "studies-status" and (status or {}).get("state") in jobs.ACTIVE
            and (status or {}).get("study_id") in (None, current)):
        return no_update, no_update

    try:
        studies = list_studies()
    except AlmanacError:
        studies = []
    options = [{"label": f"{s['study_id']} ({s['kind']}, {s['n_trials']}/{s['budget']})", "value": s["study_id"]}
               for s in studies]
    ids = [o["value"] for o in options]
    chosen = (status or {}).get("study_id")
    value = chosen if chosen in ids else current if current in ids else (ids[0] if ids else None)
    return options, value


@callback(Output("studies-view", "children"), Output("studies-detail", "style"), Output("studies-charts", "style"),
          Output("studies-ablation", "children"), Output("studies-trials", "children"),
          Output("studies-promote", "disabled"),
          Input("studies-pick", "value"), Input("studies-status", "data"))
def show_study(study_id, _status):
    hidden, shown = {"display": "none"}, {"display": "block"}
    if not study_id:
        return (empty_state("No study yet", "Set up a search on the left (the base spec is the Train form's) and "
                                            "press Start study."), hidden, hidden, None, None, True)
    from ml.study import study_report

    try:
        v = study_view(study_report(study_id))
    except Exception as exc:  # noqa: BLE001 - alert, traceback logged for bugs
        return failure_alert(exc, log, f"showing study {study_id}"), hidden, hidden, None, None, True
    return v["head"], shown, shown if v["charts"] else hidden, v["ablation"], v["trials"], not v["promotable"]


@callback(Output("studies-chart", "children"), Input("studies-tabs", "active_tab"), Input("studies-pick", "value"),
          Input("studies-status", "data"))
def show_chart(tab, study_id, status=None):
    """A new dcc.Graph per tab (a graph created hidden renders at the wrong width); while a
    job runs, its progress does not redraw the chart (fANOVA refits a forest each time)."""
    from ml.study import load_optuna_study, study_report
    from viz import study as charts

    if triggered_id() == "studies-status" and (status or {}).get("state") in jobs.ACTIVE:
        return no_update
    if not study_id or tab not in CHARTS:
        return None
    try:
        report = study_report(study_id)
        if report["kind"] != "search":
            return None
        ost = load_optuna_study(study_id)
        metric = report["objective"]["metric"]
        fig = {"history": charts.history_figure, "importance": charts.importance_figure,
               "parallel": charts.parallel_figure, "slice": charts.slice_figure}[tab](ost, metric)
    except Exception as exc:  # noqa: BLE001
        return failure_alert(exc, log, f"drawing the {CHARTS[tab]} chart")
    return dcc.Graph(id="studies-chart-graph", figure=fig, config={"displaylogo": False, "responsive": True})


@callback(Output("studies-promote-feedback", "children"), Input("studies-promote", "n_clicks"),
          Input("studies-pick", "value"), prevent_initial_call=True)
def promote(n, study_id):
    """Make the shown study's best trial the active model (another study shown: clear the note)."""
    from ml.study import promote as promote_best

    if triggered_id() == "studies-pick":
        return None
    if not n or not study_id:
        return no_update
    try:
        entry = promote_best(study_id)
    except AlmanacError as exc:
        return error_alert(exc.message, title="Not promoted")
    return success_alert(f"{entry['run_id']} is now the active model of {entry['symbol']} / {entry['label']}",
                         title="Promoted")


__all__ = ["space_to_search", "form_to_study", "check_study_form", "verdict_text", "layout"]
