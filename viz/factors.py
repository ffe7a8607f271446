"""Factor exposure of a backtest, drawn: the Fama–French betas with their intervals.

Input is :func:`ml.factors.exposure`'s dict per strategy (``coef`` and ``se`` by term,
``n_months``, ``note``): [(name, exposure)], the model first, then always long. Each
strategy's betas on Mkt-RF, SMB and HML are points with a 95 % interval (± 1.96
Newey–West standard errors); the alpha, in other units, is in the table beside it.
Pure, like every module of :mod:`viz`: data in, Figure out.
"""

from __future__ import annotations

import plotly.graph_objects as go

from viz.evaluation import empty_figure
from viz.theme import COLORS, TEMPLATE

FACTORS = ("Mkt-RF", "SMB", "HML")
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
_COLORS = (COLORS["accent"], COLORS["warning"], COLORS["ink"], COLORS["muted"])


def factor_figure(columns: list[tuple[str, dict]], height: int = 300) -> go.Figure:
    """Betas of each strategy on the three factors with ± 1.96 standard errors; a figure
    that says why when no strategy has a regression (too few months inside the data)."""
    shown = [(name, e) for name, e in columns if e.get("coef", {}).get(FACTORS[0]) is not None]
    if not shown:
        return empty_figure("No factor regression: too few months inside the factor data", height)
    fig = go.Figure()
    rows = {f: len(FACTORS) - 1 - k for k, f in enumerate(FACTORS)}  # Mkt-RF on top
    step = 0.5 / max(len(shown), 1)
    for i, (name, e) in enumerate(shown):
        offset = (i - (len(shown) - 1) / 2) * step  # each strategy on its own line within a factor's row
        beta = [e["coef"][f] for f in FACTORS]
        half = [Z95 * (e["se"][f] or 0.0) for f in FACTORS]
        fig.add_trace(go.Scatter(
            x=beta, y=[rows[f] - offset for f in FACTORS], mode="markers", name=name,
            marker=dict(color=_COLORS[i % len(_COLORS)], size=10, symbol="diamond" if i else "circle"),
            error_x=dict(type="data", array=half, visible=True, thickness=1.6, width=5),
            customdata=[[f, e["t"][f], half[k], e["n_months"]] for k, f in enumerate(FACTORS)],
            hovertemplate=(f"{name}: β %{{customdata[0]}} = %{{x:.3f}} ± %{{customdata[2]:.3f}} "
                           "(t %{customdata[1]:.2f}, %{customdata[3]} months)<extra></extra>")))
    fig.add_vline(x=0.0, line=dict(color=COLORS["muted"], width=1))
    fig.update_xaxes(title_text="Beta (95 % interval, Newey–West)", zeroline=False)
    fig.update_yaxes(tickmode="array", tickvals=[rows[f] for f in FACTORS], ticktext=list(FACTORS),
                     range=[-0.6, len(FACTORS) - 0.4], showgrid=False, zeroline=False, title_text="")
    return fig.update_layout(template=TEMPLATE, height=height, hovermode="closest",
                             title=dict(text="Fama–French betas of the monthly returns"),
                             legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
                             margin=dict(t=70))


__all__ = ["FACTORS", "factor_figure"]
