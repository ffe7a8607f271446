"""``bench all``: its refusals, and a report with every row of the speed table (figures made up)."""

from __future__ import annotations

import pytest

from cli import main


@pytest.mark.parametrize("argv,text", [
    (["--repeat", "2"], "--repeat 2 is out of range: use 3 to 20 (min and median need 3)"),
    (["--rows", "10"], "--rows 10 is out of range: use 1,000 to 20,000,000"),
    (["--years", "10", "40"], "--years 40 is out of range: use 1 to 30"),
])
def test_bench_all_refuses_bad_options_with_one_line(capsys, argv, text):
    assert main(["bench", "all", *argv]) == 2
    err = capsys.readouterr().err
    assert text in err and err.count("\n") == 1


def test_the_report_prints_every_row_with_min_and_median():
    from bench.all import BROWSER_ROWS, format_report, stats

    s = stats([1.0, 2.0, 4.0])
    r = {"repeat": 3, "cpu_count": 2, "load_avg_start": 0.5, "load_avg_end": 0.7,
         "app_start": {"seconds": stats([0.8, 0.9, 1.0]), "heavy_loaded": []},
         "train_vs_plain": {"ratio": s, "train_s": s, "plain_s": s, "ratio_of_medians": 1.0},
         "pipeline": {"ratio": s, "run_total_s": s, "fits_s": s},
         "features_10y": {"bars": 3_477_600, "seconds": s, "peak_rss_mb": stats([220.0, 221.0, 230.0]),
                          "base_rss_mb": 110.0},
         "cross_asset_reads": {"NQ 1min": {"reads": 1, "columns": ["close", "open", "timestamp"]}},
         "data_import": {"rows": 7_000_000, "csv": {"seconds": s, "peak_rss_mb": s},
                         "parquet": {"seconds": s, "peak_rss_mb": s}}}
    text = format_report(r)
    assert s["median"] == 2.0
    assert "start to first HTTP 200 | min 0.80 s, median 0.90 s; `import app` loads: none" in text
    assert "peak RSS min 220 MB, median 221 MB" in text
    assert "NQ 1min: 1x (close, open, timestamp)" in text
    assert all(f"| {row} | not measured" in text for row in BROWSER_ROWS)
    assert text.count("\n| ") == 11  # header, 3 browser rows, app, train, pipeline, features, cross, 2 imports
