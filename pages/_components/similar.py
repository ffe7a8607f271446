"""The similar-days panel shared by /features and /evaluate: a day picker, k, a "Find" button
and the view (the paths figure of :func:`viz.similar.similar_days_figure` and the neighbours'
table). Each page owns its callbacks (ids are prefixed with the page's name).

Nothing is computed until the button is pressed: the query reads the bars after the cutoff
of k + 1 days (about half a second and 100 kB of paths), which a page load should not pay
for a panel below the fold. The day is a date picker bounded by the days that can be
queried (a list of every day as dropdown options was 90 kB); a date between them that is
not one of them (a weekend, a holiday) is moved to the latest such day before it, and the
view says so (:func:`snap`)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dcc, html

from viz.similar import similar_days_figure
from viz.theme import slim

GRAPH_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["lasso2d", "select2d"]}
DEFAULT_K = 10


def similar_controls(prefix: str, day_label: str = "Day") -> dbc.Row:
    """``<prefix>-similar-day`` (a date picker), ``<prefix>-similar-k`` and ``<prefix>-similar-go``."""
    return dbc.Row([
        dbc.Col([dbc.Label(day_label, html_for=f"{prefix}-similar-day", className="d-block"),
                 dcc.DatePickerSingle(id=f"{prefix}-similar-day", display_format="YYYY-MM-DD",
                                      first_day_of_week=1, placeholder="no day yet", clearable=False)], md="auto"),
        dbc.Col([dbc.Label("Neighbours (k)", html_for=f"{prefix}-similar-k"),
                 dbc.Input(id=f"{prefix}-similar-k", type="number", value=DEFAULT_K, min=1, step=1)], md=2),
        dbc.Col(dbc.Button("Find similar days", id=f"{prefix}-similar-go", color="primary", n_clicks=0),
                md="auto"),
    ], className="g-3 align-items-end")


def day_range(days: list[str]) -> tuple:
    """The picker's (min_date_allowed, max_date_allowed, date, initial_visible_month): the
    first and last of ``days`` (YYYY-MM-DD), the latest chosen; all None without days."""
    if not days:
        return None, None, None, None
    first, last = min(days), max(days)
    return first, last, last, last


def snap(day: str, days: list[str]) -> tuple[str, str | None]:
    """(the day to query, a note or None): ``day`` when it is one of ``days``, else the latest
    of them before it (the first when none is before), with a note saying so."""
    if day in days or not days:
        return day, None
    before = [d for d in days if d < day]
    chosen = max(before) if before else min(days)
    return chosen, f"{day} has no row here (no trading day, or outside the days that can be queried): showing {chosen}."


PROMPT = "Pick a day and k, then press Find similar days."


def similar_view(result: dict, paths: dict, note: str | None = None, graph_id: str | None = None) -> list:
    """The figure and a compact table of the neighbours (date, distance, rest of day);
    ``note``: a line above them (e.g. the day was moved, :func:`snap`)."""
    rows = [html.Tr([html.Td(i + 1), html.Td(n["date"]), html.Td(f"{n['distance']:.2f}"),
                     html.Td(f"{100 * n['rest_of_day_return']:+.2f} %",
                             className="text-success" if n["rest_of_day_return"] > 0 else "text-danger")])
            for i, n in enumerate(result["neighbors"])]
    table = dbc.Table([html.Thead(html.Tr([html.Th("#"), html.Th("day"), html.Th("distance"),
                                           html.Th("rest of day")])), html.Tbody(rows)],
                      size="sm", striped=True, className="almanac-table mb-0")
    method = (f"{len(result['features'])} features standardized on the {result['candidates']} earlier days with a "
            f"known rest of the day (scaler fitted on days before {result['date']} only); cutoff {result['cutoff']}.")
    return [*([html.Div(note, className="almanac-hint mb-1")] if note else []),
            dcc.Graph(figure=slim(similar_days_figure(result, paths)), config=GRAPH_CONFIG, className="almanac-graph",
                      **({"id": graph_id} if graph_id else {})),
            html.Div(method, className="almanac-hint mt-1"),
            html.Details([html.Summary("Neighbours"), table], className="mt-2")]
