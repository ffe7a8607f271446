"""``bench serve``: its refusals and its report (figures made up; the load itself runs in
tests/test_serve.py against a real service)."""

from __future__ import annotations

import pytest

from cli import main


@pytest.mark.parametrize("argv,text", [
    (["--repeat", "2"], "--repeat 2 is out of range: use 3 to 20 (min and median need 3)"),
    (["--requests", "10"], "--requests 10 is out of range: use 100 to 100,000"),
    (["--clients", "0"], "--clients 0 is out of range: use 1 to 64"),
])
def test_bench_serve_refuses_bad_options_with_one_line(capsys, argv, text):
    assert main(["bench", "serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {text}\n"


def test_the_report_shows_each_route_and_the_goal():
    from bench.serve import errors_of, format_report

    def rep(rps, p95, errors=0):
        return {"rps": rps, "p50_ms": 1.0, "p95_ms": p95, "p99_ms": p95 * 2, "app_p50_ms": 0.5,
                "app_p95_ms": 0.9, "errors": errors}

    result = {"requests": 2000, "clients": 8, "repeat": 3, "run_id": "RID", "signal_date": "2018-11-30",
              "routes": {"predict": [rep(900, 20), rep(1000, 18), rep(950, 25)],
                         "predict@300": [rep(300, 4), rep(299, 12), rep(300, 5)],
                         "signal": [rep(600, 20)] * 3, "batch": [rep(20, 400, errors=1)] * 3}}
    text = format_report(result)
    assert "predict@300" in text and "batch" in text
    assert ("goal single-row /predict p95 <= 15 ms at 300 req/s and >= 300 req/s: met (p95 5.00 ms at "
            "300 req/s; at most 950 req/s, p95 20.00 ms there)") in text
    assert errors_of(result) == 3
