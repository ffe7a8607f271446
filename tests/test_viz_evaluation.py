"""viz.evaluation: the numbers inside the figures are the numbers passed in."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from viz import evaluation as ve
from viz.evaluation import _swarm_offsets


def _trace(fig: go.Figure, name: str):
    return next(t for t in fig.data if t.name == name)


def test_every_builder_uses_the_almanac_template():
    import plotly.io as pio

    fig = ve.roc_figure([0, 0.5, 1], [0, 0.8, 1], 0.7)
    assert fig.layout.template == pio.templates["almanac"]
    assert ve.empty_figure("x").layout.template == pio.templates["almanac"]


def test_empty_figure_shows_the_message_without_axes():
    fig = ve.empty_figure("No run yet: train a model first")
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == ["No run yet: train a model first"]
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False


def test_confusion_matrix_cells_and_row_shares():
    cm = [[78, 37], [38, 66]]
    fig = ve.confusion_matrix_figure(cm, ["down", "up"], threshold=0.55)
    hm = fig.data[0]
    assert np.array_equal(np.asarray(hm.z), np.array(cm))
    assert list(hm.x) == ["down", "up"] and list(hm.y) == ["down", "up"]
    # 78 / (78 + 37) = 67.8 % -> "68%"; 66 / (38 + 66) = 63.5 % -> "63%"
    assert hm.text[0][0] == "78<br>68%" and hm.text[1][1] == "66<br>63%"
    assert "0.55" in fig.layout.title.text
    assert fig.layout.xaxis.title.text == "Predicted class"
    assert fig.layout.yaxis.title.text == "Actual class"
    with pytest.raises(ValueError, match="does not match 3 labels"):
        ve.confusion_matrix_figure(cm, ["a", "b", "c"])


def test_confusion_matrix_empty_row_has_no_share():
    fig = ve.confusion_matrix_figure([[0, 0], [3, 1]], ["down", "up"])
    assert fig.data[0].text[0][0] == "0" and fig.data[0].text[1][0] == "3<br>75%"


def test_roc_trace_equals_inputs_and_auc_in_title():
    fpr, tpr = np.array([0, 0.1, 0.4, 1.0]), np.array([0, 0.5, 0.8, 1.0])
    fig = ve.roc_figure(fpr, tpr, 0.7525)
    model = _trace(fig, "model (AUC 0.752)")  # f"{0.7525:.3f}" == "0.752" (float repr)
    # float32 (half the bytes to send; a hover shows 0.1 % steps)
    assert np.array_equal(model.x, fpr.astype("float32")) and np.array_equal(model.y, tpr.astype("float32"))
    chance = fig.data[0]
    assert list(chance.x) == [0, 1] and list(chance.y) == [0, 1]
    assert "AUC 0.752" in fig.layout.title.text
    assert ve.roc_figure([], [], None).layout.annotations[0].text.startswith("No ROC curve")


def test_calibration_points_skip_empty_bins_and_bars_count_all():
    from ml.evaluation import reliability_curve

    y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    p = np.array([0.05, 0.15, 0.35, 0.62, 0.68, 0.71, 0.85, 0.95])
    rel = reliability_curve(y, p)
    fig = ve.calibration_figure(rel, brier=0.1234, ece=0.0456)
    model = _trace(fig, "model")
    used = rel[rel["count"] > 0]
    assert np.allclose(model.x, used["mean_predicted"]) and np.allclose(model.y, used["observed"])
    # bin (0.6, 0.7] holds 0.62 and 0.68: mean 0.65, both up
    assert (0.65, 1.0) in {(round(a, 10), b) for a, b in zip(model.x, model.y, strict=True)}
    bars = _trace(fig, "days per bin")
    assert list(bars.y) == rel["count"].tolist() and sum(bars.y) == 8
    assert np.allclose(bars.x, np.arange(10) / 10 + 0.05)
    assert fig.layout.title.subtitle.text == "Brier 0.1234 · ECE 0.0456"


def test_shap_summary_ranks_by_mean_abs_and_keeps_values():
    rng = np.random.default_rng(1)
    shap = pd.DataFrame({"a": rng.normal(0, 0.1, 50), "b": rng.normal(0, 1.0, 50),
                         "c": rng.normal(0, 0.5, 50)})
    values = pd.DataFrame({"a": np.arange(50.0), "b": np.arange(50.0)[::-1], "c": rng.normal(size=50)})
    values.loc[3, "b"] = np.nan
    fig = ve.shap_summary_figure(shap, values, max_display=2)
    named = [t for t in fig.data if t.name in ("a", "b", "c")]
    assert [t.name for t in named] == ["b", "c"]  # mean |SHAP| order, "a" dropped by max_display
    b = _trace(fig, "b")
    has = values["b"].notna().to_numpy()
    # the days with a value, as float32 (what a hover shows, 4 decimals, is unchanged)
    assert np.asarray(b.x).dtype == np.float32
    assert np.array_equal(b.x, shap["b"].to_numpy()[has].astype("float32"))
    assert np.array_equal(b.customdata, values["b"].to_numpy()[has].astype("float32"))
    # b is the top row (y = 1), c the next (y = 0); jitter stays within ±0.4 of the row
    assert np.all(np.abs(np.asarray(b.y) - 1) <= 0.4 + 1e-6)
    assert np.all(np.abs(np.asarray(_trace(fig, "c").y)) <= 0.4 + 1e-6)
    assert list(fig.layout.yaxis.ticktext) == ["c", "b"] and list(fig.layout.yaxis.tickvals) == [0, 1]
    # colour = quantile of the feature value among all rows, in 1/255 steps: b decreases
    colors = np.asarray(b.marker.color)
    expected = values["b"].rank(pct=True).to_numpy()[has]
    assert colors.dtype == np.uint8 and np.abs(colors / 255 - expected).max() <= 0.5 / 255 + 1e-12
    missing = _trace(fig, "b (missing)")  # grey, not in the coloured trace
    assert list(missing.x) == [np.float32(shap["b"][3])] and len(b.x) == 49


def test_shap_summary_webgl_sample_holds_the_same_values():
    """Many days: WebGL traces of a seeded sample of ``max_points`` rows, whose points are
    exactly those rows' SHAP values; the ranking and colours still come from every row."""
    rng = np.random.default_rng(7)
    n = 2000
    shap = pd.DataFrame({f"f{i}": rng.normal(0, 1 + i, n) for i in range(4)})
    values = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(4)})
    full = ve.shap_summary_figure(shap, values)
    assert {t.type for t in full.data} == {"scattergl"}  # 8,000 points: WebGL
    assert np.array_equal(_trace(full, "f3").x, shap["f3"].to_numpy().astype("float32"))
    fig = ve.shap_summary_figure(shap, values, max_points=300, seed=0)
    rows = ve.beeswarm_sample(n, 300, 0)
    assert len(rows) == 300 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, ve.beeswarm_sample(n, 300, 0))  # seeded
    assert [t.name for t in fig.data] == ["f3", "f2", "f1", "f0"]
    for name in ("f0", "f3"):
        t = _trace(fig, name)
        assert np.array_equal(t.x, shap[name].to_numpy()[rows].astype("float32"))
        q = values[name].rank(pct=True).to_numpy()[rows]  # quantile among all 2,000 rows
        assert np.abs(np.asarray(t.marker.color) / 255 - q).max() <= 0.5 / 255 + 1e-12
    assert ve.beeswarm_sample(100, 300).tolist() == list(range(100))
    assert ve.shap_summary_figure(shap.head(50), values.head(50)).data[0].type == "scatter"  # few: SVG


