"""build_features: errors, daily-only symbols, lineage, the cache, date ranges, the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cli import main
from almanac.errors import NotFoundError, SpecError
from features import FEATURE_SETS, build_features
from features.regime import atr
from bench.synthetic import synthetic_store

SETS = FEATURE_SETS


@pytest.fixture
def market(store):
    return store, synthetic_store(store, days=320, minute_start="2017-10-02")


@pytest.mark.parametrize("kwargs,error,text", [
    ({"sets": ("early", "regime")}, SpecError, "unknown feature set(s) early: choose from early_session"),
    ({"sets": ()}, SpecError, "no feature set chosen"),
    ({"cross_assets": ("DXY",)}, NotFoundError, "cross-asset symbol DXY has no data"),
    ({"cross_assets": ("ES",)}, SpecError, "is the target symbol itself"),
    ({"cutoff": "09:15"}, SpecError, "outside the regular session"),
    ({"cutoff": "10.15"}, SpecError, "HH:MM"),
    ({"start": "2018-03-01", "end": "2018-02-01"}, SpecError, "start 2018-03-01 is after end 2018-02-01"),
    ({"start": "2030-01-01"}, NotFoundError, "no trading day between 2030-01-01"),
    ({"start": "yesterday-ish"}, SpecError, "is not a date"),
    ({"end": "2010-01-01"}, NotFoundError, "ES has no trading day up to 2010-01-01: its data covers 2017-10-02 .."),
    ({"start": "2017-12-23", "end": "2017-12-24"}, NotFoundError,
     "no trading day between 2017-12-23 and 2017-12-24: its data covers 2017-10-02 .. 2018-03-23"),
])
def test_user_errors_say_what_to_change(market, kwargs, error, text):
    store, _ = market
    with pytest.raises(error) as exc:
        build_features("ES", store=store, use_cache=False, **kwargs)
    assert text in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_symbol(market):
    with pytest.raises(NotFoundError, match="symbol ZZ has no data in the store .* import ZZ first"):
        build_features("ZZ", store=market[0])


def test_minute_symbol_features_sessions_and_lineage(market):
    store, frames = market
    ft = build_features("ES", cross_assets=("VIX", "NQ"), store=store, use_cache=False)
    assert ft.frame.index.name == "date" and (ft.frame.dtypes == "float64").all()
    assert list(ft.sessions.columns) == ["open", "high", "low", "close", "volume", "cutoff_price", "prev_close"]
    assert ft.frame.index[0] == pd.Timestamp("2017-10-02")  # rows = the minute bars' trading days
    assert {"gap_pct", "overnight_range_atr", "VIX_ret_1d", "VIX_z20", "NQ_early_ret", "adx14"} <= set(ft.frame)
    assert "VIX_early_ret" not in ft.frame
    assert any("VIX_early_ret absent: VIX has no 1min bars" in n for n in ft.notes)
    es1m, es1d, vix = (store.entry(s, f).sha256 for s, f in (("ES", "1min"), ("ES", "1d"), ("VIX", "1d")))
    assert ft.data_hashes == {"ES 1min": es1m, "ES 1d": es1d, "VIX 1d": vix,
                              "NQ 1min": store.entry("NQ", "1min").sha256}
    assert ft.lineage["or_range_atr"]["datasets"] == [f"ES 1min {es1m[:12]}", f"ES 1d {es1d[:12]}"]
    assert ft.lineage["or_delta"]["known_as_of"] == "10:15 America/New_York on day D"
    assert ft.lineage["or_delta"]["window"] == "bars in [09:30, 10:15) America/New_York of day D"
    assert ft.lineage["adx14"]["known_as_of"] == "session open of day D"
    assert ft.lineage["adx14"]["datasets"] == [f"ES 1d {es1d[:12]}"]
    assert ft.lineage["VIX_z20"]["datasets"] == [f"VIX 1d {vix[:12]}"]
    assert ft.lineage["NQ_early_ret"]["datasets"] == [f"NQ 1min {store.entry('NQ', '1min').sha256[:12]}"]
    assert set(ft.lineage) == set(ft.frame.columns)
    # or_range_atr = window range / ATR(14) of the 1d file's bars before D
    d = frames[("ES", "1d")]
    a = pd.Series(atr(*(d[k].to_numpy() for k in ("high", "low", "close"))), index=d["date"])
    day = ft.frame.index[40]
    prev = d["date"][d["date"] < day].iloc[-1]
    ts = frames[("ES", "1min")]["timestamp"].dt.tz_convert("America/New_York")
    w = frames[("ES", "1min")][(ts.dt.tz_localize(None).dt.normalize() == day)
                               & (ts.dt.strftime("%H:%M") >= "09:30") & (ts.dt.strftime("%H:%M") < "10:15")]
    assert ft.frame.loc[day, "or_range_atr"] == pytest.approx((w["high"].max() - w["low"].min()) / a[prev])


def test_daily_only_symbol(market):
    store, frames = market
    store.write("SPX", "1d", frames[("ES", "1d")], source="t")
    ft = build_features("SPX", cross_assets=("VIX", "NQ"), store=store, use_cache=False)
    assert not {"gap_pct", "or_return_pct", "NQ_early_ret"} & set(ft.frame)
    assert ft.notes[0] == ("early_session features absent: SPX has no 1min bars (daily-only symbol); "
                           "features are known at the session open")
    assert any(n.startswith("NQ_early_ret absent: SPX is daily-only") for n in ft.notes)
    assert {v["known_as_of"] for v in ft.lineage.values()} == {"session open of day D"}
    assert (ft.sessions["cutoff_price"] == ft.sessions["open"]).all()
    assert ft.data_hashes.keys() == {"SPX 1d", "VIX 1d", "NQ 1min"}  # NQ daily closes derived from minutes
    with pytest.raises(SpecError, match="SPX has no 1min bars"):
        build_features("SPX", sets=("early_session",), store=store)


def test_minute_only_symbol_derives_daily_bars(market):
    store, _ = market
    ft = build_features("NQ", sets=("regime",), store=store, use_cache=False)
    assert any("regime daily bars derived from NQ 1min" in n for n in ft.notes)
    assert ft.data_hashes.keys() == {"NQ 1min"}
    assert ft.frame["close_sma50_pct"].notna().sum() == len(ft.frame) - 50  # day 50 sees 50 closes before it


def test_start_end_do_not_change_values(market):
    store, _ = market
    full = build_features("ES", cross_assets=("VIX",), store=store, use_cache=False)
    part = build_features("ES", cross_assets=("VIX",), start="2018-01-10", end="2018-02-20", store=store,
                          use_cache=False)
    assert part.frame.index[0] == pd.Timestamp("2018-01-10") and part.frame.index[-1] == pd.Timestamp("2018-02-20")
    pd.testing.assert_frame_equal(part.frame, full.frame.loc["2018-01-10":"2018-02-20"], check_exact=True)
    assert part.config["start"] == "2018-01-10" and part.config["end"] == "2018-02-20"


def test_cache_hits_and_invalidates_on_new_data(market):
    store, frames = market
    cold = build_features("ES", cross_assets=("VIX",), store=store)
    assert not cold.from_cache
    files = sorted(p.name for p in (store.home / "cache" / "features").iterdir())
    assert files == [f"{cold.cache_key}.json", f"{cold.cache_key}.parquet"]
    warm = build_features("ES", cross_assets=["VIX"], store=store)
    assert warm.from_cache and warm.cache_key == cold.cache_key
    pd.testing.assert_frame_equal(warm.frame, cold.frame, check_exact=True, check_freq=False)
    pd.testing.assert_frame_equal(warm.sessions, cold.sessions, check_exact=True, check_freq=False)
    assert (warm.lineage, warm.notes, warm.data_hashes, warm.config) == (cold.lineage, cold.notes,
                                                                         cold.data_hashes, cold.config)
    other_cut = build_features("ES", cutoff="10:30", cross_assets=("VIX",), store=store)
    assert not other_cut.from_cache and other_cut.cache_key != cold.cache_key
    vix = frames[("VIX", "1d")].copy()
    vix.loc[vix.index[-1], "close"] += 1.0
    store.write("VIX", "1d", vix, source="changed")
    new = build_features("ES", cross_assets=("VIX",), store=store)
    assert not new.from_cache and new.data_hashes["VIX 1d"] != cold.data_hashes["VIX 1d"]


def test_damaged_cache_entry_is_rebuilt(market):
    store, _ = market
    cold = build_features("ES", sets=("regime",), store=store)
    (store.home / "cache" / "features" / f"{cold.cache_key}.parquet").write_bytes(b"garbage")
    again = build_features("ES", sets=("regime",), store=store)
    assert not again.from_cache
    pd.testing.assert_frame_equal(again.frame, cold.frame)


def test_cross_assets_without_the_set_are_ignored_with_a_note(market):
    ft = build_features("ES", sets=("regime",), cross_assets=("VIX",), store=market[0], use_cache=False)
    assert ft.config["cross_assets"] == [] and not any(c.startswith("VIX") for c in ft.frame)
    assert ft.notes[0] == "cross-asset symbols VIX ignored: the cross_asset set is not selected"


# ------------------------------------------------------------------ command line


def test_cli_build_writes_date_and_features(market, tmp_path, capsys):
    out = tmp_path / "f.parquet"
    rc = main(["features", "build", "--symbol", "ES", "--cross", "VIX,NQ", "--start", "2018-01-02",
               "--out", str(out)])
    assert rc == 0
    df = pd.read_parquet(out)
    ft = build_features("ES", cross_assets=("VIX", "NQ"), start="2018-01-02")
    assert list(df.columns) == ["date", *ft.frame.columns]
    np.testing.assert_array_equal(df.drop(columns="date").to_numpy(), ft.frame.to_numpy())
    cap = capsys.readouterr()
    assert "note: VIX_early_ret absent" in cap.err
    assert f"wrote {len(ft.frame)} rows x {ft.frame.shape[1]} features" in cap.out


@pytest.mark.parametrize("argv,text", [
    (["--symbol", "ES", "--sets", "bogus"], "error: unknown feature set(s) bogus"),
    (["--symbol", "ES", "--cutoff", "17:00"], "error: cutoff 17:00 is outside the regular session"),
    (["--symbol", "NOPE"], "error: symbol NOPE has no data"),
    (["--symbol", "ES", "--out", "assets/features.parquet"], "which the web app serves publicly"),
])
def test_cli_user_errors_exit_2_with_one_line(market, tmp_path, capsys, argv, text):
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "x.parquet")]
    assert main(["features", "build", *argv]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("features ")]
    assert len(err) == 1 and text in err[0]


def test_cli_list_shows_definitions(capsys):
    assert main(["features", "list"]) == 0
    out = capsys.readouterr().out
    assert "early_session" in out and "regime" in out and "cross_asset" in out
    assert "hod_tests" in out and "first window bar has no earlier bars and does not count" in out
    assert main(["features", "list", "--json"]) == 0
    import json
    rows = json.loads(capsys.readouterr().out)
    assert {"set": "regime", "name": "adx14"}.items() <= next(r for r in rows if r["name"] == "adx14").items()


def test_bench_command_refuses_bad_options_and_formats_its_report(capsys):
    assert main(["bench", "features", "--years", "0"]) == 2
    assert "--years 0 is out of range: use 1 to 30" in capsys.readouterr().err
    from bench.features import format_report

    r = {"bars": 3_477_600, "days": 2520, "features": 20, "file_mb": 44.7, "cpu_count": 2, "load_avg": 0.5,
         "repeat": 5, "bare_read_s": 0.2, "cold_s": 0.3, "warm_s": 0.006, "compute_s": 0.04, "apply_s": 3.0,
         "apply_same_numbers": True, "max_abs_diff": 2e-15, "peak_rss_mb": 550.0, "base_rss_mb": 108.0,
         "memory_method": "peak RSS (VmHWM)",
         "ratios": {"cold_over_bare_read": 1.5, "apply_over_cold": 10.0, "apply_over_compute": 75.0,
                    "warm_over_cold": 0.02},
         "targets": {"cold <= 2x bare read": True, "apply >= 10x cold": True}}
    text = format_report(r)
    assert "cold build (empty cache)        0.300 s   1.50x bare read" in text
    assert "[PASS] apply >= 10x cold" in text and "2.00% of cold" in text


def test_notes_of_a_date_limited_build_describe_that_build(store):
    """Issue 9: a 2015-2018 build said "1260 of 2516 days" of VIX were empty when none were:
    the note counted the days before the requested start. VIX here starts in 2019."""
    from bench.synthetic import futures_minutes

    bars = futures_minutes("2018-07-02", days=300, seed=2, step=5, overnight=False)
    store.write("ES", "1min", bars, source="test")
    vix_dates = pd.bdate_range("2019-01-02", "2019-12-31")
    store.write("VIX", "1d", pd.DataFrame({"date": vix_dates, "close": np.linspace(12, 20, len(vix_dates))}),
                source="test")

    def vix_notes(**kw):
        ft = build_features("ES", sets=("cross_asset", "regime"), cross_assets=("VIX",), store=store,
                            use_cache=False, **kw)
        return ft, [n for n in ft.notes if n.startswith("VIX daily closes")]

    full, notes = vix_notes()
    stale = int((full.frame.index <= pd.Timestamp("2019-01-02")).sum())  # no VIX close before them
    assert notes == [f"VIX daily closes cover 2019-01-02 .. {vix_dates[-1]:%Y-%m-%d}: {stale} of {len(full.frame)} "
                     "days have no value within 10 days before them, so those features are NaN"]
    later, notes = vix_notes(start="2019-02-01")  # every requested day has VIX: no note
    assert notes == [] and later.frame["VIX_z20"].notna().all()
    part, notes = vix_notes(start="2018-12-03", end="2019-03-01")
    want = int((part.frame.index <= pd.Timestamp("2019-01-02")).sum())
    assert 0 < want < stale  # the December days only, not the history before the start
    assert notes == [f"VIX daily closes cover 2019-01-02 .. 2019-03-01: {want} of {len(part.frame)} days have no "
                     "value within 10 days before them, so those features are NaN"]


def test_gap_notes_of_a_date_limited_build_count_its_days_only(store):
    from bench.synthetic import futures_minutes

    bars = futures_minutes("2018-07-02", days=120, seed=2, step=5, overnight=False)
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    gap = (local.dt.tz_localize(None).dt.normalize() == pd.Timestamp("2018-08-01")) & (local.dt.hour < 11)
    store.write("ES", "1min", bars[~gap.to_numpy()].reset_index(drop=True), source="test")

    def gap_notes(**kw):
        ft = build_features("ES", sets=("early_session",), store=store, use_cache=False, **kw)
        return [n for n in ft.notes if "no bar before the cutoff" in n]

    assert gap_notes() == ["1 day(s) have no bar before the cutoff 10:15 (data gap or late start): their "
                           "early-session features and cutoff price are NaN"]
    assert gap_notes(start="2018-09-03") == []  # the gap is before the requested days
