"""The store check's day counts, remembered by the file's hash (almanac.store_days)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from almanac import store_days
from almanac.errors import SpecError
from almanac.spec import spec_from_dict, validate_against_store
from almanac.store import Store
from tests.test_spec import minute_bars


def spec(**data):
    return spec_from_dict({"data": {"symbol": "ES", **data}, "label": {"kind": "rest_of_day"},
                           "validation": {"n_splits": 2, "min_train": 100}})


class NoBars(Store):
    """A store that refuses to read bars: a check answered from the cache reads none."""

    def read_bars(self, *a, **k):
        raise AssertionError("read the bars")


def entries(home) -> list:
    folder = store_days.cache_dir(home)
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


def test_counts_are_kept_and_read_back_without_the_bars(home):
    store = Store(home)
    dates = pd.bdate_range("2015-01-02", periods=300)
    # 20 days whose bars all start after 10:15: trading days, but no price at the cutoff
    late = dates[100:120]
    bars = pd.concat([minute_bars(dates.difference(late)), minute_bars(late, first_minute=60)], ignore_index=True)
    store.write("ES", "1min", bars.sort_values("timestamp", ignore_index=True), source="test")
    first = validate_against_store(spec(), store)
    assert first == {"days": 280, "first": "2015-01-02", "last": "2016-02-25", "freq": "1min"}
    [path] = entries(home)
    kept = json.loads(path.read_text())
    assert kept == {"days": {"n": 300, "first": "2015-01-02", "last": "2016-02-25"},
                    "labelled": {"n": 280, "first": "2015-01-02", "last": "2016-02-25"}}
    assert validate_against_store(spec(), NoBars(home)) == first  # the second check reads no bar
    # another range is another entry (computed from the bars, then kept)
    assert validate_against_store(spec(start="2015-03-02"), store)["days"] == int((dates >= "2015-03-02").sum()) - 20
    assert len(entries(home)) == 2


def test_new_data_is_a_new_key_never_a_stale_answer(home):
    store = Store(home)
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=300)), source="test")
    assert validate_against_store(spec(), store)["days"] == 300
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=330)), source="test")  # re-import
    assert validate_against_store(spec(), store) == {"days": 330, "first": "2015-01-02", "last": "2016-04-07",
                                                     "freq": "1min"}
    assert len(entries(home)) == 2


def test_a_refusal_keeps_nothing(home):
    store = Store(home)
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=120)), source="test")
    for _ in range(2):
        with pytest.raises(SpecError, match="ES has 120 trading days in 2015-01-02 .. 2015-06-18"):
            validate_against_store(spec(), store)
    assert entries(home) == [] and not (home / "cache").exists()  # the data home is as it was


def test_a_damaged_entry_is_recomputed_and_replaced(home, caplog):
    store = Store(home)
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=300)), source="test")
    validate_against_store(spec(), store)
    [path] = entries(home)
    good = path.read_text()
    path.write_text('{"days": {"n": 999')  # torn or edited by hand
    assert validate_against_store(spec(), store)["days"] == 300
    assert path.read_text() == good
    assert "ignoring damaged day-count cache entry" in caplog.text


def test_a_read_only_cache_still_checks(home):
    store = Store(home)
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=300)), source="test")
    folder = store_days.cache_dir(home)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.write_text("not a folder")  # nothing can be kept there
    assert validate_against_store(spec(), store)["days"] == 300
    assert folder.read_text() == "not a folder"


def test_a_write_killed_half_way_is_swept(home):
    """kill -9 between the temporary file and the rename leaves a stray that the start-up sweep removes."""
    import os
    import time

    from almanac.atomic import TMP_MARK
    from almanac.recovery import sweep

    store = Store(home)
    store.write("ES", "1min", minute_bars(pd.bdate_range("2015-01-02", periods=300)), source="test")
    validate_against_store(spec(), store)
    [kept] = entries(home)
    stray = kept.parent / f".{kept.name}{TMP_MARK}999999-0badf00d"
    stray.write_bytes(b'{"days": {"n"')
    os.utime(stray, (time.time() - 3600, time.time() - 3600))
    assert sweep(home, min_age_s=0) == [str(stray.relative_to(home))]
    assert entries(home) == [kept] and validate_against_store(spec(), NoBars(home))["days"] == 300
