"""The REST service panel of /models: is ``python -m almanac serve`` running, and the ``curl``
lines that call it for the selected run (:func:`ml.serving.service_status`,
:func:`ml.serving.curl_lines`)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import html

START = "python -m almanac serve"


def service_panel(status: dict, lines: list[str] | None, run_id: str | None) -> list:
    """Status badge, where it listens, and the curl lines (or a hint to select one run)."""
    running = bool(status.get("running"))
    badge = dbc.Badge("running" if running else "not running", color="success" if running else "secondary",
                      className="me-2", id="models-service-state")
    where = (f"{status['url']}/api/v1 — {status.get('detail', '')}"
             + (" — token required (ALMANAC_API_TOKEN)" if status.get("token_required") else "")
             if running else ["start it with ", html.Code(START),
                              f" (then it listens on {status['url']}/api/v1)"])
    out = [html.Div([badge, html.Span(where, className="almanac-hint")], className="mb-2")]
    if not lines:
        out.append(html.Div("Select one run to see the curl lines that call the service for it.",
                            className="almanac-hint"))
        return out
    out.append(html.Div(["Call it for ", html.Code(run_id), " (the example row is the run's last training day; "
                         "predictions by symbol and label use the active run):"], className="small mb-1"))
    out.append(html.Pre("\n".join(lines), id="models-service-curl", className="bg-light border rounded p-2 small mb-0",
                        style={"whiteSpace": "pre-wrap", "wordBreak": "break-all"}))
    return out
