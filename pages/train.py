"""``/train`` — set up an experiment, train it in the background, see its walk-forward scores.

* **Form → spec.** Every field of the form has a pattern id ``{"type": "train-field",
  "name": <name>}`` (model parameters: ``{"type": "train-param", "kind", "name"}``);
  :func:`form_to_dict` maps the field values to the experiment spec's dict and
  :func:`check_form` validates it with ``almanac.spec.spec_from_dict``. Each change shows
  the spec's one-line SpecError under the form (Train disabled) or the spec as YAML (a
  collapsible block and a download), which ``python -m almanac train --config FILE.yaml``
  runs to the same numbers.
* **Train.** One click fires two callbacks with the same inputs: :func:`submit` (fast)
  validates again, records the job as ``queued`` and puts its id in the app-level
  session store; :func:`train_job` (a background callback on the DiskcacheManager, a
  forked process) runs ``ml.runner.run_experiment`` through
  :func:`pages._components.jobs.run_job`, which writes the job's progress and outcome to
  its status file. The page draws the progress bar (stage and fold), the buttons and the
  result from the app-level status store (``pages/_components/jobs.py`` explains why:
  the job survives leaving the page).
* **Cancel** terminates the job process (SIGTERM, then SIGKILL), removes its temporary
  run folder and marks the job cancelled; nothing reaches the registry.
* **Result.** The run's warnings on top (light yellow, one line each), per-fold scores
  (``cv-scores-graph``: points with 95 % intervals around the no-skill line, and a table
  with the fold dates and each accuracy's base rate), the pooled metrics, the naive
  baselines beside them (when the run recorded them) and links to ``/evaluate?run=<id>``
  and ``/backtest?run=<id>``; a failed job shows its reason in a red alert.
* **Name and notes.** The name goes to the spec (``name``); the free-text notes are kept
  in ``run.json["user_notes"]`` after the run (:func:`train_and_label`,
  ``almanac.registry.update_run_labels``), both editable later on /models.
"""

from __future__ import annotations

import logging
import math

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, dcc, html, no_update

from almanac import registry
from almanac.errors import AlmanacError, SpecError
from almanac.sessions import INTRADAY_FREQS
from almanac.settings import get_settings
from almanac.spec import spec_from_dict
from almanac.store import Store
from features.build import user_sets
from features.lineage import ALL_SETS, FEATURE_SETS, SEQUENCE_SETS
from ml.regimes import HMM_SET
from ml.labelers import LABELS
from ml.models import MODEL_KINDS, default_params
from pages._components import (empty_state, error_alert, failure_alert, info_alert, page_header, page_token,
                               read_catalog, section)
from pages._components import jobs
from pages._components.runs import NO_TABLE_BACKTEST, base_rate, baselines_view, run_warnings, table_run
from viz.evaluation import cv_scores_figure

dash.register_page(__name__, path="/train", name="Train", order=3, title="Train · Almanac ML Lab",
                   description="Pick a label, a model and a walk-forward scheme; train in the background.")

log = logging.getLogger(__name__)

FIELD = "train-field"
PARAM = "train-param"

#: The form's defaults: a spec that runs on the sample data in seconds.
DEFAULTS = {
    "name": "", "notes": "",
    "symbol": "ES", "start": "", "end": "", "cutoff": "10:15",
    "sets": ["early_session", "cross_asset", "regime"], "cross_assets": ["VIX", "CL"],
    "label": "rest_of_day", "kind": "lightgbm", "label_k": 1.0, "label_classes": "multiclass", "label_side": "up",
    "scheme": "expanding", "n_splits": 5, "gap": 1, "min_train": 250, "train_size": None,
    "threshold": 0.55, "cost_bps": 1.0, "long_only": [], "target": "",
}
#: A table dataset in the symbol list: ``table:<name>`` (its rows, not bars; see ml.tabular).
TABLE_PREFIX = "table:"
SET_NAMES = {"tables": "your tables", "plugins": "your plugins", HMM_SET: "HMM regime (fitted per fold)"}


#: The main parameters shown per model kind: (name, label, input type, step, min).
MODEL_PARAMS: dict[str, list[tuple[str, str, str, float | None, float | None]]] = {
    "lightgbm": [("n_estimators", "Trees", "int", 1, 1), ("learning_rate", "Learning rate", "float", 0.005, 0),
                 ("num_leaves", "Leaves per tree", "int", 1, 2)],
    "logistic": [("C", "C (inverse penalty; classification labels)", "float", 0.01, 0),
                 ("alpha", "alpha (ridge penalty; forward return)", "float", 0.01, 0)],
    "random_forest": [("n_estimators", "Trees", "int", 1, 1),
                      ("max_depth", "Max depth (blank: unlimited)", "int", 1, 1)],
    "xgboost": [("n_estimators", "Trees", "int", 1, 1), ("max_depth", "Max depth", "int", 1, 1),
                ("learning_rate", "Learning rate", "float", 0.005, 0)],
    "hist_gb": [("max_iter", "Boosting rounds", "int", 1, 1), ("learning_rate", "Learning rate", "float", 0.005, 0)],
    "knn": [("n_neighbors", "Neighbours (similar days that vote)", "int", 1, 1)],
    "minirocket": [("num_kernels", "Kernels (features: a multiple of 84)", "int", 84, 84),
                   ("C", "C (logistic penalty; classification labels)", "float", 0.001, 0),
                   ("alpha", "alpha (ridge penalty; forward return)", "float", 1, 0)],
}
#: Parameters that apply to one task family only (logistic: C classifies, alpha regresses).
_ONLY_FOR = {("logistic", "C"): "classifier", ("logistic", "alpha"): "regressor",
             ("minirocket", "C"): "classifier", ("minirocket", "alpha"): "regressor"}
