"""How good is the model? Pure figure builders for the evaluation page and the report.

Every builder takes plain data (arrays, Series, DataFrames, as written in a run folder)
and returns a plotly ``Figure`` on the ``"almanac"`` template; none reads files or keeps
state. Conventions:

* probabilities and rates stay fractions in the traces (0.55, not 55) and are shown as
  percentages through tick formats, so a trace holds exactly the numbers passed in;
* features are ranked by mean |SHAP| (largest on top) in every SHAP figure;
* :func:`empty_figure` is the empty state: a blank plot with a centred message.

SHAP beeswarm (:func:`shap_summary_figure`): one row per feature, one point per
explained day (or per day of a seeded sample of them) at x = its SHAP value. Points are spread vertically where they crowd: the
x range of the row is cut into 60 equal bins and the k-th point of a bin (in a fixed
pseudo-random order) is offset by ``(-1)^k · ceil(k/2)``, scaled so the fullest bin
spans ±0.4 of a row. Colour
is the point's feature value as a quantile (rank percentile) among the explained rows,
0 = lowest (blue) to 1 = highest (red); a missing feature value is grey.

Large point traces are sent as float32 (plotly encodes numpy arrays in binary): what a
hover shows (4 decimals of a SHAP value, 4 significant digits of a feature value or a
rate) is the same as from float64.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from viz.theme import COLORS, TEMPLATE, fold_name

#: Low → high colour scale of feature values (SHAP's convention: blue low, red high).
VALUE_SCALE = [[0.0, "#3498DB"], [0.5, "#B39DDB"], [1.0, "#E74C3C"]]
HEAT_SCALE = [[0.0, "#F4F8FB"], [1.0, "#2C6FA8"]]
_BEESWARM_BINS = 60
_SVG_POINTS = 30_000  # above this many points scatter plots switch to WebGL
_SVG_BEESWARM_POINTS = 3_000  # a beeswarm (one SVG path per point) switches earlier
_SVG_DEPENDENCE_POINTS = 1_000


def _layout(fig: go.Figure, title: str, height: int, subtitle: str | None = None,
            **kw) -> go.Figure:
    t = dict(text=title)
    if subtitle:
        t["subtitle"] = dict(text=subtitle, font=dict(size=12, color=COLORS["muted"]))
        kw.setdefault("margin", dict(t=84))
    fig.update_layout(template=TEMPLATE, title=t, height=height, **kw)
    return fig


def empty_figure(message: str, height: int = 320) -> go.Figure:
    """A blank figure that says why there is nothing to show (no axes, no grid)."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper",
                       showarrow=False, font=dict(size=15, color=COLORS["muted"]))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height, hovermode=False)


# ------------------------------------------------------------------ classification

def confusion_matrix_figure(cm, labels: Sequence[str], threshold: float | None = None,
                            height: int = 380) -> go.Figure:
    """Heatmap of ``cm`` (rows = actual class, columns = predicted class, counts).

    Each cell shows its count and its share of the actual class's row; ``threshold``
    (binary models) goes in the title.
    """
    z = np.asarray(cm, dtype="int64")
    names = [str(c) for c in labels]
    if z.ndim != 2 or z.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix of shape {z.shape} does not match {len(names)} labels")
    rows = z.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(rows > 0, z / np.where(rows > 0, rows, 1), np.nan)
    text = [[f"{z[i, j]:,}<br>{share[i, j]:.0%}" if np.isfinite(share[i, j]) else f"{z[i, j]:,}"
             for j in range(z.shape[1])] for i in range(z.shape[0])]
    fig = go.Figure(go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", colorscale=HEAT_SCALE,
        showscale=False, xgap=2, ygap=2, textfont=dict(size=14),
        hovertemplate="actual %{y}, predicted %{x}: %{z:,} days<extra></extra>"))
    fig.update_xaxes(title_text="Predicted class", side="bottom", showgrid=False, type="category")
    fig.update_yaxes(title_text="Actual class", autorange="reversed", showgrid=False,
                     type="category")
    at = f" at {threshold:.2f}" if threshold is not None else ""
    return _layout(fig, f"Confusion matrix{at}", height,
                   subtitle="days · share of the actual class", hovermode="closest")


