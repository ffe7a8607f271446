"""Exchange calendars: holidays and early closes decide the session, the label and the backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.errors import DataError, SpecError
from almanac.sessions import Session, session_for, session_of
from features.sessions_table import session_table
from ml.backtester import backtest
from ml.labelers import make_label

NY = "America/New_York"
ES = session_for("ES")  # 09:30-16:00 New York, XNYS calendar


def _bars(day: str, close_at: dict[str, float], default: float = 100.0) -> pd.DataFrame:
    """One bar a minute 09:30-15:59 New York on ``day``, flat at ``default`` except the bars
    whose local start ``HH:MM`` is a key of ``close_at`` (close there, open = default)."""
    start = pd.Timestamp(f"{day} 09:30", tz=NY)
    ts = pd.date_range(start, periods=390, freq="min").tz_convert("UTC")
    hhmm = ts.tz_convert(NY).strftime("%H:%M")
    close = np.array([close_at.get(h, default) for h in hhmm])
    return pd.DataFrame({"timestamp": ts, "open": default, "high": np.maximum(close, default),
                         "low": np.minimum(close, default), "close": close, "volume": 1.0})


def _three_days(early: str, before: str, after: str) -> pd.DataFrame:
    """Full 09:30-16:00 bars on three days; on ``early`` the 12:59 bar closes at 101 (the
    early close) and the 15:59 bar at 99 (data a vendor has after the exchange closed)."""
    return pd.concat([_bars(before, {}), _bars(early, {"12:59": 101.0, "15:59": 99.0}), _bars(after, {})],
                     ignore_index=True)


def test_the_sample_symbols_use_xnys_and_its_1300_early_closes():
    assert ES.calendar == "XNYS"
    days = pd.to_datetime(["2018-11-21", "2018-11-22", "2018-11-23", "2018-12-24", "2018-12-25", "2018-12-26"])
    assert ES.is_session(days).tolist() == [True, False, True, True, False, True]  # Thanksgiving, Christmas closed
    closes = ES.closes(days).tz_convert(NY).strftime("%H:%M").tolist()
    assert [c for c, ok in zip(closes, ES.is_session(days)) if ok] == ["16:00", "13:00", "13:00", "16:00"]
    assert list(ES.early_closes(days).strftime("%Y-%m-%d")) == ["2018-11-23", "2018-12-24"]
    # no calendar: every date has the full regular session (today's behaviour)
    assert Session().closes(days).tz_convert(NY).strftime("%H:%M").unique().tolist() == ["16:00"]


@pytest.mark.parametrize("early,before,after", [
    ("2018-11-23", "2018-11-21", "2018-11-26"),  # the day after Thanksgiving
    ("2018-12-24", "2018-12-21", "2018-12-26"),  # Christmas Eve
])
def test_early_close_day_ends_the_session_label_and_backtest_at_1300(early, before, after):
    bars = _three_days(early, before, after)
    table = session_table(bars, ES, "10:15")
    row = table.loc[pd.Timestamp(early)]
    assert row["close"] == 101.0  # the 12:59 bar's close, not the 15:59 bar's 99
    assert row["cutoff_price"] == 100.0
    assert table.loc[pd.Timestamp(after), "prev_close"] == 101.0
    label = make_label("rest_of_day", table.reset_index())
    assert label[pd.Timestamp(early)] == 1.0  # 101 > 100; a full session would give 0 (99 < 100)
    assert label[pd.Timestamp(before)] == 0.0  # flat day
    # the backtest's long position exits at the early close: +1 %
    frame = table.reset_index()[["date", "cutoff_price", "close", "prev_close"]].assign(prob=0.9)
    trades = backtest(frame, threshold=0.55).trades.set_index("date")
    assert trades.loc[pd.Timestamp(early), "exit"] == 101.0
    assert trades.loc[pd.Timestamp(early), "gross_return"] == pytest.approx(0.01, abs=1e-15)
    # without a calendar the same bars give today's full session: exit at 99
    full = session_table(bars, Session(), "10:15")
    assert full.loc[pd.Timestamp(early), "close"] == 99.0
    assert make_label("rest_of_day", full.reset_index())[pd.Timestamp(early)] == 0.0


def test_a_holiday_with_bars_is_no_trading_day():
    bars = pd.concat([_bars("2018-11-21", {}), _bars("2018-11-22", {"12:00": 105.0}), _bars("2018-11-23", {})],
                     ignore_index=True)
    days = session_table(bars, ES, "10:15").index.strftime("%Y-%m-%d").tolist()
    assert days == ["2018-11-21", "2018-11-23"]


def test_cutoff_inside_a_bar_is_refused_with_the_nearest_cutoffs():
    with pytest.raises(SpecError) as exc:
        ES.check_cutoff("10:17", 5, "ES 5min")
    assert exc.value.message == "cutoff 10:17 falls inside the 10:15–10:20 bar of ES 5min; use 10:15 or 10:20"
    with pytest.raises(SpecError, match=r"^cutoff 10:20 falls inside the 09:30–10:30 bar of ES 1h; use 10:30$"):
        ES.check_cutoff("10:20", 60, "ES 1h")
    with pytest.raises(SpecError, match=r"inside the 15:30–16:00 bar of ES 1h; use 15:30 or 16:00$"):
        ES.check_cutoff("15:45", 60, "ES 1h")
    assert ES.check_cutoff("10:15", 15, "ES 15min").strftime("%H:%M") == "10:15"
    assert ES.check_cutoff("10:30", 60, "ES 1h").strftime("%H:%M") == "10:30"


def test_unknown_calendar_is_refused_naming_the_flag():
    with pytest.raises(DataError, match=r"^--calendar 'NYSEX' is not an exchange calendar: use an exchange_calendars "
                                        r"name such as XNYS"):
        session_for("ES", "NYSEX")


def test_a_users_symbol_takes_the_calendars_zone_and_hours():
    lon = session_for("VOD", "xlon")
    assert (lon.tz, f"{lon.open:%H:%M}", f"{lon.close:%H:%M}", lon.calendar) == ("Europe/London", "08:00", "16:30",
                                                                               "XLON")
    # a calendar whose session runs overnight (CME Globex) keeps the default day session
    assert session_for("GC", "CMES") == Session(calendar="CMES")
    assert session_for("GC") == Session()


def test_store_records_the_session_and_an_old_entry_gets_its_default(store):
    bars = _bars("2018-11-21", {})
    e = store.write("ES", "1min", bars, source="t", session=ES)
    assert (e.calendar, store.entry("ES", "1min").calendar) == ("XNYS", "XNYS")
    assert session_of(store.entry("ES")) == ES
    e = store.write("FOO", "1min", bars, source="t")  # no session given: the default hours, no calendar
    assert e.calendar == "" and session_of(e) == Session()
    old = dict(e.to_dict(), symbol="ES")
    del old["calendar"]  # a catalog written before calendars
    from almanac.store import CatalogEntry
    assert session_of(CatalogEntry.from_dict(old)) == ES


def test_a_cutoff_after_the_early_close_leaves_that_day_without_a_rest_of_day():
    """Cutoff 14:00: on 2018-11-23 the session closed at 13:00, so there is no price at the
    cutoff to trade from: cutoff_price, the window features and the label are NaN, while the
    ordinary days around it keep theirs; no trade is made that day."""
    bars = _three_days("2018-11-23", "2018-11-21", "2018-11-26")
    table = session_table(bars, ES, "14:00")
    assert np.isnan(table.loc[pd.Timestamp("2018-11-23"), "cutoff_price"])
    assert table.loc[pd.Timestamp("2018-11-23"), "close"] == 101.0
    assert table.loc[[pd.Timestamp("2018-11-21"), pd.Timestamp("2018-11-26")], "cutoff_price"].tolist() == [100.0,
                                                                                                            100.0]
    label = make_label("rest_of_day", table.reset_index())
    assert np.isnan(label[pd.Timestamp("2018-11-23")])
    # the runner predicts only labelled days: no prediction, no trade that day
    frame = table.reset_index()[["date", "cutoff_price", "close", "prev_close"]]
    frame["prob"] = np.where(label.notna().to_numpy(), 0.9, np.nan)
    trades = backtest(frame, threshold=0.55).trades
    assert [f"{d:%m-%d}" for d in trades["date"]] == ["11-21", "11-26"]
    # a cutoff at the regular close keeps the ordinary days (and the early-close day has none)
    at_close = session_table(bars, ES, "16:00")
    assert at_close["cutoff_price"].isna().tolist() == [False, True, False]


def test_trading_days_follow_the_calendar():
    bars = pd.concat([_bars("2018-11-21", {}), _bars("2018-11-22", {}), _bars("2018-11-23", {})], ignore_index=True)
    assert list(ES.trading_days(bars["timestamp"]).strftime("%d")) == ["21", "23"]
    assert list(Session().trading_days(bars["timestamp"]).strftime("%d")) == ["21", "22", "23"]


def test_calendar_schedules_are_kept_on_disk_outside_the_data_home(tmp_path, monkeypatch):
    """The first use builds the schedule with exchange_calendars and keeps it in the user's
    cache folder; another process reads the very same schedule and hours from there without
    importing the library (0.4 s of every command that reads sessions)."""
    import subprocess
    import sys

    from almanac import sessions

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    sessions._calendar_data.cache_clear()
    try:
        sched = sessions.calendar_schedule("XNYS")
        hours = sessions.calendar_hours("XNYS")
    finally:
        sessions._calendar_data.cache_clear()
    ref = sessions._calendar("XNYS").schedule[["open", "close"]]
    pd.testing.assert_frame_equal(sched, ref, check_freq=False)
    assert hours == ("America/New_York", sessions.parse_time("09:30"), sessions.parse_time("16:00"))
    (kept,) = (tmp_path / "cache" / "almanac" / "calendars").glob("XNYS-*.parquet")
    code = ("import sys, pandas as pd\nfrom almanac import sessions\n"
            "s = sessions.calendar_schedule('XNYS')\n"
            "print('exchange_calendars' in sys.modules, sessions.calendar_hours('XNYS'))\n"
            f"s.to_parquet({str(tmp_path / 'again.parquet')!r})")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert out.stdout.startswith("False (") and "America/New_York" in out.stdout, out.stdout + out.stderr
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "again.parquet"), ref, check_freq=False)
    # Thanksgiving 2018 is no session; the day after closes at 13:00 New York (18:00 UTC)
    assert pd.Timestamp("2018-11-22") not in sched.index
    assert sched.loc[pd.Timestamp("2018-11-23"), "close"] == pd.Timestamp("2018-11-23 18:00", tz="UTC")
    kept.write_bytes(b"damaged")  # a damaged copy is rebuilt from the library
    sessions._calendar_data.cache_clear()
    try:
        pd.testing.assert_frame_equal(sessions.calendar_schedule("XNYS"), ref, check_freq=False)
    finally:
        sessions._calendar_data.cache_clear()
