"""Bar sizes: 1, 5 and 15-minute bars of the same market give the same opening-window
features, and a cutoff that falls inside a bar is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.errors import SpecError
from almanac.sessions import session_for
from almanac.store import Store
from bench.synthetic import futures_minutes
from features.build import build_features

WINDOW_FEATURES = ["gap_pct", "or_return_pct", "or_range_atr", "or_volume_rel"]
ES = session_for("ES")


def resample(bars: pd.DataFrame, size: str) -> pd.DataFrame:
    """OHLCV bars of ``size`` from 1-minute bars (start-stamped; 09:30 New York is on the
    5 and 15-minute grid of UTC, whose offsets from New York are whole hours)."""
    key = bars["timestamp"].dt.floor(size)
    return bars.groupby(key).agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                 close=("close", "last"), volume=("volume", "sum")
                                 ).rename_axis("timestamp").reset_index()


@pytest.fixture(scope="module")
def minutes():
    # 23-hour futures bars on 70 weekdays from 2017-11-01 (to 2018-02-06): XNYS holidays
    # (Thanksgiving, Christmas, New Year, MLK day) and the 13:00 early close of 2017-11-24 inside
    bars = futures_minutes("2017-11-01", days=70, seed=3, overnight=True)
    bars["volume"] = np.round(bars["volume"])  # whole contracts: sums are exact in any order
    return bars


def _features(tmp_path, name: str, freq: str, bars: pd.DataFrame) -> pd.DataFrame:
    store = Store(tmp_path / name)
    store.write("ES", freq, bars, source="test", session=ES)
    ft = build_features("ES", cutoff="10:15", sets="early_session", store=store, use_cache=False)
    return ft.frame[WINDOW_FEATURES], ft.sessions


def test_window_features_are_identical_for_1_5_and_15_minute_bars(tmp_path, minutes):
    one, s1 = _features(tmp_path, "m1", "1min", minutes)
    assert len(one) == 66  # 70 weekdays - 4 holidays
    assert one.isna().sum().tolist() == [1, 0, 15, 5]  # first day; ATR(14) and volume lookback warm-ups
    for size in ("5min", "15min"):
        other, s = _features(tmp_path, f"m{size}", size, resample(minutes, size))
        pd.testing.assert_index_equal(other.index, one.index)
        pd.testing.assert_frame_equal(other, one, check_exact=False, rtol=1e-12, atol=0)
        pd.testing.assert_frame_equal(s, s1, check_exact=False, rtol=1e-12, atol=0)
    # the early close of 2017-11-24 (13:00 XNYS) is the session close in every size
    day = pd.Timestamp("2017-11-24")
    last_before_1300 = minutes[minutes["timestamp"] < pd.Timestamp("2017-11-24 18:00", tz="UTC")]["close"].iloc[-1]
    assert s1.loc[day, "close"] == last_before_1300
    assert pd.Timestamp("2017-11-23") not in one.index  # Thanksgiving: no session


def test_a_cutoff_inside_a_bar_is_refused_by_the_feature_build(tmp_path, minutes):
    store = Store(tmp_path / "five")
    store.write("ES", "5min", resample(minutes, "5min"), source="test", session=ES)
    with pytest.raises(SpecError) as exc:
        build_features("ES", cutoff="10:17", sets="early_session", store=store, use_cache=False)
    assert exc.value.message == "cutoff 10:17 falls inside the 10:15–10:20 bar of ES 5min; use 10:15 or 10:20"