MODEL_NAMES = {"lightgbm": "LightGBM", "logistic": "Logistic regression", "random_forest": "Random forest",
               "xgboost": "XGBoost", "hist_gb": "Histogram gradient boosting", "knn": "k nearest neighbours (similar days)",
               "minirocket": "MiniRocket on the raw minute path"}
#: Scores shown per task, most telling first: the first one present is charted per fold,
#: all present ones fill the fold table and the pooled tiles.
CV_METRICS = {"binary": ("roc_auc", "accuracy", "balanced_accuracy", "log_loss", "brier", "ece"),
              "multiclass": ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "brier"),
              "regression": ("ic", "hit_rate", "r2", "rmse", "mae")}
#: Folds table: at most this many score columns (readable at 1366 px).
TABLE_METRICS = 3
METRIC_NAMES = {"roc_auc": "ROC AUC", "log_loss": "log loss", "balanced_accuracy": "balanced accuracy",
                "ece": "ECE", "ic": "IC (rank corr.)", "hit_rate": "hit rate", "r2": "R²", "rmse": "RMSE",
                "mae": "MAE"}


def metric_name(m: str) -> str:
    return METRIC_NAMES.get(m, m.replace("_", " "))


# ----------------------------------------------------------------------------- pure helpers
def default_param_values(kind: str) -> dict:
    """Initial values of ``kind``'s shown parameters: the model factory's defaults."""
    merged = {**default_params(kind, "binary"), **default_params(kind, "regression")}
    return {name: merged.get(name) for name, *_ in MODEL_PARAMS[kind]}


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip()) or \
        (isinstance(value, float) and math.isnan(value))


def _number(value, name: str, integer: bool):
    if _blank(value):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{name} {value!r} is not a number: enter a number") from None
    if integer:
        if x != int(x):
            raise SpecError(f"{name} must be a whole number, got {value}")
        return int(x)
    return x


def collect(values: list, ids: list[dict]) -> dict:
    """``{name: value}`` from a pattern-matching ALL ``value`` list and its ``id`` list."""
    return {i["name"]: v for i, v in zip(ids, values)}


def collect_params(values: list, ids: list[dict]) -> dict[str, dict]:
    """``{kind: {name: value}}`` from the model-parameter inputs."""
    out: dict[str, dict] = {}
    for i, v in zip(ids, values):
        out.setdefault(i["kind"], {})[i["name"]] = v
    return out


def model_params(kind: str, task: str, values: dict) -> dict:
    """The parameters ``kind`` gets from the form: the shown ones that are filled in and
    apply to the label's ``task`` (logistic: C for classification, alpha for regression)."""
    role = "regressor" if task == "regression" else "classifier"
    out = {}
    for name, label, typ, *_ in MODEL_PARAMS.get(kind, []):
        if _ONLY_FOR.get((kind, name), role) != role:
            continue
        x = _number(values.get(name), f"{MODEL_NAMES.get(kind, kind)} {name}", typ == "int")
        if x is not None:
            out[name] = x
    return out


def label_section(label: str, fields: dict) -> dict:
    """The spec's label section: the kind and, for a path label, the parameters it takes
    (``label_k``, ``label_classes``, ``label_side`` of the form; blank k: the default)."""
    out: dict = {"kind": label}
    for name in LABELS[label].params if label in LABELS else ():
        value = fields.get(f"label_{name}")
        if _blank(value):
            continue
        out[name] = _number(value, "label k", False) if name == "k" else value
    return out


def form_to_dict(fields: dict, params: dict[str, dict]) -> dict:
    """The experiment spec (as a dict) described by the form's field values.

    ``fields``: symbol, start, end, cutoff, sets, cross_assets, label, kind, scheme,
    n_splits, gap, min_train, train_size, threshold, cost_bps, long_only (checklist);
    ``params``: ``{kind: {name: value}}``. Blank dates mean "from the first / to the
    last day"; a blank rolling window means ``min_train``.
    """
    label = fields.get("label") or DEFAULTS["label"]
    label_part = label_section(label, fields)
    task = LABELS[label].task if label in LABELS else "binary"
    if label_part.get("classes") == "binary":  # first_touch with "neither" dropped
        task = "binary"
    kind = fields.get("kind") or DEFAULTS["kind"]
    scheme = fields.get("scheme") or DEFAULTS["scheme"]
    sets = [s for s in (*ALL_SETS, HMM_SET) if s in (fields.get("sets") or [])]
    name = "" if _blank(fields.get("name")) else str(fields["name"]).strip()
    validation = {
        "scheme": scheme,
        "n_splits": _number(fields.get("n_splits"), "splits", True),
        "gap": _number(fields.get("gap"), "gap", True),
        "min_train": _number(fields.get("min_train"), "min train", True),
        "train_size": _number(fields.get("train_size"), "rolling window", True) if scheme == "rolling" else None,
    }
    symbol = (fields.get("symbol") or "").strip()
    if symbol.startswith(TABLE_PREFIX):  # a table dataset: its target column is the label, no backtest
        target = "" if _blank(fields.get("target")) else str(fields["target"]).strip()
        return {
            **({"name": name} if name else {}),
            "data": {"table": symbol[len(TABLE_PREFIX):], "target": target or None,
                     "start": None if _blank(fields.get("start")) else str(fields["start"])[:10],
                     "end": None if _blank(fields.get("end")) else str(fields["end"])[:10]},
            "label": {"kind": "column"},
            "model": {"kind": kind, "params": model_params(kind, "regression", params.get(kind, {}))},
            "validation": validation,
        }
    return {
        **({"name": name} if name else {}),
        "data": {
            "symbol": symbol.upper(),
            "start": None if _blank(fields.get("start")) else str(fields["start"])[:10],
            "end": None if _blank(fields.get("end")) else str(fields["end"])[:10],
        },
        "features": {"sets": sets, "cutoff": (fields.get("cutoff") or "").strip(),
                     "cross_assets": list(fields.get("cross_assets") or []) if "cross_asset" in sets else []},
        "label": label_part,
        "model": {"kind": kind, "params": model_params(kind, task, params.get(kind, {}))},
        "validation": validation,
        "backtest": {
            "threshold": _number(fields.get("threshold"), "threshold", False),
            "cost_bps": _number(fields.get("cost_bps"), "cost", False),
            "long_only": "long_only" in (fields.get("long_only") or []),
        },
    }


