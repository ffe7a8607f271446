"""A multi-head run (``ml.heads``): the heads side by side and the gated backtest. Pure builders.

* :func:`heads_frame` -- one row per head (the parent record's ``heads[name]["summary"]``):
  head, label, task, model, out-of-fold days, the headline score beside its no-skill value
  (ROC AUC 0.5, IC 0), accuracy beside the majority baseline, the backtest Sharpe beside
  always long. Numbers are formatted as text (a dash where the task has none).
* :func:`gated_equity_figure` -- the gated strategy's equity against the signal head's own
  (ungated) strategy and buy and hold, on the same out-of-fold days.
"""

from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

from viz.evaluation import empty_figure
from viz.theme import COLORS, TEMPLATE

COLUMNS = ["Head", "Label", "Task", "Model", "OOF days", "Score", "No skill", "Accuracy", "Majority",
           "Sharpe", "Always long"]


def _f(v, fmt: str = ".3f") -> str:
    return "–" if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) else format(v, fmt)


def heads_frame(record: dict) -> pd.DataFrame:
    """The side-by-side table of a multi-head parent record (see the module doc)."""
    rows = []
    for name, h in (record.get("heads") or {}).items():
        s = h.get("summary") or {}
        rows.append({"Head": name, "Label": s.get("label"), "Task": s.get("task"), "Model": s.get("model"),
                     "OOF days": s.get("n_oof"), "Score": f"{s.get('metric_name', '')} {_f(s.get('value'))}".strip(),
                     "No skill": _f(s.get("no_skill")), "Accuracy": _f(s.get("accuracy")),
                     "Majority": _f(s.get("majority_accuracy")), "Sharpe": _f(s.get("sharpe"), ".2f"),
                     "Always long": _f(s.get("always_long_sharpe"), ".2f")})
    return pd.DataFrame(rows, columns=COLUMNS)


def gated_text(record: dict) -> str | None:
    """One line: the gate rule and the gated strategy's numbers beside the signal head's own."""
    g = record.get("gated_backtest")
    if not isinstance(g, dict):
        return None
    gate = g.get("gate") or {}
    own = ((record.get("heads") or {}).get(g.get("signal")) or {}).get("summary") or {}
    return (f"Gated signal: head {g.get('signal')} traded only when P({gate.get('head')}) ≥ {gate.get('min_proba')} "
            f"({g.get('days_gate_open')} of {g.get('days')} days open) · Sharpe {_f(g.get('sharpe'), '.2f')} "
            f"(ungated {_f(own.get('sharpe'), '.2f')}) · {g.get('trades')} trades · total return "
            f"{_f(g.get('total_return'), '.1%')} · max drawdown {_f(g.get('max_drawdown'), '.1%')} · DSR "
            f"{_f(g.get('dsr'), '.2f')} over {g.get('n_trials')} trials")


def gated_equity_figure(gated: pd.DataFrame | None, signal: pd.DataFrame | None, signal_name: str = "signal head",
                        height: int = 360) -> go.Figure:
    """Equity of the gated strategy, of the signal head alone and buy and hold (growth of 1).
    ``gated`` / ``signal``: backtest daily frames (date, equity, benchmark_equity)."""
    if gated is None or len(gated) == 0:
        return empty_figure("No gated backtest to show", height)
    x = pd.to_datetime(gated["date"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=gated["benchmark_equity"].to_numpy("float64"), mode="lines",
                             name="buy and hold", line=dict(color=COLORS["muted"], width=1.3),
                             hovertemplate="buy and hold %{y:.3f}<extra></extra>"))
    if signal is not None and len(signal):
        fig.add_trace(go.Scatter(x=pd.to_datetime(signal["date"]), y=signal["equity"].to_numpy("float64"),
                                 mode="lines", name=f"{signal_name} alone",
                                 line=dict(color=COLORS["warning"], width=1.3, dash="dot"),
                                 hovertemplate=f"{signal_name} alone %{{y:.3f}}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=gated["equity"].to_numpy("float64"), mode="lines", name="gated",
                             line=dict(color=COLORS["accent"], width=2),
                             hovertemplate="gated %{y:.3f}<extra></extra>"))
    fig.add_hline(y=1.0, line=dict(color=COLORS["grid"], width=1))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Growth of 1 (equity multiple)")
    return fig.update_layout(template=TEMPLATE, height=height,
                             title=dict(text="Gated signal: equity vs the signal head alone and buy and hold"))


__all__ = ["COLUMNS", "heads_frame", "gated_text", "gated_equity_figure"]
