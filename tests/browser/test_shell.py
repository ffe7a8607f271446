"""The app shell in headless Chromium: every page, the data page's chart and importer.

Each test fails on any browser console error (see ``conftest.page``). Full-page
screenshots go to ``tests/screenshots/`` (git-ignored) for people to look at.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NAV = ["Overview", "Data", "Features", "Train", "Evaluate", "Backtest", "Models", "Studies"]
PAGES = [  # (screenshot name, path, heading pattern); features/train/... may be placeholders or real pages
    ("home", "/", r"^Almanac ML Lab$"),
    ("data", "/data", r"^Market data$"),
    ("features", "/features", r"Feature"),  # the features page may be replaced by its own helper
    ("train", "/train", r"^Train"),
    ("evaluate", "/evaluate", r"^Evaluate"),
    ("backtest", "/backtest", r"^Backtest"),
    ("models", "/models", r"^Models"),
]
TIMEOUT = 30_000  # ms; background jobs are polled about once a second

GRAPH_TRACES = """() => {
  const g = document.querySelector('#data-graph .js-plotly-plot');
  return g ? g.data.map(t => ({type: t.type, n: (t.x || []).length, first: String((t.x || [])[0]),
                                  last: String((t.x || []).slice(-1)[0])})) : null;
}"""


def catalog(home) -> list[dict]:
    return json.loads((home / "catalog.json").read_text())["datasets"]


def open_page(page, path: str) -> None:
    page.goto(path)
    page.wait_for_load_state("networkidle")
    expect(page.locator("h1")).to_have_count(1, timeout=TIMEOUT)


def graph_traces(page, expected_first_type: str = "candlestick") -> list[dict]:
    page.wait_for_selector("#data-graph .js-plotly-plot", timeout=TIMEOUT)
    page.wait_for_function(
        f"() => {{ const g = document.querySelector('#data-graph .js-plotly-plot');"
        f" return g && g.data && g.data.length && g.data[0].type === '{expected_first_type}'; }}",
        timeout=TIMEOUT)
    return page.evaluate(GRAPH_TRACES)


def choose_dataset(page, label: str) -> None:
    """Pick an option of the dataset dropdown (Dash 4's dropdown: a button + a listbox)."""
    page.click("#data-dataset")
    page.get_by_role("option", name=label).click()


@pytest.mark.parametrize("name,path,heading", PAGES, ids=[p[0] for p in PAGES])
def test_every_page_renders(page, lab_server, screenshot_dir, name, path, heading):
    open_page(page, path)
    expect(page.locator("h1")).to_have_text(re.compile(heading))
    expect(page.locator("#almanac-navbar .nav-link")).to_have_text(NAV)
    active = page.locator("#almanac-navbar .nav-link.active")
    expect(active).to_have_count(1)
    expect(active).to_have_attribute("href", path)
    if name == "home":  # the overview lists the catalog (the four sample datasets at least) and their provenance
        datasets = catalog(lab_server.home)
        assert {(d["symbol"], d["freq"]) for d in datasets if d["sample"]} == {
            ("ES", "1min"), ("ES", "1d"), ("VIX", "1d"), ("CL", "1d")}
        expect(page.locator("#home-catalog tbody tr")).to_have_count(len(datasets))
        expect(page.locator("#home-catalog .badge", has_text="sample")).to_have_count(4)
        expect(page.locator("#home-provenance")).to_contain_text("arch package")
        expect(page.locator("#home-data-home")).to_have_text(str(lab_server.home))
        expect(page.locator(".almanac-step-link")).to_have_text(NAV[1:])
    elif name == "data":
        graph_traces(page)
    elif page.locator(".almanac-title-badge", has_text="in development").count():
        # a placeholder says what the page will do and links back to the overview and the data page
        expect(page.locator(".almanac-plan li").first).to_be_visible()
        expect(page.locator(f"#{name}-to-home")).to_have_attribute("href", "/")
        expect(page.locator(f"#{name}-to-data")).to_have_attribute("href", "/data")
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)


def test_navbar_navigates_between_pages(page):
    open_page(page, "/")
    page.locator("#almanac-navbar .nav-link", has_text="Data").click()
    expect(page).to_have_url(re.compile(r"/data$"))
    expect(page.locator("h1")).to_have_text("Market data")
    page.locator("#almanac-navbar .nav-link", has_text="Models").click()
    expect(page).to_have_url(re.compile(r"/models$"))
    expect(page.locator("h1")).to_have_text(re.compile("^Models"))
    page.locator("#almanac-navbar .navbar-brand").click()  # the brand leads home
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("Almanac ML Lab")