def roc_figure(fpr, tpr, auc: float | None, height: int = 380) -> go.Figure:
    """ROC curve (x = false positive rate, y = true positive rate) with the chance line."""
    fpr = np.asarray(fpr, dtype="float32")  # rates: float32 is exact to 7 digits, half the bytes
    tpr = np.asarray(tpr, dtype="float32")
    if len(fpr) == 0:
        return empty_figure("No ROC curve: the outcomes hold a single class", height)
    label = f"model (AUC {auc:.3f})" if auc is not None and np.isfinite(auc) else "model"
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance (AUC 0.5)",
                   line=dict(color=COLORS["muted"], dash="dash", width=1), hoverinfo="skip"),
        go.Scatter(x=fpr, y=tpr, mode="lines", name=label, line=dict(color=COLORS["accent"], width=2),
                   hovertemplate="FPR %{x:.1%}, TPR %{y:.1%}<extra></extra>"),
    ])
    fig.update_xaxes(title_text="False positive rate", range=[0, 1], tickformat=".0%")
    fig.update_yaxes(title_text="True positive rate", range=[0, 1], tickformat=".0%")
    title = "ROC curve" + (f" · AUC {auc:.3f}" if auc is not None and np.isfinite(auc) else "")
    return _layout(fig, title, height, subtitle="positive class = up (class 1)",
                   hovermode="closest",
                   legend=dict(x=0.98, xanchor="right", y=0.04, yanchor="bottom",
                               orientation="v", bgcolor="rgba(255,255,255,0.85)"))


def calibration_figure(reliability, brier: float | None = None, ece: float | None = None,
                       height: int = 440) -> go.Figure:
    """Reliability diagram over a histogram of predictions.

    ``reliability`` has one row per probability bin with ``mean_predicted``,
    ``observed`` and ``count`` (``ml.evaluation.reliability_curve``); empty bins
    (count 0) are left out of the curve.
    """
    rel = pd.DataFrame(reliability)
    if rel.empty or rel["count"].sum() == 0:
        return empty_figure("No calibration curve: no predictions", height)
    used = rel[rel["count"] > 0]
    centres = (rel["lower"] + rel["upper"]) / 2 if {"lower", "upper"} <= set(rel) else rel["mean_predicted"]
    width = float((rel["upper"] - rel["lower"]).iloc[0]) if "upper" in rel else 0.1
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.74, 0.26],
                        vertical_spacing=0.04)
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                             line=dict(color=COLORS["muted"], dash="dash", width=1),
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(
        x=used["mean_predicted"], y=used["observed"], mode="lines+markers", name="model",
        line=dict(color=COLORS["accent"], width=2), marker=dict(size=7),
        customdata=used["count"],
        hovertemplate="predicted %{x:.1%}, observed %{y:.1%} (%{customdata:,} days)<extra></extra>",
    ), row=1, col=1)
    fig.add_trace(go.Bar(x=centres, y=rel["count"], width=width * 0.9, name="days per bin",
                         marker=dict(color=COLORS["grid"], line=dict(color="#C9D1D9", width=1)),
                         showlegend=False, hovertemplate="%{y:,} days<extra></extra>"),
                  row=2, col=1)
    fig.update_yaxes(title_text="Observed share of up days", range=[0, 1], tickformat=".0%",
                     row=1, col=1)
    fig.update_yaxes(title_text="Days", row=2, col=1, rangemode="tozero", nticks=3)
    fig.update_xaxes(range=[0, 1], tickformat=".0%", row=1, col=1)
    fig.update_xaxes(title_text="Predicted P(up)", range=[0, 1], tickformat=".0%", row=2, col=1)
    parts = [f"Brier {brier:.4f}" if brier is not None and np.isfinite(brier) else "",
             f"ECE {ece:.4f}" if ece is not None and np.isfinite(ece) else ""]
    return _layout(fig, "Calibration", height,
                   subtitle=" · ".join(p for p in parts if p) or "observed vs predicted",
                   hovermode="closest", bargap=0.1,
                   legend=dict(x=0.02, xanchor="left", y=0.98, yanchor="top", yref="paper",
                               orientation="v", bgcolor="rgba(255,255,255,0.85)"))


