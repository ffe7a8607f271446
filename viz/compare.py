"""Comparing runs: overlaid equity curves, per-fold scores side by side, a metrics table.

Inputs are keyed by a run's display name (an insertion-ordered mapping: the first run is
drawn first and gets the first colour):

* equity curves: each a backtest daily frame with ``date`` and ``equity`` (growth of 1,
  as in a run's ``backtest.parquet``); a run without a backtest is left out;
* per-fold scores: each a fold table with ``fold`` and the metric column (a run's
  ``folds.parquet``); bars are grouped by fold id ("Fold 1", "Fold 2", ... as in
  the other fold charts): the k-th fold of each run, whatever dates it covers;
* the metrics table: one column per run, one row per metric, values formatted as text
  (fractions as percentages where the metric is a share).

Pure builders on the ``"almanac"`` template: no files, no state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from viz.evaluation import empty_figure
from viz.theme import COLORS, COLORWAY, TEMPLATE, fold_name

#: Rows of :func:`metrics_table`: (section, key, label, kind) with kind num / pct / int.
COMPARE_ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("metrics", "roc_auc", "ROC AUC (pooled out-of-fold)", "num"),
    ("metrics", "accuracy", "Accuracy", "pct"),
    ("metrics", "balanced_accuracy", "Balanced accuracy", "pct"),
    ("metrics", "log_loss", "Log loss", "num"),
    ("metrics", "brier", "Brier score", "num"),
    ("metrics", "ece", "Expected calibration error", "num"),
    ("metrics", "ic", "IC (Spearman)", "num"),
    ("metrics", "r2", "R²", "num"),
    ("metrics", "hit_rate", "Hit rate (sign)", "pct"),
    ("metrics", "n", "Out-of-fold days", "int"),
    ("backtest", "sharpe", "Sharpe ratio (annualized)", "num"),
    ("backtest", "sortino", "Sortino ratio", "num"),
    ("backtest", "total_return", "Total return", "pct"),
    ("backtest", "cagr", "CAGR", "pct"),
    ("backtest", "max_drawdown", "Max drawdown", "pct"),
    ("backtest", "win_rate", "Win rate (trades)", "pct"),
    ("backtest", "trades", "Trades", "int"),
    ("backtest", "psr", "PSR: P(true Sharpe > 0)", "pct"),
    ("backtest", "dsr", "DSR: PSR against the best of n trials", "pct"),
    ("backtest", "n_trials", "Trials counted for DSR", "int"),
)


def format_value(value, kind: str = "num") -> str:
    """Text of one table cell: ``"—"`` when missing or not finite; pct → ``"12.3%"``,
    int → ``"1,234"``, num → 3 decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return "—"
    v = float(value)
    if not math.isfinite(v):
        return "—"
    if kind == "pct":
        return f"{v:.1%}"
    if kind == "int":
        return f"{int(round(v)):,}"
    return f"{v:.3f}"


