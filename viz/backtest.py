"""How did the signal trade? Pure figure builders for the backtest page and the report.

Input is the backtest's daily frame (``ml.backtester.BacktestResult.daily`` or a run's
``backtest.parquet``): ``date``, ``equity`` (growth of 1 invested, compounding the daily
strategy returns), ``benchmark_equity`` (buy and hold, close to close) and ``drawdown``
(equity / running peak − 1, a fraction <= 0); and the year × month table of
``ml.backtester.monthly_returns`` (index year, columns 1..12, compounded monthly
returns as fractions, NaN for a month without days).

Traces hold the numbers passed in (equity multiples, fractions); percentages are shown
through tick and text formats. Every builder is pure and uses the ``"almanac"`` template.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.evaluation import empty_figure
from viz.theme import COLORS, TEMPLATE

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: Red (loss) → white (0) → green (gain), symmetric around 0.
RETURN_SCALE = [[0.0, "#C0392B"], [0.5, "#FFFFFF"], [1.0, "#148F77"]]


def _dates(daily: pd.DataFrame) -> pd.Series:
    return pd.to_datetime(daily["date"])


def _check(daily: pd.DataFrame, *cols: str) -> bool:
    """True if ``daily`` has rows and ``cols``; ValueError if columns are missing."""
    if daily is None or len(daily) == 0:
        return False
    missing = [c for c in ("date", *cols) if c not in daily.columns]
    if missing:
        raise ValueError(f"backtest frame lacks column(s) {', '.join(missing)}; pass "
                         "BacktestResult.daily or a run's backtest.parquet")
    return True


def _equity_traces(daily: pd.DataFrame, benchmark_name: str) -> list[go.Scatter]:
    x = _dates(daily)
    traces = []
    if "benchmark_equity" in daily.columns:
        traces.append(go.Scatter(
            x=x, y=daily["benchmark_equity"].to_numpy(dtype="float64"), mode="lines",
            name=benchmark_name, line=dict(color=COLORS["muted"], width=1.3),
            hovertemplate=f"{benchmark_name} %{{y:.3f}}<extra></extra>"))
    traces.append(go.Scatter(
        x=x, y=daily["equity"].to_numpy(dtype="float64"), mode="lines", name="strategy",
        line=dict(color=COLORS["accent"], width=2),
        hovertemplate="strategy %{y:.3f}<extra></extra>"))
    return traces


def _drawdown_trace(daily: pd.DataFrame) -> go.Scatter:
    return go.Scatter(
        x=_dates(daily), y=daily["drawdown"].to_numpy(dtype="float64"), mode="lines",
        name="drawdown", fill="tozeroy", line=dict(color=COLORS["down"], width=1),
        fillcolor="rgba(231, 76, 60, 0.25)", showlegend=False,
        hovertemplate="drawdown %{y:.1%}<extra></extra>")


def equity_figure(daily: pd.DataFrame, benchmark_name: str = "buy and hold",
                  log_scale: bool = False, height: int = 380) -> go.Figure:
    """Strategy equity (growth of 1) against the buy-and-hold benchmark."""
    if not _check(daily, "equity"):
        return empty_figure("No backtest days to show", height)
    fig = go.Figure(_equity_traces(daily, benchmark_name))
    fig.add_hline(y=1.0, line=dict(color=COLORS["grid"], width=1))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Growth of 1 (equity multiple)", type="log" if log_scale else None)
    return fig.update_layout(template=TEMPLATE, height=height,
                             title=dict(text="Equity curve: strategy vs buy and hold"))


def drawdown_figure(daily: pd.DataFrame, height: int = 260) -> go.Figure:
    """Drawdown of the strategy equity below its running peak (a fraction, shown in %)."""
    if not _check(daily, "drawdown"):
        return empty_figure("No backtest days to show", height)
    fig = go.Figure(_drawdown_trace(daily))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Drawdown from peak", tickformat=".0%")
    return fig.update_layout(template=TEMPLATE, height=height,
                             title=dict(text="Drawdown"))


def equity_with_drawdown_figure(daily: pd.DataFrame, benchmark_name: str = "buy and hold",
                                title: str | None = None, height: int = 520) -> go.Figure:
    """Equity curve (top, 70 %) over the drawdown (bottom), sharing the date axis."""
    if not _check(daily, "equity", "drawdown"):
        return empty_figure("No backtest days to show", height)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.7, 0.3])
    for tr in _equity_traces(daily, benchmark_name):
        fig.add_trace(tr, row=1, col=1)
    fig.add_trace(_drawdown_trace(daily), row=2, col=1)
    fig.update_yaxes(title_text="Growth of 1", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown", tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="Date", row=2, col=1)
    return fig.update_layout(template=TEMPLATE, height=height,
                             title=dict(text=title or "Equity curve and drawdown"))


def monthly_returns_figure(monthly: pd.DataFrame, height: int | None = None) -> go.Figure:
    """Heatmap of compounded monthly returns (rows = years, newest at the bottom) with a
    13th column "Year" = the compounded return of the year's months, each cell
    annotated in percent. ``z[:, :12]`` is ``monthly`` as given."""
    table = pd.DataFrame(monthly).reindex(columns=range(1, 13))
    if table.empty or not np.isfinite(table.to_numpy(dtype="float64")).any():
        return empty_figure("No monthly returns to show", height or 260)
    months = table.to_numpy(dtype="float64")
    year = np.where(np.isfinite(months).any(axis=1),
                    np.nanprod(1.0 + months, axis=1) - 1.0, np.nan)
    z = np.column_stack([months, year])
    text = np.where(np.isfinite(z), np.char.mod("%.1f%%", np.nan_to_num(z) * 100), "")
    # colours scale with the monthly returns; a larger yearly return saturates
    bound = float(np.nanmax(np.abs(months))) or 0.01
    fig = go.Figure(go.Heatmap(
        z=z, x=[*MONTHS, "Year"], y=[str(y) for y in table.index], text=text,
        texttemplate="%{text}", textfont=dict(size=11), colorscale=RETURN_SCALE,
        zmin=-bound, zmax=bound, zmid=0, xgap=2, ygap=2,
        colorbar=dict(title=dict(text="Return"), tickformat=".0%", thickness=12),
        hovertemplate="%{y} %{x}: %{z:.2%}<extra></extra>"))
    fig.update_xaxes(side="top", showgrid=False, type="category", title_text="")
    fig.update_yaxes(title_text="Year", showgrid=False, type="category", autorange="reversed")
    return fig.update_layout(template=TEMPLATE, height=height or max(240, 130 + 40 * len(table)),
                             title=dict(text="Monthly returns of the strategy (compounded, %)"),
                             hovermode="closest", margin=dict(t=84, b=16))


__all__ = ["MONTHS", "drawdown_figure", "empty_figure", "equity_figure",
           "equity_with_drawdown_figure", "monthly_returns_figure"]
