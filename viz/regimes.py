"""Scores and equity by HMM regime: pure figure builders for /evaluate and /backtest.

Inputs are the tables of :mod:`ml.regimes`: per-regime scores (``regime``, ``n`` and the
task's scores, calmest regime first) and the backtest's per-regime equity curves
(``date``, ``regime``, ``equity``). Regimes keep one colour everywhere (:data:`REGIME_COLORS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from viz.evaluation import empty_figure
from viz.theme import COLORS, TEMPLATE

REGIME_COLORS = {"calm": COLORS["up"], "normal": COLORS["accent"], "active": COLORS["warning"],
                 "volatile": COLORS["down"], "none": COLORS["muted"]}


def regime_color(name: str) -> str:
    return REGIME_COLORS.get(name, COLORS["ink"])


def regime_scores_figure(table: pd.DataFrame | None, metric: str, label: str, reference: float | None = None,
                         height: int = 320) -> go.Figure:
    """One bar per regime: ``metric`` (e.g. roc_auc) of its out-of-fold days, labelled with the
    number of days; ``reference``: the no-skill line (0.5 for AUC)."""
    if table is None or len(table) == 0 or metric not in table.columns:
        return empty_figure("No regimes recorded for this run", height)
    values = table[metric].to_numpy(dtype="float64")
    n = table["n"].to_numpy(dtype="int64")
    names = [str(r) for r in table["regime"]]
    fig = go.Figure(go.Bar(
        x=names, y=values, marker_color=[regime_color(r) for r in names],
        text=[f"{v:.3f} · n={c:,}" if np.isfinite(v) else f"n={c:,}" for v, c in zip(values, n, strict=True)],
        textposition="outside", customdata=n, cliponaxis=False,
        hovertemplate="%{x}: " + label + " %{y:.3f} over %{customdata:,} days<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color=COLORS["muted"], width=1, dash="dash"))
    finite = values[np.isfinite(values)]
    if len(finite):
        lo = min(float(finite.min()), reference if reference is not None else float(finite.min()))
        hi = max(float(finite.max()), reference if reference is not None else float(finite.max()))
        pad = max(0.02, 0.25 * (hi - lo))
        fig.update_yaxes(range=[lo - pad, hi + pad])
    fig.update_xaxes(title_text="Regime of the day (its fold's HMM, filtered up to the day before)", type="category")
    fig.update_yaxes(title_text=label)
    return fig.update_layout(template=TEMPLATE, height=height, showlegend=False, hovermode="closest",
                             title=dict(text=f"{label} by regime"))


def regime_equity_figure(curves: pd.DataFrame | None, height: int = 360) -> go.Figure:
    """Growth of 1 trading only the days of each regime (one line per regime, on its own days)."""
    if curves is None or len(curves) == 0:
        return empty_figure("No regimes recorded for this run", height)
    fig = go.Figure()
    for name, part in curves.groupby("regime", sort=False):
        fig.add_trace(go.Scatter(x=pd.to_datetime(part["date"]), y=part["equity"].to_numpy(dtype="float64"),
                                 mode="lines", name=f"{name} ({len(part):,} days)",
                                 line=dict(color=regime_color(str(name)), width=1.8),
                                 hovertemplate=f"{name}: " + "%{y:.3f}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=COLORS["muted"], width=1))
    fig.update_yaxes(title_text="Growth of 1 (that regime's days only)")
    return fig.update_layout(template=TEMPLATE, height=height, hovermode="x unified",
                             title=dict(text="Equity by regime"))


__all__ = ["REGIME_COLORS", "regime_color", "regime_equity_figure", "regime_scores_figure"]
