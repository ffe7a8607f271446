"""Feature tables with a known-at time: import, the join rule (D+1), notes, lineage, CLI refusals."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from bench.synthetic import synthetic_store
from cli import main
from features import build_features


def _digest(home):
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture
def market(store):
    synthetic_store(store, days=120, minute_start="2017-03-01")
    days = build_features("ES", store=store, sets="regime", use_cache=False).frame.index
    return store, days


def test_a_value_known_at_1600_reaches_the_next_trading_day_only(market, tmp_path, capsys):
    store, days = market
    csv = tmp_path / "macro.csv"
    # value i on day i; also one value dated on a weekend (2017-03-04), known Saturday 16:00
    rows = pd.DataFrame({"Date": days.strftime("%Y-%m-%d"), "Score": np.arange(len(days), dtype=float)})
    rows.to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "macro", "--known-at", "16:00"]) == 0
    assert "known at 16:00" in capsys.readouterr().out
    ft = build_features("ES", store=store, sets="regime,tables", use_cache=False)
    got = ft.frame["macro_score"]
    assert np.isnan(got.iloc[0])  # day 0's value is known at 16:00, after day 0's 10:15 cutoff
    np.testing.assert_array_equal(got.to_numpy()[1:], np.arange(len(days) - 1, dtype=float))  # D gets D-1's
    # 16:00 on the last day joins no day in the data: every other row was shifted by one day
    assert f"table macro: {len(days) - 1} of {len(days)} value(s) were known after their own date's cutoff 10:15" \
        in " ".join(ft.notes)
    lin = ft.lineage["macro_score"]
    assert lin["set"] == "tables" and lin["table"]["known_at"].startswith("16:00")
    assert lin["table"]["sha256"] in {e["sha256"] for e in _entries(store)}
    assert ft.data_hashes[f"table macro"] == lin["table"]["sha256"]
    assert ft.feature_sets["macro_score"] == "tables"


def _entries(store):
    from almanac.tables import Tables

    return [e.to_dict() for e in Tables(store.home).list()]


def test_known_before_the_cutoff_joins_the_same_day(market, tmp_path):
    store, days = market
    csv = tmp_path / "pre.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": np.arange(len(days), dtype=float)}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "pre", "--known-at", "08:30"]) == 0
    ft = build_features("ES", store=store, sets="tables", use_cache=False)
    np.testing.assert_array_equal(ft.frame["pre_x"].to_numpy(), np.arange(len(days), dtype=float))
    assert "table pre: 0 of" in " ".join(ft.notes) and "carried forward" not in " ".join(ft.notes)
    # a table that ends early: its last value is carried forward, and the notes say so
    pd.DataFrame({"date": days[:20].strftime("%Y-%m-%d"), "x": 1.0}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "early", "--known-at", "08:30"]) == 0
    ft = build_features("ES", store=store, sets="tables", use_cache=False)
    later = int((days >= days[19] + pd.Timedelta(days=10)).sum())  # 10:15 of that day is after 08:30 + 10 days
    assert f"table early ends {days[19]:%Y-%m-%d}: its last value is carried forward to {later} trading day(s)" \
        in " ".join(ft.notes)
    assert ft.frame["early_x"].iloc[-1] == 1.0
    # exactly at the cutoff counts as known ("at or before")
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": 1.0}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "at", "--known-at", "10:15"]) == 0
    ft = build_features("ES", store=store, sets="tables", use_cache=False)
    assert ft.frame["at_x"].notna().all()


def test_timestamp_rows_and_a_known_at_column(market, tmp_path):
    store, days = market
    d0, d1 = days[5], days[6]
    csv = tmp_path / "iv.csv"
    # a row stamped 10:00 on d0 (before the cutoff) and one stamped 10:30 on d0 (after it)
    pd.DataFrame({"timestamp": [f"{d0:%Y-%m-%d} 10:00", f"{d0:%Y-%m-%d} 10:30"], "iv": [0.1, 0.2]}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "iv"]) == 0
    f = build_features("ES", store=store, sets="tables", use_cache=False).frame["iv_iv"]
    assert f[d0] == 0.1 and f[d1] == 0.2 and np.isnan(f[days[4]])
    # a known_at column overrides the date: known two days later in the morning
    k = days[8]
    pd.DataFrame({"date": [f"{d0:%Y-%m-%d}"], "known_at": [f"{k:%Y-%m-%d} 09:00"], "v": [3.0]}).to_csv(csv, index=False)
    assert main(["data", "import-features", str(csv), "--name", "late"]) == 0
    f = build_features("ES", store=store, sets="tables", use_cache=False).frame["late_v"]
    assert np.isnan(f[days[7]]) and f[k] == 3.0


@pytest.mark.parametrize("text,args,message", [
    ("Date,score\n2017-03-01,1\n", [], "is keyed by date ('Date') but says nothing of when each value was known: pass "
                                       "--known-at HH:MM"),
    ("Date,score\n2017-03-01,1\n2017-03-02,x\n", ["--known-at", "16:00"],
     "t.csv, row 2, column 'score': value 'x' is not a number"),
    ("Date,score\n2017-03-01,1\n2017-03-02,\n", ["--known-at", "16:00"],
     "t.csv, row 2, column 'score': value is missing or not finite"),
    ("Date,score\n2017-03-01,1\n2017-03-01,2\n", ["--known-at", "16:00"], "rows 1 and 2: two rows have the same date"),
    ("Date\n2017-03-01\n", ["--known-at", "16:00"], "has no value column besides 'Date'"),
    ("Date,score\n2017-03-01,1\n", ["--known-at", "25:00"], "time '25:00' is not HH:MM"),
    ("timestamp,score\n2017-03-01 10:00,1\n", ["--known-at", "16:00"], "applies to a table keyed by date"),
])
def test_refusals_are_one_line_and_change_nothing(home, tmp_path, capsys, text, args, message):
    csv = tmp_path / "t.csv"
    csv.write_text(text)
    ok = tmp_path / "ok.csv"
    ok.write_text("Date,score\n2017-03-01,1\n")
    assert main(["data", "import-features", str(ok), "--name", "t", "--known-at", "16:00"]) == 0
    capsys.readouterr()
    before = _digest(home)
    assert main(["data", "import-features", str(csv), "--name", "t", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("error: ") and message in err
    assert _digest(home) == before


def test_tables_set_without_tables_says_how_to_import(market):
    from almanac.errors import NotFoundError

    store, _ = market
    with pytest.raises(NotFoundError, match="no feature table imported yet: import one with"):
        build_features("ES", store=store, sets="tables", use_cache=False)


def test_reimport_changes_the_cache_key(market, tmp_path):
    store, days = market
    csv = tmp_path / "m.csv"
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": 1.0}).to_csv(csv, index=False)
    main(["data", "import-features", str(csv), "--name", "m", "--known-at", "16:00"])
    a = build_features("ES", store=store, sets="tables")
    pd.DataFrame({"date": days.strftime("%Y-%m-%d"), "x": 2.0}).to_csv(csv, index=False)
    main(["data", "import-features", str(csv), "--name", "m", "--known-at", "16:00"])
    b = build_features("ES", store=store, sets="tables")
    assert a.cache_key != b.cache_key and not b.from_cache and b.frame["m_x"].iloc[-1] == 2.0
    assert len(list((store.home / "tables").glob("m.*.parquet"))) == 1  # the replaced file is gone


def _refusal_in_child(home, args, env_extra):
    """Run the CLI in a child; returns (exit code, stderr, seconds, peak MB of the child).

    The peak is the child's own VmHWM: ``ru_maxrss`` of RUSAGE_CHILDREN is the largest of
    every child the test process ever waited for (an earlier test's big child counts)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "ALMANAC_HOME": str(home), **env_extra}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    code = ("import re, sys, time\nfrom cli import main\nt = time.perf_counter()\n"
            f"rc = main({list(args)!r})\n"
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024\n"
            "print(rc, time.perf_counter() - t, hwm)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, timeout=120)
    rc, seconds, peak = p.stdout.split()[-3:]
    return int(rc), p.stderr, float(seconds), float(peak)


@pytest.mark.parametrize("command,extra", [
    (["data", "import-features"], ["--name", "big", "--known-at", "16:00"]),
    (["data", "import-table"], ["--name", "big", "--time", "date"]),
])
@pytest.mark.parametrize("case", ["size", "columns"])
def test_costly_files_are_refused_before_they_are_read(home, tmp_path, command, extra, case):
    csv = tmp_path / "big.csv"
    if case == "size":  # 24 MB against a 4 MB limit
        block = "".join(f"2017-03-{1 + i % 28:02d},{i}.5\n" for i in range(20_000))
        with open(csv, "w") as fh:
            fh.write("date,v\n")
            while fh.tell() < 24 * 2**20:
                fh.write(block)
        env, text = {"ALMANAC_MAX_IMPORT_MB": "4"}, "over the 4 MB import limit (ALMANAC_MAX_IMPORT_MB)"
    else:  # 100,000 columns against the default 64
        csv.write_text("date," + ",".join(f"c{i}" for i in range(100_000)) + "\n2017-03-01" + ",1" * 100_000 + "\n")
        env, text = {}, "columns, over the limit of 64 (ALMANAC_MAX_COLUMNS)"
    before = _digest(home)
    code, err, seconds, peak_mb = _refusal_in_child(home, [*command, str(csv), *extra], env)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: big.csv: ") and text in err, err
    assert _digest(home) == before
    assert seconds < 10 and peak_mb < 600, (seconds, peak_mb)  # generous sanity bounds; the report has the figures


def test_parquet_table_daily_only_symbol_and_name_clash(market, tmp_path):
    store, days = market
    pq_path = tmp_path / "m.parquet"
    pd.DataFrame({"date": pd.DatetimeIndex(days), "x": np.arange(len(days), dtype=float)}).to_parquet(pq_path)
    assert main(["data", "import-features", str(pq_path), "--name", "m", "--known-at", "09:00"]) == 0
    # VIX is daily-only: its features are known at the session open (09:30), so 09:00 joins the same day
    vix = build_features("VIX", store=store, sets="regime,tables", use_cache=False)
    vdays = vix.frame.index
    got = vix.frame["m_x"].reindex(days[days.isin(vdays)])
    np.testing.assert_array_equal(got.to_numpy(), np.arange(len(days), dtype=float)[days.isin(vdays)])
    assert main(["data", "import-features", str(pq_path), "--name", "m", "--known-at", "09:45"]) == 0
    vix = build_features("VIX", store=store, sets="regime,tables", use_cache=False)
    first = days[days.isin(vdays)][0]
    assert np.isnan(vix.frame.loc[first, "m_x"])  # 09:45 is after the open: not known that day
    # a table column that makes a built-in name is refused
    from almanac.errors import SpecError

    pd.DataFrame({"date": pd.DatetimeIndex(days), "return_pct": 1.0}).to_parquet(pq_path)
    assert main(["data", "import-features", str(pq_path), "--name", "or", "--known-at", "09:00"]) == 0
    with pytest.raises(SpecError, match="tables feature or_return_pct has the name of another feature"):
        build_features("ES", store=store, sets="early_session,tables", use_cache=False)


def test_recovery_removes_unnamed_table_files_and_temporary_files(home, tmp_path):
    from almanac.recovery import sweep

    csv = tmp_path / "m.csv"
    csv.write_text("Date,score\n2017-03-01,1\n")
    assert main(["data", "import-features", str(csv), "--name", "m", "--known-at", "16:00"]) == 0
    orphan = home / "tables" / "m.0123456789abcdef.parquet"  # an import killed before its catalog write
    orphan.write_bytes(b"x")
    leftover = home / "plugins" / ".x.py.tmp-999999-abcd"
    leftover.parent.mkdir()
    leftover.write_bytes(b"x")
    from almanac.plugins import Plugins

    Plugins(home)._save({})  # an empty registry, and a plugin file it does not name
    (home / "plugins" / "x.0123456789abcdef.py").write_bytes(b"x")
    kept = set(_digest(home)) - {"tables/m.0123456789abcdef.parquet", "plugins/.x.py.tmp-999999-abcd",
                                 "plugins/x.0123456789abcdef.py"}
    removed = sweep(home, min_age_s=0)
    assert sorted(removed) == ["plugins/.x.py.tmp-999999-abcd", "plugins/x.0123456789abcdef.py",
                               "tables/m.0123456789abcdef.parquet"]
    assert set(_digest(home)) == kept
