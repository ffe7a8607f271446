"""The app factory and the pages' callbacks, called as plain functions (no browser).

The app module is imported once (its background-job cache in a temporary home); each
test then points ``ALMANAC_HOME`` at its own small store, which the callbacks read.
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
from pathlib import Path

import pandas as pd
import plotly
import pytest
from dash import dcc, no_update

from almanac.errors import DataError, NotFoundError
from almanac.sample import SAMPLE_SYMBOLS
from tests.test_importer import REFUSALS as IMPORT_REFUSALS
from tests.test_importer import snapshot

ROOT = Path(__file__).resolve().parent.parent
NAV = ["Overview", "Data", "Features", "Train", "Evaluate", "Backtest", "Models", "Studies"]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pages(page_module):
    """The page modules under test (registered by importing ``app``)."""
    return {name: page_module(name) for name in ("home", "data")}


@pytest.fixture
def lab(store):
    """A small store: ES 1min (3 bars on each of 2 days), ES 1d (11 days), VIX 1d (close only)."""
    stamps = [*pd.date_range("2018-12-28 14:30", periods=3, freq="1min", tz="UTC"),
              *pd.date_range("2018-12-31 14:30", periods=3, freq="1min", tz="UTC")]
    minute = pd.DataFrame({"timestamp": stamps, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5,
                           "volume": 10.0})
    days = pd.bdate_range("2018-12-17", "2018-12-31")  # 11 weekdays
    daily = pd.DataFrame({"date": days, "open": 100.0, "high": 102.0, "low": 98.0,
                          "close": 101.0 + pd.RangeIndex(len(days)) * 0.0, "volume": 1e6})
    vix = pd.DataFrame({"date": days[:3], "close": [25.0, 24.0, 26.0]})
    store.write("ES", "1min", minute, source="sample: synthetic test minutes", sample=True)
    store.write("ES", "1d", daily, source="sample: test days", sample=True)
    store.write("VIX", "1d", vix, source="vix.csv")
    return store


def texts(node) -> str:
    """All text inside a Dash component tree, space-joined."""
    if node is None:
        return ""
    if isinstance(node, (str, int, float)):
        return str(node)
    if isinstance(node, (list, tuple)):
        return " ".join(" ".join(texts(n) for n in node).split())
    return texts(getattr(node, "children", None))


def classes(node) -> list[str]:
    """Bootstrap colours of every dbc.Alert in a tree (depth-first)."""
    if isinstance(node, (list, tuple)):
        return [c for n in node for c in classes(n)]
    found = [node.color] if type(node).__name__ == "Alert" else []
    kids = getattr(node, "children", None)
    return found + (classes(kids) if kids is not None and not isinstance(kids, str) else [])


def upload(data: bytes, mime: str = "text/csv") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


# ----------------------------------------------------------------------------- app factory
def test_importing_app_starts_nothing_and_loads_no_model_library(tmp_path):
    code = (
        "import sys, json, os, multiprocess\n"
        "import app\n"
        "import dash\n"
        "print(json.dumps({'heavy': sorted(m for m in ('lightgbm', 'xgboost', 'shap', 'torch') if m in sys.modules),"
        " 'server': type(app.server).__name__, 'start': multiprocess.get_start_method(),"
        " 'manager': type(app.app._background_manager).__name__,"
        " 'suppress': app.app.config.suppress_callback_exceptions,"
        " 'paths': sorted(p['path'] for p in dash.page_registry.values()),"
        " 'jobs_mode': oct(os.stat(os.path.join(os.environ['ALMANAC_HOME'], 'jobs')).st_mode & 0o777)}))\n"
    )
    env = {**__import__("os").environ, "ALMANAC_HOME": str(tmp_path / "home")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["heavy"] == []
    assert info["server"] == "Flask"          # gunicorn app:server
    assert info["start"] == "fork"            # docs/design.md §11: jobs are forked
    assert info["manager"] == "DiskcacheManager"
    assert info["suppress"] is False
    assert info["paths"] == sorted(["/", "/data", "/features", "/train", "/evaluate", "/backtest", "/models",
                                          "/studies"])
    assert info["jobs_mode"] == "0o700"
    # importing wrote no data: only the private jobs cache exists in the home
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["jobs"]


def test_navbar_lists_pages_in_research_order(pages):
    from pages._components import nav_pages, navbar

    assert [p["name"] for p in nav_pages()] == NAV
    assert [p["path"] for p in nav_pages()][:2] == ["/", "/data"]
    links = [c.children for c in navbar().children.children[1].children]
    assert [link.children for link in links] == NAV
    assert [link.href for link in links][-1] == "/studies"


def test_page_tokens_differ_per_page_load(pages):
    tok = lambda: next(c for c in pages["data"].layout().children if getattr(c, "id", None) == "data-token")  # noqa: E731
    a, b = tok().data, tok().data
    assert a != b and len(a) == 32 and int(a, 16) >= 0


# ----------------------------------------------------------------------------- overview
def test_overview_lists_the_catalog_with_sample_provenance(pages, lab, home):
    page = pages["home"].layout()
    text = texts(page)
    assert "1-minute 2018-12-28 → 2018-12-31 6" in text      # ES 1min: local dates, 6 rows
    assert "daily 2018-12-17 → 2018-12-31 11" in text         # ES 1d: 11 rows
    assert SAMPLE_SYMBOLS["ES"] in text                       # provenance of the sample symbol
    assert "vix.csv" not in text and SAMPLE_SYMBOLS["VIX"] not in text  # VIX here is imported, not sample
    assert str(home) in text
    assert pages["home"].summarize(lab.catalog()) == {"datasets": 3, "symbols": 2, "rows": 6 + 11 + 3, "sample": 2}


def test_overview_of_an_empty_home_says_how_to_get_data(pages, home):
    text = texts(pages["home"].layout())
    assert "No market data yet" in text and "import your own CSV or Parquet" in text


# ----------------------------------------------------------------------------- data page: chart
def test_default_windows_follow_the_catalog(pages, lab):
    data = pages["data"]
    assert data.default_window(lab.entry("ES", "1min")) == {"min": "2018-12-28", "max": "2018-12-31",
                                                             "day": "2018-12-31"}
    # 182 days before 2018-12-31 is before the first date, so the window starts at the first date
    assert data.default_window(lab.entry("ES", "1d")) == {"min": "2018-12-17", "max": "2018-12-31",
                                                          "start": "2018-12-17", "end": "2018-12-31"}
    assert data.default_dataset(lab.catalog()) == "ES|1d"  # daily OHLC first
    out = data.window_controls("ES|1min")
    assert out[:4] == ("2018-12-28", "2018-12-31", "2018-12-31", "2018-12-31")
    assert out[-2:] == ({"display": "block"}, {"display": "none"})
    out = data.window_controls("ES|1d")
    assert out[4:9] == ("2018-12-17", "2018-12-31", "2018-12-17", "2018-12-31", "2018-12-31")
    assert out[-2:] == ({"display": "none"}, {"display": "block"})


def test_chart_reads_only_the_window_and_returns_a_new_graph(pages, lab):
    graph = pages["data"].render_chart("ES|1d", None, "2018-12-20", "2018-12-27")
    assert isinstance(graph, dcc.Graph) and graph.id == "data-graph"
    candle = graph.figure.data[0]
    assert candle.type == "candlestick"
    # 20, 21, 24, 25, 26, 27 December: six weekdays
    assert list(pd.to_datetime(candle.x).strftime("%m-%d")) == ["12-20", "12-21", "12-24", "12-25", "12-26", "12-27"]
    assert graph.figure.layout.template.layout.font.family.startswith("Lato")


def test_minute_chart_shows_one_day_in_new_york_time(pages, lab):
    graph = pages["data"].render_chart("ES|1min", "2018-12-28", None, None)
    x = pd.to_datetime(graph.figure.data[0].x)
    assert list(x.strftime("%Y-%m-%d %H:%M")) == ["2018-12-28 09:30", "2018-12-28 09:31", "2018-12-28 09:32"]


def test_chart_explains_a_day_without_bars(pages, lab):
    alert = pages["data"].render_chart("ES|1min", "2018-12-29", None, None)
    assert alert.color == "info"
    assert "no 1-minute bars on Sat 2018-12-29" in texts(alert)
    assert "between 2018-12-28 and 2018-12-31" in texts(alert)
    reversed_range = pages["data"].render_chart("ES|1d", None, "2018-12-28", "2018-12-20")
    assert reversed_range.color == "info" and "after the end" in texts(reversed_range)


def test_chart_of_a_missing_dataset_is_a_danger_alert_with_the_store_message(pages, lab, caplog):
    alert = pages["data"].render_chart("ZZ|1d", None, None, None)
    assert alert.color == "danger"
    assert "no dataset ZZ 1d" in texts(alert)
    assert not any(r.exc_info for r in caplog.records)  # user mistakes log no traceback


def test_close_only_series_is_charted_as_a_line(pages, lab):
    graph = pages["data"].render_chart("VIX|1d", None, "2018-12-01", "2018-12-31")
    assert graph.figure.data[0].type == "scatter" and list(graph.figure.data[0].y) == [25.0, 24.0, 26.0]


# ----------------------------------------------------------------------------- data page: import
GOOD = (b"Date,Open,High,Low,Close,Volume\n2024-01-02,100,101,99,100.5,1000\n"
        b"2024-01-03,100.5,102,100,101,1200\n2024-01-03,100.5,102,100,101,1200\n"
        b"2024-01-04,101,103,100,102.5,1500\n")


def test_refused_import_shows_the_row_and_column_and_changes_nothing(pages, lab):
    before = lab.catalog_path.read_bytes()
    bad = b"Date,Open,High,Low,Close,Volume\n2024-01-02,100,101,99,100.5,1000\n2024-01-03,100.5,99,100,101,1200\n"
    result, rev = pages["data"].run_import(1, upload(bad), "bad.csv", "BAD", "auto", "", "token")
    assert classes(result) == ["danger"]
    assert "bad.csv, row 2, column 'High': high 99 is below low 100; fix the bar" in texts(result)
    assert rev is no_update
    assert lab.catalog_path.read_bytes() == before and not lab.has("BAD", "1d")


def _damaged_parquet(kind: str) -> bytes:
    import io

    buf = io.BytesIO()
    pd.DataFrame({"Datetime": pd.date_range("2018-03-09 09:30", periods=3, freq="1min"),
                  "Open": 1.0, "High": 2.0, "Low": 0.5, "Close": 1.5, "Volume": 10}).to_parquet(buf)
    data = buf.getvalue()
    return data[: len(data) // 2] if kind == "truncated" else b"PAR1 this is not parquet at all"


UI_REFUSALS = [(name, content.encode(), message) for name, content, message in IMPORT_REFUSALS] + [
    ("cut.parquet", _damaged_parquet("truncated"), "cut.parquet: not a readable Parquet file"),
    ("fake.parquet", _damaged_parquet("fake"), "fake.parquet: not a readable Parquet file"),
]


@pytest.mark.parametrize("name,content,message", UI_REFUSALS, ids=[r[0] for r in UI_REFUSALS])
def test_every_refusal_of_the_importer_is_a_danger_alert_and_changes_nothing(pages, lab, name, content, message):
    """The upload takes the command line's validation: the same one-line message, in red."""
    before = snapshot(lab.home)
    result, rev = pages["data"].run_import(1, upload(content), name, "BAD", "auto", "", "token")
    assert classes(result) == ["danger"]
    assert message in texts(result)
    assert rev is no_update
    assert snapshot(lab.home) == before and not lab.has("BAD", "1min")