def prediction_scatter_figure(pred, actual, ic: float | None = None, r2: float | None = None,
                              height: int = 400, unit: str = "return", censored=None) -> go.Figure:
    """Regression: realized outcome (y) against the out-of-fold prediction (x), one point
    per day, with the y = x line. ``unit`` ``return``: fractions, shown in %; another unit
    (``minutes``, ``ATR``): plain numbers, the unit in the axis titles. ``censored`` (a
    boolean per day, time_to_touch): those days are drawn grey, named "censored at the close"
    (their outcome is the time to the close, a lower bound)."""
    x = np.asarray(pred, dtype="float64")
    y = np.asarray(actual, dtype="float64")
    if len(x) == 0:
        return empty_figure("No out-of-fold predictions to show", height)
    both = np.r_[x, y][np.isfinite(np.r_[x, y])]
    lim = float(np.abs(both).max()) if both.size else 1.0
    lo, hi = (-lim, lim) if unit == "return" or not both.size else (float(both.min()), float(both.max()))
    fmt, tick, units = (".2%", ".1%", "") if unit == "return" else (".3g", None, f" ({unit})")
    scatter = go.Scattergl if len(x) > _SVG_POINTS else go.Scatter
    fig = go.Figure([
        go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="prediction = outcome",
                   line=dict(color=COLORS["muted"], dash="dash", width=1), hoverinfo="skip"),
        scatter(x=x, y=y, mode="markers", name="days", marker=dict(size=5, opacity=0.6,
                                                                  color=COLORS["accent"]),
                hovertemplate=f"predicted %{{x:{fmt}}}, outcome %{{y:{fmt}}}<extra></extra>"),
    ])
    has_censored = censored is not None and bool(np.asarray(censored, dtype=bool).any())
    if has_censored:
        c = np.asarray(censored, dtype=bool)
        fig.data[1].update(x=x[~c], y=y[~c], name="touched")
        fig.add_trace(scatter(x=x[c], y=y[c], mode="markers", name="censored at the close",
                              marker=dict(size=5, opacity=0.5, color=COLORS["muted"]),
                              hovertemplate=f"predicted %{{x:{fmt}}}, censored at %{{y:{fmt}}}<extra></extra>"))
    fig.update_xaxes(title_text="Out-of-fold prediction" + units, tickformat=tick)
    fig.update_yaxes(title_text="Realized outcome" + units, tickformat=tick)
    parts = [f"IC {ic:.3f}" if ic is not None and np.isfinite(ic) else "",
             f"R² {r2:.3f}" if r2 is not None and np.isfinite(r2) else ""]
    fig = _layout(fig, "Prediction vs outcome", height, subtitle=" · ".join(p for p in parts if p) or None,
                  hovermode="closest", showlegend=has_censored)
    if has_censored:
        fig.update_traces(showlegend=False, selector=dict(mode="lines"))
        fig.update_layout(legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0))
    return fig


# ------------------------------------------------------------------ SHAP and importance

def _ranked(mean_abs: pd.Series, max_display: int) -> list[str]:
    return list(mean_abs.sort_values(ascending=False, kind="stable").index[:max_display])


def _swarm_offsets(x: np.ndarray, bins: int = _BEESWARM_BINS, half_width: float = 0.4) -> np.ndarray:
    """Vertical offsets that spread points sharing an x bin (see the module doc)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    lo, hi = np.nanmin(x), np.nanmax(x)
    span = hi - lo if hi > lo else 1.0
    b = np.minimum(((x - lo) / span * bins).astype("int64"), bins - 1)
    # within a bin, points take layers in a fixed pseudo-random order (x order would
    # draw chevrons); the seed makes the figure reproducible
    order = np.lexsort((np.random.default_rng(0).random(n), b))
    b_sorted = b[order]
    start = np.r_[0, np.flatnonzero(np.diff(b_sorted)) + 1]
    rank = np.arange(n) - np.repeat(start, np.diff(np.r_[start, n]))
    step = np.where(rank % 2 == 1, 1, -1) * np.ceil(rank / 2)
    peak = max(np.abs(step).max(), 1.0)
    out = np.empty(n)
    out[order] = step / peak * half_width
    return out


def beeswarm_sample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """The rows a beeswarm draws: all ``n`` when ``max_points`` is None or not smaller, else
    a seeded sample of ``max_points`` rows without replacement, in row order."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=int(max_points), replace=False))