def build_spec(fields: dict, params: dict[str, dict]):
    """The validated spec object of the form (SpecError with a one-line message if invalid)."""
    return spec_from_dict(form_to_dict(fields, params))


def check_form(fields: dict, params: dict[str, dict]) -> tuple[str | None, str | None]:
    """``(yaml, None)`` for a valid form, ``(None, message)`` otherwise (the run's notes are
    checked too: they go to ``run.json["user_notes"]``, not to the spec)."""
    try:
        registry.check_labels(notes=fields.get("notes"))
        return build_spec(fields, params).to_yaml(), None
    except AlmanacError as exc:
        return None, exc.message
    except Exception as exc:  # noqa: BLE001 - a bug in validation: say so, log the traceback
        log.error("validating the experiment form failed", exc_info=exc)
        return None, f"the form could not be checked ({type(exc).__name__}); see the server log"


def data_span(symbol: str | None, store: Store | None = None) -> tuple[str, str] | None:
    """``(first, last)`` exchange-local dates of ``symbol``'s minute data (else daily), from the catalog."""
    if not symbol or symbol.startswith(TABLE_PREFIX):
        return None
    store = store or Store()
    for freq in (*INTRADAY_FREQS, "1d"):
        if store.has(symbol, freq):
            e = store.entry(symbol, freq)
            days = [pd.Timestamp(t) for t in (e.start, e.end)]
            days = [t.tz_convert(e.tz) if t.tzinfo else t for t in days]
            return f"{days[0]:%Y-%m-%d}", f"{days[1]:%Y-%m-%d}"
    return None


def train_and_label(spec, progress=None, notes: str | None = None) -> dict:
    """Run the experiment, then keep the user's free-text ``notes`` in its ``run.json``
    (``user_notes``; the spec holds the name)."""
    from ml.runner import run_experiment

    _name, text = registry.check_labels(notes=notes)  # refused before any work
    run = run_experiment(spec, progress=progress)
    if text:
        run = registry.update_run_labels(run["run_id"], notes=text)
    return run


def run_slug(spec) -> str:
    """The part of the spec's run ids after the time stamp (``es-rest-of-day-lightgbm``)."""
    return registry.new_run_id(spec.data.symbol or spec.data.table, spec.label.kind, spec.model.kind).split("-", 2)[2].rsplit("-", 1)[0]


def yaml_filename(fields: dict) -> str:
    parts = [fields.get("symbol") or "experiment", fields.get("label") or "", fields.get("kind") or ""]
    return "-".join(str(p).lower().replace("_", "-").replace(":", "-") for p in parts if p) + ".yaml"


def progress_view(status: dict | None) -> dict:
    """What the progress panel shows for a job status.

    Returns ``visible``, ``value`` (0..100), ``label`` (text inside the bar), ``stage``
    (the line above it), ``animated`` and ``color``.
    """
    if not status:
        return {"visible": False, "value": 0, "label": "", "stage": "", "animated": False, "color": "primary"}
    state = status.get("state")
    pct = int(round(100 * float(status.get("fraction") or 0.0)))
    stage = status.get("stage") or ""
    if state == "queued":
        return {"visible": True, "value": 2, "label": "", "stage": "Queued: waiting for the job to start…",
                "animated": True, "color": "primary"}
    if state == "running":
        return {"visible": True, "value": max(pct, 2), "label": f"{pct}%",
                "stage": f"Training: {stage}" if stage else "Training…", "animated": True, "color": "primary"}
    if state == "done":
        return {"visible": True, "value": 100, "label": "100%", "stage": "Finished", "animated": False,
                "color": "success"}
    if state == "cancelled":
        return {"visible": True, "value": pct, "label": f"{pct}%" if pct else "",
                "stage": "Cancelled: the job was stopped and nothing was registered", "animated": False,
                "color": "secondary"}
    return {"visible": True, "value": max(pct, 2), "label": "", "stage": f"Failed at: {stage}" if stage else
            "Failed", "animated": False, "color": "danger"}


