import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from almanac.errors import DataError, NotFoundError
from almanac.store import Store, file_sha256


def minute_bars(start="2018-03-08 14:30", n=780, seed=0):
    rng = np.random.default_rng(seed)
    ts = pd.date_range(start, periods=n, freq="min", tz="UTC")
    close = 100 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = np.r_[100, close[:-1]]
    return pd.DataFrame({"timestamp": ts, "open": open_, "high": np.maximum(open_, close) + 0.05,
                         "low": np.minimum(open_, close) - 0.05, "close": close,
                         "volume": rng.integers(1, 100, n).astype(float)})


def test_write_then_read_round_trips_and_catalogs(store):
    df = minute_bars()
    e = store.write("es", "1min", df, source="unit.csv")
    assert (e.symbol, e.freq, e.rows) == ("ES", "1min", 780)
    assert e.start == "2018-03-08T14:30:00+00:00" and e.end == "2018-03-09T03:29:00+00:00"
    assert e.sha256 == file_sha256(store.path("ES", "1min"))
    back = store.read_bars("ES")
    assert str(back["timestamp"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(back, df.astype({"volume": float}).assign(
        timestamp=df["timestamp"].astype("datetime64[us, UTC]")))
    on_disk = json.loads(store.catalog_path.read_text())
    assert [d["symbol"] for d in on_disk["datasets"]] == ["ES"]


def test_read_by_local_date_range_and_columns_prunes(store):
    # three days of bars; row groups are 65,536 rows so use small groups via many rows
    days = [minute_bars(f"2018-03-{d:02d} 14:30", n=390, seed=d) for d in (7, 8, 9)]
    store.write("ES", "1min", pd.concat(days, ignore_index=True), source="x")
    got = store.read_bars("ES", start="2018-03-08", end="2018-03-08", columns=["close"])
    assert list(got.columns) == ["timestamp", "close"]
    assert len(got) == 390
    assert got["timestamp"].iloc[0] == pd.Timestamp("2018-03-08 14:30", tz="UTC")
    np.testing.assert_array_equal(got["close"].to_numpy(), days[1]["close"].to_numpy())


def test_read_uses_parquet_row_group_statistics(store, monkeypatch):
    df = minute_bars("2018-01-02 14:30", n=200_000)
    store.write("ES", "1min", df, source="x")
    meta = pq.ParquetFile(store.path("ES", "1min")).metadata
    assert meta.num_row_groups == 4  # 65,536-row groups
    got = store.read_bars("ES", end="2018-01-03", columns=["close"])
    # only the first row group is needed: the reader returns exactly the rows up to local midnight
    cutoff = pd.Timestamp("2018-01-04 05:00", tz="UTC")  # 00:00 New York (EST)
    assert len(got) == int((df["timestamp"] < cutoff).sum())


def test_daily_series_with_only_date_and_close(store):
    d = pd.DataFrame({"date": pd.date_range("2018-01-01", periods=4), "close": [10.0, 11, 12, 13]})
    e = store.write("vix", "1d", d, source="vix.csv")
    assert e.columns == ["date", "close"] and e.end == "2018-01-04T00:00:00"
    got = store.read_bars("VIX", "1d", start="2018-01-02", end="2018-01-03")
    assert got["close"].tolist() == [11.0, 12.0]


def test_entry_and_missing_symbol_message(store):
    with pytest.raises(NotFoundError, match=r"no dataset NQ 1min in .*the store holds nothing yet; import it first"):
        store.entry("NQ", "1min")
    store.write("ES", "1min", minute_bars(), source="x")
    assert store.entry("es").freq == "1min"
    assert store.has("ES", "1min") and not store.has("ES", "1d")


def test_replace_is_atomic_and_leaves_no_temp_files(store):
    store.write("ES", "1min", minute_bars(seed=1), source="a")
    store.write("ES", "1min", minute_bars(seed=2), source="b")
    assert store.entry("ES").source == "b"
    leftovers = [p.name for p in store.home.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []


def test_failed_write_leaves_old_file_and_catalog(store, monkeypatch):
    store.write("ES", "1min", minute_bars(seed=1), source="a")
    before = {p: p.read_bytes() for p in store.home.rglob("*") if p.is_file()}

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("almanac.store.pq.write_table", boom)
    with pytest.raises(OSError):
        store.write("ES", "1min", minute_bars(seed=2), source="b")
    after = {p: p.read_bytes() for p in store.home.rglob("*") if p.is_file()}
    assert after == before


def test_symbol_names_are_checked(store):
    with pytest.raises(DataError, match="symbol '../x' is not valid"):
        store.write("../x", "1d", pd.DataFrame({"date": [pd.Timestamp("2018-01-01")], "close": [1.0]}), "x")


def test_catalog_is_private_to_the_home(store, tmp_path):
    other = Store(tmp_path / "other")
    store.write("ES", "1min", minute_bars(), source="x")
    assert other.catalog() == []
    assert os.path.exists(store.path("ES", "1min")) and store.path("ES", "1min").parent == store.home / "market"


@pytest.mark.parametrize("bad, says", [
    ("ß", "use ASCII letters"),            # upper-cases to SS: would replace an existing SS dataset
    ("Ｅｓ", "use ASCII letters"),          # full-width letters
    ("E" * 225, "is 225 characters long: use at most 64"),
    ("../ES", "use ASCII letters"),
])
def test_symbols_that_could_collide_or_overflow_are_refused(store, bad, says):
    store.write("SS", "1min", minute_bars(), source="x")
    before = store.catalog_path.read_bytes()
    with pytest.raises(DataError) as err:
        store.write(bad, "1min", minute_bars(seed=1), source="y")
    assert says in err.value.message and len(err.value.message) <= 300
    assert store.catalog_path.read_bytes() == before


def test_a_64_character_symbol_is_stored():
    from almanac.store import normalize_symbol

    assert normalize_symbol(" es_" + "x" * 60 + " ") == "ES_" + "X" * 60


def test_error_messages_are_one_bounded_line():
    from almanac.errors import AlmanacError

    msg = AlmanacError("column " + "x" * 5000 + " is bad:\nrename it\x00 and retry").message
    assert "\n" not in msg and "\x00" not in msg and len(msg) <= 300
    assert msg.startswith("column xxx") and msg.endswith("rename it\\x00 and retry")