def test_shap_summary_of_the_default_run_size_is_small_to_send():
    """2,013 days × 23 features (the default run), 12 rows drawn from a 500-day sample:
    the figure's JSON (what Dash sends) stays under 130 kB; every day as float64 SVG
    traces was 1.3 MB."""
    from plotly.io.json import to_json_plotly

    from viz.theme import slim

    rng = np.random.default_rng(3)
    n, k = 2013, 23
    shap = pd.DataFrame(rng.normal(0, 0.05, (n, k)), columns=[f"f{i}" for i in range(k)])
    values = pd.DataFrame(rng.normal(size=(n, k)), columns=shap.columns)
    values.iloc[: n // 3, :4] = np.nan  # e.g. VIX before 2014
    fig = slim(ve.shap_summary_figure(shap, values, max_display=12, max_points=500))
    size = len(to_json_plotly(fig))
    assert size < 130_000, size
    assert sum(len(t.x) for t in fig.data) == 12 * 500


def test_slim_template_keeps_what_the_figure_uses():
    from plotly.io.json import to_json_plotly

    from viz.theme import slim

    fig = ve.roc_figure([0, 0.5, 1], [0, 0.8, 1], 0.7)
    full = fig.layout.template
    slim(fig)
    assert set(fig.layout.template.data.to_plotly_json()) == {"scatter"}
    assert fig.layout.template.layout.font == full.layout.font and fig.layout.template.layout.geo.to_plotly_json() == {}
    assert len(to_json_plotly(fig.layout.template)) < min(3_500, len(to_json_plotly(full)))


def test_swarm_offsets_spread_crowded_points_symmetrically():
    x = np.zeros(5)  # all in one bin: layers 0, +1, -1, +2, -2 scaled to ±0.4
    off = _swarm_offsets(x)
    assert sorted(np.round(off, 12)) == [-0.4, -0.2, 0.0, 0.2, 0.4]
    spread = np.linspace(0, 1, 60)  # one point per bin: no offsets
    assert np.array_equal(_swarm_offsets(spread), np.zeros(60))
    assert np.array_equal(_swarm_offsets(x), _swarm_offsets(x))  # deterministic


def test_shap_bar_and_permutation_importance_order():
    s = pd.Series({"a": 0.1, "b": 0.5, "c": 0.3})
    fig = ve.shap_bar_figure(s)
    assert list(fig.data[0].y) == ["a", "c", "b"]  # largest on top (last)
    assert list(fig.data[0].x) == [0.1, 0.3, 0.5]
    imp = pd.DataFrame({"feature": ["a", "b", "c"], "perm_importance_mean": [0.02, -0.01, 0.05],
                        "perm_importance_std": [0.01, 0.002, np.nan]})
    fig = ve.permutation_importance_figure(imp, max_display=2)
    assert list(fig.data[0].y) == ["a", "c"] and list(fig.data[0].x) == [0.02, 0.05]
    assert list(fig.data[0].error_x.array) == [0.01, 0.0]


def test_shap_dependence_and_prediction_scatter():
    fig = ve.shap_dependence_figure("gap_pct", [0.1, 0.2, 0.3], [-0.5, 0.0, 0.5],
                                    color=[1, 2, 3], color_name="vix")
    f4 = np.float32
    assert list(fig.data[0].x) == [f4(0.1), f4(0.2), f4(0.3)] and list(fig.data[0].y) == [-0.5, 0.0, 0.5]
    assert list(fig.data[0].marker.color) == [1.0, 2.0, 3.0]
    assert fig.layout.xaxis.title.text == "gap_pct (feature value)"
    fig = ve.prediction_scatter_figure([0.01, -0.02], [0.005, -0.01], ic=0.5, r2=0.1)
    days = _trace(fig, "days")
    assert list(days.x) == [0.01, -0.02] and list(days.y) == [0.005, -0.01]
    assert list(fig.data[0].x) == [-0.02, 0.02]  # y = x line over ±max |value|


def test_cv_scores_bars_mean_and_labels():
    folds = pd.DataFrame({"fold": [0, 1, 2], "test_start": pd.to_datetime(["2020-01-02", "2020-04-01", "2020-07-01"]),
                          "test_end": pd.to_datetime(["2020-03-31", "2020-06-30", "2020-09-30"]),
                          "roc_auc": [0.55, 0.60, 0.50]})
    fig = ve.cv_scores_figure(folds, "roc_auc", reference=0.5, label="ROC AUC")
    assert list(fig.data[0].y) == [0.55, 0.60, 0.50]
    assert fig.data[0].x[0] == "Fold 1<br>2020-01-02 → 2020-03-31"
    lines = {round(s.y0, 12) for s in fig.layout.shapes}
    assert lines == {0.55, 0.5}  # mean (0.55 + 0.60 + 0.50) / 3 and the reference
    assert ve.cv_scores_figure(folds, "r2").layout.annotations[0].text == "No per-fold r2 to show"


def test_rolling_auc_and_psi_heatmap():
    dates = pd.bdate_range("2021-01-01", periods=4)
    fig = ve.rolling_auc_figure(dates, [np.nan, 0.6, 0.7, 0.4], window=60)
    assert np.array_equal(fig.data[0].y, np.float32([np.nan, 0.6, 0.7, 0.4]), equal_nan=True)
    assert list(fig.data[0].x) == ["2021-01-01", "2021-01-04", "2021-01-05", "2021-01-06"]  # days, compact
    assert pd.DatetimeIndex(pd.to_datetime(fig.data[0].x)).equals(dates)
    assert fig.layout.shapes[0].y0 == 0.5
    psi = {"0": {"f1": 0.05, "f2": 0.30}, "1": {"f1": 0.12, "f2": 0.01}}
    fig = ve.psi_figure(psi)
    hm = fig.data[0]
    assert list(hm.y) == ["f2", "f1"]  # ordered by largest PSI
    assert list(hm.x) == ["Fold 1", "Fold 2"]
    assert np.allclose(hm.z, [[0.30, 0.01], [0.05, 0.12]])
    frame = pd.DataFrame(psi).T  # the same as a DataFrame (index fold)
    assert np.allclose(ve.psi_figure(frame).data[0].z, hm.z)


def test_auc_interval_is_hanley_mcneil_by_hand():
    # A = 0.6, 50 up and 50 down days: Q1 = 0.6/1.4, Q2 = 0.72/1.6 = 0.45,
    # SE² = (0.24 + 49(Q1 - 0.36) + 49(0.45 - 0.36)) / 2500 = 0.003204, SE = 0.0566039
    lo, hi = ve.auc_interval(0.6, 50, 50)
    assert (lo, hi) == pytest.approx((0.6 - 1.959964 * 0.0566039, 0.6 + 1.959964 * 0.0566039), abs=1e-6)
    assert (round(lo, 4), round(hi, 4)) == (0.4891, 0.7109)
    # A = 0.5, 10 / 30: Q1 = Q2 = 1/3, SE² = (0.25 + 9/12 + 29/12) / 300 = 0.0113889, SE = 0.1067188
    lo, hi = ve.auc_interval(0.5, 10, 30)
    assert hi - 0.5 == pytest.approx(1.959964 * 0.1067188, abs=1e-6) and lo == pytest.approx(1 - hi)
    assert ve.auc_interval(0.99, 5, 5)[1] == 1.0  # clipped to [0, 1]
    assert np.isnan(ve.auc_interval(0.6, 0, 40)[0]) and np.isnan(ve.auc_interval(float("nan"), 5, 5)[1])


def test_correlation_interval_is_fisher_z_by_hand():
    # r = 0.1, n = 103: atanh(0.1) = 0.1003353, z/√100 = 0.1959964
    lo, hi = ve.correlation_interval(0.1, 103)
    assert (lo, hi) == pytest.approx((np.tanh(0.1003353 - 0.1959964), np.tanh(0.1003353 + 0.1959964)), abs=1e-6)
    assert (round(lo, 4), round(hi, 4)) == (-0.0954, 0.2880)
    assert np.isnan(ve.correlation_interval(0.1, 3)[0])


def test_cv_scores_are_points_with_intervals_around_the_reference():
    folds = pd.DataFrame({"fold": [0, 1], "roc_auc": [0.6, 0.5], "n": [100, 40], "base_rate": [0.5, 0.25]})
    fig = ve.cv_scores_figure(folds, "roc_auc", reference=0.5, label="ROC AUC")
    t = fig.data[0]
    assert t.type == "scatter" and t.mode == "markers" and list(t.y) == [0.6, 0.5]
    lo0, hi0 = ve.auc_interval(0.6, 50, 50)
    lo1, hi1 = ve.auc_interval(0.5, 10, 30)
    assert list(t.error_y.array) == pytest.approx([hi0 - 0.6, hi1 - 0.5])
    assert list(t.error_y.arrayminus) == pytest.approx([0.6 - lo0, 0.5 - lo1])
    assert "Hanley–McNeil" in fig.layout.title.subtitle.text
    assert {round(s.y0, 12) for s in fig.layout.shapes} == {0.55, 0.5}
    # no counts (multiclass macro AUC, or old runs): points without intervals
    plain = ve.cv_scores_figure(folds.drop(columns="base_rate"), "roc_auc", reference=0.5)
    assert plain.data[0].error_y.array is None and plain.layout.title.subtitle.text is None
    reg = ve.cv_scores_figure(pd.DataFrame({"fold": [0], "ic": [0.1], "n": [103]}), "ic", reference=0.0)
    assert reg.data[0].error_y.array[0] == pytest.approx(ve.correlation_interval(0.1, 103)[1] - 0.1)


def test_baseline_table_and_lift_text():
    base = {"majority": {"metrics": {"accuracy": 0.532, "brier": 0.249, "log_loss": 0.6912, "roc_auc": 0.5}},
            "prior_day": {"metrics": {"accuracy": 0.501, "roc_auc": 0.503}},
            "lift": {"sharpe": {"value": 0.41, "lo": -0.2, "hi": 1.05, "level": 0.95},
                     "bootstrap": {"method": "stationary", "resamples": 1000}}}
    t = ve.baseline_table({"accuracy": 0.54, "roc_auc": 0.571, "brier": 0.2481}, base).set_index("Score")
    assert t.loc["Accuracy"].tolist() == ["54.0%", "53.2%", "50.1%"]
    assert t.loc["ROC AUC"].tolist() == ["0.571", "0.500", "0.503"]
    assert t.loc["Brier score"].tolist() == ["0.248", "0.249", "—"]
    assert "Log loss" not in t.index  # the model has none
    assert ve.baseline_table({"accuracy": 0.5}, None).empty and ve.baseline_table({}, {"lift": {}}).empty
    assert ve.lift_text(base) == ["Sharpe lift over always long: +0.410 (95% interval -0.200 … +1.050) · "
                                  "stationary bootstrap over days, 1000 resamples"]
    assert ve.lift_text(None) == [] and ve.lift_text({"lift": {"sharpe": {"value": None}}}) == []


def test_psi_colour_bar_names_the_bands():
    fig = ve.psi_figure({"0": {"f1": 0.05, "f2": 3.0}})
    bar = fig.data[0].colorbar
    assert fig.data[0].zmax == 0.5 and list(bar.tickvals) == [0.05, 0.175, 0.375]
    assert [t.split("<br>")[0] for t in bar.ticktext] == ["stable", "moderate", "major"]
    assert fig.data[0].z[0][0] == 3.0  # the value itself is kept (hover), only the colour saturates


def test_per_fold_accuracy_gets_a_wilson_interval():
    folds = pd.DataFrame({"fold": [0], "accuracy": [0.55], "n": [100]})
    t = ve.cv_scores_figure(folds, "accuracy").data[0]
    # 55 of 100 days (see test_features_explore_viz: Wilson 0.452447 … 0.643855)
    assert t.error_y.arrayminus[0] == pytest.approx(0.55 - 0.452447, abs=1e-6)
    assert t.error_y.array[0] == pytest.approx(0.643855 - 0.55, abs=1e-6)