def shown_metrics(scores, task: str | None) -> list[str]:
    """The scores of :data:`CV_METRICS` for ``task`` that ``scores`` (a fold table or the
    pooled metrics dict) holds with at least one finite value, in that order."""
    df = pd.DataFrame(scores) if isinstance(scores, (list, pd.DataFrame)) else pd.DataFrame([scores or {}])
    return [m for m in CV_METRICS.get(task or "binary", CV_METRICS["binary"])
            if m in df.columns and pd.to_numeric(df[m], errors="coerce").notna().any()]


def fold_table_frame(folds: list[dict], task: str | None) -> pd.DataFrame:
    """The fold table under the chart: fold (from 1), train and test date ranges, their
    sizes in trading days and the first :data:`TABLE_METRICS` scores (4 decimals); an
    accuracy is followed by the fold's base rate (share of up days)."""
    df = pd.DataFrame(folds)
    if df.empty:
        return df
    out = pd.DataFrame({
        "Fold": df["fold"].astype(int) + 1,
        "Train": df["train_start"].str[:10] + " → " + df["train_end"].str[:10],
        "Test": df["test_start"].str[:10] + " → " + df["test_end"].str[:10],
        "Train days": df["n_train"].astype(int), "Test days": df["n_test"].astype(int),
    })
    shown = shown_metrics(df, task)[:TABLE_METRICS]
    for m in shown:
        out[metric_name(m)] = [f"{x:.4f}" for x in pd.to_numeric(df[m], errors="coerce")]
        if m == "accuracy" and "base_rate" in df.columns:  # what the accuracy has to beat, beside it
            out["base rate"] = [f"{x:.4f}" for x in pd.to_numeric(df["base_rate"], errors="coerce")]
    return out


# ----------------------------------------------------------------------------- layout
def _field(name: str) -> dict:
    return {"type": FIELD, "name": name}


def _labelled(label: str, control, hint: str | None = None, width: int | None = None) -> dbc.Col:
    kids = [dbc.Label(label, className="mb-1 small fw-bold"), control]
    if hint:
        kids.append(html.Div(hint, className="almanac-hint"))
    return dbc.Col(kids, xs=width or 12, className="mb-2")


def _number_input(name: str, value, step, minimum=None, maximum=None) -> dbc.Input:
    return dbc.Input(id=_field(name), type="number", value=value, step=step, min=minimum, max=maximum, size="sm")


def _param_group(kind: str, values: dict) -> html.Div:
    cols = []
    for name, label, typ, step, minimum in MODEL_PARAMS[kind]:
        cols.append(_labelled(label, dbc.Input(id={"type": PARAM, "kind": kind, "name": name}, type="number",
                                               value=values.get(name), step=step, min=minimum, size="sm"),
                              width=6 if len(MODEL_PARAMS[kind]) > 1 else 12))
    return html.Div(dbc.Row(cols, className="g-2"), id={"type": "train-param-group", "kind": kind},
                    style={"display": "block" if kind == DEFAULTS["kind"] else "none"})


def _symbols(entries) -> tuple[list[str], list[str]]:
    """(target choices: symbols with minute bars first, every symbol in the catalog)."""
    minute = sorted({e.symbol for e in entries if e.freq != "1d"})
    every = sorted({e.symbol for e in entries})
    return minute + [s for s in every if s not in minute], every


def table_choices(home=None) -> list[dict]:
    """The dataset tables offered beside the symbols (the option sample always: it is written
    on first use), as select options ``table:<name>``."""
    from almanac.sample_options import SAMPLE_TABLE
    from almanac.tables import Tables

    try:
        names = [e.name for e in Tables(home).list("dataset")]
    except AlmanacError:
        names = []
    names = sorted(set(names) | {SAMPLE_TABLE})
    return [{"label": f"{n} (table{', sample' if n == SAMPLE_TABLE else ''})", "value": TABLE_PREFIX + n}
            for n in names]


def table_target(symbol: str | None, home=None) -> str:
    """The default target of a table choice: ``delta`` for the sample, else its last numeric column."""
    from almanac.sample_options import SAMPLE_TABLE
    from almanac.tables import Tables

    if not symbol or not symbol.startswith(TABLE_PREFIX):
        return ""
    name = symbol[len(TABLE_PREFIX):]
    if name == SAMPLE_TABLE:
        return "delta"
    try:
        return Tables(home).entry(name, "dataset").numeric[-1]
    except (AlmanacError, IndexError):
        return ""


