"""Figures of the features page: distribution, history, correlation, hit rates, importance.

Pure builders: plain pandas objects in, a plotly ``Figure`` on the ``"almanac"``
template out; nothing is read from disk. Conventions:

* a histogram shows every value but zooms its x axis to the 0.5-99.5 % quantiles when
  the tails are far out (the title says so), so one outlier cannot squash the bars;
* rates stay fractions in the traces and show as percentages through tick formats;
* :func:`empty_figure` is the empty state (a blank plot with a centred message).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from viz.evaluation import wilson_interval
from viz.theme import COLORS, TEMPLATE

CORR_SCALE = [[0.0, "#2C6FA8"], [0.5, "#F7F7F7"], [1.0, "#C0392B"]]
ROLLING_DAYS = 60
CORR_TEXT_MAX = 12  # above this many features the heat map's cells carry no numbers (hover shows them)


def _layout(fig: go.Figure, title: str, height: int, **kw) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title), height=height, **kw)
    return fig


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=15, color=COLORS["muted"]))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height, hovermode=False)


def histogram_figure(values: pd.Series, name: str, bins: int = 60, height: int = 340) -> go.Figure:
    """Distribution of one feature over the days (NaN days counted in the title)."""
    x = pd.Series(values, dtype="float64")
    ok = x.dropna()
    if ok.empty:
        return empty_figure(f"{name}: no values in this range", height)
    lo, hi = ok.quantile(0.005), ok.quantile(0.995)
    zoom = (ok.min() < lo or ok.max() > hi) and hi > lo and (ok.max() - ok.min()) > 3 * (hi - lo)
    fig = go.Figure(go.Histogram(x=ok, nbinsx=bins, marker_color=COLORS["accent"], opacity=0.85, name=name,
                                 hovertemplate="%{x}<br>%{y} days<extra></extra>"))
    if zoom:
        pad = 0.02 * (hi - lo)
        fig.update_xaxes(range=[lo - pad, hi + pad])
    title = f"{name}: distribution over {len(ok):,} days" + (f" ({len(x) - len(ok):,} NaN)" if len(x) > len(ok) else "")
    if zoom:
        title += " · axis zoomed to 0.5–99.5 %"
    fig.update_xaxes(title_text=name)
    fig.update_yaxes(title_text="days")
    return _layout(fig, title, height, bargap=0.04, showlegend=False, hovermode="closest")


def timeseries_figure(values: pd.Series, name: str, rolling: int = ROLLING_DAYS, height: int = 340) -> go.Figure:
    """One feature per day (points) with its trailing ``rolling``-day mean (line)."""
    x = pd.Series(values, dtype="float64")
    if x.dropna().empty:
        return empty_figure(f"{name}: no values in this range", height)
    dates = pd.DatetimeIndex(x.index)
    fig = go.Figure([
        go.Scatter(x=dates, y=x.to_numpy(), mode="markers", name="daily value",
                     marker=dict(size=3, color=COLORS["accent"], opacity=0.45)),
        go.Scatter(x=dates, y=x.rolling(rolling, min_periods=max(5, rolling // 4)).mean().to_numpy(),
                   mode="lines", name=f"{rolling}-day mean", line=dict(color=COLORS["ink"], width=2)),
    ])
    fig.update_xaxes(title_text="date")
    fig.update_yaxes(title_text=name)
    return _layout(fig, f"{name} over time", height)


def correlation_figure(corr: pd.DataFrame, title: str = "Rank correlation (Spearman) between features",
                       height: int | None = None) -> go.Figure:
    """Heat map of a square correlation matrix, -1 (blue) .. +1 (red); cells carry their
    value only up to :data:`CORR_TEXT_MAX` features (the hover always does)."""
    if corr.empty:
        return empty_figure("no features to correlate", height or 320)
    n = len(corr)
    z = corr.to_numpy(dtype="float64")
    text = np.where(np.isnan(z), "", np.vectorize(lambda v: f"{v:.2f}")(np.nan_to_num(z)))
    fig = go.Figure(go.Heatmap(
        z=z, x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1, colorscale=CORR_SCALE,
        text=text if n <= CORR_TEXT_MAX else None, texttemplate="%{text}" if n <= CORR_TEXT_MAX else None,
        textfont=dict(size=11),
        colorbar=dict(title=dict(text="ρ"), thickness=12), xgap=1, ygap=1,
        hovertemplate="%{y} vs %{x}<br>ρ = %{z:.3f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", showgrid=False, ticks="", showline=False)
    fig.update_xaxes(tickangle=-45, showgrid=False, ticks="", showline=False)
    size = height or int(min(900, max(360, 150 + 24 * n)))
    return _layout(fig, title, size, hovermode="closest", margin=dict(l=140, r=24, t=64, b=140))


def hit_rate_figure(table: pd.DataFrame, name: str, outcome: str, base_rate: float | None = None,
                    height: int = 360) -> go.Figure:
    """Hit rate of ``outcome`` per quantile bin of feature ``name`` (bars, with day counts).

    ``table``: rows of :func:`features.explore.binned_hit_rates` (``bin, lo, hi, count,
    hits, hit_rate``). ``base_rate``: the outcome's rate over all those days (dashed line).
    """
    if table is None or table.empty:
        return empty_figure(f"{name}: not enough days with both a value and an outcome", height)
    labels = [f"Q{int(b)}" for b in table["bin"]]
    colors = [COLORS["up"] if base_rate is None or r >= base_rate else COLORS["down"] for r in table["hit_rate"]]
    ranges = [f"{lo:.4g} … {hi:.4g}" for lo, hi in zip(table["lo"], table["hi"])]
    rate = table["hit_rate"].to_numpy(dtype="float64")
    lo, hi = wilson_interval(table["hits"], table["count"])
    custom = np.array(list(zip(table["count"].astype(int), table["hits"].astype(float), ranges, lo, hi, strict=True)),
                      dtype=object)
    fig = go.Figure(go.Bar(
        x=labels, y=rate, marker_color=colors, text=[f"n={int(c):,}" for c in table["count"]],
        textposition="inside", insidetextanchor="start", textfont=dict(size=10 if len(labels) > 12 else 11),
        error_y=dict(type="data", symmetric=False, array=np.nan_to_num(hi - rate), arrayminus=np.nan_to_num(rate - lo),
                     color=COLORS["ink"], thickness=1.2, width=4),
        name="hit rate per bin (95 % Wilson interval)", customdata=custom,
        hovertemplate="%{x}: " + name + " %{customdata[2]}<br>hit rate %{y:.1%} (95 % Wilson %{customdata[3]:.1%} … "
                      "%{customdata[4]:.1%})<br>%{customdata[1]} of %{customdata[0]} days<extra></extra>"))
    if base_rate is not None and np.isfinite(base_rate):
        fig.add_trace(go.Scatter(x=[labels[0], labels[-1]], y=[base_rate, base_rate], mode="lines",
                                 name=f"all days: {base_rate:.1%}", hoverinfo="skip",
                                 line=dict(color=COLORS["muted"], dash="dash", width=1.5)))
    top = float(np.nanmax(np.r_[rate, hi, base_rate or 0]))
    fig.update_yaxes(title_text=f"share of days: {outcome}", tickformat=".0%", range=[0, min(1.0, top * 1.15 + 0.03)])
    fig.update_xaxes(title_text=f"{name} quantile bin (Q1 = lowest values; hover for the range)")
    return _layout(fig, f"{outcome} by {name} quantile", height,
                   showlegend=base_rate is not None,
                   hovermode="closest")


def importance_figure(values: pd.Series, title: str = "Mutual information with the outcome",
                      height: int | None = None) -> go.Figure:
    """Horizontal bars, largest on top (NaN values left out)."""
    v = pd.Series(values, dtype="float64").dropna().sort_values()
    if v.empty:
        return empty_figure("not enough early days to estimate it", height or 320)
    fig = go.Figure(go.Bar(x=v.to_numpy(), y=list(v.index), orientation="h", marker_color=COLORS["ink"],
                           hovertemplate="%{y}: %{x:.4f} nats<extra></extra>"))
    fig.update_xaxes(title_text="mutual information (nats)", rangemode="tozero")
    size = height or int(max(320, 110 + 22 * len(v)))
    return _layout(fig, title, size, showlegend=False, hovermode="closest", margin=dict(l=150, r=24, t=64, b=48))