def test_an_upload_over_the_limit_is_refused_before_decoding_and_changes_nothing(pages, lab, monkeypatch):
    """The reproduction was a 190 MB upload, accepted; here the limit is 1 MB and the upload 3.2 MB."""
    monkeypatch.setenv("ALMANAC_MAX_UPLOAD_MB", "1")
    before = snapshot(lab.home)
    big = upload(GOOD * 20_000)  # 3.2 MB of good bars
    result, rev = pages["data"].run_import(1, big, "big_daily.csv", "BIG", "auto", "", "token")
    assert classes(result) == ["danger"] and rev is no_update
    assert f"{len(GOOD) * 20_000 / 2**20:.1f}" == "3.2"
    assert ("big_daily.csv: the upload is 3.2 MB, over the 1 MB limit (ALMANAC_MAX_UPLOAD_MB): import it with "
            "`python -m almanac data import`, or raise the limit") in texts(result)
    assert snapshot(lab.home) == before  # byte-identical: no tmp/ folder either
    size = pages["data"].upload_size(big)  # what assets/upload.js measures in the browser
    status, symbol = pages["data"].describe_upload(size, "big_daily.csv")  # said as soon as the file is chosen
    assert "over the 1 MB limit (ALMANAC_MAX_UPLOAD_MB)" in texts(status) and symbol == "BIG"
    # the browser keeps a file over the limit (no contents sent): the import names it from its size
    result, rev = pages["data"].run_import(1, None, "big_daily.csv", "BIG", "auto", "", "token", False, size)
    assert classes(result) == ["danger"] and rev is no_update
    assert "big_daily.csv: the upload is 3.2 MB, over the 1 MB limit" in texts(result)
    assert snapshot(lab.home) == before