def _form(targets: list[str], symbols: list[str]) -> list:
    d = DEFAULTS
    symbol = d["symbol"] if d["symbol"] in targets else (targets[0] if targets else None)
    sets = [*FEATURE_SETS, HMM_SET, *SEQUENCE_SETS, *user_sets()]
    label_options = [{"label": f"{k.replace('_', ' ')} ({v.task}{' or binary' if 'classes' in v.params else ''})",
                      "value": k} for k, v in LABELS.items()]
    return [
        html.H3("Run", className="almanac-subheading"),
        dbc.Row([
            _labelled("Name (optional)", dbc.Input(id=_field("name"), value=d["name"], type="text", size="sm",
                                                   maxLength=registry.NAME_MAX_CHARS, debounce=True,
                                                   placeholder="default: <symbol>-<label>-<model>"), width=12),
            _labelled("Notes (optional)", dbc.Textarea(id=_field("notes"), value=d["notes"], size="sm", rows=2,
                                                       maxLength=registry.NOTES_MAX_CHARS, debounce=True,
                                                       placeholder="what you are trying, for later"), width=12),
        ], className="g-2"),
        html.H3("Data", className="almanac-subheading mt-2"),
        dbc.Row([
            _labelled("Symbol or table", dbc.Select(id=_field("symbol"), value=symbol, size="sm",
                                                    options=[{"label": s, "value": s} for s in targets]
                                                    + table_choices()), width=4),
            _labelled("Start", dbc.Input(id=_field("start"), type="date", value=d["start"], size="sm"), width=4),
            _labelled("End", dbc.Input(id=_field("end"), type="date", value=d["end"], size="sm"), width=4),
        ], className="g-2"),
        html.Div(id="train-range-hint", className="almanac-hint mb-2"),
        html.Div(dbc.Row(_labelled("Target column (the label; its values decide the task)",
                                   dbc.Input(id=_field("target"), value=d["target"], type="text", size="sm",
                                             debounce=True, placeholder="e.g. delta"), width=6), className="g-2"),
                 id="train-target-wrap", style={"display": "none"}),
        html.Div([html.H3("Features", className="almanac-subheading mt-2"),
        dbc.Row([
            _labelled("Cutoff (exchange time)", dbc.Input(id=_field("cutoff"), value=d["cutoff"], type="text",
                                                          size="sm", debounce=True), width=4),
            _labelled("Feature sets", dbc.Checklist(id=_field("sets"), value=d["sets"], inline=True,
                                                    options=[{"label": SET_NAMES.get(s, s.replace("_", " ")),
                                                              "value": s} for s in sets]), width=8),
        ], className="g-2"),
        _labelled("Cross-asset symbols (daily closes up to the day before)",
                  dbc.Checklist(id=_field("cross_assets"), inline=True,
                                value=[s for s in d["cross_assets"] if s in symbols and s != symbol],
                                options=[{"label": s, "value": s} for s in symbols]))], id="train-bar-features"),
        html.H3("Label and model", className="almanac-subheading mt-2"),
        dbc.Row([
            html.Div(_labelled("Label", dbc.Select(id=_field("label"), value=d["label"], options=label_options,
                                                   size="sm")), id="train-label-col", className="col-6"),
            _labelled("Model", dbc.Select(id=_field("kind"), value=d["kind"], size="sm",
                                          options=[{"label": MODEL_NAMES.get(k, k), "value": k}
                                                   for k in MODEL_KINDS]), width=6),
        ], className="g-2"),
        dbc.Row([  # a path label's parameters, shown for the labels that take them (show_params)
            html.Div(_labelled("Barrier k (× ATR of D−1)", _number_input("label_k", d["label_k"], 0.05, 0)),
                     id={"type": "train-label-param", "name": "k"}, className="col-4", style={"display": "none"}),
            html.Div(_labelled("Classes", dbc.Select(id=_field("label_classes"), value=d["label_classes"], size="sm",
                                                     options=[{"label": "up / down / neither", "value": "multiclass"},
                                                              {"label": "up / down (neither dropped)",
                                                               "value": "binary"}])),
                     id={"type": "train-label-param", "name": "classes"}, className="col-8", style={"display": "none"}),
            html.Div(_labelled("Side", dbc.Select(id=_field("label_side"), value=d["label_side"], size="sm",
                                                  options=[{"label": "up (favourable to a long)", "value": "up"},
                                                           {"label": "down (adverse to a long)", "value": "down"}])),
                     id={"type": "train-label-param", "name": "side"}, className="col-8", style={"display": "none"}),
        ], className="g-2"),
        html.Div(id="train-label-hint", className="almanac-hint mb-2"),
        html.Div("The label is the table's target column.", id="train-table-label", className="almanac-hint mb-2",
                 style={"display": "none"}),
        html.Div([_param_group(k, default_param_values(k)) for k in MODEL_KINDS]),
        html.H3("Walk-forward validation", className="almanac-subheading mt-2"),
        dbc.Row([
            _labelled("Scheme", dbc.Select(id=_field("scheme"), value=d["scheme"], size="sm",
                                           options=[{"label": "expanding window", "value": "expanding"},
                                                    {"label": "rolling window", "value": "rolling"}]), width=4),
            _labelled("Folds", _number_input("n_splits", d["n_splits"], 1, 1, 50), width=2),
            _labelled("Gap (days)", _number_input("gap", d["gap"], 1, 0), width=2),
            _labelled("Min train (days)", _number_input("min_train", d["min_train"], 1, 1), width=4),
        ], className="g-2"),
        html.Div(dbc.Row(_labelled("Rolling window (days; blank: min train)",
                                   _number_input("train_size", d["train_size"], 1, 1), width=6), className="g-2"),
                 id="train-size-wrap", style={"display": "none"}),
        html.H3("Backtest", className="almanac-subheading mt-2"),
        html.Div(NO_TABLE_BACKTEST, id="train-table-note", className="almanac-hint mb-1", style={"display": "none"}),
        dbc.Row(id="train-bar-backtest", className="g-2", children=[
            _labelled("Threshold P(up)", _number_input("threshold", d["threshold"], 0.01, 0.5, 1.0), width=4),
            _labelled("Cost (bp per side)", _number_input("cost_bps", d["cost_bps"], 0.1, 0), width=4),
            _labelled("Positions", dbc.Checklist(id=_field("long_only"), value=d["long_only"], switch=True,
                                                 options=[{"label": "long only", "value": "long_only"}]), width=4),
        ]),
        html.Div(id="train-form-feedback", className="mt-2"),
        html.Div(id="train-submit-feedback"),
        html.Div([
            dbc.Button("Train", id="train-button", color="primary", n_clicks=0, className="me-2 px-4"),
            dbc.Button("Cancel", id="cancel-button", color="danger", outline=True, n_clicks=0, disabled=True,
                       className="me-2"),
            dbc.Button("Show as YAML", id="train-yaml-toggle", color="link", n_clicks=0, className="ms-auto"),
            dbc.Button("Download YAML", id="train-yaml-download-button", color="secondary", outline=True,
                       size="sm", n_clicks=0),
        ], className="d-flex align-items-center mt-2"),
        dbc.Collapse([
            html.Pre(html.Code(id="train-yaml"), className="bg-light border rounded p-2 mt-2 mb-1 small",
                     style={"maxHeight": "22rem", "overflow": "auto", "whiteSpace": "pre-wrap"}),
            html.Div(["Repeat this run from a terminal: ", html.Code("python -m almanac train --config FILE.yaml")],
                     className="almanac-hint"),
        ], id="train-yaml-collapse", is_open=False),
        dcc.Download(id="train-yaml-download"),
    ]


