"""Cross-asset features: D-1 values by hand, never day D's own close; early return."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.cross_asset import cross_features, daily_close_features
from features.lineage import DEFINITIONS, FEATURE_SETS, SEQUENCE_SETS, definition, describe_features


def vix(n=30):
    closes = 15 + np.arange(n) % 7 * 0.5  # 15, 15.5, ... 18, 15, ...
    return pd.DataFrame({"date": pd.bdate_range("2018-01-01", periods=n), "close": closes})


def test_ret_and_z20_by_hand():
    d = vix()
    f = daily_close_features(d, "VIX")
    c = d["close"].to_numpy()
    assert np.isnan(f["VIX_ret_1d"].iloc[0])
    assert f["VIX_ret_1d"].iloc[5] == pytest.approx(c[5] / c[4] - 1)
    assert f["VIX_z20"].iloc[:19].isna().all()
    w = c[5:25]
    assert f["VIX_z20"].iloc[24] == pytest.approx((c[24] - w.mean()) / w.std(ddof=1))


def test_target_day_sees_only_the_previous_cross_close():
    d = vix()
    days = pd.DatetimeIndex(d["date"].iloc[20:26])
    f = cross_features(d, "VIX", days)
    own = daily_close_features(d, "VIX")
    for day in days:
        prev = d["date"][d["date"] < day].iloc[-1]
        assert f.loc[day, "VIX_ret_1d"] == own.loc[prev, "VIX_ret_1d"]
        assert f.loc[day, "VIX_z20"] == own.loc[prev, "VIX_z20"]
    # changing day D's own VIX close changes nothing on day D
    d2 = d.copy()
    d2.loc[d2["date"] == days[3], "close"] = 99.0
    f2 = cross_features(d2, "VIX", days)
    pd.testing.assert_series_equal(f2.loc[days[3]], f.loc[days[3]])
    assert f2.loc[days[4], "VIX_ret_1d"] == pytest.approx(99.0 / d["close"].iloc[22] - 1)


def test_early_ret_from_the_cross_session_table():
    d = vix()
    days = pd.DatetimeIndex(d["date"].iloc[20:23])
    sess = pd.DataFrame({"open": [10.0, 20.0], "cutoff_price": [11.0, 19.0]},
                        index=pd.DatetimeIndex([days[0], days[2]], name="date"))
    f = cross_features(d, "VIX", days, sess)
    np.testing.assert_allclose(f["VIX_early_ret"], [0.1, np.nan, -0.05])


def test_definitions_cover_every_set_and_resolve_symbols():
    sets = {d["set"] for d in describe_features()}
    assert sets == set(FEATURE_SETS) | set(SEQUENCE_SETS)  # minute_path: chosen by name, never a default
    names = [d.name for d in DEFINITIONS]
    assert len(names) == len(set(names))
    for required in ("gap_pct", "or_return_pct", "or_range_atr", "or_volume_rel", "or_delta", "hod_tests",
                     "lod_tests", "vwap_dist_pct", "{SYM}_ret_1d", "{SYM}_z20", "{SYM}_early_ret", "adx14",
                     "atr14_pct252", "gk_vol20", "gk_vol20_pct252", "days_since_high20", "days_since_low20",
                     "close_sma50_pct", "close_sma200_pct"):
        assert required in names
    d = definition("VIX_z20", "VIX")
    assert d.name == "VIX_z20" and "{SYM}" not in d.definition and "VIX" in d.window
