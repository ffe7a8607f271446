"""The similar-days figure: the query day's rest-of-day path over the paths of its neighbours.

Pure builder: the query's summary (``ml.similar`` JSON: date, neighbours with their
rest-of-day returns, share up, mean) and each day's path (``minutes`` after the cutoff,
``pct`` = % from the price at the cutoff) in, a plotly ``Figure`` out. Neighbours are thin
lines, green when their rest of the day was up and red when down; their mean path is a
dashed line; the query day is the thick dark line (absent for today at the cutoff, whose
rest is unknown: the title says so). A bar on the right gives each neighbour's rest-of-day
return, nearest first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.features import empty_figure
from viz.theme import COLORS, TEMPLATE

UP_LINE = "rgba(24, 188, 156, 0.55)"
DOWN_LINE = "rgba(231, 76, 60, 0.55)"


def _key(d) -> str:
    return f"{pd.Timestamp(d):%Y-%m-%d}"


def mean_path(paths: list[pd.DataFrame]) -> pd.DataFrame:
    """The mean of several paths on the union of their minutes (each carried forward to
    the minutes it lacks, so a day with a coarser bar does not drop out)."""
    if not paths:
        return pd.DataFrame({"minutes": [], "pct": []})
    grid = np.unique(np.concatenate([p["minutes"].to_numpy() for p in paths]))
    cols = [p.set_index("minutes")["pct"].groupby(level=0).last().reindex(grid).ffill() for p in paths]
    return pd.DataFrame({"minutes": grid, "pct": pd.concat(cols, axis=1).mean(axis=1).to_numpy()})


def similar_days_figure(result: dict, paths: dict, height: int = 450) -> go.Figure:
    """``result``: the similar-days summary; ``paths``: ``{date: DataFrame(minutes, pct)}`` of
    the query day and the neighbours (missing days are simply not drawn)."""
    nbs = result.get("neighbors") or []
    if not nbs:
        return empty_figure("no earlier day to compare", height)
    paths = {_key(d): p for d, p in (paths or {}).items()}
    fig = make_subplots(rows=1, cols=2, column_widths=[0.72, 0.28], horizontal_spacing=0.09,
                        subplot_titles=("rest of the day from the cutoff", "what followed (nearest first)"))
    drawn, named = [], set()
    for i, n in enumerate(nbs):
        p = paths.get(n["date"])
        if p is None or p.empty:
            continue
        drawn.append(p)
        up = n["rest_of_day_return"] > 0
        kind = "neighbour, rest of day up" if up else "neighbour, rest of day down"
        fig.add_trace(go.Scatter(
            x=p["minutes"], y=p["pct"], mode="lines", line=dict(width=1.2, color=UP_LINE if up else DOWN_LINE),
            name=n["date"], legendgroup=kind, showlegend=kind not in named,
            hovertemplate=f"{n['date']} (#{i + 1}, distance {n['distance']:.2f})<br>%{{x:.0f}} min: "
                          "%{y:+.2f} %<extra></extra>"), row=1, col=1)
        if kind not in named:  # one legend entry per colour, named by what it means
            fig.data[-1].name = kind
            named.add(kind)
    if drawn:
        m = mean_path(drawn)
        fig.add_trace(go.Scatter(x=m["minutes"], y=m["pct"], mode="lines", name=f"mean of {len(drawn)} neighbours",
                                 line=dict(width=2.5, dash="dash", color=COLORS["accent"]),
                                 hovertemplate="mean: %{y:+.2f} %<extra></extra>"), row=1, col=1)
    q = paths.get(result["date"])
    if q is not None and not q.empty:
        fig.add_trace(go.Scatter(x=q["minutes"], y=q["pct"], mode="lines", name=f"{result['date']} (query)",
                                 line=dict(width=3.2, color=COLORS["ink"]),
                                 hovertemplate="query: %{x:.0f} min %{y:+.2f} %<extra></extra>"), row=1, col=1)
    fig.add_hline(y=0, line=dict(color=COLORS["muted"], width=1), row=1, col=1)
    r = np.array([100 * n["rest_of_day_return"] for n in nbs])
    labels = [n["date"] for n in nbs]
    fig.add_trace(go.Bar(x=r, y=labels, orientation="h", showlegend=False,
                         marker_color=[COLORS["up"] if v > 0 else COLORS["down"] for v in r],
                         hovertemplate="%{y}: %{x:+.2f} %<extra></extra>"), row=1, col=2)
    fig.update_yaxes(autorange="reversed", type="category", row=1, col=2)
    fig.update_xaxes(title_text="minutes after the cutoff", row=1, col=1)
    fig.update_yaxes(title_text="% from the cutoff price", ticksuffix=" %", row=1, col=1)
    fig.update_xaxes(title_text="rest-of-day return", ticksuffix=" %", row=1, col=2)
    share, mean = result.get("share_up"), result.get("mean_return")
    title = (f"{result.get('symbol', '')} {result['date']}: {len(nbs)} most similar earlier days · "
             f"{share:.0%} up · mean {100 * mean:+.2f} %")
    own = result.get("query_rest_of_day_return")
    title += (f" · this day {100 * own:+.2f} %" if own is not None and q is not None
              else " · this day's rest is not known yet")
    fig.update_layout(template=TEMPLATE, title=dict(text=title), height=height, hovermode="closest",
                      legend=dict(orientation="h", y=-0.3, x=0), margin=dict(b=100))
    return fig