def shap_summary_figure(shap_values: pd.DataFrame, feature_values: pd.DataFrame,
                        max_display: int = 15, height: int | None = None,
                        max_points: int | None = None, seed: int = 0) -> go.Figure:
    """Beeswarm of SHAP values: rows = the ``max_display`` features of largest mean |SHAP|.

    ``shap_values`` and ``feature_values`` are rows × features with the same columns
    (rows aligned). One trace per feature (named after it), x = its SHAP values of the
    days with a feature value, and one grey trace ``"<feature> (missing)"`` for the days
    without one. The ranking and the colours (quantiles) are computed on every row; with
    ``max_points`` only a seeded sample of that many rows is drawn
    (:func:`beeswarm_sample`, the same rows in every feature). Arrays are float32
    (colour: the quantile in 1/255 steps, uint8) so the figure stays small to send;
    many points are drawn with WebGL.
    """
    cols = [c for c in shap_values.columns if c in feature_values.columns]
    if shap_values.empty or not cols:
        return empty_figure("No SHAP values to show", height or 320)
    ranked = _ranked(shap_values[cols].abs().mean(), max_display)
    n = len(ranked)
    rows = beeswarm_sample(len(shap_values), max_points, seed)
    # SVG draws crisply (and in PNG exports); WebGL once it would be slow (~0.25 s per 1,000 SVG points)
    scatter = go.Scattergl if len(rows) * n > _SVG_BEESWARM_POINTS else go.Scatter
    fig = go.Figure()
    for i, feat in enumerate(ranked):
        v_all = pd.Series(feature_values[feat].to_numpy(dtype="float64"))
        q = v_all.rank(pct=True).to_numpy()[rows]
        x = shap_values[feat].to_numpy(dtype="float64")[rows]
        v = v_all.to_numpy()[rows]
        y = (n - 1 - i) + _swarm_offsets(x)
        miss = np.isnan(v)
        keep = ~miss
        fig.add_trace(scatter(
            x=x[keep].astype("float32"), y=y[keep].astype("float32"), mode="markers", name=feat, showlegend=False,
            marker=dict(size=5, opacity=0.8, color=np.round(q[keep] * 255).astype("uint8"),
                        colorscale=VALUE_SCALE, cmin=0, cmax=255, showscale=i == 0,
                        colorbar=dict(title=dict(text="Feature<br>value", side="top"),
                                      tickvals=[0, 255], ticktext=["low", "high"], thickness=12,
                                      len=min(1.0, max(0.4, 6 / n))) if i == 0 else None),
            customdata=v[keep].astype("float32"),
            hovertemplate=f"{feat}<br>SHAP %{{x:.4f}}<br>value %{{customdata:.4g}}<extra></extra>",
        ))
        if miss.any():  # grey for the days without a value
            fig.add_trace(scatter(x=x[miss].astype("float32"), y=y[miss].astype("float32"), mode="markers",
                                  showlegend=False, name=f"{feat} (missing)",
                                  hovertemplate=f"{feat}<br>SHAP %{{x:.4f}}<br>value missing<extra></extra>",
                                  marker=dict(size=5, color=COLORS["muted"], opacity=0.8)))
    fig.add_vline(x=0, line=dict(color=COLORS["muted"], width=1))
    fig.update_yaxes(tickvals=list(range(n)), ticktext=ranked[::-1], showgrid=False,
                     range=[-0.6, n - 0.4], zeroline=False)
    fig.update_xaxes(title_text="SHAP value (impact on the model output)", zeroline=False)
    return _layout(fig, f"SHAP summary · top {n} features by mean |SHAP|",
                   height or max(320, 90 + 30 * n), hovermode="closest")


