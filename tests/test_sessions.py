from datetime import time

import pandas as pd
import pytest

from almanac.errors import SpecError
from almanac.sessions import Session, parse_time, session_for

NY = Session()


def test_session_open_in_utc_follows_daylight_saving():
    # 2018-03-09 (Fri, EST, UTC-5) and 2018-03-12 (Mon, EDT, UTC-4): DST began 2018-03-11.
    opens = NY.opens(["2018-03-09", "2018-03-12"])
    assert list(opens) == [pd.Timestamp("2018-03-09 14:30", tz="UTC"), pd.Timestamp("2018-03-12 13:30", tz="UTC")]
    # 2018-11-02 (Fri, EDT) and 2018-11-05 (Mon, EST): DST ended 2018-11-04.
    cut = NY.at(["2018-11-02", "2018-11-05"], "10:15")
    assert list(cut) == [pd.Timestamp("2018-11-02 14:15", tz="UTC"), pd.Timestamp("2018-11-05 15:15", tz="UTC")]


def test_in_session_uses_local_wall_clock_across_dst():
    # 13:30 UTC is 09:30 in summer (in session) but 08:30 in winter (not yet open)
    ts = pd.Series(pd.to_datetime(["2018-03-12 13:30", "2018-03-09 13:30", "2018-11-05 20:59",
                                   "2018-11-02 20:00", "2018-11-02 19:59"], utc=True))
    assert NY.in_session(ts).tolist() == [True, False, True, False, True]


def test_trading_days_are_days_with_session_bars():
    ts = pd.Series(pd.to_datetime([
        "2018-11-02 19:59",  # Fri 15:59 local: in session
        "2018-11-03 15:00",  # Sat 11:00: counted only because it is in session hours
        "2018-11-05 02:00",  # Sun 21:00 local (overnight): not a trading day by itself
        "2018-11-05 15:00",  # Mon 10:00 local
    ], utc=True))
    days = NY.trading_days(ts)
    assert [d.strftime("%Y-%m-%d") for d in days] == ["2018-11-02", "2018-11-03", "2018-11-05"]


def test_local_date_of_evening_bars_is_the_local_day():
    ts = pd.Series(pd.to_datetime(["2018-11-06 02:30"], utc=True))  # 21:30 on the 5th in New York
    assert NY.local_date(ts).iloc[0] == pd.Timestamp("2018-11-05")


@pytest.mark.parametrize("text,expected", [("10:15", time(10, 15)), (" 9:45 ", time(9, 45))])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("bad", ["10.15", "25:00", "10:75", "ten"])
def test_parse_time_refuses(bad):
    with pytest.raises(SpecError, match="HH:MM"):
        parse_time(bad)


def test_cutoff_must_be_inside_the_session():
    assert NY.check_cutoff("10:15") == time(10, 15)
    assert NY.check_cutoff("16:00") == time(16, 0)
    for bad in ("09:30", "08:00", "16:01"):
        with pytest.raises(SpecError, match="outside the regular session 09:30–16:00 America/New_York"):
            NY.check_cutoff(bad)


def test_known_symbols_use_new_york_hours():
    assert session_for("es") == Session("America/New_York", time(9, 30), time(16, 0), "XNYS")
