"""Exploration numbers (binned hit rates, rank correlation, early-days-only mutual
information) and the pure figure builders of the features page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.explore import binned_hit_rates, mutual_information, rank_correlation
from viz.features import (wilson_interval, correlation_figure, histogram_figure, hit_rate_figure, importance_figure,
                          timeseries_figure)

DAYS = pd.bdate_range("2015-01-01", periods=400, name="date")


def test_binned_hit_rates_by_hand():
    x = pd.Series([1.0, 2, 3, 4, 5, 6, 7, 8, np.nan, 10], index=DAYS[:10])
    y = pd.Series([0.0, 0, 1, 0, 1, 1, np.nan, 1, 1, 1], index=DAYS[:10])
    t = binned_hit_rates(x, y, bins=2)  # kept days: x = 1 2 3 4 5 6 8 10
    assert t["bin"].tolist() == [1, 2]
    assert t["count"].tolist() == [4, 4] and t["hits"].tolist() == [1.0, 4.0]
    assert t["hit_rate"].tolist() == [0.25, 1.0]
    assert (t["lo"].tolist(), t["hi"].tolist()) == ([1.0, 5.0], [4.0, 10.0])
    assert binned_hit_rates(pd.Series([1.0, 1.0], index=DAYS[:2]), y.iloc[:2]).empty  # constant feature


def test_rank_correlation_is_spearman():
    rng = np.random.default_rng(0)
    a = rng.normal(size=400)
    f = pd.DataFrame({"a": a, "b": np.exp(a), "c": -a ** 3}, index=DAYS)
    c = rank_correlation(f)
    assert c.loc["a", "b"] == pytest.approx(1.0) and c.loc["a", "c"] == pytest.approx(-1.0)


def test_mutual_information_only_sees_the_earlier_days():
    rng = np.random.default_rng(1)
    y = pd.Series(rng.integers(0, 2, 400).astype(float), index=DAYS)
    f = pd.DataFrame({"signal": y + rng.normal(0, 0.3, 400), "noise": rng.normal(size=400)}, index=DAYS)
    mi, info = mutual_information(f, y)
    assert info["days"] == 280 and info["end"] == DAYS[279] and info["start"] == DAYS[0]
    assert list(mi.index) == ["signal", "noise"] and mi["signal"] > 0.3 and mi["noise"] < 0.05
    later = y.copy()
    later.iloc[280:] = 1 - later.iloc[280:]  # rewrite the later 30 %: nothing changes
    f2 = f.copy()
    f2.iloc[280:] = 99.0
    pd.testing.assert_series_equal(mutual_information(f2, later)[0], mi)


# ----------------------------------------------------------------------------- figures

def test_histogram_counts_every_value_and_zooms_past_outliers():
    x = pd.Series(np.r_[np.linspace(-1, 1, 999), 500.0, np.nan], index=pd.bdate_range("2012-01-02", periods=1001))
    fig = histogram_figure(x, "gap_pct")
    assert len(fig.data[0].x) == 1000
    assert "1,000 days (1 NaN)" in fig.layout.title.text and "zoomed" in fig.layout.title.text
    lo, hi = fig.layout.xaxis.range
    assert lo < -0.98 and 0.98 < hi < 2
    assert histogram_figure(pd.Series([np.nan, np.nan]), "x").layout.annotations[0].text == "x: no values in this range"


def test_timeseries_has_values_and_rolling_mean():
    x = pd.Series(np.arange(100, dtype=float), index=DAYS[:100])
    fig = timeseries_figure(x, "adx14", rolling=10)
    assert [t.name for t in fig.data] == ["daily value", "10-day mean"]
    assert list(fig.data[0].y) == list(range(100))
    assert fig.data[1].y[9] == pytest.approx(4.5) and fig.data[1].y[99] == pytest.approx(94.5)


def test_correlation_figure_shows_the_matrix():
    c = pd.DataFrame([[1.0, -0.5], [-0.5, 1.0]], index=["a", "b"], columns=["a", "b"])
    fig = correlation_figure(c)
    assert fig.data[0].type == "heatmap" and (fig.data[0].zmin, fig.data[0].zmax) == (-1, 1)
    np.testing.assert_array_equal(fig.data[0].z, c.to_numpy())
    assert fig.data[0].text[0][1] == "-0.50"


def test_hit_rate_figure_bars_counts_and_base_line():
    t = pd.DataFrame({"bin": [1, 2], "lo": [1.0, 5.0], "hi": [4.0, 10.0], "count": [4, 4], "hits": [1.0, 4.0],
                      "hit_rate": [0.25, 1.0]})
    fig = hit_rate_figure(t, "or_delta", "rest of day up", base_rate=0.625)
    assert list(fig.data[0].y) == [0.25, 1.0] and list(fig.data[0].text) == ["n=4", "n=4"]
    assert list(fig.data[0].x) == ["Q1", "Q2"] and list(fig.data[0].customdata[:, 2]) == ["1 … 4", "5 … 10"]
    assert list(fig.data[1].y) == [0.625, 0.625] and fig.data[1].name == "all days: 62.5%"
    assert fig.layout.yaxis.tickformat == ".0%"
    assert "not enough days" in hit_rate_figure(t.iloc[:0], "x", "up").layout.annotations[0].text


def test_importance_figure_puts_the_largest_on_top():
    fig = importance_figure(pd.Series({"a": 0.1, "b": 0.3, "c": np.nan}))
    assert list(fig.data[0].y) == ["a", "b"]  # plotly draws the last category on top
    assert list(fig.data[0].x) == [0.1, 0.3]


def test_wilson_interval_by_hand():
    # 1 of 4: p = .25, z² = 3.841459; centre = (.25 + .480182) / 1.960365 = .372472,
    # half = 1.959964 · √(.046875 + .060023) / 1.960365 = .326886
    lo, hi = wilson_interval(1, 4)
    assert (float(lo), float(hi)) == pytest.approx((0.045587, 0.699358), abs=1e-6)
    # 4 of 4: the interval does not collapse at 100 % (lower = n / (n + z²) = 4 / 7.841459)
    lo, hi = wilson_interval(4, 4)
    assert (float(lo), float(hi)) == pytest.approx((0.510109, 1.0), abs=1e-6)
    # 55 of 100: centre = (.55 + .019207) / 1.038415, half = 1.959964 · √(.002475 + .000096) / 1.038415
    lo, hi = wilson_interval([55, 0], [100, 0])
    assert (lo[0], hi[0]) == pytest.approx((0.452446, 0.643855), abs=1e-6)
    assert np.isnan(lo[1]) and np.isnan(hi[1])  # an empty bin has no interval


def test_wilson_interval_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((1, 4), (37, 90), (250, 251)):
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert [float(v) for v in wilson_interval(k, n)] == pytest.approx([ci.low, ci.high], abs=1e-9)


def test_hit_rate_bars_carry_wilson_intervals():
    t = pd.DataFrame({"bin": [1, 2], "lo": [1.0, 5.0], "hi": [4.0, 10.0], "count": [4, 4], "hits": [1.0, 4.0],
                      "hit_rate": [0.25, 1.0]})
    bar = hit_rate_figure(t, "or_delta", "rest of day up", base_rate=0.625).data[0]
    lo, hi = wilson_interval(t["hits"], t["count"])
    assert list(bar.error_y.array) == pytest.approx(list(hi - t["hit_rate"]))
    assert list(bar.error_y.arrayminus) == pytest.approx(list(t["hit_rate"] - lo))
    assert float(bar.customdata[0][3]) == pytest.approx(0.045587, abs=1e-6)


def test_correlation_numbers_only_up_to_twelve_features():
    for n, text in ((12, True), (13, False)):
        names = [f"f{i}" for i in range(n)]
        c = pd.DataFrame(np.eye(n), index=names, columns=names)
        trace = correlation_figure(c).data[0]
        assert (trace.texttemplate is not None) == text and (trace.text is not None) == text
