"""How did the signal trade? Pure figure builders for the backtest page and the report.

Input is the backtest's daily frame (``ml.backtester.BacktestResult.daily`` or a run's
``backtest.parquet``): ``date``, ``equity`` (growth of 1 invested, compounding the daily
strategy returns), ``benchmark_equity`` (buy and hold, close to close) and ``drawdown``
(equity / running peak − 1, a fraction <= 0); and the year × month table of
``ml.backtester.monthly_returns`` (index year, columns 1..12, compounded monthly
returns as fractions, NaN for a month without days).

An optional ``baseline`` is the always-long backtest on the same days at the same cost
(``ml.replay.always_long(...).daily``): its ``equity`` is drawn as "always long" beside
buy and hold. The rolling Sharpe, the threshold × cost heatmap (``ml.replay.grid``) and
the regression decile chart (``ml.replay.decile_returns``) have builders here too.

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


ALWAYS_LONG = "always long"


def _equity_traces(daily: pd.DataFrame, benchmark_name: str,
                   baseline: pd.DataFrame | None = None) -> list[go.Scatter]:
    x = _dates(daily)
    traces = []
    if "benchmark_equity" in daily.columns:
        traces.append(go.Scatter(
            x=x, y=daily["benchmark_equity"].to_numpy(dtype="float64"), mode="lines",
            name=benchmark_name, line=dict(color=COLORS["muted"], width=1.3),
            hovertemplate=f"{benchmark_name} %{{y:.3f}}<extra></extra>"))
    if baseline is not None and len(baseline):
        traces.append(go.Scatter(
            x=_dates(baseline), y=baseline["equity"].to_numpy(dtype="float64"), mode="lines",
            name=ALWAYS_LONG, line=dict(color=COLORS["warning"], width=1.3, dash="dot"),
            hovertemplate=f"{ALWAYS_LONG} %{{y:.3f}}<extra></extra>"))
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
                  log_scale: bool = False, height: int = 380,
                  baseline: pd.DataFrame | None = None) -> go.Figure:
    """Strategy equity (growth of 1) against buy and hold and, when given, the always-long
    ``baseline``; ``log_scale`` draws the y axis in logs (equal ratios, equal heights)."""
    if not _check(daily, "equity"):
        return empty_figure("No backtest days to show", height)
    fig = go.Figure(_equity_traces(daily, benchmark_name, baseline))
    fig.add_hline(y=1.0, line=dict(color=COLORS["grid"], width=1))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Growth of 1 (equity multiple)", type="log" if log_scale else "linear")
    title = "Equity curve: strategy vs buy and hold" + (" and always long" if baseline is not None else "")
    return fig.update_layout(template=TEMPLATE, height=height, title=dict(text=title))


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
                                title: str | None = None, height: int = 520,
                                baseline: pd.DataFrame | None = None) -> go.Figure:
    """Equity curve (top, 70 %; with the always-long ``baseline`` when given) over the
    drawdown (bottom), sharing the date axis."""
    if not _check(daily, "equity", "drawdown"):
        return empty_figure("No backtest days to show", height)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[0.7, 0.3])
    for tr in _equity_traces(daily, benchmark_name, baseline):
        fig.add_trace(tr, row=1, col=1)
    fig.add_trace(_drawdown_trace(daily), row=2, col=1)
    fig.update_yaxes(title_text="Growth of 1", row=1, col=1)
    fig.update_yaxes(title_text="Drawdown", tickformat=".0%", row=2, col=1)
    fig.update_xaxes(title_text="Date", row=2, col=1)
    return fig.update_layout(template=TEMPLATE, height=height,
                             title=dict(text=title or "Equity curve and drawdown"))


def _monthly_cells(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """(z with the "Year" column, cell texts in percent, colour bound) of a year x month table."""
    months = table.to_numpy(dtype="float64")
    year = np.where(np.isfinite(months).any(axis=1),
                    np.nanprod(1.0 + months, axis=1) - 1.0, np.nan)
    z = np.column_stack([months, year])
    text = np.where(np.isfinite(z), np.char.mod("%.1f%%", np.nan_to_num(z) * 100), "")
    # colours scale with the monthly returns; a larger yearly return saturates
    bound = float(np.nanmax(np.abs(months))) or 0.01
    return z, text, bound


def monthly_updates(monthly: pd.DataFrame) -> dict:
    """The heatmap values that change with the trading rules (z, text, zmin, zmax) for an
    in-place update of :func:`monthly_returns_figure` (the years and months stay)."""
    z, text, bound = _monthly_cells(pd.DataFrame(monthly).reindex(columns=range(1, 13)))
    return {"z": [[None if not np.isfinite(v) else round(float(v), 6) for v in row] for row in z],
            "text": text.tolist(), "zmin": -bound, "zmax": bound}


def monthly_returns_figure(monthly: pd.DataFrame, height: int | None = None) -> go.Figure:
    """Heatmap of compounded monthly returns (rows = years, newest at the bottom) with a
    13th column "Year" = the compounded return of the year's months, each cell
    annotated in percent. ``z[:, :12]`` is ``monthly`` as given."""
    table = pd.DataFrame(monthly).reindex(columns=range(1, 13))
    if table.empty or not np.isfinite(table.to_numpy(dtype="float64")).any():
        return empty_figure("No monthly returns to show", height or 260)
    z, text, bound = _monthly_cells(table)
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


def rolling_sharpe_figure(daily: pd.DataFrame, rolling: pd.Series, window: int = 126,
                          full_sharpe: float | None = None, height: int = 280) -> go.Figure:
    """Annualized Sharpe of the trailing ``window`` days (``rolling``, row for row with
    ``daily``; blank where a window has no trades), with the 0 line and the whole period's
    Sharpe as a dashed second trace (two points, first and last day). The traces do not
    depend on the trading rules, so a new threshold only replaces their y values."""
    y = pd.Series(rolling, dtype="float64").to_numpy()
    if not _check(daily) or len(daily) < window:
        return empty_figure(f"Fewer than {window} days: no rolling Sharpe", height)
    x = _dates(daily)
    full = float(full_sharpe) if full_sharpe is not None and np.isfinite(full_sharpe) else None
    fig = go.Figure([
        go.Scatter(x=x, y=y, mode="lines", name=f"{window}-day Sharpe", line=dict(color=COLORS["accent"], width=1.6),
                   hovertemplate=f"{window}-day Sharpe %{{y:.2f}}<extra></extra>"),
        go.Scatter(x=[x.iloc[0], x.iloc[-1]], y=[full, full], mode="lines", name="whole period",
                   line=dict(color=COLORS["ink"], width=1, dash="dash"),
                   hovertemplate="whole period %{y:.2f}<extra></extra>"),
    ])
    fig.add_hline(y=0.0, line=dict(color=COLORS["muted"], width=1))
    fig.update_xaxes(title_text="Date")
    fig.update_yaxes(title_text="Sharpe (annualized)")
    return fig.update_layout(template=TEMPLATE, height=height, showlegend=True,
                             title=dict(text=f"Rolling {window}-day Sharpe ratio (dashed: whole period)"))


def typed(values, dtype: str = "f4") -> dict:
    """A numeric array as plotly's typed-array spec (``{"dtype", "bdata"}``, base64): what
    plotly.js decodes in place of a JSON list, in 4 bytes a value (float32: 7 significant
    digits, more than any chart shows)."""
    import base64

    arr = np.ascontiguousarray(np.asarray(values, dtype="float64").astype(dtype))
    return {"dtype": dtype, "bdata": base64.b64encode(arr.tobytes()).decode("ascii")}


#: Trace positions in the figures above, for in-place updates (``dash.Patch``).
EQUITY_STRATEGY, EQUITY_ALWAYS_LONG = 2, 1  # after "buy and hold" (0), when a baseline is drawn
ROLLING_LINE, ROLLING_FULL = 0, 1


def trace_updates(daily: pd.DataFrame, baseline: pd.DataFrame | None, rolling: pd.Series,
                  full_sharpe: float | None) -> dict[str, dict[int, dict]]:
    """The y values that change with the trading rules, by figure and trace position, as
    typed arrays: equity (strategy and, when given, always long), drawdown and the rolling
    Sharpe. The figures' x values, layout and other traces stay as drawn."""
    full = float(full_sharpe) if full_sharpe is not None and np.isfinite(full_sharpe) else np.nan
    equity = {EQUITY_STRATEGY: typed(daily["equity"])}
    if baseline is not None:
        equity[EQUITY_ALWAYS_LONG] = typed(baseline["equity"])
    return {"equity": equity, "drawdown": {0: typed(daily["drawdown"])},
            "rolling": {ROLLING_LINE: typed(rolling), ROLLING_FULL: typed([full, full])}}


