"""The multi-head panel shown on /evaluate and /backtest for any head of a multi-head run.

A head is an ordinary run whose ``run.json["multihead"]`` names its parent
(``ml.heads``); :func:`multihead_view` reads the parent record and shows the heads side by
side (:func:`viz.heads.heads_frame`, each head linking to its own page, the shown head in
bold) and, when the spec gates one head's signal by another's, the gated backtest's line
and equity (:func:`viz.heads.gated_equity_figure`). None for a run that is not a head.
"""

from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
from dash import dcc, html

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError
from ml.heads import current_gated, get_multihead, read_gated_backtest
from pages._components.feedback import failure_alert, info_alert
from pages._components.layout import section
from viz.heads import COLUMNS, gated_equity_figure, gated_text, heads_frame
from viz.theme import slim

log = logging.getLogger(__name__)


def _table(record: dict, run_id: str, page: str, page_id: str) -> dbc.Table:
    frame = heads_frame(record)
    ids = {name: h.get("run_id") for name, h in record["heads"].items()}
    head = html.Thead(html.Tr([html.Th(c) for c in COLUMNS] + [html.Th("Run")]))
    rows = []
    for row in frame.to_dict("records"):
        rid = ids.get(row["Head"])
        link = dcc.Link("this run" if rid == run_id else "open", href=f"{page}?run={rid}")
        rows.append(html.Tr([html.Td(row[c]) for c in COLUMNS] + [html.Td(link)],
                            className="fw-bold" if rid == run_id else None, **{"data-head": row["Head"]}))
    return dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="almanac-table almanac-num mb-2",
                     id=f"{page_id}-heads-table")


def multihead_view(run: dict, page_id: str, page: str = "/evaluate") -> dbc.Card | None:
    """The multi-head section for head run ``run`` (None for an ordinary run)."""
    link = run.get("multihead")
    if not isinstance(link, dict) or not link.get("id"):
        return None
    try:
        record = get_multihead(link["id"])
        record = {**record, "gated_backtest": current_gated(record)}  # DSR over the trials now
        gated = read_gated_backtest(link["id"])
    except NotFoundError:  # the multi-head run was interrupted after this head was registered
        return info_alert(f"This run was trained as head {link.get('head')} of multi-head run {link['id']}, which "
                          "did not complete: it stands alone (retrain the multi-head spec to see its heads side by "
                          "side).")
    except AlmanacError as exc:
        return failure_alert(exc, log, f"reading multi-head run {link['id']}")
    parts = [_table(record, run["run_id"], page, page_id)]
    line = gated_text(record)
    if line:
        g = record["gated_backtest"]
        signal = None
        sig_id = (record["heads"].get(g.get("signal")) or {}).get("run_id")
        try:
            signal = registry.read_artifact(sig_id, "backtest.parquet") if sig_id else None
        except AlmanacError:
            signal = None  # the signal head's run was deleted: the gated curve stands alone
        parts += [html.Div(line, className="almanac-hint mb-1", id=f"{page_id}-gated-line"),
                  dcc.Graph(id=f"{page_id}-gated-equity", figure=slim(gated_equity_figure(gated, signal, g["signal"])),
                            config={"displaylogo": False, "responsive": True})]
    folds = record.get("folds") or []
    sub = (f"{len(record['heads'])} heads on one feature table and one walk-forward split ({len(folds)} folds on "
           f"{record['shared_days']['n']} shared days, {record['shared_days']['start']} → "
           f"{record['shared_days']['end']}); each head is an ordinary run and a trial of its own label")
    return section(f"Multi-head run {record.get('name')}: heads side by side", *parts, subtitle=sub,
                   section_id=f"{page_id}-multihead")


__all__ = ["multihead_view"]