def layout(**_query):
    entries, problem = read_catalog(log)
    targets, symbols = _symbols(entries)
    if not targets and problem is None:
        problem = info_alert(["the data home holds no bars yet: import some on the ",
                              dcc.Link("Data page", href="/data"), " first."], title="No market data")
    return html.Div([
        page_token("train-token"),
        dcc.Store(id="train-spec-ok", data=False),
        dcc.Store(id="spec-draft", storage_type="session"),  # the form's spec for /studies (same tab)
        dcc.Store(id="train-job-finished"),
        page_header("Train", "Describe an experiment, train it walk-forward in the background, "
                             "and see how each fold scored.", page_id="train"),
        problem,
        dbc.Row([
            dbc.Col(section("Experiment", *_form(targets, symbols),
                            subtitle="Defaults run on the sample data in well under a minute.",
                            section_id="train-form-section"), lg=5),
            dbc.Col([
                section("Progress",
                        html.Div([
                            html.Div(id="train-stage", className="mb-1 fw-bold"),
                            dbc.Progress(id="train-progress", value=0, label="", striped=True,
                                         style={"height": "1.4rem"}),
                        ], id="train-progress-wrap", style={"display": "none"}),
                        html.Div(id="train-idle", children="No job running. Press Train to start one.",
                                 className="almanac-hint"),
                        section_id="train-progress-section"),
                section("Result", html.Div(id="train-result"), section_id="train-result-section",
                        class_name="mt-3"),
            ], lg=7),
        ], className="g-3"),
    ])


# ----------------------------------------------------------------------------- result view
def _tile(value: str, label: str) -> dbc.Col:
    return dbc.Col(html.Div([html.Div(value, className="almanac-stat-value"),
                             html.Div(label, className="almanac-stat-label")], className="almanac-stat"),
                   xs=6, md=3, className="mb-2")


def pooled_tiles(run: dict) -> dbc.Row:
    """Tiles: the pooled out-of-fold scores (accuracy followed by its base rate), the
    out-of-fold days and the backtest Sharpe."""
    metrics = run.get("metrics") or {}
    tiles = []
    rate = base_rate(run)
    for m in shown_metrics(metrics, run.get("task")):
        tiles.append(_tile(f"{metrics[m]:.4f}", metric_name(m)))
        if m == "accuracy" and rate:
            tiles.append(_tile(f"{rate[1]:.4f}", rate[0]))
    if isinstance(metrics.get("n"), (int, float)):
        tiles.append(_tile(f"{int(metrics['n']):,}", "out-of-fold days"))
    sharpe = (run.get("backtest") or {}).get("sharpe")
    if isinstance(sharpe, (int, float)) and math.isfinite(sharpe):
        tiles.append(_tile(f"{sharpe:.2f}", "backtest Sharpe"))
    return dbc.Row(tiles, className="g-2", id="train-pooled-metrics")


def result_view(run: dict):
    """The result panel of a finished run (its ``run.json`` dict)."""
    run_id, task = run["run_id"], run.get("task")
    folds = pd.DataFrame(run.get("folds") or [])
    metric = (shown_metrics(folds, task) or ["roc_auc"])[0]
    fig = cv_scores_figure(folds, metric, label=metric_name(metric),
                           reference=0.5 if metric in ("roc_auc", "hit_rate") else None)
    table = fold_table_frame(run.get("folds") or [], task)
    baselines = baselines_view(run, "train")
    notes = run.get("user_notes")
    return html.Div([
        run_warnings(run, "train"),
        html.Div([html.Strong(run.get("name") or "Run", id="train-run-name"), " ", html.Code(run_id, id="train-run-id"),
                  html.Span(f" · {len(folds)} folds · {int(run.get('n_rows') or 0):,} labelled "
                            + ("rows" if table_run(run) else "days"),
                            className="almanac-hint")],
                 className="mb-2"),
        html.Div(notes, className="almanac-hint almanac-notes mb-2", id="train-run-notes") if notes else None,
        dcc.Graph(id="cv-scores-graph", figure=fig, config={"displaylogo": False, "responsive": True}),
        html.H3("Pooled out-of-fold scores", className="almanac-subheading mt-2"),
        pooled_tiles(run),
        *([html.H3("Beside the naive baselines (same out-of-fold days)", className="almanac-subheading mt-2"),
           baselines] if baselines else []),
        html.H3("Folds", className="almanac-subheading mt-2"),
        dbc.Table.from_dataframe(table, size="sm", hover=True, className="almanac-table", id="train-fold-table"),
        html.Div([
            dbc.Button("Evaluate this run", href=f"/evaluate?run={run_id}", color="primary", className="me-2",
                       id="train-to-evaluate"),
            (html.Span(NO_TABLE_BACKTEST, className="almanac-hint", id="train-no-backtest")
             if table_run(run) else
             dbc.Button("Backtest this run", href=f"/backtest?run={run_id}", color="primary", outline=True,
                        id="train-to-backtest")),
        ], className="mt-2"),
    ])


