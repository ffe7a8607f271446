"""Import: every refusal and repair, from Python and from the command line.

Each refusal asserts the one-line message (file, row, column) and that the store and
catalog are byte-for-byte unchanged afterwards.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.cli import main
from almanac.errors import DataError
from almanac.importer import import_bytes, import_file

GOOD = """Datetime,Open,High,Low,Close,Volume
2018-03-09 09:30:00,100,101,99.5,100.5,10
2018-03-09 09:31:00,100.5,101.5,100,101,20
2018-03-09 09:32:00,101,101.2,100.8,100.9,30
"""


def snapshot(home):
    return {p.relative_to(home): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.fixture
def seeded(store, tmp_path):
    """A store that already holds ES minute bars (so 'unchanged' means something)."""
    f = tmp_path / "seed.csv"
    f.write_text(GOOD)
    import_file(f, "ES", store=store)
    return store


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


REFUSALS = [
    # (file name, content, expected message)
    ("empty.csv", "", "empty.csv: the file is empty"),
    ("header.csv", "Datetime,Open,High,Low,Close,Volume\n", "header.csv: the file has a header but no rows"),
    ("nocol.csv", "Datetime,Open,High,Low,Volume\n2018-03-09 09:30,1,2,0.5,3\n",
     "nocol.csv: missing required column(s) close for 1min bars"),
    ("notime.csv", "Open,High,Low,Close\n1,2,0.5,1.5\n", "notime.csv: missing required time column"),
    ("text.csv", GOOD.replace("100.9,30", "n/a,30"),
     "text.csv, row 3, column 'Close': value 'n/a' is not a number"),
    ("blank.csv", GOOD.replace("101.5,100,101,20", "101.5,100,,20"),
     "blank.csv, row 2, column 'Close': value is missing"),
    ("badtime.csv", GOOD.replace("2018-03-09 09:31:00", "yesterday"),
     "badtime.csv, row 2, column 'Datetime': 'yesterday' is not a date or time"),
    ("hilo.csv", GOOD.replace("101.2,100.8", "100.7,100.8"),
     "hilo.csv, row 3, column 'High': high 100.7 is below low 100.8"),
    ("open.csv", GOOD.replace("100.5,101.5,100,101", "102,101.5,100,101"),
     "open.csv, row 2, column 'Open': open 102 is outside the bar's range [100, 101.5]"),
    ("close.csv", GOOD.replace("99.5,100.5", "99.5,98"),
     "close.csv, row 1, column 'Close': close 98 is outside the bar's range [99.5, 101]"),
    ("vol.csv", GOOD.replace("100.9,30", "100.9,-30"),
     "vol.csv, row 3, column 'Volume': volume -30 is negative"),
    ("clash.csv", GOOD + "2018-03-09 09:31:00,100.5,101.5,100,101.1,20\n",
     "clash.csv, row 4, column 'Datetime': rows 2 and 4 have the same time"),
    ("ragged.csv", GOOD + "2018-03-09 09:33:00,101,101.2,100.8,100.9,30,7,8\n",
     "ragged.csv, row 4: not a readable CSV file"),
    ("bars.xlsx", "whatever", "bars.xlsx: unsupported file type '.xlsx'"),
]


@pytest.mark.parametrize("name,content,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_problem_and_leave_the_store_unchanged(seeded, tmp_path, name, content, message):
    before = snapshot(seeded.home)
    with pytest.raises(DataError) as err:
        import_file(write(tmp_path, name, content), "ES", store=seeded)
    assert err.value.message.startswith(message)
    assert "\n" not in err.value.message
    assert snapshot(seeded.home) == before


@pytest.mark.parametrize("name,content,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_from_the_command_line_exit_2_with_one_line(seeded, tmp_path, capsys, name, content, message):
    before = snapshot(seeded.home)
    code = main(["data", "import", str(write(tmp_path, name, content)), "--symbol", "ES"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"error: {message}")
    assert snapshot(seeded.home) == before


def _parquet_bytes(tmp_path):
    df = pd.read_csv(pd.io.common.StringIO(GOOD))
    p = tmp_path / "good.parquet"
    df.to_parquet(p)
    return p.read_bytes()


def test_truncated_parquet_is_refused(seeded, tmp_path):
    data = _parquet_bytes(tmp_path)
    before = snapshot(seeded.home)
    with pytest.raises(DataError, match=r"^cut.parquet: not a readable Parquet file \(truncated, corrupt"):
        import_file(write(tmp_path, "cut.parquet", "") if False else _bytes(tmp_path, "cut.parquet", data[:-40]),
                    "ES", store=seeded)
    assert snapshot(seeded.home) == before


def test_non_parquet_file_with_parquet_name_is_refused(seeded, tmp_path):
    before = snapshot(seeded.home)
    with pytest.raises(DataError, match=r"^fake.parquet: not a readable Parquet file"):
        import_file(write(tmp_path, "fake.parquet", GOOD), "ES", store=seeded)
    assert snapshot(seeded.home) == before


def test_corrupt_parquet_page_is_refused(seeded, tmp_path):
    # A file written with page checksums: a flipped bit in a data page must not read back
    # silently wrong (docs/design.md §11) but be refused.
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "src.parquet"
    pq.write_table(pa.Table.from_pandas(pd.read_csv(pd.io.common.StringIO(GOOD))), src,
                   compression="none", write_page_checksum=True)
    col = pq.ParquetFile(src).metadata.row_group(0).column(4)  # Close
    data = bytearray(src.read_bytes())
    data[col.data_page_offset + col.total_compressed_size - 3] ^= 0xFF  # inside the page's values
    before = snapshot(seeded.home)
    with pytest.raises(DataError, match=r"^flip.parquet: not a readable Parquet file"):
        import_file(_bytes(tmp_path, "flip.parquet", bytes(data)), "ES", store=seeded)
    assert snapshot(seeded.home) == before


def test_binary_garbage_csv_is_refused(seeded, tmp_path):
    before = snapshot(seeded.home)
    with pytest.raises(DataError, match=r"^junk.csv(, row \d+)?: not a readable CSV file"):
        import_file(_bytes(tmp_path, "junk.csv", bytes(range(256)) * 4), "ES", store=seeded)
    assert snapshot(seeded.home) == before


def _bytes(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_missing_file_is_refused(store, tmp_path):
    with pytest.raises(DataError, match="nope.csv: file not found"):
        import_file(tmp_path / "nope.csv", "ES", store=store)


def test_unsorted_rows_are_sorted_with_a_warning(store, tmp_path):
    lines = GOOD.strip().split("\n")
    text = "\n".join([lines[0], lines[3], lines[1], lines[2]]) + "\n"
    res = import_file(write(tmp_path, "unsorted.csv", text), "ES", store=store)
    assert res.warnings == ["unsorted.csv: rows were not in time order; sorted them"]
    got = store.read_bars("ES")
    assert got["close"].tolist() == [100.5, 101.0, 100.9]


def test_exact_duplicate_rows_are_dropped_with_a_warning(store, tmp_path):
    text = GOOD + GOOD.strip().split("\n")[2] + "\n"
    res = import_file(write(tmp_path, "dups.csv", text), "ES", store=store)
    assert res.warnings == ["dups.csv: dropped 1 exact duplicate row(s), first at row 4"]
    assert store.entry("ES").rows == 3


def test_repairs_warn_on_the_command_line(store, tmp_path, capsys):
    text = GOOD + GOOD.strip().split("\n")[2] + "\n"
    assert main(["data", "import", str(write(tmp_path, "dups.csv", text)), "--symbol", "es"]) == 0
    out, err = capsys.readouterr()
    assert err == "warning: dups.csv: dropped 1 exact duplicate row(s), first at row 4\n"
    assert out.startswith("imported ES 1min: 3 rows 2018-03-09T14:30:00+00:00 .. 2018-03-09T14:32:00+00:00")


def test_naive_times_use_the_exchange_zone_or_tz(store, tmp_path):
    f = write(tmp_path, "m.csv", GOOD)
    import_file(f, "ES", store=store)  # New York, EST on 2018-03-09
    assert store.read_bars("ES")["timestamp"].iloc[0] == pd.Timestamp("2018-03-09 14:30", tz="UTC")
    import_file(f, "ES", tz="Europe/London", store=store)
    assert store.read_bars("ES")["timestamp"].iloc[0] == pd.Timestamp("2018-03-09 09:30", tz="UTC")


def test_aware_times_are_kept(store, tmp_path):
    text = GOOD.replace(":00,", ":00-05:00,")
    import_file(write(tmp_path, "aware.csv", text), "ES", tz="Asia/Tokyo", store=store)
    assert store.read_bars("ES")["timestamp"].iloc[0] == pd.Timestamp("2018-03-09 14:30", tz="UTC")


def test_offsets_that_change_with_daylight_saving(store, tmp_path):
    text = ("Datetime,Open,High,Low,Close,Volume\n2018-03-09 09:30:00-05:00,1,2,0.5,1.5,10\n"
            "2018-03-12T09:30:00-04:00,1,2,0.5,1.5,10\n")
    import_file(write(tmp_path, "dst.csv", text), "ES", freq="1min", store=store)
    assert store.read_bars("ES")["timestamp"].tolist() == list(
        pd.to_datetime(["2018-03-09 14:30", "2018-03-12 13:30"], utc=True))


def test_times_with_and_without_offsets_are_refused(store, tmp_path):
    text = GOOD.replace("2018-03-09 09:32:00", "2018-03-09 09:32:00Z")
    with pytest.raises(DataError, match="row 3, column 'Datetime': mixes times with and without a UTC offset"):
        import_file(write(tmp_path, "mix.csv", text), "ES", store=store)


def test_column_spellings_and_adj_close(store, tmp_path):
    text = "date,OPEN,high,Low,Adj Close,vOlUmE\n2018-01-02,1,2,0.5,1.5,100\n2018-01-03,1.5,2.5,1,2,50\n"
    res = import_file(write(tmp_path, "daily.csv", text), "SPX", store=store)
    assert res.entry.freq == "1d" and res.warnings == []
    got = store.read_bars("SPX", "1d")
    assert got["close"].tolist() == [1.5, 2.0]
    assert got["date"].tolist() == [pd.Timestamp("2018-01-02"), pd.Timestamp("2018-01-03")]


def test_date_and_close_only_daily_series(store, tmp_path):
    res = import_file(write(tmp_path, "vix.csv", "Date,Close\n2018-01-02,9.77\n2018-01-03,9.15\n"), "VIX", store=store)
    assert res.entry.columns == ["date", "close"]


def test_separate_date_and_time_columns(store, tmp_path):
    text = "Date,Time,Open,High,Low,Close,Volume\n2018-07-02,09:30,1,2,0.5,1.5,3\n2018-07-02,09:31,1.5,2,1,1.8,4\n"
    import_file(write(tmp_path, "dt.csv", text), "ES", store=store)
    assert store.read_bars("ES")["timestamp"].tolist() == list(
        pd.to_datetime(["2018-07-02 13:30", "2018-07-02 13:31"], utc=True))


def test_parquet_import_and_reimport_replaces(store, tmp_path):
    p = tmp_path / "bars.parquet"
    df = pd.read_csv(pd.io.common.StringIO(GOOD))
    df.to_parquet(p)
    first = import_file(p, "ES", store=store).entry
    df["Close"] = df["Close"].clip(upper=101.0)
    df.iloc[:2].to_parquet(p)
    second = import_file(p, "ES", store=store).entry
    assert (first.rows, second.rows) == (3, 2) and first.sha256 != second.sha256
    assert len(store.catalog()) == 1


def test_import_bytes_for_uploads(store):
    res = import_bytes(GOOD.encode(), "upload.csv", "NQ", store=store)
    assert res.entry.source == "upload.csv" and res.entry.rows == 3
    assert list((store.home / "tmp").iterdir()) == []


def test_five_minute_bars_are_refused_with_advice(store, tmp_path):
    ts = pd.date_range("2018-03-09 09:30", periods=4, freq="5min")
    text = "Datetime,Open,High,Low,Close,Volume\n" + "".join(f"{t},1,2,0.5,1.5,3\n" for t in ts)
    with pytest.raises(DataError, match="bars are 0 days 00:05:00 apart; the lab stores 1-minute or daily bars"):
        import_file(write(tmp_path, "five.csv", text), "ES", store=store)


def test_data_list_and_show_json(seeded, capsys):
    import json

    assert main(["data", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert [(e["symbol"], e["freq"], e["rows"]) for e in entries] == [("ES", "1min", 3)]
    assert main(["data", "show", "ES", "--json"]) == 0
    entry = json.loads(capsys.readouterr().out)
    assert {"symbol", "freq", "start", "end", "rows", "sha256"} <= set(entry)
    assert entry["sha256"] == seeded.entry("ES").sha256


def test_bad_usage_is_one_line_exit_2(home, capsys):
    assert main(["data", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "required: symbol" in err
    assert main(["data", "show", "NQ"]) == 2
    assert capsys.readouterr().err.startswith("error: no dataset NQ in")


def test_validation_is_vectorized_for_a_million_rows(store, tmp_path):
    n = 1_000_000
    ts = pd.date_range("2015-01-02 14:30", periods=n, freq="min", tz="UTC")
    c = 100 + np.cumsum(np.random.default_rng(0).normal(0, 0.01, n))
    df = pd.DataFrame({"timestamp": ts, "open": c, "high": c + 0.1, "low": c - 0.1, "close": c, "volume": 1.0})
    p = tmp_path / "big.parquet"
    df.to_parquet(p)
    assert import_file(p, "ES", store=store).entry.rows == n


def test_damaged_files_are_always_refused_cleanly(store, tmp_path):
    """Seeded byte-level damage to a good CSV and a good Parquet file: every outcome is a
    clean import or a DataError (a one-line message), never another exception."""
    import random

    parquet = tmp_path / "good.parquet"
    pd.read_csv(pd.io.common.StringIO(GOOD)).to_parquet(parquet)
    sources = {".csv": GOOD.encode(), ".parquet": parquet.read_bytes()}
    rng = random.Random(2026)
    alphabet = b"0123456789,.-:\n T+Zabc\"'\x00\xff;"
    outcomes = {"ok": 0, "refused": 0}
    for i in range(600):
        suffix = (".csv", ".parquet")[i % 2]
        b = bytearray(sources[suffix])
        for _ in range(rng.randint(1, 6)):
            pos = rng.randrange(len(b)) if b else 0
            op = rng.random()
            if op < 0.4 and b:
                b[pos] = rng.choice(alphabet)
            elif op < 0.7 and b:
                del b[pos:pos + rng.randint(1, 10)]
            else:
                b[pos:pos] = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 5)))
        f = _bytes(tmp_path, f"f{i}{suffix}", bytes(b))
        try:
            import_file(f, "ES", store=store)
            outcomes["ok"] += 1
        except DataError as exc:
            assert "\n" not in exc.message and exc.message.startswith(f"f{i}{suffix}")
            outcomes["refused"] += 1
    assert outcomes["refused"] > 300  # most damage is caught, and none of it escaped as a crash