def test_data_page_charts_daily_then_minute_bars(page, lab_server, screenshot_dir):
    from almanac.store import Store

    store = Store(lab_server.home)
    open_page(page, "/data")
    # arrival: ES daily, the last ~6 months, candles + volume
    expect(page.locator("#data-dataset")).to_contain_text("ES · daily · sample")
    start = page.locator("#data-range").input_value()
    end = page.locator("#data-range-wrap input").nth(1).input_value()
    assert (start, end) == ("2018-07-02", "2018-12-31")  # ES 1d ends 2018-12-31; 182 days back
    daily = store.read_bars("ES", "1d", start=start, end=end)
    traces = graph_traces(page)
    assert [t["type"] for t in traces] == ["candlestick", "bar"]
    assert traces[0]["n"] == traces[1]["n"] == len(daily) == 126
    assert traces[0]["first"].startswith("2018-07-02") and traces[0]["last"].startswith("2018-12-31")

    # ES 1-minute: one trading day, the last one by default, 390 bars from 09:30 New York
    choose_dataset(page, "ES · 1-minute · sample")
    expect(page.locator("#data-day")).to_have_value("2018-12-31", timeout=TIMEOUT)
    page.wait_for_function("() => { const g = document.querySelector('#data-graph .js-plotly-plot');"
                           " return g && g.data[0].x.length === 390; }", timeout=TIMEOUT)
    traces = page.evaluate(GRAPH_TRACES)
    assert traces[0]["type"] == "candlestick"
    assert traces[0]["first"].startswith("2018-12-31T09:30") and traces[0]["last"].startswith("2018-12-31T15:59")
    expect(page.locator("#data-graph .gtitle")).to_contain_text("1-minute bars (sample data)")
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "data-minute.png"), full_page=True)

    # a close-only daily series (VIX) is drawn as a line
    choose_dataset(page, "VIX · daily · sample")
    traces = graph_traces(page, expected_first_type="scatter")
    assert len(traces) == 1 and traces[0]["last"].startswith("2019-01-03")


def test_refused_upload_shows_the_problem_and_changes_nothing(page, lab_server, screenshot_dir):
    home = lab_server.home
    before = (home / "catalog.json").read_bytes()
    market_before = sorted(p.name for p in (home / "market").iterdir())
    tmp = home / "tmp"
    tmp_before = tmp.exists()  # only a model export makes it (test_run_pages.py, same server), and leaves it empty
    open_page(page, "/data")
    bad = b"Date,Open,High,Low,Close,Volume\n2024-01-02,100,101,99,100.5,1000\n2024-01-03,100.5,102,100,abc,1200\n"
    page.set_input_files("#data-upload input[type=file]",
                         files=[{"name": "bad_bars.csv", "mimeType": "text/csv", "buffer": bad}])
    expect(page.locator("#data-upload-status")).to_contain_text("bad_bars.csv")
    expect(page.locator("#data-symbol")).to_have_value("BAD")
    page.click("#data-import-btn")
    alert = page.locator("#data-import-result .alert-danger")
    expect(alert).to_be_visible(timeout=TIMEOUT)
    expect(alert).to_contain_text("bad_bars.csv, row 2, column 'Close': value 'abc' is not a number")
    page.screenshot(path=str(screenshot_dir / "data-import-refused.png"), full_page=True)
    assert (home / "catalog.json").read_bytes() == before
    assert sorted(p.name for p in (home / "market").iterdir()) == market_before
    # an upload is read in memory: it makes no tmp/ folder (run alone, there is none), nor puts anything in it
    assert tmp.exists() == tmp_before
    assert not tmp_before or not any(tmp.iterdir())


