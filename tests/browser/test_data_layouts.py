"""/data in a real browser: an ambiguous vendor file is refused in red, the file-layout
controls open, and setting the date order imports it; the catalog shows each calendar."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

AMBIGUOUS = ("Date;Time;Open;High;Low;Last;Vol\n"
             "05/03/2018;09:30;2750,25;2751,00;2749,75;2750,50;120\n"
             "05/03/2018;09:35;2750,50;2752,00;2750,25;2751,75;80\n"
             "05/03/2018;09:40;2751,75;2752,25;2750,75;2751,00;95\n")


def test_an_ambiguous_upload_opens_the_layout_controls_and_imports_once_settled(page, lab_server, screenshot_dir,
                                                                               tmp_path):
    f = tmp_path / "EUFUT_5min.csv"
    f.write_text(AMBIGUOUS)
    page.goto("/data")
    page.wait_for_selector("#data-catalog .ag-row")
    assert page.locator("#data-catalog .ag-cell[col-id='calendar']").first.inner_text() == "XNYS"
    page.set_input_files("#data-upload input[type=file]", str(f))
    page.wait_for_selector("#data-upload-status strong")
    page.fill("#data-calendar", "XNYS")
    page.click("#data-import-btn")
    alert = page.locator("#data-import-result .alert-danger")
    alert.wait_for(timeout=60_000)
    assert "pass --decimal , if it is the decimal mark" in alert.inner_text()
    page.locator("#data-layout.show").wait_for(timeout=10_000)  # the layout controls opened
    page.select_option("#data-decimal", ",")
    page.click("#data-import-btn")
    page.wait_for_function("document.querySelector('#data-import-result').innerText.includes('--date-order')",
                           timeout=60_000)  # next: the date order must be named
    assert "pass --date-order dmy or --date-order mdy" in page.locator("#data-import-result .alert-danger").inner_text()
    page.select_option("#data-date-order", "dmy")
    page.click("#data-import-btn")
    done = page.locator("#data-import-result .alert-success")
    done.wait_for(timeout=60_000)
    text = done.inner_text()
    assert "stored 3 5-minute bars of EUFUT from 2018-03-05 to 2018-03-05, XNYS calendar." in text
    page.wait_for_timeout(500)
    page.locator("#data-import-section").screenshot(path=str(screenshot_dir / "data-import-layout.png"))
    page.screenshot(path=str(screenshot_dir / "data-layouts.png"), full_page=True)
