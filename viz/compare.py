"""Comparing runs: overlaid equity curves, per-fold scores side by side, a metrics table.

Inputs are keyed by a run's display name (an insertion-ordered mapping: the first run is
drawn first and gets the first colour):

* equity curves: each a backtest daily frame with ``date`` and ``equity`` (growth of 1,
  as in a run's ``backtest.parquet``); a run without a backtest is left out;
* per-fold scores: each a fold table with ``fold`` and the metric column (a run's
  ``folds.parquet``); bars are grouped by fold id ("Fold 1", "Fold 2", ... as in
  the other fold charts): the k-th fold of each run, whatever dates it covers;
* the metrics table: one column per run, one row per metric, values formatted as text
  (fractions as percentages where the metric is a share), the naive baselines beside the
  model's scores and the better value of each ranked row named (:func:`compare_rows`).

Pure builders on the ``"almanac"`` template: no files, no state.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from viz.evaluation import empty_figure, fold_intervals
from viz.theme import COLORS, COLORWAY, TEMPLATE, fold_name

#: Rows of :func:`metrics_table`: (path into the run's record, label, kind, better) with kind
#: num / pct / int and better "high", "low" or None (not ranked). Baselines are read from
#: ``run.json["baselines"]`` (absent for runs trained before they were recorded).
COMPARE_ROWS: tuple[tuple[tuple[str, ...], str, str, str | None], ...] = (
    (("metrics", "roc_auc"), "ROC AUC (pooled out-of-fold)", "num", "high"),
    (("baselines", "lift", "roc_auc", "value"), "ROC AUC lift over 0.5", "num", "high"),
    (("metrics", "accuracy"), "Accuracy", "pct", "high"),
    (("metrics", "base_rate"), "Base rate (up days)", "pct", None),
    (("baselines", "majority", "metrics", "accuracy"), "Majority baseline accuracy", "pct", None),
    (("baselines", "prior_day", "metrics", "accuracy"), "Prior-day baseline accuracy", "pct", None),
    (("metrics", "balanced_accuracy"), "Balanced accuracy", "pct", "high"),
    (("metrics", "log_loss"), "Log loss", "num", "low"),
    (("baselines", "majority", "metrics", "log_loss"), "Majority baseline log loss", "num", None),
    (("metrics", "brier"), "Brier score", "num", "low"),
    (("baselines", "majority", "metrics", "brier"), "Majority baseline Brier", "num", None),
    (("metrics", "ece"), "Expected calibration error", "num", "low"),
    (("metrics", "ic"), "IC (Spearman)", "num", "high"),
    (("metrics", "r2"), "R²", "num", "high"),
    (("metrics", "hit_rate"), "Hit rate (sign)", "pct", "high"),
    (("metrics", "n"), "Out-of-fold days", "int", None),
    (("backtest", "sharpe"), "Sharpe ratio (annualized)", "num", "high"),
    (("baselines", "always_long", "stats", "sharpe"), "Always-long Sharpe (same days, same costs)", "num", None),
    (("baselines", "lift", "sharpe", "value"), "Sharpe lift over always long", "num", "high"),
    (("backtest", "sortino"), "Sortino ratio", "num", "high"),
    (("backtest", "total_return"), "Total return", "pct", "high"),
    (("backtest", "cagr"), "CAGR", "pct", "high"),
    (("backtest", "max_drawdown"), "Max drawdown", "pct", "high"),  # negative: closer to 0 is better
    (("backtest", "win_rate"), "Win rate (trades)", "pct", "high"),
    (("backtest", "trades"), "Trades", "int", None),
    (("backtest", "psr"), "PSR: P(true Sharpe > 0)", "pct", "high"),
    (("backtest", "dsr"), "DSR: PSR against the best of n trials", "pct", "high"),
    (("backtest", "n_trials"), "Trials counted for DSR (same symbol and label, now)", "int", None),
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


def _get(record: Mapping, path: tuple[str, ...]):
    cur = record
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def compare_rows(runs: Mapping[str, Mapping]) -> list[dict]:
    """The compare table as rows ``{"metric", "cells": [text per run], "best": [run names]}``.

    Each run is a mapping with ``metrics`` (pooled scores), ``backtest`` (statistics, or
    None) and optionally ``baselines``, as in ``run.json``. A metric no run has is left
    out; a metric one run lacks shows ``"—"``. ``best`` names the run(s) with the better
    value of a ranked row (highest, or lowest for log loss, Brier and ECE), compared at
    the shown precision; empty when fewer than two runs have the value or all tie.
    """
    names = list(runs)
    out = []
    for path, label, kind, better in COMPARE_ROWS:
        values = [_get(runs[n], path) for n in names]
        cells = [format_value(v, kind) for v in values]
        if all(c == "—" for c in cells):
            continue
        best: list[str] = []
        nums = {n: _number(v) for n, v in zip(names, values, strict=True)}
        shown = {n: float(c.rstrip("%").replace(",", "")) for n, c in zip(names, cells, strict=True) if c != "—"}
        if better and len(shown) >= 2 and len(set(shown.values())) > 1:
            target = max(shown.values()) if better == "high" else min(shown.values())
            best = [n for n in names if shown.get(n) == target and nums[n] is not None]
        out.append({"metric": label, "cells": cells, "best": best})
    return out


def metrics_table(runs: Mapping[str, Mapping]) -> pd.DataFrame:
    """``Metric`` column + one text column per run (:func:`compare_rows` as a frame)."""
    names = list(runs)
    rows = [{"Metric": r["metric"], **dict(zip(names, r["cells"], strict=True))} for r in compare_rows(runs)]
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
    """``metric`` per walk-forward fold, one series of points per run (side by side in each
    fold), with the 95 % intervals of :func:`viz.evaluation.fold_intervals` where the folds
    carry the counts, around the ``reference`` line (points, not bars from zero)."""
    usable = {n: d for n, d in folds.items() if d is not None and len(d) and metric in d.columns}
    name = label or metric.replace("_", " ")
    if not usable:
        return empty_figure(f"No per-fold {name} in these runs", height)
    fig = go.Figure()
    span = [] if reference is None else [reference]
    for i, (run, d) in enumerate(usable.items()):
        d = d.sort_values("fold") if "fold" in d.columns else d
        y = pd.to_numeric(d[metric], errors="coerce").to_numpy(dtype="float64")
        ids = d["fold"].tolist() if "fold" in d.columns else range(len(y))
        x = [fold_name(k) for k in ids]
        colour = COLORWAY[i % len(COLORWAY)]
        bounds = fold_intervals(d, metric)
        error = None
        span += [v for v in y if np.isfinite(v)]
        if bounds is not None and np.isfinite(bounds[0]).any():
            span += [v for v in np.r_[bounds[0], bounds[1]] if np.isfinite(v)]
            error = dict(type="data", symmetric=False, array=np.nan_to_num(bounds[1] - y),
                         arrayminus=np.nan_to_num(y - bounds[0]), color=colour, thickness=1.3, width=4)
        fig.add_trace(go.Scatter(x=x, y=y, name=run, mode="markers", error_y=error,
                                 marker=dict(color=colour, size=9, line=dict(color="white", width=1)),
                                 hovertemplate=f"{name} %{{y:.4f}}<extra>{run}</extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color=COLORS["muted"], width=1.5, dash="dot"),
                      annotation_text=f"no skill {reference:g}", annotation_position="bottom right")
    fig.update_xaxes(title_text="Walk-forward fold (in time order)", type="category")
    fig.update_yaxes(title_text=name)
    if span:  # around the points and the reference (grouped points would otherwise pull in 0)
        lo, hi = min(span), max(span)
        pad = max(0.1 * (hi - lo), 0.01)
        fig.update_yaxes(range=[lo - pad, hi + pad])
    return fig.update_layout(template=TEMPLATE, height=height, scattermode="group", scattergap=0.5,
                             hovermode="closest", title=dict(text=f"{name} per fold · 95 % intervals"),
                             margin=dict(t=96))


def shared_metric(folds: Sequence[pd.DataFrame]) -> str | None:
    """The fold metric to compare: roc_auc if every table has it, else ic, else r2."""
    for metric in ("roc_auc", "ic", "r2", "accuracy"):
        if folds and all(metric in d.columns for d in folds):
            return metric
    return None


__all__ = ["COMPARE_ROWS", "compare_rows", "cv_compare_figure", "equity_overlay_figure", "format_value",
           "metrics_table",
           "shared_metric"]