def test_an_upload_is_checked_from_its_encoded_length(pages, monkeypatch):
    data = pages["data"]
    monkeypatch.setenv("ALMANAC_MAX_UPLOAD_MB", "1")
    for n in (2**20 - 2, 2**20 - 1, 2**20):  # every padding of the last base64 quantum
        assert data.upload_size(upload(b"x" * n)) == n
        assert data.decode_upload(upload(b"x" * n), "x.csv") == b"x" * n
    with pytest.raises(DataError, match=r"^x.csv: the upload is 1.0 MB, over the 1 MB limit"):
        data.decode_upload(upload(b"x" * (2**20 + 1)), "x.csv")


def test_spreads_upload_with_the_switch(pages, lab):
    spread = b"Date,Close\n2024-01-02,0.5\n2024-01-03,-0.25\n"
    result, rev = pages["data"].run_import(1, upload(spread), "spr.csv", "SPR", "auto", "", "t")
    assert classes(result) == ["danger"] and "close -0.25 is not a positive price" in texts(result)
    result, rev = pages["data"].run_import(1, upload(spread), "spr.csv", "SPR", "auto", "", "t", True,
                                           calendar="XNYS")
    assert classes(result) == ["success"] and lab.entry("SPR", "1d").rows == 2


def test_a_one_row_daily_upload_is_daily(pages, lab):
    result, rev = pages["data"].run_import(1, upload(b"Date,Close\n2018-03-09,2700\n"), "one.csv", "ONE",
                                           "auto", "", "t", calendar="XNYS")
    assert classes(result) == ["success"] and rev["select"] == "ONE|1d"