def metrics_table(runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """``Metric`` column + one text column per run, for the metrics any run has.

    Each run is a mapping with ``metrics`` (pooled scores) and ``backtest`` (statistics,
    or None), as in ``run.json``. A metric no run has is left out; a metric one run lacks
    shows ``"—"`` in its column.
    """
    names = list(runs)
    rows = []
    for section, key, label, kind in COMPARE_ROWS:
        values = [((runs[n].get(section) or {}) if isinstance(runs[n].get(section), Mapping) else {}).get(key)
                  for n in names]
        cells = [format_value(v, kind) for v in values]
        if all(c == "—" for c in cells):
            continue
        rows.append({"Metric": label, **dict(zip(names, cells, strict=True))})
    return pd.DataFrame(rows, columns=["Metric", *names])


def equity_overlay_figure(curves: Mapping[str, pd.DataFrame], benchmark: tuple[str, pd.DataFrame] | None = None,
                          height: int = 420) -> go.Figure:
    """One equity line (growth of 1) per run, plus an optional grey buy-and-hold line
    (``benchmark`` = (name, frame with date and benchmark_equity))."""
    usable = {n: d for n, d in curves.items() if d is not None and len(d) and {"date", "equity"} <= set(d.columns)}
    if not usable:
        return empty_figure("None of these runs has a backtest (multiclass runs are not traded)", height)
    fig = go.Figure()
    if benchmark is not None and benchmark[1] is not None and len(benchmark[1]):
        b = benchmark[1]
        fig.add_trace(go.Scatter(x=pd.to_datetime(b["date"]), y=b["benchmark_equity"].to_numpy(dtype="float64"),
                                 mode="lines", name=benchmark[0], line=dict(color=COLORS["muted"], width=1.2,
                                                                            dash="dot"),
                                 hovertemplate=f"{benchmark[0]} %{{y:.3f}}<extra></extra>"))
    for i, (name, d) in enumerate(usable.items()):
        fig.add_trace(go.Scatter(x=pd.to_datetime(d["date"]), y=d["equity"].to_numpy(dtype="float64"),
                                 mode="lines", name=name, line=dict(color=COLORWAY[i % len(COLORWAY)], width=2),
                                 hovertemplate="%{y:.3f}<extra>" + name + "</extra>"))
    fig.add_hline(y=1.0, line=dict(color=COLORS["grid"], width=1))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Growth of 1 (equity multiple)")
    return fig.update_layout(template=TEMPLATE, height=height, hovermode="x unified",
                             title=dict(text="Equity curves of the out-of-fold backtests"),
                             margin=dict(t=96))


def cv_compare_figure(folds: Mapping[str, pd.DataFrame], metric: str, label: str | None = None,
                      reference: float | None = None, height: int = 380) -> go.Figure:
    """Grouped bars of ``metric`` per walk-forward fold, one bar series per run."""
    usable = {n: d for n, d in folds.items() if d is not None and len(d) and metric in d.columns}
    name = label or metric.replace("_", " ")
    if not usable:
        return empty_figure(f"No per-fold {name} in these runs", height)
    fig = go.Figure()
    for i, (run, d) in enumerate(usable.items()):
        d = d.sort_values("fold") if "fold" in d.columns else d
        y = pd.to_numeric(d[metric], errors="coerce").to_numpy(dtype="float64")
        ids = d["fold"].tolist() if "fold" in d.columns else range(len(y))
        x = [fold_name(k) for k in ids]
        fig.add_trace(go.Bar(x=x, y=y, name=run, marker=dict(color=COLORWAY[i % len(COLORWAY)]),
                             hovertemplate=f"{name} %{{y:.4f}}<extra>{run}</extra>"))
    if reference is not None:  # a legend entry: an annotation would hide behind the bars
        cats = list(dict.fromkeys(x for t in fig.data for x in t.x))
        fig.add_trace(go.Scatter(x=cats, y=[reference] * len(cats), mode="lines", name=f"reference {reference:g}",
                                 line=dict(color=COLORS["muted"], width=1.5, dash="dot"), hoverinfo="skip"))
    fig.update_xaxes(title_text="Walk-forward fold (in time order)", type="category")
    fig.update_yaxes(title_text=name)
    return fig.update_layout(template=TEMPLATE, height=height, barmode="group", hovermode="closest",
                             title=dict(text=f"{name} per fold"), margin=dict(t=96))


def shared_metric(folds: Sequence[pd.DataFrame]) -> str | None:
    """The fold metric to compare: roc_auc if every table has it, else ic, else r2."""
    for metric in ("roc_auc", "ic", "r2", "accuracy"):
        if folds and all(metric in d.columns for d in folds):
            return metric
    return None


__all__ = ["COMPARE_ROWS", "cv_compare_figure", "equity_overlay_figure", "format_value", "metrics_table",
           "shared_metric"]