def test_good_upload_is_stored_listed_and_charted(page, lab_server, screenshot_dir):
    open_page(page, "/data")
    good = (b"Date,Open,High,Low,Close,Volume\n"
            b"2024-01-02,100,101,99,100.5,1000\n"
            b"2024-01-04,101,103,100,102.5,1500\n"
            b"2024-01-03,100.5,102,100,101,1200\n"   # out of order: sorted, with a warning
            b"2024-01-05,102.5,104,102,103,1300\n"
            b"2024-01-05,102.5,104,102,103,1300\n")  # exact duplicate: dropped, with a warning
    page.set_input_files("#data-upload input[type=file]",
                         files=[{"name": "tst_daily.csv", "mimeType": "text/csv", "buffer": good}])
    expect(page.locator("#data-symbol")).to_have_value("TST")
    page.click("#data-import-btn")
    expect(page.locator("#data-import-result .alert-success")).to_contain_text(
        "stored 4 daily bars of TST from 2024-01-02 to 2024-01-05", timeout=TIMEOUT)
    warnings = page.locator("#data-import-result .alert-warning")
    expect(warnings).to_contain_text("dropped 1 exact duplicate row(s)")
    expect(warnings).to_contain_text("sorted them")
    # the catalog grid lists it as imported, and the chart switched to it
    # (row-id = "SYMBOL|freq"; the pinned symbol column and the other cells are separate row elements)
    expect(page.locator('#data-catalog .ag-row[row-id="TST|1d"] [col-id=symbol]')).to_have_text("TST")
    expect(page.locator('#data-catalog .ag-row[row-id="TST|1d"] [col-id=kind]')).to_have_text("imported")
    expect(page.locator("#data-dataset")).to_contain_text("TST · daily")
    page.wait_for_function("() => { const g = document.querySelector('#data-graph .js-plotly-plot');"
                           " return g && g.data[0].x.length === 4; }", timeout=TIMEOUT)
    entry = next(d for d in catalog(lab_server.home) if d["symbol"] == "TST")
    assert (entry["freq"], entry["rows"], entry["sample"]) == ("1d", 4, False)
    assert entry["source"] == "tst_daily.csv"
    expect(page.locator(".alert-danger")).to_have_count(0)
    page.screenshot(path=str(screenshot_dir / "data-import-ok.png"), full_page=True)


def test_clicking_a_catalog_row_charts_it(page):
    open_page(page, "/data")
    page.locator("#data-catalog .ag-row [col-id=symbol]", has_text="CL").first.click()
    expect(page.locator("#data-dataset")).to_contain_text("CL · daily · sample", timeout=TIMEOUT)
    traces = graph_traces(page, expected_first_type="scatter")
    assert traces[0]["last"].startswith("2019-01-03")


def test_an_upload_over_the_limit_is_named_and_never_sent(chromium, tmp_path, screenshot_dir):
    """The browser measures the file (assets/upload.js): over ALMANAC_MAX_UPLOAD_MB it says so in
    red and keeps the file; before, the server's request bound answered 413 and the page said nothing."""
    from tests.browser.conftest import VIEWPORT, start_lab

    with start_lab(tmp_path, ALMANAC_MAX_UPLOAD_MB="0.01") as lab:  # 10 KB
        context = chromium.new_context(viewport=VIEWPORT, base_url=lab.url)
        page = context.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        posted: list[int] = []
        page.on("request", lambda r: posted.append(len(r.post_data_buffer or b"")) if r.method == "POST" else None)
        before = (lab.home / "catalog.json").read_bytes()
        open_page(page, "/data")
        rows = b"".join(b"2024-01-%02d,100,101,99,100.5,1000\n" % (d % 28 + 1) for d in range(600))
        big = b"Date,Open,High,Low,Close,Volume\n" + rows  # about 22 KB
        page.set_input_files("#data-upload input[type=file]",
                             files=[{"name": "big_bars.csv", "mimeType": "text/csv", "buffer": big}])
        status = page.locator("#data-upload-status .text-danger")
        expect(status).to_contain_text("big_bars.csv: the upload is", timeout=TIMEOUT)
        expect(status).to_contain_text("(ALMANAC_MAX_UPLOAD_MB)")
        page.click("#data-import-btn")
        alert = page.locator("#data-import-result .alert-danger")
        expect(alert).to_be_visible(timeout=TIMEOUT)
        expect(alert).to_contain_text("over the 10 KB limit")
        page.screenshot(path=str(screenshot_dir / "data-upload-too-big.png"), full_page=True)
        context.close()
        assert problems == []
        assert max(posted) < len(big)  # no request carried the file
        assert (lab.home / "catalog.json").read_bytes() == before