def test_good_import_reports_rows_and_warnings_and_selects_the_dataset(pages, lab):
    result, rev = pages["data"].run_import(1, upload(GOOD), "tst_daily.csv", "", "auto", None, "token")
    assert classes(result) == ["success", "warning"]
    text = texts(result)
    # symbol from the file name; a symbol the lab does not know has no calendar unless one is chosen
    assert "stored 3 daily bars of TST from 2024-01-02 to 2024-01-04, no exchange calendar." in text
    assert "dropped 1 exact duplicate row(s), first at row 3" in text
    assert "TST has no exchange calendar: its trading days are the weekdays with data" in text
    assert rev["select"] == "TST|1d" and rev["sha256"] == lab.entry("TST", "1d").sha256
    rows, options, value = pages["data"].refresh_catalog(rev)
    assert [r["dataset"] for r in rows] == ["ES|1min", "ES|1d", "TST|1d", "VIX|1d"]
    assert [r["kind"] for r in rows] == ["sample", "sample", "imported", "imported"]
    assert {"label": "TST · daily", "value": "TST|1d"} in options and value == "TST|1d"


def test_forced_frequency_and_timezone_reach_the_importer(pages, lab):
    minutes = (b"timestamp,open,high,low,close,volume\n"
               b"2024-01-02 09:30,1,2,0.5,1.5,10\n2024-01-02 09:31,1.5,2,1,1.2,11\n")
    result, rev = pages["data"].run_import(1, upload(minutes), "m.csv", "mq", "1min", "UTC", "t", calendar="XNYS")
    assert classes(result) == ["success"]
    entry = lab.entry("MQ", "1min")
    assert entry.start == "2024-01-02T09:30:00+00:00"  # naive times read as UTC, as asked