def sharpe_grid_figure(grid: dict, threshold: float | None = None, cost_bps: float | None = None,
                       height: int = 380) -> go.Figure:
    """Two heatmaps side by side: Sharpe (left) and DSR (right) at every threshold (rows) ×
    cost in bp per side (columns) of ``grid`` (``ml.replay.grid``: ``thresholds``,
    ``costs``, ``sharpe``, ``dsr`` arrays of shape (thresholds, costs)). z holds the grid's
    numbers as given; a marker shows the settings on screen when they are on the grid."""
    sharpe = np.asarray(grid["sharpe"], dtype="float64")
    dsr = np.asarray(grid["dsr"], dtype="float64")
    if sharpe.size == 0 or not np.isfinite(sharpe).any():
        return empty_figure("No trades at any threshold and cost", height)
    x = [f"{c:g}" for c in grid["costs"]]
    one_row = len(grid["thresholds"]) == 1
    y = ["sign of pred."] if one_row else [f"{t:.2f}" for t in grid["thresholds"]]
    bound = float(np.nanmax(np.abs(sharpe))) or 1.0
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.2,
                        subplot_titles=("Sharpe (annualized)", "DSR (deflated Sharpe, probability)"))
    fig.add_trace(go.Heatmap(z=sharpe, x=x, y=y, colorscale=RETURN_SCALE, zmin=-bound, zmax=bound, zmid=0,
                             name="Sharpe", colorbar=dict(x=0.41, xanchor="left", thickness=10, title=dict(text="")),
                             hovertemplate="threshold %{y}, %{x} bp per side: Sharpe %{z:.2f}<extra></extra>"),
                  row=1, col=1)
    fig.add_trace(go.Heatmap(z=dsr, x=x, y=y, colorscale="Blues", zmin=0, zmax=1, name="DSR",
                             colorbar=dict(x=1.0, thickness=10, tickformat=".0%", title=dict(text="")),
                             hovertemplate="threshold %{y}, %{x} bp per side: DSR %{z:.1%}<extra></extra>"),
                  row=1, col=2)
    if threshold is not None and cost_bps is not None:
        t_lab = y[0] if one_row else f"{float(threshold):.2f}"
        c_lab = f"{float(cost_bps):g}"
        if t_lab in y and c_lab in x:
            for col in (1, 2):
                fig.add_trace(go.Scatter(x=[c_lab], y=[t_lab], mode="markers", name="on screen",
                                         marker=dict(symbol="square-open", size=14, color=COLORS["ink"],
                                                     line=dict(width=2)),
                                         hoverinfo="skip", showlegend=False), row=1, col=col)
    for col in (1, 2):
        fig.update_xaxes(title_text="Cost (bp per side)", type="category", row=1, col=col)
        fig.update_yaxes(title_text="Threshold" if col == 1 and not one_row else "", type="category", row=1, col=col)
    return fig.update_layout(template=TEMPLATE, height=height if not one_row else 240, hovermode="closest",
                             title=dict(text="Threshold × cost: from the stored out-of-fold predictions"),
                             margin=dict(t=90))