def shap_bar_figure(mean_abs: pd.Series, max_display: int = 15,
                    height: int | None = None) -> go.Figure:
    """Horizontal bars of mean |SHAP| per feature (a Series indexed by feature)."""
    s = pd.Series(mean_abs, dtype="float64").dropna()
    if s.empty:
        return empty_figure("No SHAP importance to show", height or 320)
    ranked = _ranked(s, max_display)[::-1]  # largest last = on top
    fig = go.Figure(go.Bar(x=s[ranked].to_numpy(), y=ranked, orientation="h",
                           marker=dict(color=COLORS["accent"]),
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="Mean |SHAP value| (average impact on the model output)")
    fig.update_yaxes(showgrid=False)
    return _layout(fig, "Feature importance (mean |SHAP|)", height or max(300, 90 + 26 * len(ranked)),
                   hovermode="closest")


def shap_dependence_figure(feature: str, x, shap, color=None, color_name: str | None = None,
                           height: int = 380) -> go.Figure:
    """SHAP value of ``feature`` against its value, one point per day (optionally
    coloured by another feature's value, ``color``, named ``color_name``)."""
    x = np.asarray(x, dtype="float32")  # float32: half the bytes, 7 significant digits
    shap = np.asarray(shap, dtype="float32")
    if len(x) == 0:
        return empty_figure(f"No SHAP values for {feature}", height)
    marker = dict(size=6, opacity=0.75, color=COLORS["accent"])
    if color is not None:
        marker.update(color=np.asarray(color, dtype="float64"), colorscale=VALUE_SCALE,
                      showscale=True, colorbar=dict(title=dict(text=color_name or "colour"),
                                                    thickness=12))
    scatter = go.Scattergl if len(x) > _SVG_DEPENDENCE_POINTS else go.Scatter
    fig = go.Figure(scatter(x=x, y=shap, mode="markers", name=feature, marker=marker,
                                 hovertemplate=f"{feature} %{{x:.4g}}<br>SHAP %{{y:.4f}}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=COLORS["muted"], width=1, dash="dot"))
    fig.update_xaxes(title_text=f"{feature} (feature value)")
    fig.update_yaxes(title_text=f"SHAP value of {feature}")
    return _layout(fig, f"SHAP dependence · {feature}", height, hovermode="closest")


def permutation_importance_figure(importance: pd.DataFrame, max_display: int = 15,
                                  height: int | None = None) -> go.Figure:
    """Bars of permutation importance (mean drop of the score when a feature is
    shuffled) with ±1 std error bars; ``importance`` has columns feature,
    perm_importance_mean, perm_importance_std."""
    df = pd.DataFrame(importance).dropna(subset=["perm_importance_mean"])
    if df.empty:
        return empty_figure("No permutation importance to show", height or 320)
    s = df.set_index("feature")["perm_importance_mean"]
    ranked = _ranked(s, max_display)[::-1]
    std = df.set_index("feature")["perm_importance_std"].reindex(ranked).fillna(0.0)
    fig = go.Figure(go.Bar(x=s[ranked].to_numpy(), y=ranked, orientation="h",
                           error_x=dict(type="data", array=std.to_numpy(), color=COLORS["muted"]),
                           marker=dict(color=COLORS["up"]),
                           hovertemplate="%{y}: %{x:.4f}<extra></extra>"))
    fig.update_xaxes(title_text="Drop in score when shuffled (mean ± std)")
    fig.update_yaxes(showgrid=False)
    return _layout(fig, "Permutation importance", height or max(300, 90 + 26 * len(ranked)),
                   hovermode="closest")


# ------------------------------------------------------------------ folds and drift

def _fold_labels(folds: pd.DataFrame) -> list[str]:
    if {"test_start", "test_end"} <= set(folds.columns):
        start = pd.to_datetime(folds["test_start"]).dt.strftime("%Y-%m-%d")
        end = pd.to_datetime(folds["test_end"]).dt.strftime("%Y-%m-%d")
        return [f"{fold_name(f)}<br>{a} → {b}" for f, a, b in zip(folds["fold"], start, end, strict=True)]
    return [fold_name(f) for f in folds["fold"]]


Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = Z95) -> tuple[float, float]:
    """Hanley & McNeil (1982) normal interval of a ROC AUC from the class counts.

    ``Q1 = A / (2 - A)``, ``Q2 = 2A² / (1 + A)``,
    ``SE² = (A(1-A) + (n_pos-1)(Q1-A²) + (n_neg-1)(Q2-A²)) / (n_pos · n_neg)``;
    the interval ``A ± z·SE`` is clipped to [0, 1]. NaN bounds when a class is empty
    or ``auc`` is not finite.
    """
    a = float(auc) if auc is not None else float("nan")
    if not np.isfinite(a) or n_pos < 1 or n_neg < 1:
        return float("nan"), float("nan")
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    se = float(np.sqrt(max(var, 0.0)))
    return max(0.0, a - z * se), min(1.0, a + z * se)


def wilson_interval(hits, n, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of the proportion ``hits / n`` (arrays or scalars).

    ``centre = (p + z²/2n) / (1 + z²/n)``, ``half = z·√(p(1-p)/n + z²/4n²) / (1 + z²/n)``;
    NaN where ``n`` is 0. Unlike p ± z·√(p(1-p)/n) it stays inside [0, 1] and does not
    collapse to zero width at 0 % or 100 %.
    """
    k = np.asarray(hits, dtype="float64")
    m = np.asarray(n, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    bad = ~(m > 0)
    return np.where(bad, np.nan, centre - half), np.where(bad, np.nan, centre + half)


def correlation_interval(r: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Fisher-z interval of a correlation (IC) from ``n`` pairs: ``tanh(atanh r ± z/√(n-3))``."""
    r = float(r) if r is not None else float("nan")
    if not np.isfinite(r) or n is None or n <= 3 or abs(r) >= 1:
        return float("nan"), float("nan")
    c, h = np.arctanh(r), z / np.sqrt(n - 3)
    return float(np.tanh(c - h)), float(np.tanh(c + h))


def fold_intervals(folds: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray] | None:
    """95 % intervals of ``metric`` per fold, or None when the folds do not carry the counts.

    ROC AUC of a binary run: :func:`auc_interval` with ``n_pos = round(base_rate · n)``
    (the fold's up days) and ``n_neg = n - n_pos``; IC of a regression run:
    :func:`correlation_interval` with the fold's ``n``; an accuracy or hit rate (a share
    of days): :func:`wilson_interval` of ``round(value · n)`` of ``n``. A multiclass run's macro AUC has
    no ``base_rate`` per fold and gets no interval.
    """
    df = pd.DataFrame(folds)
    if metric not in df.columns or "n" not in df.columns:
        return None
    v = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype="float64")
    n = pd.to_numeric(df["n"], errors="coerce").fillna(0).to_numpy(dtype="float64")
    if metric == "roc_auc" and "base_rate" in df.columns:
        rate = pd.to_numeric(df["base_rate"], errors="coerce").to_numpy(dtype="float64")
        pos = np.where(np.isfinite(rate), np.round(rate * n), 0).astype("int64")
        bounds = [auc_interval(a, int(p), int(k - p)) for a, p, k in zip(v, pos, n.astype("int64"), strict=True)]
    elif metric == "ic":
        bounds = [correlation_interval(r, int(k)) for r, k in zip(v, n, strict=True)]
    elif metric in ("accuracy", "hit_rate"):  # a share of days: Wilson from the fold's days
        lo, hi = wilson_interval(np.round(v * n), n)
        return np.where(np.isfinite(v), lo, np.nan), np.where(np.isfinite(v), hi, np.nan)
    else:
        return None
    lo, hi = (np.array(b, dtype="float64") for b in zip(*bounds, strict=True)) if bounds else (np.zeros(0),) * 2
    return lo, hi


INTERVAL_NOTES = {"roc_auc": "95 % interval: Hanley–McNeil, from the fold's up and down days",
                  "ic": "95 % interval: Fisher z, from the fold's days",
                  "accuracy": "95 % interval: Wilson, from the fold's days",
                  "hit_rate": "95 % interval: Wilson, from the fold's days"}


def cv_scores_figure(folds: pd.DataFrame, metric: str, reference: float | None = None,
                     label: str | None = None, height: int = 360) -> go.Figure:
    """``metric`` per walk-forward fold as points (x = fold with its test dates) with their
    95 % intervals where the folds carry the counts (:func:`fold_intervals`), the mean over
    folds and an optional ``reference`` line (e.g. 0.5 for AUC) the points stand around;
    ``label`` names the metric on the axis (default: ``metric``). Points, not bars from
    zero: a bar's length would hide differences of a few hundredths."""
    df = pd.DataFrame(folds)
    if df.empty or metric not in df.columns:
        return empty_figure(f"No per-fold {metric} to show", height)
    y = pd.to_numeric(df[metric], errors="coerce").to_numpy(dtype="float64")
    labels = _fold_labels(df)
    name = label or metric.replace("_", " ")
    bounds = fold_intervals(df, metric)
    error = None
    custom = np.c_[y, y]
    hover = f"{name} %{{y:.4f}}<extra></extra>"
    if bounds is not None and np.isfinite(bounds[0]).any():
        lo, hi = bounds
        error = dict(type="data", symmetric=False, array=np.nan_to_num(hi - y), arrayminus=np.nan_to_num(y - lo),
                     color=COLORS["accent"], thickness=1.5, width=6)
        custom = np.c_[lo, hi]
        hover = f"{name} %{{y:.4f}}<br>95 % interval %{{customdata[0]:.3f}} … %{{customdata[1]:.3f}}<extra></extra>"
    fig = go.Figure(go.Scatter(x=labels, y=y, name=name, mode="markers", error_y=error, customdata=custom,
                               marker=dict(color=COLORS["accent"], size=10, line=dict(color="white", width=1)),
                               hovertemplate=hover))
    if np.isfinite(y).any():
        mean = float(np.nanmean(y))
        fig.add_hline(y=mean, line=dict(color=COLORS["ink"], width=1.5, dash="dash"),
                      annotation_text=f"mean {mean:.3f}", annotation_position="top left")
    if reference is not None:
        fig.add_hline(y=reference, line=dict(color=COLORS["muted"], width=1.5, dash="dot"),
                      annotation_text=f"no skill {reference:g}", annotation_position="bottom right")
    fig.update_xaxes(title_text="Walk-forward fold (test period)", type="category")
    fig.update_yaxes(title_text=name)
    note = INTERVAL_NOTES.get(metric) if error is not None else None
    return _layout(fig, f"{name} per fold", height, subtitle=note, hovermode="closest", showlegend=False)


def rolling_auc_figure(dates, auc, window: int | None = None, height: int = 340) -> go.Figure:
    """Rolling out-of-fold ROC AUC over time with the 0.5 no-skill line."""
    x = pd.to_datetime(pd.Series(dates))
    y = np.asarray(auc, dtype="float64")
    if len(y) == 0 or not np.isfinite(y).any():
        return empty_figure("No rolling AUC: too few out-of-fold days", height)
    # days as "YYYY-MM-DD" (a third of ISO timestamps' bytes), AUCs as float32
    x = x.dt.strftime("%Y-%m-%d").to_numpy(dtype=object) if (x.dt.normalize() == x).all() else x
    y = y.astype("float32")
    what = f"{window}-day rolling AUC" if window else "Rolling AUC"
    fig = go.Figure(go.Scatter(x=x, y=y, mode="lines", name=what,
                               line=dict(color=COLORS["accent"], width=1.8),
                               hovertemplate="AUC %{y:.3f}<extra></extra>"))
    fig.add_hline(y=0.5, line=dict(color=COLORS["muted"], width=1, dash="dash"),
                  annotation_text="no skill", annotation_position="bottom right")
    fig.update_xaxes(title_text="Date (end of window)")
    fig.update_yaxes(title_text="ROC AUC", range=[0, 1])
    return _layout(fig, f"{what} of out-of-fold predictions", height, showlegend=False)


def psi_figure(psi, max_features: int = 30, height: int | None = None) -> go.Figure:
    """Heatmap of the population stability index, rows = features, columns = folds.

    ``psi`` is a DataFrame (index = fold, columns = features) or drift.json's mapping
    ``{fold: {feature: psi}}``. Features are ordered by their largest PSI (top = most
    shifted), at most ``max_features``. Colours break at 0.1 (moderate) and 0.25 (major).
    """
    df = pd.DataFrame.from_dict(psi, orient="index") if isinstance(psi, dict) else pd.DataFrame(psi)
    if df.empty:
        return empty_figure("No drift table to show", height or 320)
    df = df.apply(pd.to_numeric, errors="coerce")
    order = df.max(axis=0).sort_values(ascending=False, kind="stable").index[:max_features]
    z = df[order].T  # features × folds
    # the colour scale stops at 0.5 (a major shift already): the three bands keep a readable
    # share of the bar whatever the largest value; the hover shows the exact PSI
    zmax = 0.5
    scale = [[0.0, "#EAF7F2"], [0.1 / zmax, "#BFE9DA"], [0.1 / zmax, "#FCE8C8"],
             [0.25 / zmax, "#F8C471"], [0.25 / zmax, "#F1948A"], [1.0, "#C0392B"]]
    fig = go.Figure(go.Heatmap(
        z=z.to_numpy(), x=[fold_name(c) for c in z.columns], y=[str(i) for i in z.index],
        zmin=0, zmax=zmax, colorscale=scale, xgap=1, ygap=1,
        colorbar=dict(title=dict(text="PSI", side="top"), thickness=16, len=1.0, lenmode="fraction",
                      tickvals=[0.05, 0.175, 0.375], ticktext=["stable<br>< 0.1", "moderate<br>0.1–0.25",
                                                                "major<br>> 0.25"],
                      ticks="", tickfont=dict(size=11)),
        hovertemplate="%{x}, %{y}: PSI %{z:.3f}<extra></extra>"))
    fig.update_xaxes(title_text="Walk-forward fold (test vs its training rows)", type="category",
                     showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False, type="category")
    return _layout(fig, "Feature drift (PSI: < 0.1 stable, 0.1–0.25 moderate, > 0.25 major)",
                   height or max(300, 110 + 22 * len(order)), hovermode="closest")




# ------------------------------------------------------------------ baselines

def _fmt(value, kind: str = "num") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(float(value)):
        return "—"
    return f"{float(value):.1%}" if kind == "pct" else f"{float(value):.3f}"


#: Rows of :func:`baseline_table`: (key, label, kind, better) with better "high" or "low".
BASELINE_ROWS = (("accuracy", "Accuracy", "pct", "high"), ("roc_auc", "ROC AUC", "num", "high"),
                 ("brier", "Brier score", "num", "low"), ("log_loss", "Log loss", "num", "low"),
                 ("mae", "MAE", "num", "low"), ("rmse", "RMSE", "num", "low"), ("r2", "R²", "num", "high"))


def baseline_table(metrics: dict | None, baselines: dict | None) -> pd.DataFrame:
    """The model's pooled scores beside the naive baselines on the same out-of-fold days.

    Rows: accuracy, ROC AUC, Brier, log loss (those the model has); columns ``Score``,
    ``Model``, ``Majority`` (always the training base rate) and ``Prior day`` (the sign of
    the day before), from ``run.json["baselines"]``; a missing value is "—". A regression
    run with ``train_mean``: rows MAE, RMSE, R², columns ``Score``, ``Model``, ``Training
    mean``. Empty frame when the run has no baselines (runs trained before they were recorded).
    """
    base = baselines if isinstance(baselines, dict) else {}
    majority = (base.get("majority") or {}).get("metrics") or {}
    prior = (base.get("prior_day") or {}).get("metrics") or {}
    if not majority and isinstance((base.get("train_mean") or {}).get("metrics"), dict):  # a regression run
        mean, m = base["train_mean"]["metrics"], metrics or {}
        rows = [{"Score": label, "Model": _fmt(m.get(key), kind), "Training mean": _fmt(mean.get(key), kind)}
                for key, label, kind, _better in BASELINE_ROWS if key in mean and _fmt(m.get(key)) != "—"]
        return pd.DataFrame(rows, columns=["Score", "Model", "Training mean"])
    if not majority and not prior:
        return pd.DataFrame(columns=["Score", "Model", "Majority", "Prior day"])
    m = metrics or {}
    rows = []
    for key, label, kind, _better in BASELINE_ROWS:
        if _fmt(m.get(key)) == "—":
            continue
        rows.append({"Score": label, "Model": _fmt(m.get(key), kind), "Majority": _fmt(majority.get(key), kind),
                     "Prior day": _fmt(prior.get(key), kind)})
    return pd.DataFrame(rows, columns=["Score", "Model", "Majority", "Prior day"])


def lift_text(baselines: dict | None) -> list[str]:
    """One line per lift: ``"Sharpe lift over always long: +0.21 (95 % interval -0.35 … +0.80)"``."""
    lift = (baselines or {}).get("lift") if isinstance(baselines, dict) else None
    if not isinstance(lift, dict):
        return []
    boot = lift.get("bootstrap") or {}
    how = (f" · {boot.get('method', 'block')} bootstrap over days, {boot.get('resamples', '?')} resamples"
           if boot else "")
    out = []
    for key, what in (("sharpe", "Sharpe lift over always long"), ("roc_auc", "ROC AUC lift over 0.5")):
        v = lift.get(key)
        if not isinstance(v, dict) or _fmt(v.get("value")) == "—":
            continue
        level = v.get("level") or 0.95
        interval = (f" ({level:.0%} interval {float(v['lo']):+.3f} … {float(v['hi']):+.3f})"
                    if _fmt(v.get("lo")) != "—" and _fmt(v.get("hi")) != "—" else "")
        out.append(f"{what}: {float(v['value']):+.3f}{interval}")
    return [o + (how if i == len(out) - 1 else "") for i, o in enumerate(out)]


__all__ = [
    "auc_interval", "baseline_table", "beeswarm_sample", "calibration_figure", "confusion_matrix_figure", "correlation_interval",
    "cv_scores_figure", "empty_figure", "fold_intervals", "lift_text", "wilson_interval",
    "permutation_importance_figure", "prediction_scatter_figure", "psi_figure", "roc_figure",
    "rolling_auc_figure", "shap_bar_figure", "shap_dependence_figure", "shap_summary_figure",
]