def test_layout_controls_open_when_a_refusal_names_their_flag_and_settle_it(pages, lab):
    data = pages["data"]
    ambiguous = b"Date;Close\n04/03/2024;100\n05/03/2024;101\n"
    before = snapshot(lab.home)
    result, rev = data.run_import(1, upload(ambiguous), "eu.csv", "EU", "auto", "", "t")
    assert classes(result) == ["danger"] and rev is no_update
    assert ("eu.csv, row 1, column 'Date': dates such as '04/03/2024' read both day-first and month-first: pass "
            "--date-order dmy or --date-order mdy") in texts(result)
    # the file-layout controls open (the callback sees the result as JSON)
    assert data.needs_layout(json.loads(json.dumps(result, cls=plotly.utils.PlotlyJSONEncoder)))
    assert snapshot(lab.home) == before
    result, rev = data.run_import(1, upload(ambiguous), "eu.csv", "EU", "auto", "", "t", calendar="XNYS",
                                  date_order="dmy", delimiter=";")
    assert classes(result) == ["success"] and lab.read_bars("EU", "1d")["date"].dt.strftime("%m-%d").tolist() == [
        "03-04", "03-05"]
    assert data.catalog_rows([lab.entry("EU", "1d")])[0]["calendar"] == "XNYS"
    five = b"Datetime,Open,High,Low,Close,Volume\n2024-01-02 09:30,1,2,0.5,1.5,10\n2024-01-02 09:35,1,2,0.5,1.5,10\n"
    result, rev = data.run_import(1, upload(five), "nq5.csv", "NQ", "auto", "", "t")
    assert classes(result) == ["success"] and rev["select"] == "NQ|5min"
    assert "stored 2 5-minute bars of NQ from 2024-01-02 to 2024-01-02, XNYS calendar." in texts(result)
    assert "naive times read as America/New_York (the XNYS calendar's zone; pass --tz to change)" in texts(result)


def test_import_without_a_file_asks_for_one(pages, lab):
    result, rev = pages["data"].run_import(1, None, None, "ES", "auto", None, "t")
    assert classes(result) == ["warning"] and "choose a CSV or Parquet file first" in texts(result)
    assert rev is no_update


def test_upload_helpers(pages):
    data = pages["data"]
    assert data.symbol_from_filename("ES_1min_2024.csv") == "ES"
    assert data.symbol_from_filename("vix.parquet") == "VIX"
    assert data.symbol_from_filename("_.csv") == ""
    assert data.decode_upload(upload(b"abc"), "x.csv") == b"abc"
    with pytest.raises(DataError, match="x.csv: the upload arrived damaged"):
        data.decode_upload("data:text/csv;base64,@@@", "x.csv")
    status, symbol = data.describe_upload(3000, "cl_daily.csv")
    assert symbol == "CL" and "2.9 KB" in texts(status)
    assert data.chart_clicked_row({"rowId": "VIX|1d", "colId": "kind"}) == "VIX|1d"
    assert data.chart_clicked_row(None) is no_update


def test_unexpected_errors_log_the_traceback_and_show_a_short_alert(pages, caplog):
    from pages._components import failure_alert

    log = logging.getLogger("test")
    with caplog.at_level(logging.INFO, logger="test"):
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError as exc:
            alert = failure_alert(exc, log, "charting ES 1d")
        user = failure_alert(NotFoundError("no dataset ZZ 1d: import it first"), log, "charting ZZ 1d")
    assert alert.color == "danger" and "unexpected ZeroDivisionError occurred while charting ES 1d" in texts(alert)
    assert "boom" not in texts(alert)  # details stay in the log
    bug, mistake = caplog.records
    assert bug.levelno == logging.ERROR and bug.exc_info[0] is ZeroDivisionError
    assert mistake.levelno == logging.INFO and mistake.exc_info is None
    assert "no dataset ZZ 1d: import it first" in texts(user)
