"""features.minute_path: the raw path open -> cutoff, by hand from the bars, and leak-free."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from almanac.sessions import Session
from bench.synthetic import futures_minutes
from features import build_features
from features.lineage import FEATURE_SETS, SEQUENCE_SETS

NY = "America/New_York"
DAY2, DAY3 = pd.Timestamp("2018-03-06"), pd.Timestamp("2018-03-07")


def _bars() -> pd.DataFrame:
    """Four regular sessions of 1-minute bars; day 2 lacks its 09:32 bar, day 3 starts at 09:33."""
    bars = futures_minutes("2018-03-05", days=4, seed=11, step=1, overnight=False)
    local = bars["timestamp"].dt.tz_convert(NY).dt.tz_localize(None)
    drop = (local == DAY2 + pd.Timedelta("09:32:00")) | ((local.dt.normalize() == DAY3)
                                                         & (local < DAY3 + pd.Timedelta("09:33:00")))
    return bars[~drop.to_numpy()].reset_index(drop=True)


def _by_hand(bars: pd.DataFrame, day: pd.Timestamp, cutoff: str = "10:15") -> list[float]:
    """One loop over the day's bars: slot = minutes since 09:30, value = ln(close / first open)."""
    local = bars["timestamp"].dt.tz_convert(NY).dt.tz_localize(None)
    rows = bars[(local >= day + pd.Timedelta("09:30:00")) & (local < day + pd.Timedelta("16:00:00"))]
    first_open = rows["open"].iloc[0]
    h, m = map(int, cutoff.split(":"))
    out = [math.nan] * ((h * 60 + m) - (9 * 60 + 30))
    for ts, close in zip(local[rows.index], rows["close"], strict=True):
        slot = int((ts - (day + pd.Timedelta("09:30:00"))).total_seconds() // 60)
        if slot < len(out):
            out[slot] = math.log(close / first_open)
    return out


def test_the_path_equals_the_hand_computation(store):
    bars = _bars()
    store.write("ES", "1min", bars, source="test")
    ft = build_features("ES", cutoff="10:15", sets=["minute_path"], store=store, use_cache=False)
    assert list(ft.frame.columns) == [f"mp_{j:03d}" for j in range(45)]
    assert len(ft.frame) == 4
    for day in ft.frame.index:
        np.testing.assert_allclose(ft.frame.loc[day].to_numpy(), _by_hand(bars, day), rtol=0, atol=1e-15)
    # the gaps stay gaps: day 2's 09:32 slot; day 3's first three slots (its open is the 09:33 bar's)
    assert np.isnan(ft.frame.loc[DAY2, "mp_002"]) and ft.frame.loc[DAY2].isna().sum() == 1
    assert ft.frame.loc[DAY3, ["mp_000", "mp_001", "mp_002"]].isna().all()
    assert ft.frame.loc[DAY3].isna().sum() == 3
    first3 = 390 + 389  # day 3's first bar (09:33) after day 1's 390 and day 2's 389 bars
    assert ft.frame.loc[DAY3, "mp_003"] == math.log(bars["close"].iloc[first3] / bars["open"].iloc[first3])
    # every feature has lineage: the window of the day's bars before the cutoff
    lin = ft.lineage["mp_044"]
    assert lin["set"] == "minute_path" and lin["known_as_of"] == "10:15 America/New_York on day D"
    assert lin["window"] == "bars in [09:30, 10:15) America/New_York of day D"
    assert "44 bars after the session open" in lin["definition"]


def test_minute_path_is_chosen_by_name_only():
    assert "minute_path" in SEQUENCE_SETS and "minute_path" not in FEATURE_SETS
    from almanac.spec import spec_from_dict

    spec = spec_from_dict({"data": {"symbol": "ES"}, "label": "rest_of_day"})
    assert "minute_path" not in spec.features.sets  # the default sets stay the engineered ones


def test_bars_at_or_after_the_cutoff_never_reach_the_day(home):
    """Leakage: change every bar from day 2's cutoff on (and all later days): day 2's row and
    every earlier row are unchanged; day 3's changes (its own window was altered)."""
    from almanac.store import Store

    bars = _bars()
    a, b = Store(home / "a"), Store(home / "b")
    a.write("ES", "1min", bars, source="test")
    cut = Session().at([DAY2], "10:15")[0]
    later = bars["timestamp"] >= cut
    altered = bars.copy()
    for c in ("open", "high", "low", "close"):
        altered.loc[later, c] = altered.loc[later, c] * 1.37
    b.write("ES", "1min", altered, source="test")
    fa = build_features("ES", cutoff="10:15", sets=["minute_path"], store=a, use_cache=False).frame
    fb = build_features("ES", cutoff="10:15", sets=["minute_path"], store=b, use_cache=False).frame
    pd.testing.assert_frame_equal(fa.loc[:DAY2], fb.loc[:DAY2])
    assert not fa.loc[DAY3].equals(fb.loc[DAY3])


def test_a_daily_only_symbol_has_no_path(store):
    from features.sessions_table import daily_from_sessions, session_table

    daily = daily_from_sessions(session_table(_bars(), Session(), "16:00"))
    store.write("ES", "1d", daily, source="test")
    ft = build_features("ES", cutoff="10:15", sets=["minute_path", "regime"], store=store, use_cache=False)
    assert not any(c.startswith("mp_") for c in ft.frame.columns)
    assert "minute_path absent: ES has no intraday bars (daily-only symbol)" in ft.notes
