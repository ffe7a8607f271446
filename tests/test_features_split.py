"""Minute bars split a part at a time: the same numbers as all at once, each file read once.

The feature build reads a symbol's stored minute bars a few row groups at a time
(features.build._split_minutes, features.sessions_table.DaySplitter) so that memory holds
the timestamps and one part instead of every bar; these tests hold it to the numbers of
the plain path (the whole file as a DataFrame, split in one part), bit for bit.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import features.build as fbuild
from almanac.sessions import Session
from almanac.store import Store
from bench.synthetic import futures_minutes
from features import build_features, session_table
from features.early import early_features
from features.sessions_table import DaySplitter, split_bars, table_from_daybars, utc_micros

NY = Session()


def gappy_bars(days: int = 70, seed: int = 3) -> pd.DataFrame:
    """23-hour bars with 5 % missing, fractional volumes (sums are not exact) and a NaN run."""
    bars = futures_minutes("2018-02-01", days=days, seed=seed, overnight=True)
    rng = np.random.default_rng(seed)
    bars = bars[rng.random(len(bars)) > 0.05].reset_index(drop=True)
    bars["volume"] = bars["volume"] * rng.random(len(bars)) * 1.37
    bars.loc[1000:1400, "high"] = np.nan
    return bars


def assert_same_days(a, b) -> None:
    pd.testing.assert_frame_equal(table_from_daybars(a), table_from_daybars(b), check_exact=True)
    atr = np.linspace(5.0, 9.0, a.n)
    pd.testing.assert_frame_equal(early_features(a, table_from_daybars(a), atr),
                                  early_features(b, table_from_daybars(b), atr), check_exact=True)
    for c in a.win:
        np.testing.assert_array_equal(a.win[c], b.win[c])
    np.testing.assert_array_equal(a.win_pos, b.win_pos)
    np.testing.assert_array_equal(a.first_minute, b.first_minute)


@pytest.mark.parametrize("cuts", ["single rows first", "random sizes", "one day at a time"])
def test_parts_of_any_size_give_the_numbers_of_one_part(cuts):
    bars = gappy_bars()
    whole = split_bars(bars, NY, "10:15")
    t = utc_micros(bars["timestamp"])
    rng = np.random.default_rng(1)
    if cuts == "single rows first":
        sizes = [1] * 50 + [len(bars) - 50]
    elif cuts == "random sizes":
        sizes = list(rng.integers(1, 5_000, 200))
    else:
        sizes = [1_380] * 100
    bounds = np.minimum(np.r_[0, np.cumsum(sizes)], len(bars))
    bounds = np.unique(np.r_[bounds, len(bars)])
    splitter = DaySplitter(t, NY, "10:15")
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        splitter.feed(int(hi - lo), {c: bars[c].to_numpy(dtype="float64")[lo:hi] for c in splitter.columns})
    assert_same_days(splitter.finish(), whole)


def test_a_splitter_not_fed_every_row_refuses_to_finish():
    bars = gappy_bars(days=5)
    splitter = DaySplitter(utc_micros(bars["timestamp"]), NY, "10:15")
    splitter.feed(100, {c: bars[c].to_numpy()[:100] for c in splitter.columns})
    with pytest.raises(RuntimeError, match="fed 100 of"):
        splitter.finish()


@pytest.mark.parametrize("end", [None, "2018-03-14"])
def test_stored_bars_read_by_row_groups_give_the_numbers_of_the_whole_file(store, monkeypatch, end):
    store.write("GAP", "1min", gappy_bars(days=120), source="test")  # 3 row groups of 65,536 rows
    entry = store.entry("GAP", "1min")
    monkeypatch.setattr(fbuild, "BATCH_ROWS", 1)  # one row group per part
    parts = fbuild._split_minutes(store, entry, NY, fbuild.parse_time("10:15"), end)
    whole = split_bars(store.read_bars("GAP", "1min", end=end), NY, "10:15")
    assert_same_days(parts, whole)
    assert whole.days[-1] == pd.Timestamp(end or whole.days[-1])


def test_a_file_the_store_did_not_sort_goes_the_whole_file_way(tmp_path):
    bars = gappy_bars(days=3)
    path = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pandas(bars.iloc[::-1], preserve_index=False), path, row_group_size=500)
    with pa.OSFile(str(path)) as f:
        assert fbuild._sorted_micros(pq.ParquetFile(f)) is None
    pq.write_table(pa.Table.from_pandas(bars.assign(timestamp=bars["timestamp"].dt.tz_localize(None)),
                                        preserve_index=False), path)
    with pa.OSFile(str(path)) as f:
        assert fbuild._sorted_micros(pq.ParquetFile(f)) is None


class SpyStore(Store):
    """A real store that records which files are opened or read, and the columns read."""

    def __init__(self, home):
        super().__init__(home)
        self.opened: list[str] = []
        self.columns: dict[str, set[str]] = {}
        self.whole_reads: list[str] = []

    @contextmanager
    def open_parquet(self, entry):
        name = f"{entry.symbol} {entry.freq}"
        self.opened.append(name)
        with super().open_parquet(entry) as pf:
            real = pf.read_row_groups

            def read_row_groups(groups, columns=None, **kw):
                self.columns.setdefault(name, set()).update(columns or pf.schema_arrow.names)
                return real(groups, columns=columns, **kw)

            pf.read_row_groups = read_row_groups
            yield pf

    def read_bars(self, symbol, freq="1min", *args, **kwargs):
        self.whole_reads.append(f"{symbol} {freq}")
        return super().read_bars(symbol, freq, *args, **kwargs)


def test_a_cross_asset_minute_file_is_read_once_with_only_the_columns_used(home):
    spy = SpyStore(home)
    spy.write("ES", "1min", gappy_bars(days=40, seed=5), source="test")
    spy.write("NQ", "1min", gappy_bars(days=40, seed=6), source="test")  # no NQ 1d: daily closes from minutes
    ft = build_features("ES", sets=("early_session", "cross_asset", "regime"), cross_assets=("NQ",),
                        store=spy, use_cache=False)
    assert spy.opened == ["ES 1min", "NQ 1min"]
    assert "NQ 1min" not in spy.whole_reads and "ES 1min" not in spy.whole_reads
    assert spy.columns["NQ 1min"] == {"timestamp", "open", "close"}
    assert spy.columns["ES 1min"] == {"timestamp", "open", "high", "low", "close", "volume"}
    # the numbers: NQ's early move and daily return from its whole file, split in one part
    nq = session_table(Store(home).read_bars("NQ", "1min"), NY, "10:15")
    early = (nq["cutoff_price"] / nq["open"] - 1.0).reindex(ft.frame.index)
    np.testing.assert_array_equal(ft.frame["NQ_early_ret"].to_numpy(), early.to_numpy())
    closes = nq["close"]
    ret = (closes / closes.shift(1) - 1.0)
    day = ft.frame.index[10]
    assert ft.frame.loc[day, "NQ_ret_1d"] == ret[ret.index < day].iloc[-1]
