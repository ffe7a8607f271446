"""Vendor layouts: one set of bars written out in every layout imports to the same canonical
rows; every ambiguity and refusal is one line naming the flag, with the store unchanged."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest

from almanac.errors import DataError
from almanac.importer import Layout, import_bytes, import_file
from cli import main

NY = "America/New_York"

#: the canonical bars: ES, 1 minute, 09:30-09:34 New York on 2018-03-13 and 2018-03-14 (EDT)
STARTS = pd.DatetimeIndex([f"2018-03-{d} 09:3{m}" for d in (13, 14) for m in range(5)]).tz_localize(NY)
rng = np.random.default_rng(5)
_close = np.round(2750 + np.cumsum(rng.normal(0, 1, 10)) * 4) / 4
CANON = pd.DataFrame({
    "timestamp": STARTS.tz_convert("UTC").as_unit("us"),
    "open": np.r_[2750.0, _close[:-1]], "close": _close,
})
CANON["high"] = np.maximum(CANON["open"], CANON["close"]) + 0.5
CANON["low"] = np.minimum(CANON["open"], CANON["close"]) - 0.25
CANON["volume"] = np.arange(10, 20, dtype="float64") * 10
CANON = CANON[["timestamp", "open", "high", "low", "close", "volume"]]


def _rows(fmt, sep=",", decimal=".", starts=STARTS):
    """Text rows: ``fmt(local start)`` gives the time field(s); prices with ``decimal``."""
    out = []
    for t, (_, r) in zip(starts, CANON.iterrows()):
        nums = [f"{r[c]:.2f}".replace(".", decimal) for c in ("open", "high", "low", "close")] + [f"{r['volume']:.0f}"]
        out.append(sep.join([fmt(t), *nums]))
    return "\n".join(out) + "\n"


def _gz(text: str) -> bytes:
    return gzip.compress(text.encode(), mtime=0)


def _zip(name: str, text: str, extra: dict | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, text)
        for k, v in (extra or {}).items():
            zf.writestr(k, v)
    return buf.getvalue()


def _parquet_ms() -> bytes:
    df = CANON.drop(columns="timestamp").rename(columns=str.capitalize)
    df.insert(0, "Timestamp", CANON["timestamp"].astype("int64") // 1000)  # us -> ms
    buf = io.BytesIO()
    df.to_parquet(buf)
    return buf.getvalue()


ISO = "Datetime,Open,High,Low,Close,Volume\n" + _rows(lambda t: f"{t:%Y-%m-%d %H:%M:%S}")
SEMI = "Date;Time;Open;High;Low;Last;Vol\n" + _rows(lambda t: f"{t:%Y-%m-%d};{t:%H:%M}", sep=";")

#: (file name, bytes, import options): every one imports to CANON
LAYOUTS = [
    ("iso.csv", ISO.encode(), {}),
    ("offsets.csv", ("Timestamp,Open,High,Low,Close,Volume\n"
                     + _rows(lambda t: t.isoformat())).encode(), {}),
    ("semicolon_date_time.csv", SEMI.encode(), {}),
    ("tab_gmt.tsv", ("Gmt time\tOpen\tHigh\tLow\tClose\tVolume\n"
                     + _rows(lambda t: f"{t.tz_convert('UTC'):%d.%m.%Y %H:%M:%S.000}", sep="\t")).encode(), {}),
    ("us_dates.csv", ("Date,Time,Open,High,Low,Price,Volume\n"
                      + _rows(lambda t: f"{t:%m/%d/%Y},{t:%H:%M}")).encode(), {}),
    ("epoch_s.csv", ("t,o,h,l,c,v\n".replace("t,", "timestamp,")
                     + _rows(lambda t: str(int(t.timestamp())))).encode(), {}),
    ("epoch_ms.parquet", _parquet_ms(), {}),
    ("iso.csv.gz", _gz(ISO), {}),
    ("semicolon.zip", _zip("bars/semicolon.csv", SEMI), {}),
    ("end_stamped.csv", ("Datetime,Open,High,Low,Close,Volume\n"
                         + _rows(lambda t: f"{t + pd.Timedelta(minutes=1):%Y-%m-%d %H:%M}")).encode(),
     {"stamp": "end"}),
    ("decimal_comma.csv", ("Date;Time;Open;High;Low;Close;Volume\n"
                           + _rows(lambda t: f"{t:%d.%m.%Y};{t:%H:%M}", sep=";", decimal=",")).encode(),
     {"layout": Layout(decimal=",")}),
    ("epoch_ms_named.csv", ("Timestamp;Open;High;Low;Close;Volume\n"
                            + _rows(lambda t: str(int(t.timestamp() * 1000)), sep=";")).encode(),
     {"layout": Layout(epoch="ms", delimiter=";")}),
]


def snapshot(home):
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(home.rglob("*"))}


@pytest.mark.parametrize("name,data,kw", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_every_layout_imports_to_the_same_canonical_rows(store, name, data, kw):
    res = import_bytes(data, name, "ES", store=store, **kw)
    got = store.read_bars("ES", "1min")
    pd.testing.assert_frame_equal(got, CANON, check_dtype=False)
    assert (res.entry.freq, res.entry.calendar) == ("1min", "XNYS")
    assert res.warnings == []


def test_the_import_says_which_zone_it_assumed(store):
    assert import_bytes(ISO.encode(), "iso.csv", "ES", store=store).notes == [
        "naive times read as America/New_York (the XNYS calendar's zone; pass --tz to change)"]
    gmt = LAYOUTS[3]
    assert import_bytes(gmt[1], gmt[0], "ES", store=store).notes == [
        "naive times read as UTC (the column 'Gmt time' says GMT; pass --tz to change)"]
    ep = LAYOUTS[5]
    assert import_bytes(ep[1], ep[0], "ES", store=store).notes == [
        "times read as epoch seconds (UTC); pass --epoch to change"]


AMBIGUOUS_DATES = "Date,Open,High,Low,Close,Volume\n04/03/2018 09:30,1,2,0.5,1.5,3\n04/03/2018 09:31,1,2,0.5,1.5,3\n"

#: (file name, bytes, options, the one-line refusal)
REFUSALS = [
    ("dates.csv", AMBIGUOUS_DATES.encode(), {},
     "dates.csv, row 1, column 'Date': dates such as '04/03/2018 09:30' read both day-first and month-first: "
     "pass --date-order dmy or --date-order mdy"),
    ("mixed.csv", b"Date;Time,Open,High,Low,Close,Volume\n2018-03-13;09:30,1,2,0.5,1.5,3\n", {},
     "mixed.csv: the header holds commas and semicolons, so the separator is ambiguous: pass --delimiter (',', ';')"),
    ("comma.csv", SEMI.replace(".25", ",25").replace(".50", ",50").replace(".75", ",75").encode(), {},
     "comma.csv, row "),
    ("yyyymmdd.csv", b"Date,Close\n20180313,2750\n20180314,2751\n", {},
     "yyyymmdd.csv, row 1, column 'Date': time value '20180313' is a number but not epoch seconds or milliseconds "
     "of the years 1973-2103 (e.g. 1520605800 or 1520605800000): pass --epoch s or --epoch ms, or write ISO "
     "timestamps"),
    ("two.zip", _zip("a.csv", ISO, {"b.csv": ISO}), {},
     "two.zip: the zip file holds 2 files (a.csv, b.csv): zip exactly one CSV file"),
    ("bars.parquet.gz", gzip.compress(_parquet_ms()), {},
     "bars.parquet.gz: a gzip-compressed Parquet file: import the .parquet file itself"),
    ("broken.csv.gz", _gz(ISO)[:40], {}, "broken.csv.gz: not a readable gzip file"),
    ("adj.csv", ISO.replace("Close,Volume", "Adj Close,Volume").encode(), {},
     "adj.csv, column 'Adj Close': column 'Adj Close' (adjusted close) is a daily series; 1min bars need a Close, "
     "Last or Price column: remove the adjusted close"),
    ("offgrid.csv", ("Datetime,Open,High,Low,Close,Volume\n"
                     + "".join(f"2018-03-13 09:{m:02d},1,2,0.5,1.5,3\n" for m in (32, 37, 42))).encode(), {},
     "offgrid.csv, column 'Datetime': the bar at 2018-03-13 09:32:00 America/New_York is not on the 5min grid of "
     "the session opening at 09:30"),
    ("stamp_daily.csv", b"Date,Close\n2018-03-13,2750\n2018-03-14,2751\n", {"stamp": "end"},
     "stamp_daily.csv: --stamp end applies to intraday bars"),
    ("end_offgrid.csv", ("Datetime,Open,High,Low,Close,Volume\n"
                         + "".join(f"2018-03-13 09:{m:02d},1,2,0.5,1.5,3\n" for m in (37, 42, 47))).encode(),
     {"stamp": "end"},
     "end_offgrid.csv, column 'Datetime': the bar at 2018-03-13 09:32:00 America/New_York is not on the 5min grid "
     "of the session opening at 09:30 (bars start at 09:30 + multiples of 5 min); check --stamp end"),
    ("both.csv", ISO.replace("Volume", "Vol").replace("Datetime,", "Datetime,Last,").replace(
        ":00,", ":00,1,").encode(), {},
     "both.csv: columns 'Last' and 'Close' both give the close: remove one"),
]


@pytest.mark.parametrize("name,data,kw,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_one_line_and_leave_the_store_unchanged(store, name, data, kw, message):
    import_bytes(ISO.encode(), "seed.csv", "ES", store=store)
    before = snapshot(store.home)
    with pytest.raises(DataError) as exc:
        import_bytes(data, name, "ES", store=store, **kw)
    assert exc.value.message.startswith(message), exc.value.message
    assert "\n" not in exc.value.message
    assert snapshot(store.home) == before


#: the import options above as command-line flags
FLAGS = {"stamp": lambda v: ["--stamp", v]}


@pytest.mark.parametrize("name,data,kw,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_from_the_command_line_exit_2_with_one_line(store, tmp_path, capsys, name, data, kw, message):
    import_bytes(ISO.encode(), "seed.csv", "ES", store=store)
    before = snapshot(store.home)
    f = tmp_path / name
    f.write_bytes(data)
    args = [a for k, v in kw.items() for a in FLAGS[k](v)]
    assert main(["data", "import", str(f), "--symbol", "ES", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {message}")
    assert snapshot(store.home) == before


def test_decimal_comma_is_refused_until_named(store):
    with pytest.raises(DataError, match=r"holds a comma: pass --decimal , if it is the decimal mark, or --decimal \. "
                                        r"if it separates thousands$"):
        import_bytes(LAYOUTS[10][1], "decimal_comma.csv", "ES", store=store)


@pytest.mark.parametrize("order,day", [("dmy", "2018-03-04"), ("mdy", "2018-04-03")])
def test_the_date_order_flag_settles_an_ambiguous_file(store, order, day):
    import_bytes(AMBIGUOUS_DATES.encode(), "dates.csv", "ES", store=store, layout=Layout(date_order=order),
                 calendar="")
    local = store.read_bars("ES")["timestamp"].dt.tz_convert(NY)
    assert local.dt.strftime("%Y-%m-%d %H:%M").tolist() == [f"{day} 09:30", f"{day} 09:31"]


def test_bars_outside_the_calendar_are_dropped_with_a_counted_warning(store):
    days = {"2018-11-21": 390, "2018-11-22": 390, "2018-11-23": 390}  # Thanksgiving; then a 13:00 close
    starts = pd.DatetimeIndex(np.concatenate([pd.date_range(f"{d} 09:30", periods=n, freq="min").values
                                              for d, n in days.items()])).tz_localize(NY)
    text = "Datetime,Open,High,Low,Close,Volume\n" + "".join(f"{t:%Y-%m-%d %H:%M},1,2,0.5,1.5,3\n" for t in starts)
    res = import_bytes(text.encode(), "thanks.csv", "ES", store=store)
    assert res.warnings == ["thanks.csv: dropped 570 bar(s) outside the XNYS calendar's sessions (holidays, after "
                            "early closes), first at 2018-11-22 09:30 America/New_York"]
    assert res.entry.rows == 390 + 210
    # without a calendar (a user's symbol): everything kept, and one warning names the flag
    res = import_bytes(text.encode(), "thanks.csv", "MYFUT", store=store)
    assert res.entry.rows == 3 * 390 and res.entry.calendar == ""
    assert res.warnings == ["MYFUT has no exchange calendar: its trading days are the weekdays with data and its "
                            "session 09:30–16:00 America/New_York; pass --calendar (e.g. XNYS, CMES, XLON) for "
                            "holidays and early closes"]


def test_a_users_symbol_with_a_calendar_takes_its_zone(store):
    text = "Datetime,Open,High,Low,Close,Volume\n2018-03-13 08:00,1,2,0.5,1.5,3\n2018-03-13 08:01,1,2,0.5,1.5,3\n"
    res = import_bytes(text.encode(), "vod.csv", "VOD", store=store, calendar="XLON")
    assert (res.entry.tz, res.entry.session_open, res.entry.session_close, res.entry.calendar) == (
        "Europe/London", "08:00", "16:30", "XLON")
    assert store.read_bars("VOD")["timestamp"].iloc[0] == pd.Timestamp("2018-03-13 08:00", tz="UTC")
    assert res.notes == ["naive times read as Europe/London (the XLON calendar's zone; pass --tz to change)"]


def test_the_command_line_takes_the_layout_flags(home, tmp_path, capsys):
    f = tmp_path / "bars.txt"
    f.write_text(LAYOUTS[10][1].decode())
    assert main(["data", "import", str(f), "--symbol", "ES", "--decimal", ",", "--delimiter", ";"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("imported ES 1min: 10 rows 2018-03-13T13:30:00+00:00 .. 2018-03-14T13:34:00+00:00")
    assert out.rstrip().endswith("; calendar XNYS; naive times read as America/New_York (the XNYS calendar's zone; "
                                 "pass --tz to change)")
    assert main(["data", "show", "ES", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["calendar"] == "XNYS"
    before = snapshot(home)
    f.write_text(AMBIGUOUS_DATES)
    assert main(["data", "import", str(f), "--symbol", "ES"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: bars.txt, row 1, column 'Date': dates such as")
    assert main(["data", "import", str(f), "--symbol", "ES", "--calendar", "NOPE"]) == 2
    assert capsys.readouterr().err.startswith("error: --calendar 'NOPE' is not an exchange calendar")
    assert snapshot(home) == before


def test_a_gzip_bomb_is_refused_before_it_is_parsed(home, tmp_path):
    """100 MB of one line repeated in a few hundred KB: refused after reading the 64 MB the expansion limit allows,
    in a subprocess whose time and peak memory are measured."""
    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(b"Datetime,Open,High,Low,Close,Volume\n")
        block = b"2018-03-13 09:30,1,2,0.5,1.5,3\n" * (1 << 15)  # 1 MB of one line repeated
        for _ in range(100):
            fh.write(block)
    # peak memory from VmHWM (ru_maxrss of a child forked from a big pytest process counts the parent's pages)
    code = ("import re, time\nfrom cli import main\nt = time.perf_counter()\n"
            f"rc = main(['data', 'import', {str(bomb)!r}, '--symbol', 'ES'])\n"
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) // 1024\n"
            "print(rc, time.perf_counter() - t, hwm)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**__import__("os").environ, "ALMANAC_HOME": str(home)})
    rc, seconds, peak_mb = proc.stdout.split()
    assert rc == "2" and float(seconds) < 10 and int(peak_mb) < 600
    assert proc.stderr.startswith("error: bomb.csv.gz: the gzip file decompresses to more than 64 MB "
                                  "(ALMANAC_MAX_EXPANSION)")
    assert proc.stderr.count("\n") == 1
    assert not any(home.iterdir())
