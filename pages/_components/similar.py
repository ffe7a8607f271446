"""The similar-days panel shared by /features and /evaluate: a day picker, k, and the view
(the paths figure of :func:`viz.similar.similar_days_figure` and the neighbours' table).
Each page owns its callbacks (ids are prefixed with the page's name)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from viz.similar import similar_days_figure

GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
DEFAULT_K = 10


def similar_controls(prefix: str, day_label: str = "Day") -> dbc.Row:
    """``<prefix>-similar-day`` (dropdown of days, newest first) and ``<prefix>-similar-k``."""
    return dbc.Row([
        dbc.Col([dbc.Label(day_label, html_for=f"{prefix}-similar-day"),
                 dcc.Dropdown(id=f"{prefix}-similar-day", options=[], value=None, clearable=False,
                              placeholder="no day yet")], md=3),
        dbc.Col([dbc.Label("Neighbours (k)", html_for=f"{prefix}-similar-k"),
                 dbc.Input(id=f"{prefix}-similar-k", type="number", value=DEFAULT_K, min=1, step=1,
                           debounce=True)], md=2),
    ], className="g-3 align-items-end")


def day_options(days: list[str]) -> list[dict]:
    """Dropdown options, newest first."""
    return [{"label": d, "value": d} for d in sorted(days, reverse=True)]


def similar_view(result: dict, paths: dict) -> list:
    """The figure and a compact table of the neighbours (date, distance, rest of day)."""
    rows = [html.Tr([html.Td(i + 1), html.Td(n["date"]), html.Td(f"{n['distance']:.2f}"),
                     html.Td(f"{100 * n['rest_of_day_return']:+.2f} %",
                             className="text-success" if n["rest_of_day_return"] > 0 else "text-danger")])
            for i, n in enumerate(result["neighbors"])]
    table = dbc.Table([html.Thead(html.Tr([html.Th("#"), html.Th("day"), html.Th("distance"),
                                           html.Th("rest of day")])), html.Tbody(rows)],
                      size="sm", striped=True, className="almanac-table mb-0")
    note = (f"{len(result['features'])} features standardized on the {result['candidates']} earlier days with a "
            f"known rest of the day (scaler fitted on days before {result['date']} only); cutoff {result['cutoff']}.")
    return [dcc.Graph(figure=similar_days_figure(result, paths), config=GRAPH_CONFIG, className="almanac-graph"),
            html.Div(note, className="almanac-hint mt-1"),
            html.Details([html.Summary("Neighbours"), table], className="mt-2")]