def status_result(status: dict | None):
    """The result panel for a job status: empty state, running note, alert or the run."""
    if not status:
        return empty_state("No run yet", "Set up the experiment on the left (the defaults work on the sample "
                                         "data) and press Train.")
    state = status.get("state")
    if state in jobs.ACTIVE:
        return info_alert("the scores of each fold appear here when the run finishes. You can leave this page; "
                          "the job keeps running and this page shows it when you come back.", title="Training")
    if state == "cancelled":
        return info_alert("the job was stopped; nothing was registered. Press Train to start again.",
                          title="Cancelled")
    if state == "failed":
        return error_alert(status.get("error") or "the job failed; see the server log", title="Training failed")
    try:
        return result_view(registry.get_run(status["run_id"]))
    except AlmanacError as exc:
        return error_alert(exc.message, title="Could not show the run")
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return failure_alert(exc, log, f"showing run {status.get('run_id')}")


# ----------------------------------------------------------------------------- callbacks
FORM_STATE = [State({"type": FIELD, "name": ALL}, "value"), State({"type": FIELD, "name": ALL}, "id"),
              State({"type": PARAM, "kind": ALL, "name": ALL}, "value"),
              State({"type": PARAM, "kind": ALL, "name": ALL}, "id")]


@callback(
    Output({"type": "train-param-group", "kind": ALL}, "style"), Output("train-size-wrap", "style"),
    Output("train-label-hint", "children"), Output({"type": "train-label-param", "name": ALL}, "style"),
    Input(_field("kind"), "value"), Input(_field("scheme"), "value"), Input(_field("label"), "value"),
    State({"type": "train-param-group", "kind": ALL}, "id"), State({"type": "train-label-param", "name": ALL}, "id"),
)
def show_params(kind, scheme, label, group_ids, label_param_ids=()):
    """Show the chosen model's parameters, the rolling window for the rolling scheme, the label's
    meaning and the parameters it takes (a path label's k, classes, side)."""
    styles = [{"display": "block" if g["kind"] == kind else "none"} for g in group_ids]
    hint = LABELS[label].description if label in LABELS else ""
    takes = LABELS[label].params if label in LABELS else ()
    shown = [{"display": "block" if i["name"] in takes else "none"} for i in label_param_ids or []]
    return styles, {"display": "block" if scheme == "rolling" else "none"}, hint, shown


@callback(
    Output(_field("cross_assets"), "options"), Output(_field("cross_assets"), "value"),
    Output("train-range-hint", "children"), Output(_field("start"), "min"), Output(_field("start"), "max"),
    Output(_field("end"), "min"), Output(_field("end"), "max"),
    Input(_field("symbol"), "value"), State(_field("cross_assets"), "options"), State(_field("cross_assets"), "value"),
)
def follow_symbol(symbol, options, chosen):
    """The target cannot be its own cross asset; say (and bound the dates by) its data range."""
    options = [{**o, "disabled": o["value"] == symbol} for o in options or []]
    chosen = [c for c in chosen or [] if c != symbol]
    span = data_span(symbol)
    if span is None:
        return options, chosen, "", None, None, None, None
    hint = f"{symbol} data: {span[0]} → {span[1]}. Blank dates: all of it."
    return options, chosen, hint, *span, *span


@callback(
    Output("train-target-wrap", "style"), Output("train-table-note", "style"), Output(_field("target"), "value"),
    Output("train-bar-features", "style"), Output("train-label-col", "style"), Output("train-label-hint", "style"),
    Output("train-table-label", "style"), Output("train-bar-backtest", "style"),
    Input(_field("symbol"), "value"), State(_field("target"), "value"),
)
def follow_table(symbol, target):
    """A table choice shows its target field (default: ``delta`` for the sample), says it has no
    backtest, and hides what only bars have (cutoff, feature sets, label kinds, trading rules)."""
    show, hide = {"display": "block"}, {"display": "none"}
    if symbol and symbol.startswith(TABLE_PREFIX):
        return show, show, target or table_target(symbol), hide, hide, hide, show, hide
    return hide, hide, target, show, show, show, hide, {"display": "flex"}


