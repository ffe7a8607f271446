"""Regime indicators against plain-loop references and scipy; the D-1 alignment rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import percentileofscore

from features.regime import (adx, align_prev, atr, days_since_extreme, garman_klass, pct_rank, regime_daily,
                             true_range, wilder)


def daily(n=320, seed=0, close_only=False):
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = c * np.exp(rng.normal(0, 0.004, n))
    h = np.maximum(o, c) * (1 + np.abs(rng.normal(0, 0.005, n)))
    lo = np.minimum(o, c) * (1 - np.abs(rng.normal(0, 0.005, n)))
    d = pd.DataFrame({"date": pd.bdate_range("2016-01-04", periods=n), "open": o, "high": h, "low": lo, "close": c})
    return d[["date", "close"]] if close_only else d


def loop_wilder(x, n):
    out, prev = [math.nan] * len(x), None
    for i, v in enumerate(x):
        if prev is None:
            block = x[i - n + 1: i + 1] if i >= n - 1 else []
            if len(block) == n and all(math.isfinite(b) for b in block):
                prev = sum(block) / n
                out[i] = prev
        else:
            prev = prev + (v - prev) / n
            out[i] = prev
    return out


def loop_adx(h, lo, c, n=14):
    tr, pdm, mdm = [math.nan], [math.nan], [math.nan]
    for i in range(1, len(c)):
        tr.append(max(h[i], c[i - 1]) - min(lo[i], c[i - 1]))
        up, down = h[i] - h[i - 1], lo[i - 1] - lo[i]
        pdm.append(up if up > down and up > 0 else 0.0)
        mdm.append(down if down > up and down > 0 else 0.0)
    str_, sp, sm = loop_wilder(tr, n), loop_wilder(pdm, n), loop_wilder(mdm, n)
    dx = []
    for a, b, t in zip(sp, sm, str_):
        if math.isnan(t):
            dx.append(math.nan)
        else:
            dp, dm = 100 * a / t, 100 * b / t
            dx.append(100 * abs(dp - dm) / (dp + dm))
    return loop_wilder(dx, n)


def test_wilder_and_atr_by_hand():
    x = np.array([np.nan, 1.0, 2.0, 3.0, 6.0, 2.0])
    # n=3: seed at index 3 = mean(1,2,3) = 2; then 2 + (6-2)/3 = 10/3; 10/3 + (2-10/3)/3 = 26/9
    np.testing.assert_allclose(wilder(x, 3), [np.nan, np.nan, np.nan, 2.0, 10 / 3, 26 / 9])
    h, lo, c = np.array([10.0, 12, 11]), np.array([9.0, 10, 8]), np.array([9.5, 11, 10])
    np.testing.assert_allclose(true_range(h, lo, c), [np.nan, 12 - 9.5, 11 - 8])


def test_atr_and_adx_match_loop_reference():
    d = daily()
    h, lo, c = (d[k].to_numpy() for k in ("high", "low", "close"))
    tr = [math.nan] + [max(h[i], c[i - 1]) - min(lo[i], c[i - 1]) for i in range(1, len(c))]
    np.testing.assert_allclose(atr(h, lo, c), loop_wilder(tr, 14), rtol=1e-12)
    ref = np.array(loop_adx(h, lo, c))
    got = adx(h, lo, c)
    assert np.isnan(got[:27]).all() and np.isfinite(got[27:]).all()  # 1 + 13 + 13 warm-up rows
    np.testing.assert_allclose(got, ref, rtol=1e-10)


def test_percentile_rank_agrees_with_scipy():
    x = np.random.default_rng(1).normal(size=300).round(1)  # rounding makes ties
    got = pct_rank(x, 252)
    assert np.isnan(got[:251]).all()
    for t in (251, 270, 299):
        assert got[t] == pytest.approx(percentileofscore(x[t - 251: t + 1], x[t], kind="weak") / 100)


def test_garman_klass_by_hand():
    o, h, lo, c = (np.array(v) for v in ([100.0, 101], [102.0, 103], [99.0, 100], [101.0, 100.5]))
    var = [0.5 * math.log(h[i] / lo[i]) ** 2 - (2 * math.log(2) - 1) * math.log(c[i] / o[i]) ** 2 for i in range(2)]
    got = garman_klass(o, h, lo, c, n=2)
    assert np.isnan(got[0]) and got[1] == pytest.approx(math.sqrt(252 * sum(var) / 2))


def test_days_since_extreme_counts_to_the_most_recent_extreme():
    x = np.array([1.0, 5, 2, 5, 3, 4])
    # windows of 3 ending at 2..5: [1,5,2] [5,2,5] [2,5,3] [5,3,4]
    np.testing.assert_array_equal(days_since_extreme(x, 3, True), [np.nan, np.nan, 1, 0, 1, 2])
    np.testing.assert_array_equal(days_since_extreme(x, 3, False), [np.nan, np.nan, 2, 1, 2, 1])


def test_regime_daily_columns_and_trend():
    d = daily()
    r = regime_daily(d)
    assert list(r.columns) == ["atr14_rel", "atr14_pct252", "adx14", "gk_vol20", "gk_vol20_pct252",
                               "days_since_high20", "days_since_low20", "close_sma50_pct", "close_sma200_pct"]
    c = d["close"].to_numpy()
    assert r["close_sma200_pct"].iloc[250] == pytest.approx(c[250] / c[51:251].mean() - 1)
    assert r["close_sma50_pct"].iloc[49] == pytest.approx(c[49] / c[:50].mean() - 1)
    assert r["atr14_pct252"].notna().sum() == len(d) - 14 - 251
    only_close = regime_daily(daily(close_only=True))
    assert list(only_close.columns) == ["days_since_high20", "days_since_low20", "close_sma50_pct", "close_sma200_pct"]


def test_align_prev_uses_strictly_earlier_rows_within_ten_days():
    vals = pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=pd.to_datetime(["2018-01-02", "2018-01-03", "2018-01-05"]))
    days = pd.to_datetime(["2018-01-02", "2018-01-03", "2018-01-04", "2018-01-05", "2018-01-08",
                           "2018-01-15", "2018-01-16"])
    got = align_prev(vals, days)["x"].tolist()
    # own-date value never used; 2018-01-16 is 11 days after the last row -> stale -> NaN
    np.testing.assert_array_equal(got, [np.nan, 1.0, 2.0, 2.0, 3.0, 3.0, np.nan])
    assert align_prev(vals, days).index.name == "date"
