"""Study charts: Optuna's own figures on the lab's template, and the ablation intervals.

* :func:`history_figure`, :func:`importance_figure` (fANOVA), :func:`parallel_figure`,
  :func:`slice_figure` call ``optuna.visualization`` on a study object (duck-typed:
  anything those functions accept) and restyle the plotly figure it returns; a study
  without enough complete trials for a chart (fANOVA needs two, with at least two
  distinct values of a parameter) gets a blank figure that says so.
* :func:`ablation_figure`: each feature-set combination's score with its 95 % interval,
  and the full set's score as a reference line (rows as ``ml.study.ablation_table``).

Pure builders: no files, no state. Optuna is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from viz.evaluation import empty_figure
from viz.theme import COLORS, TEMPLATE

HEIGHT = 360


def _style(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=dict(text=title), height=height,
                      margin=dict(l=60, r=24, t=56, b=48))
    return fig


def _complete(study) -> int:
    return sum(1 for t in study.trials if t.state.name == "COMPLETE")


def _optuna_figure(name: str, study, title: str, need: int, **kw) -> go.Figure:
    import optuna.visualization as ov

    if _complete(study) < need:
        return empty_figure(f"{title}: needs at least {need} complete trial{'s' if need > 1 else ''}", HEIGHT)
    try:
        fig = getattr(ov, name)(study, **kw)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. fANOVA on constant parameters
        return empty_figure(f"{title}: {str(exc).splitlines()[0][:90]}", HEIGHT)
    return _style(fig, title)


def history_figure(study, metric: str = "objective") -> go.Figure:
    """Each complete trial's value and the best so far (``plot_optimization_history``)."""
    fig = _optuna_figure("plot_optimization_history", study, f"Optimization history ({metric})", 1,
                         target_name=metric)
    return fig


def importance_figure(study, metric: str = "objective", seed: int = 0) -> go.Figure:
    """fANOVA parameter importances (``plot_param_importances`` with a seeded evaluator)."""
    from optuna.importance import FanovaImportanceEvaluator

    return _optuna_figure("plot_param_importances", study, "Parameter importance (fANOVA)", 2,
                          evaluator=FanovaImportanceEvaluator(seed=seed), target_name=metric)


def parallel_figure(study, metric: str = "objective") -> go.Figure:
    """One line per complete trial across its parameters (``plot_parallel_coordinate``)."""
    return _optuna_figure("plot_parallel_coordinate", study, "Parallel coordinates", 1, target_name=metric)


def slice_figure(study, metric: str = "objective") -> go.Figure:
    """The value against each parameter (``plot_slice``)."""
    return _optuna_figure("plot_slice", study, "Slices", 1, target_name=metric)


def ablation_figure(rows: Sequence[dict], metric: str = "score") -> go.Figure:
    """Dots with 95 % intervals per feature-set combination (top: the full set), and a
    dashed line at the full set's score."""
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return empty_figure("No ablation results yet", HEIGHT)
    names = [" + ".join(r["sets"]) for r in rows][::-1]
    vals = [r["value"] for r in rows][::-1]
    lo = [r["value"] - r["ci_low"] if r.get("ci_low") is not None else 0 for r in rows][::-1]
    hi = [r["ci_high"] - r["value"] if r.get("ci_high") is not None else 0 for r in rows][::-1]
    fig = go.Figure(go.Scatter(
        x=vals, y=names, mode="markers", marker=dict(size=11, color=COLORS["ink"]),
        error_x=dict(type="data", symmetric=False, array=hi, arrayminus=lo, color=COLORS["accent"], thickness=2),
        hovertemplate="%{y}: %{x:.4f}<extra></extra>", name=metric))
    fig.add_vline(x=rows[-1]["value"], line=dict(color=COLORS["muted"], dash="dash"),
                  annotation_text="all sets", annotation_position="top")
    fig.update_xaxes(title_text=f"{metric} (95 % block-bootstrap interval)")
    return _style(fig, "Feature-set ablation", height=max(240, 70 + 44 * len(rows)))


__all__ = ["history_figure", "importance_figure", "parallel_figure", "slice_figure", "ablation_figure"]