@callback(
    Output("train-form-feedback", "children"), Output("train-yaml", "children"), Output("train-spec-ok", "data"),
    Output("train-yaml-download-button", "disabled"), Output("spec-draft", "data"),
    Input({"type": FIELD, "name": ALL}, "value"), Input({"type": PARAM, "kind": ALL, "name": ALL}, "value"),
    State({"type": FIELD, "name": ALL}, "id"), State({"type": PARAM, "kind": ALL, "name": ALL}, "id"),
)
def validate_form(values, param_values, ids, param_ids):
    """Validate the form on every change: the spec's one-line error, or its YAML (also kept in
    the tab's session store ``spec-draft``: /studies starts a study from it)."""
    text, problem = check_form(collect(values, ids), collect_params(param_values, param_ids))
    if problem:
        return error_alert(problem, title="Fix the experiment"), "", False, True, no_update
    return None, text, True, False, text


@callback(Output("train-yaml-collapse", "is_open"), Output("train-yaml-toggle", "children"),
          Input("train-yaml-toggle", "n_clicks"), State("train-yaml-collapse", "is_open"),
          prevent_initial_call=True)
def toggle_yaml(_n, is_open):
    return (not is_open), ("Show as YAML" if is_open else "Hide YAML")


@callback(Output("train-yaml-download", "data"), Input("train-yaml-download-button", "n_clicks"), *FORM_STATE,
          prevent_initial_call=True)
def download_yaml(_n, values, ids, param_values, param_ids):
    fields = collect(values, ids)
    text, problem = check_form(fields, collect_params(param_values, param_ids))
    if problem:
        return no_update
    return dcc.send_string(text, yaml_filename(fields))


@callback(
    Output(jobs.JOB_STORE, "data"), Output("train-submit-feedback", "children"),
    Input("train-button", "n_clicks"), *FORM_STATE, State("train-token", "data"),
    prevent_initial_call=True,
)
def submit(n_clicks, values, ids, param_values, param_ids, token):
    """Validate, record the job as queued and make it the tab's current job."""
    if not n_clicks:
        return no_update, no_update
    try:
        fields = collect(values, ids)
        registry.check_labels(notes=fields.get("notes"))
        spec = build_spec(fields, collect_params(param_values, param_ids))
        job_id = jobs.job_id_for(token, n_clicks)
        if get_settings().redis_url:  # the job runs on a Celery worker: say so if Redis is away
            from ml.scale import ping

            ping()
    except AlmanacError as exc:
        return no_update, error_alert(exc.message, title="Not started")
    # No data reads here: this runs while the job forks, and a fork during a Parquet read
    # in another thread can leave the child deadlocked. The runner's first step checks the
    # spec against the data (symbol present, enough days) and a refusal fails the job.
    jobs.create_status(job_id, run_slug=run_slug(spec))
    return {"job_id": job_id}, None


@callback(
    Output("train-job-finished", "data"),
    Input("train-button", "n_clicks"), *FORM_STATE, State("train-token", "data"),
    background=True, prevent_initial_call=True,
    running=[(Output("train-button", "disabled"), True, False)],  # at once, before the first status poll
)
def train_job(n_clicks, values, ids, param_values, param_ids, token):
    """The background job (a forked process): run the experiment, report through the status file.

    Its output is a store on this page, NOT an app-level one: Dash fires a callback whose
    input is re-inserted by a page change if its output lives outside the new page (even
    with ``prevent_initial_call``), and the renderer then terminates a running job with
    the same output as an "old job". The page and the app read the outcome from the
    status file instead."""
    if not n_clicks:
        return no_update
    try:
        spec = build_spec(collect(values, ids), collect_params(param_values, param_ids))
        job_id = jobs.job_id_for(token, n_clicks)
    except AlmanacError:
        return no_update  # submit() shows why
    return jobs.run_job(job_id, train_and_label, spec, notes=collect(values, ids).get("notes"))


@callback(
    Output(jobs.STATUS_STORE, "data", allow_duplicate=True),
    Input("cancel-button", "n_clicks"), State(jobs.JOB_STORE, "data"),
    prevent_initial_call=True,
)
def cancel(n_clicks, job):
    """Stop the tab's running job for real (the process is terminated) and clean up."""
    if not n_clicks or not (job or {}).get("job_id"):
        return no_update
    runs_dir = get_settings().runs_dir

    def cleanup(status):  # only if the job was killed before its runner could clean up
        if status.get("started_at") and status.get("run_slug"):
            jobs.remove_tmp_runs(runs_dir, status["started_at"], status["run_slug"])

    return jobs.cancel_job(job["job_id"], cleanup=cleanup) or no_update


@callback(
    Output("train-button", "disabled"), Output("cancel-button", "disabled"),
    Output("train-progress-wrap", "style"), Output("train-idle", "style"),
    Output("train-progress", "value"), Output("train-progress", "label"),
    Output("train-progress", "animated"), Output("train-progress", "striped"), Output("train-progress", "color"),
    Output("train-stage", "children"),
    Input(jobs.STATUS_STORE, "data"), Input("train-spec-ok", "data"),
)
def show_job(status, spec_ok):
    """Buttons and progress bar from the app-level job status (survives page changes)."""
    view = progress_view(status)
    running = bool(status) and status.get("state") in jobs.ACTIVE
    shown, hidden = {"display": "block"}, {"display": "none"}
    return (running or not spec_ok, not running, shown if view["visible"] else hidden,
            hidden if view["visible"] else shown, view["value"], view["label"], view["animated"], view["animated"],
            view["color"], view["stage"])


@callback(Output("train-result", "children"), Input(jobs.STATUS_STORE, "data"))
def show_result(status):
    """The result panel: the finished run's scores, or why there is none."""
    return status_result(status)
