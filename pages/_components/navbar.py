"""The top navigation bar, built from ``dash.page_registry``.

Pages appear in the order of their ``order`` argument to ``register_page`` (Overview
0, Data 1, Features 2, Train 3, Evaluate 4, Backtest 5, Models 6, Studies 7); a page registered
with ``nav=False`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping

import dash
import dash_bootstrap_components as dbc
from dash import html


def nav_pages(registry: Mapping[str, dict] | None = None) -> list[dict]:
    """``[{"name", "path"}, ...]`` of the pages to link, in navigation order."""
    registry = dash.page_registry if registry is None else registry
    pages = [p for p in registry.values() if p.get("nav", True)]
    pages.sort(key=lambda p: (p.get("order") is None, p.get("order") or 0, p["name"]))
    return [{"name": p["name"], "path": p["path"]} for p in pages]


def navbar(registry: Mapping[str, dict] | None = None) -> dbc.Navbar:
    """The dark top bar: brand (links to the overview) and one link per page."""
    links = [dbc.NavItem(dbc.NavLink(p["name"], href=p["path"], active="exact",
                                     className="almanac-navlink"))
             for p in nav_pages(registry)]
    return dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand([html.Span("◆", className="almanac-brand-mark"), "Almanac ML Lab"],
                            href="/", className="almanac-brand"),
            dbc.Nav(links, navbar=True, className="almanac-nav"),
        ], fluid=True, className="almanac-navbar-inner"),
        color="primary", dark=True, className="almanac-navbar", id="almanac-navbar",
    )
