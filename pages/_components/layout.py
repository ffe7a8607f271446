"""Page scaffolding: the app shell, page headers, section cards, the research path.

``shell()`` is the app layout: navbar on top, the current page (``dash.page_container``)
in one centred container below it. Pages build their content from
:func:`page_header` and :func:`section` so every page has the same rhythm.
"""

from __future__ import annotations

from collections.abc import Mapping

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from pages._components.jobs import job_stores
from pages._components.navbar import nav_pages, navbar


def shell() -> html.Div:
    """The app layout (called per page load, after every page has registered)."""
    return html.Div([
        navbar(),
        *job_stores(),  # app-level training-job state (pages/_components/jobs.py)
        # plotly.js is loaded lazily by the first dcc.Graph that mounts: without this hidden
        # one, the first page with charts (e.g. the first click on Evaluate) waits for the
        # 3.5 MB bundle to download and compile; with it, that happens while the user reads
        # the page they opened
        dcc.Graph(id="almanac-plotly-warmup", figure={"data": [], "layout": {"height": 10, "width": 10}},
                  config={"staticPlot": True, "responsive": False}, style={"display": "none"}),
        dbc.Container(dash.page_container, fluid=True, className="almanac-main", id="almanac-main"),
        html.Footer(
            "Almanac ML Lab · runs on this machine only · market data stays in your data home",
            className="almanac-footer",
        ),
    ], className="almanac-shell")


def page_header(title: str, subtitle=None, badge: str | None = None, page_id: str | None = None) -> html.Div:
    """The page's H1 (one per page) with an optional subtitle line and badge."""
    heading = [title] + ([dbc.Badge(badge, color="secondary", className="ms-2 almanac-title-badge")]
                         if badge else [])
    return html.Div([
        html.H1(heading, className="almanac-title", id=f"{page_id}-title" if page_id else None),
        html.P(subtitle, className="almanac-subtitle") if subtitle else None,
    ], className="almanac-header")


def section(title: str, *children, subtitle=None, section_id: str | None = None,
            class_name: str = "") -> dbc.Card:
    """A titled card: the unit pages are built from (its title has id ``<section_id>-title``,
    so a callback can rename the card to what it holds)."""
    title_id = {"id": f"{section_id}-title"} if section_id else {}
    header = [html.H2(title, className="almanac-section-title", **title_id)]
    if subtitle:
        header.append(html.Div(subtitle, className="almanac-section-subtitle"))
    kwargs = {"id": section_id} if section_id else {}
    return dbc.Card([dbc.CardHeader(header, className="almanac-section-header"),
                     dbc.CardBody(list(children))],
                    className=f"almanac-section {class_name}".strip(), **kwargs)


def show_switch(switch_id: str, what: str) -> dbc.Switch:
    """A card's "show" switch, off by default: a secondary card that every control step would
    recompute (a regression, a per-regime backtest) is computed only once the user asks, and
    from then on follows the controls."""
    return dbc.Switch(id=switch_id, label=f"Show {what} (recomputed at every setting above)", value=False,
                      className="mb-2")


#: What a card behind a :func:`show_switch` holds while it is off.
SWITCHED_OFF = "Off: turn the switch on to compute it at the settings on screen."


def step_links(registry: Mapping[str, dict] | None = None, current: str | None = None) -> html.Ol:
    """The research path Data → Features → Train → Evaluate → Backtest → Models.

    One numbered step per page after the overview, in navigation order, each with its
    link and the ``description`` the page registered; ``current`` (a path) is marked.
    """
    registry = dash.page_registry if registry is None else registry
    by_path = {p["path"]: p for p in registry.values()}
    items = []
    for i, p in enumerate([p for p in nav_pages(registry) if p["path"] != "/"], start=1):
        desc = by_path.get(p["path"], {}).get("description") or ""
        cls = "almanac-step" + (" almanac-step-current" if p["path"] == current else "")
        items.append(html.Li([
            html.Span(str(i), className="almanac-step-number"),
            html.Div([dcc.Link(p["name"], href=p["path"], className="almanac-step-link"),
                      html.Div(desc, className="almanac-step-text")]),
        ], className=cls))
    return html.Ol(items, className="almanac-steps")


def planned_page(title: str, summary: str, plans: list[str], inputs: list[str],
                 path: str, page_id: str) -> html.Div:
    """The layout of a page whose tools are not built yet.

    Says what the page will do (``plans``) and what it will need (``inputs``), and
    links back to the overview and the data page, which work today.
    """
    return html.Div([
        page_header(title, summary, badge="in development", page_id=page_id),
        dbc.Row([
            dbc.Col(section("What this page will do", html.Ul([html.Li(p) for p in plans],
                                                                className="almanac-plan")),
                    lg=7),
            dbc.Col(html.Div([
                section("What it will use", html.Ul([html.Li(i) for i in inputs], className="almanac-plan")),
                section("Meanwhile",
                        html.P("The overview and the data page work today: see what the lab holds, "
                               "chart any dataset and import your own bars."),
                        html.Div([dbc.Button("Overview", href="/", color="primary", outline=True,
                                             className="me-2", id=f"{page_id}-to-home"),
                                  dbc.Button("Market data", href="/data", color="primary",
                                             id=f"{page_id}-to-data")])),
            ], className="vstack gap-3"), lg=5),
        ], className="g-3"),
        section("The research path", step_links(current=path), class_name="mt-3"),
    ])
