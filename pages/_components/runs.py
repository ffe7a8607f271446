"""The run picker shared by /evaluate, /backtest and /models, and the "no runs yet" state.

* :func:`run_label` is how a run is named in a dropdown:
  ``"2026-11-22 08:15 · ES rest_of_day lightgbm · AUC 0.53"`` (creation time in UTC,
  symbol, label, model, and the run's main pooled score: ROC AUC when it has one, else
  the information coefficient of a regression);
* :func:`short_label` is the compact name used in legends and table headers when runs
  are compared (``"lightgbm rest_of_day · 11-22 08:15 · 6bd592"``: the id's random
  suffix keeps two runs of the same minute apart);
* :func:`pick_run` chooses the run a page opens with: the ``?run=<id>`` query parameter
  when that run exists, else the newest run;
* :func:`run_picker` is the dropdown (id ``run-select``) listing the runs newest first.

Runs are the summaries of :func:`almanac.registry.list_runs` (newest first).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import dash_bootstrap_components as dbc
from dash import dcc, html

from almanac import registry
from pages._components.feedback import empty_state, failure_alert
from pages._components.layout import section
from viz.evaluation import baseline_table, lift_text

RUN_SELECT = "run-select"
#: The one sentence /train and /backtest show for a table dataset (issue 14): it has no backtest.
NO_TABLE_BACKTEST = "A table dataset has no backtest: its rows are samples, not trading days to trade."


def table_run(run: dict) -> bool:
    """Whether ``run`` trained on a table dataset (no symbol, no trading day, no backtest)."""
    return str(registry.subject(run) or "").startswith("table:")


def _num(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def created_text(run: dict, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """The run's creation time (UTC) as text, ``"?"`` when unknown."""
    from datetime import datetime

    raw = str(run.get("created_at") or "")
    try:
        return datetime.fromisoformat(raw).strftime(fmt)
    except ValueError:
        return raw[:16].replace("T", " ") or "?"


def main_score(run: dict) -> tuple[str, float] | None:
    """``("AUC", value)`` (pooled ROC AUC) or ``("IC", value)`` (regression), or None."""
    metrics = run.get("metrics") or {}
    for key, name in (("roc_auc", "AUC"), ("ic", "IC")):
        value = _num(metrics.get(key))
        if value is not None:
            return name, value
    return None


def run_label(run: dict) -> str:
    """``"2026-11-22 08:15 · ES rest_of_day lightgbm · AUC 0.53"`` (see the module doc)."""
    what = " ".join(str(run.get(k) or "?") for k in ("symbol", "label", "model"))
    parts = [created_text(run), what]
    score = main_score(run)
    if score:
        parts.append(f"{score[0]} {score[1]:.2f}")
    return " · ".join(parts)


def short_label(run: dict) -> str:
    """``"lightgbm rest_of_day · 11-22 08:15 · 6bd592"``: a compact, unique run name."""
    suffix = str(run.get("run_id") or "").rsplit("-", 1)[-1]
    return f"{run.get('model') or '?'} {run.get('label') or '?'} · {created_text(run, '%m-%d %H:%M')} · {suffix}"


def run_options(runs: Sequence[dict]) -> list[dict]:
    """Dropdown options, in the order given (list_runs: newest first)."""
    return [{"label": run_label(r), "value": r["run_id"]} for r in runs]


def pick_run(runs: Sequence[dict], requested: str | None = None) -> str | None:
    """``requested`` if it names one of ``runs``, else the newest run, else None."""
    ids = [r["run_id"] for r in runs]
    if requested and requested in ids:
        return requested
    return ids[0] if ids else None


def load_runs(log: logging.Logger) -> tuple[list[dict], object]:
    """``(runs newest first, None)``, or ``([], alert)`` when the registry cannot be read."""
    try:
        return registry.list_runs(), None
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return [], failure_alert(exc, log, "reading the run registry")


def no_runs(page_id: str) -> html.Div:
    """The empty state of a page that needs a run: says to train one, links to /train."""
    return empty_state(
        "No runs yet",
        ["no runs yet — train one on ", dcc.Link("/train", href="/train", id=f"{page_id}-to-train-link"),
         ". A run on the sample data takes about a quarter of a minute."],
        action=dbc.Button("Go to Train", href="/train", color="primary", className="mt-3",
                          id=f"{page_id}-to-train"),
    )


