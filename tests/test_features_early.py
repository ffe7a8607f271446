"""Session table and early-session features: hand-computed values on a tiny fixture,
agreement with a naive per-day implementation, DST and data-gap rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from almanac.sessions import Session
from features import session_table
from features.early import early_features
from bench.naive import naive_early_features
from features.sessions_table import split_bars
from bench.synthetic import futures_minutes

NY = Session()
# March days straddle the DST start (2018-03-11), November days the DST end (2018-11-04).
DAYS = ["2018-03-08", "2018-03-09", "2018-03-12", "2018-03-13", "2018-03-14", "2018-03-15", "2018-03-16",
        "2018-03-19", "2018-03-20", "2018-03-21", "2018-03-22", "2018-11-02", "2018-11-05"]
# (local time, open, high, low, close, volume); day i adds i to prices and multiplies volume by i+1
TEMPLATE = [
    ("09:30", 100.0, 101.0, 99.5, 100.5, 10),
    ("09:31", 100.5, 101.5, 100.0, 101.0, 20),
    ("09:32", 101.0, 101.5, 100.5, 100.75, 10),
    ("09:33", 100.75, 102.0, 100.5, 101.75, 30),
    ("09:34", 101.75, 101.8, 99.0, 99.5, 30),
    ("09:35", 99.5, 110.0, 90.0, 105.0, 1000),  # at the cutoff: outside the window
    ("15:59", 105.0, 106.0, 104.0, 104.5, 50),
]
CUTOFF = "09:35"


def bar(local: str, o, h, lo, c, v):
    return {"timestamp": pd.Timestamp(local, tz="America/New_York").tz_convert("UTC"),
            "open": o, "high": h, "low": lo, "close": c, "volume": float(v)}


def fixture_bars(overnight: bool = False) -> pd.DataFrame:
    rows = []
    for i, d in enumerate(DAYS):
        for t, o, h, lo, c, v in TEMPLATE:
            rows.append(bar(f"{d} {t}", o + i, h + i, lo + i, c + i, v * (i + 1)))
    if overnight:  # before 2018-03-12 (day 2): Friday evening, Sunday evening, Monday 09:29
        rows += [bar("2018-03-09 16:00", 1, 130.0, 95.0, 1, 5), bar("2018-03-11 18:00", 1, 120.0, 80.0, 1, 5),
                 bar("2018-03-12 09:29", 1, 103.0, 101.0, 1, 5)]
    return pd.DataFrame(rows).sort_values("timestamp").reset_index(drop=True)


def test_session_table_by_hand():
    t = session_table(fixture_bars(), NY, CUTOFF)
    assert list(t.index.strftime("%Y-%m-%d")) == DAYS
    assert t.index.name == "date"
    d0 = t.iloc[0]
    assert (d0["open"], d0["high"], d0["low"], d0["close"], d0["volume"]) == (100.0, 110.0, 90.0, 104.5, 1150.0)
    assert d0["cutoff_price"] == 99.5 and np.isnan(d0["prev_close"])
    assert t["prev_close"].iloc[1] == 104.5
    assert t["cutoff_price"].tolist() == [99.5 + i for i in range(len(DAYS))]


def test_overnight_bars_do_not_change_the_session_table():
    pd.testing.assert_frame_equal(session_table(fixture_bars(True), NY, CUTOFF), session_table(fixture_bars(), NY, CUTOFF))


def test_early_features_by_hand():
    bars = fixture_bars(overnight=True)
    db = split_bars(bars, NY, CUTOFF)
    table = session_table(bars, NY, CUTOFF)
    atr = np.full(len(DAYS), 2.0)
    f = early_features(db, table, atr)
    d0 = f.iloc[0]
    assert np.isnan(d0["gap_pct"])
    assert d0["or_return_pct"] == pytest.approx(99.5 / 100 - 1, abs=1e-15)
    assert d0["or_range_atr"] == pytest.approx((102.0 - 99.0) / 2.0)
    assert d0["or_delta"] == pytest.approx((10 + 20 - 10 + 30 - 30) / 100)
    assert (d0["hod_tests"], d0["lod_tests"]) == (3.0, 1.0)  # 101.5>=101, 101.5>=101.5 (tie), 102>=101.5; 99<=99.5
    vwap = (100.5 * 10 + 101 * 20 + 100.75 * 10 + 101.75 * 30 + 99.5 * 30) / 100
    assert d0["vwap_dist_pct"] == pytest.approx(99.5 / vwap - 1, abs=1e-15)
    assert d0["or_close_pos"] == pytest.approx((99.5 - 99) / (102 - 99))
    rv = math.sqrt(math.log(100.5 / 100) ** 2 + math.log(101 / 100.5) ** 2 + math.log(100.75 / 101) ** 2
                   + math.log(101.75 / 100.75) ** 2 + math.log(99.5 / 101.75) ** 2)
    assert d0["or_rv"] == pytest.approx(rv, rel=1e-12)
    # day i: prices shifted by i, volumes scaled by i+1 -> same delta/tests, shifted returns
    i = 5
    di = f.iloc[i]
    assert di["gap_pct"] == pytest.approx((100 + i) / (104.5 + i - 1) - 1, abs=1e-15)
    assert di["or_return_pct"] == pytest.approx((99.5 + i) / (100 + i) - 1, abs=1e-15)
    assert (di["or_delta"], di["hod_tests"], di["lod_tests"]) == (pytest.approx(0.2), 3.0, 1.0)
    # window volume of day i = 100 (i+1): mean of up to 10 earlier days, at least 5
    assert f["or_volume_rel"].iloc[:5].isna().all()
    assert f["or_volume_rel"].iloc[5] == pytest.approx(600 / 300)
    assert f["or_volume_rel"].iloc[10] == pytest.approx(1100 / 550)
    assert f["or_volume_rel"].iloc[12] == pytest.approx(1300 / np.mean([300 + 100 * k for k in range(10)]))
    # overnight of 2018-03-12: Fri 16:00, Sun 18:00 and Mon 09:29 bars -> range 130 - 80
    assert f["overnight_range_atr"].iloc[2] == pytest.approx((130.0 - 80.0) / 2.0)
    assert f["overnight_range_atr"].drop(f.index[2]).isna().all()


def test_dst_days_keep_the_local_cutoff():
    """On 2018-03-12 (EDT) and 2018-11-05 (EST) the 10:15 cutoff is local: the cutoff price
    is the close of the 10:14 bar, whatever its UTC hour."""
    bars = futures_minutes("2018-03-08", days=3, seed=1, overnight=True)
    bars = pd.concat([bars, futures_minutes("2018-11-01", days=3, seed=2, overnight=True)], ignore_index=True)
    t = session_table(bars, NY, "10:15")
    local = bars["timestamp"].dt.tz_convert(NY.tz)
    for day, utc_hour in (("2018-03-12", 14), ("2018-11-05", 15), ("2018-03-09", 15), ("2018-11-02", 14)):
        at_1014 = bars[local.dt.strftime("%Y-%m-%d %H:%M") == f"{day} 10:14"]
        assert at_1014["timestamp"].iloc[0].hour == utc_hour
        assert t.loc[day, "cutoff_price"] == at_1014["close"].iloc[0]
        first = bars[local.dt.strftime("%Y-%m-%d %H:%M") == f"{day} 09:30"]
        assert t.loc[day, "open"] == first["open"].iloc[0]


def test_vectorized_equals_naive_per_day_on_gappy_data():
    bars = futures_minutes("2018-02-01", days=60, seed=3, overnight=True, step=1)
    rng = np.random.default_rng(0)
    bars = bars[rng.random(len(bars)) > 0.05]  # 5 % of bars missing
    local = bars["timestamp"].dt.tz_convert(NY.tz)
    day, hm = local.dt.strftime("%Y-%m-%d"), local.dt.strftime("%H:%M")
    drop = (((day == "2018-02-07") & (hm < "09:50") & (hm >= "09:00"))  # late first bar
            | ((day == "2018-02-08") & (hm < "10:30") & (hm >= "09:00"))  # nothing before the cutoff
            | ((day == "2018-02-09") & (hm >= "13:00") & (hm < "16:00")))  # half day
    bars, day, hm = bars[~drop].reset_index(drop=True), day[~drop].reset_index(drop=True), hm[~drop].reset_index(drop=True)
    atr = pd.Series(np.linspace(5, 9, 60), index=pd.bdate_range("2018-02-01", periods=60, name="date"))
    db = split_bars(bars, NY, "10:15")
    table = session_table(bars, NY, "10:15")
    fast = early_features(db, table, atr.reindex(table.index).to_numpy()).drop(columns="overnight_range_atr")
    slow = naive_early_features(bars, NY, "10:15", atr)
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, rtol=1e-12, atol=1e-15)
    assert fast.loc["2018-02-08"].isna().all()  # no window: every early feature NaN, gap included
    assert np.isnan(table.loc["2018-02-08", "cutoff_price"])
    assert table.loc["2018-02-07", "open"] == bars[(day == "2018-02-07") & (hm == "09:50")]["open"].iloc[0]
    assert fast.loc["2018-02-09"].notna().all()


def test_window_ends_before_the_cutoff_bar_and_unsorted_input_is_sorted():
    bars = fixture_bars()
    shuffled = bars.sample(frac=1.0, random_state=0)
    pd.testing.assert_frame_equal(session_table(shuffled, NY, CUTOFF), session_table(bars, NY, CUTOFF))
    # cutoff 09:36 takes the 09:35 bar into the window
    assert session_table(bars, NY, "09:36")["cutoff_price"].iloc[0] == 105.0


def test_cutoff_at_the_close_uses_the_whole_session():
    t = session_table(fixture_bars(), NY, "16:00")
    assert (t["cutoff_price"] == t["close"]).all()