def decile_figure(table: pd.DataFrame, height: int = 320) -> go.Figure:
    """Mean realized return (bars, in %) per decile of the predicted return, each bar
    labelled with its count of days (``ml.replay.decile_returns``: decile, mean, count)."""
    if table is None or len(table) == 0:
        return empty_figure("No predictions to group in deciles", height)
    means = table["mean"].to_numpy(dtype="float64")
    counts = table["count"].to_numpy(dtype="int64")
    fig = go.Figure(go.Bar(
        x=[str(int(d)) for d in table["decile"]], y=means,
        marker_color=[COLORS["up"] if m >= 0 else COLORS["down"] for m in means],
        text=[f"n={c:,}" for c in counts], textposition="outside", customdata=counts,
        hovertemplate="decile %{x}: mean %{y:.3%} over %{customdata:,} days<extra></extra>", name="mean"))
    fig.add_hline(y=0.0, line=dict(color=COLORS["muted"], width=1))
    fig.update_xaxes(title_text="Decile of the predicted return (1 = lowest)", type="category")
    fig.update_yaxes(title_text="Mean realized return", tickformat=".2%")
    return fig.update_layout(template=TEMPLATE, height=height, showlegend=False, hovermode="closest",
                             title=dict(text="Realized return by predicted decile"))


__all__ = ["ALWAYS_LONG", "MONTHS", "decile_figure", "drawdown_figure", "empty_figure", "equity_figure",
           "equity_with_drawdown_figure", "monthly_returns_figure", "rolling_sharpe_figure",
           "monthly_updates", "sharpe_grid_figure", "trace_updates", "typed"]
