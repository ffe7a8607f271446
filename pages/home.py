"""``/`` — the overview: what the lab holds, where to start, where the data lives."""

from __future__ import annotations

import logging

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import dcc, html

from almanac.sample import SAMPLE_SYMBOLS
from almanac.settings import get_settings
from almanac.store import CatalogEntry
from pages._components import empty_state, page_header, read_catalog, section, step_links

dash.register_page(__name__, path="/", name="Overview", order=0, title="Almanac ML Lab",
                   description="What the lab holds and where to start.")

log = logging.getLogger(__name__)
FREQ_NAMES = {"1min": "1-minute", "5min": "5-minute", "15min": "15-minute", "30min": "30-minute", "1h": "1-hour",
              "1d": "daily"}


def span_text(entry: CatalogEntry) -> str:
    """``"2009-01-02 → 2018-12-31"``: the first and last date of a dataset.

    Minute datasets show exchange-local dates (a bar at 14:30 UTC on 2009-01-02 is
    2009-01-02 in New York).
    """
    first, last = pd.Timestamp(entry.start), pd.Timestamp(entry.end)
    if first.tzinfo is not None:
        first, last = first.tz_convert(entry.tz), last.tz_convert(entry.tz)
    return f"{first:%Y-%m-%d} → {last:%Y-%m-%d}"


def summarize(entries: list[CatalogEntry]) -> dict:
    """Counts shown in the summary tiles: datasets, symbols, rows, sample datasets."""
    return {
        "datasets": len(entries),
        "symbols": len({e.symbol for e in entries}),
        "rows": sum(e.rows for e in entries),
        "sample": sum(bool(e.sample) for e in entries),
    }


def _tile(value, label) -> dbc.Col:
    return dbc.Col(html.Div([html.Div(value, className="almanac-stat-value"),
                             html.Div(label, className="almanac-stat-label")],
                            className="almanac-stat"), xs=6, md=3)


def _catalog_table(entries: list[CatalogEntry]) -> dbc.Table:
    head = html.Thead(html.Tr([html.Th(h) for h in ("Symbol", "Bars", "Range", "Rows", "Kind")]))
    rows = []
    for e in entries:
        kind = dbc.Badge("sample", color="warning", className="almanac-badge-sample") if e.sample \
            else dbc.Badge("imported", color="success")
        rows.append(html.Tr([html.Td(html.Strong(e.symbol)), html.Td(FREQ_NAMES.get(e.freq, e.freq)),
                             html.Td(span_text(e)), html.Td(f"{e.rows:,}", className="text-end"),
                             html.Td(kind)]))
    return dbc.Table([head, html.Tbody(rows)], hover=True, size="sm", className="almanac-table mb-0",
                     id="home-catalog")


def _provenance(entries: list[CatalogEntry]) -> html.Div | None:
    symbols = sorted({e.symbol for e in entries if e.sample})
    if not symbols:
        return None
    return html.Div([
        html.H3("About the sample data", className="almanac-subheading"),
        html.Dl([item for s in symbols for item in
                 (html.Dt(s), html.Dd(SAMPLE_SYMBOLS.get(s, next(e.source for e in entries
                                                                    if e.symbol == s and e.sample))))],
                className="almanac-provenance mb-0"),
    ], className="mt-3", id="home-provenance")


def holdings(entries: list[CatalogEntry]):
    """The "what the lab holds" section body."""
    if not entries:
        return empty_state(
            "No market data yet",
            ["The data home holds no dataset. Restart the app to write the built-in sample data, "
             "or import your own CSV or Parquet bars on the ", dcc.Link("Data page", href="/data"), "."],
        )
    s = summarize(entries)
    return html.Div([
        dbc.Row([_tile(s["datasets"], "datasets"), _tile(s["symbols"], "symbols"),
                 _tile(f"{s['rows']:,}", "bars on disk"), _tile(s["sample"], "sample datasets")],
                className="g-2 mb-3"),
        _catalog_table(entries),
        _provenance(entries),
    ])


def layout(**_query):
    settings = get_settings()
    entries, problem = read_catalog(log)
    body = problem or holdings(entries)
    return html.Div([
        page_header("Almanac ML Lab",
                    "Machine learning on market data without the leaks: every feature is known at the "
                    "cutoff (10:15 New York by default), every split walks forward, every backtest "
                    "trades from the cutoff.", page_id="home"),
        dbc.Row([
            dbc.Col(section("What the lab holds", body, section_id="home-holdings"), lg=7),
            dbc.Col(html.Div([
                section("Where to start", step_links(current="/"), section_id="home-start"),
                section("Data home",
                        html.P(["Everything the lab reads and writes lives in ",
                                html.Code(str(settings.home), id="home-data-home"), "."]),
                        html.P(["Set ", html.Code("ALMANAC_HOME"), " to use another folder. Bars are in ",
                                html.Code("market/"), ", the catalog in ", html.Code("catalog.json"),
                                ", experiment runs in ", html.Code("runs/"), "."], className="mb-0")),
            ], className="vstack gap-3"), lg=5),
        ], className="g-3"),
    ])