def run_page(page_id: str, header, problem, runs: Sequence[dict], body: list) -> html.Div:
    """A run page: ``header``, ``problem`` (an alert or None), then ``body``.

    Without runs the body is replaced by :func:`no_runs` but stays in the layout,
    hidden: Dash checks every callback's ids against the layout each page registered
    when the app started (its validation layout), so a page that was empty then must
    still hold every component its callbacks use (with no run they return nothing).
    """
    if runs:
        return html.Div([header, problem, *body])
    return html.Div([header, problem, section("Runs", no_runs(page_id)),
                     html.Div(body, style={"display": "none"}, **{"aria-hidden": "true"})])


def run_picker(runs: Sequence[dict], value: str | None, label: str = "Run") -> html.Div:
    """The labelled ``run-select`` dropdown (newest first, not clearable)."""
    return html.Div([
        dbc.Label(label, html_for=RUN_SELECT, className="mb-1"),
        dcc.Dropdown(id=RUN_SELECT, options=run_options(runs), value=value, clearable=False,
                     searchable=True, placeholder="Choose a run", optionHeight=36),
        html.Div("Runs newest first; times in UTC. Train more on the Train page.",
                 className="almanac-hint mt-1"),
    ])


def run_links(run_id: str | None, here: str) -> html.Div | None:
    """Buttons to the other run pages for ``run_id`` (leaving out ``here``)."""
    if not run_id:
        return None
    targets = [("/evaluate", "Evaluate"), ("/backtest", "Backtest"), ("/models", "Models")]
    return html.Div([dbc.Button(f"{name} this run" if path != "/models" else "All runs",
                                href=f"{path}?run={run_id}" if path != "/models" else path,
                                color="secondary", outline=True, size="sm", className="me-2")
                     for path, name in targets if path != here])


def run_warnings(run: dict, page_id: str) -> dbc.Alert | None:
    """The run's warnings (``run.json["warnings"]``: ``{"code", "message"}``) as one light
    yellow alert, one line each; None when there are none (or the run predates them)."""
    items = [w for w in run.get("warnings") or [] if isinstance(w, dict) and w.get("message")]
    if not items:
        return None
    lines = [html.Div(["⚠ ", str(w["message"])], className="almanac-warning-line", **{"data-code": str(w.get("code"))})
             for w in items]
    return dbc.Alert(lines, color="warning", className="almanac-alert almanac-run-warnings mb-2",
                     id=f"{page_id}-warnings")


def base_rate(run: dict) -> tuple[str, float] | None:
    """``("base rate (up days)", share)`` of a binary run, ``("majority class share", share)``
    of a multiclass one: what an accuracy has to beat. None for a regression."""
    metrics = run.get("metrics") or {}
    rate = _num(metrics.get("base_rate"))
    if run.get("task") == "binary" and rate is not None:
        return "base rate (up days)", rate
    majority = ((run.get("baselines") or {}).get("majority") or {}).get("metrics") or {}
    share = _num(majority.get("accuracy"))
    if run.get("task") == "multiclass" and share is not None:
        return "majority class share", share
    return None


def baselines_view(run: dict, page_id: str) -> html.Div | None:
    """The model's pooled scores beside the naive baselines (majority, prior day) on the
    same out-of-fold days, the always-long Sharpe and the lifts with their intervals;
    None for a run without ``run.json["baselines"]``."""
    baselines = run.get("baselines")
    if not isinstance(baselines, dict) or not baselines:
        return None
    table = baseline_table(run.get("metrics"), baselines)
    parts = []
    if not table.empty:
        parts.append(dbc.Table.from_dataframe(table, size="sm", hover=True, className="almanac-table almanac-num mb-1",
                                              id=f"{page_id}-baselines-table"))
    sharpe = {name: _num(((baselines.get(key) or {}).get("stats") or {}).get("sharpe"))
              for key, name in (("always_long", "always long"), ("prior_day", "prior day"))}
    model_sharpe = _num((run.get("backtest") or {}).get("sharpe"))
    shown = [f"{n} {v:.2f}" for n, v in [("model", model_sharpe), *sharpe.items()] if v is not None]
    if len(shown) > 1:
        parts.append(html.Div("Backtest Sharpe: " + " · ".join(shown), className="almanac-hint",
                              id=f"{page_id}-baselines-sharpe"))
    parts += [html.Div(line, className="almanac-hint") for line in lift_text(baselines)]
    if not parts:
        return None
    return html.Div(parts, id=f"{page_id}-baselines")


__all__ = ["RUN_SELECT", "base_rate", "baselines_view", "created_text", "load_runs", "main_score", "no_runs",
           "pick_run", "run_label", "run_links", "run_options", "run_page", "run_picker", "run_warnings", "short_label"]
