"""Walk-forward splits: order, purge gap, sizes, rolling windows, agreement with
scikit-learn's TimeSeriesSplit, and loud errors with the numbers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import TimeSeriesSplit

from almanac.errors import SpecError
from ml.splits import WalkForwardSplit, check_gap, fold_ids, fold_table


@pytest.mark.parametrize("gap", [0, 1, 3])
@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
def test_order_gap_and_no_overlap(gap, scheme):
    n = 400
    cv = WalkForwardSplit(n_splits=5, scheme=scheme, gap=gap, min_train=250)
    splits = list(cv.split(np.zeros(n)))
    assert len(splits) == cv.get_n_splits() == 5
    tests = np.concatenate([te for _, te in splits])
    # test blocks are consecutive, disjoint and cover the tail after min_train + gap
    np.testing.assert_array_equal(tests, np.arange(250 + gap, n))
    for tr, te in splits:
        assert te[0] - tr[-1] - 1 == gap  # exactly `gap` rows purged
        assert tr.max() < te.min()
        np.testing.assert_array_equal(np.diff(tr), 1)


def test_sizes_expanding():
    splits = list(WalkForwardSplit(5, gap=1, min_train=250).split(np.zeros(300)))
    # tail = rows 251..299 = 49 rows -> 10, 10, 10, 10, 9
    assert [len(te) for _, te in splits] == [10, 10, 10, 10, 9]
    assert [len(tr) for tr, _ in splits] == [250, 260, 270, 280, 290]
    assert all(tr[0] == 0 for tr, _ in splits)


def test_rolling_window_length():
    splits = list(WalkForwardSplit(4, "rolling", gap=2, min_train=250, train_size=100)
                  .split(np.zeros(350)))
    assert [len(tr) for tr, _ in splits] == [100, 100, 100, 100]
    assert all(te[0] - tr[-1] == 3 for tr, te in splits)
    default = list(WalkForwardSplit(4, "rolling", gap=2, min_train=250).split(np.zeros(350)))
    assert [len(tr) for tr, _ in default] == [250] * 4
    # a window longer than the first fold's history starts at row 0 and then slides
    long = list(WalkForwardSplit(2, "rolling", gap=0, min_train=100, train_size=150)
                .split(np.zeros(300)))
    assert [(tr[0], len(tr)) for tr, _ in long] == [(0, 100), (50, 150)]


@pytest.mark.parametrize("gap", [0, 2])
def test_agrees_with_sklearn_time_series_split(gap):
    n_splits, block, min_train = 5, 12, 200
    n = min_train + gap + n_splits * block
    ours = list(WalkForwardSplit(n_splits, "rolling", gap=gap, min_train=min_train,
                                 train_size=150).split(np.zeros(n)))
    ref = list(TimeSeriesSplit(n_splits, test_size=block, gap=gap, max_train_size=150)
               .split(np.zeros(n)))
    for (a_tr, a_te), (b_tr, b_te) in zip(ours, ref, strict=True):
        np.testing.assert_array_equal(a_tr, b_tr)
        np.testing.assert_array_equal(a_te, b_te)


def test_too_few_rows_message():
    cv = WalkForwardSplit(5, gap=1, min_train=250)
    with pytest.raises(SpecError, match="need at least 256 days for 5 splits with "
                                        "min_train 250 and gap 1, have 255"):
        list(cv.split(np.zeros(255)))
    assert [len(te) for _, te in cv.split(np.zeros(256))] == [1] * 5


def test_bad_parameters():
    with pytest.raises(SpecError, match="expanding, rolling"):
        list(WalkForwardSplit(scheme="sliding").split(np.zeros(500)))
    with pytest.raises(SpecError, match="rolling"):
        list(WalkForwardSplit(train_size=100).split(np.zeros(500)))
    with pytest.raises(SpecError, match="gap must be an integer >= 0"):
        list(WalkForwardSplit(gap=-1).split(np.zeros(500)))
    with pytest.raises(SpecError, match="at least 2"):
        check_gap(1, 2)
    check_gap(0, 0)


def test_fold_table_and_ids():
    dates = pd.bdate_range("2020-01-01", periods=30)
    splits = list(WalkForwardSplit(2, gap=1, min_train=10).split(np.zeros(30)))
    ft = fold_table(dates, splits)
    assert list(ft.columns) == ["fold", "train_start", "train_end", "test_start",
                                "test_end", "n_train", "n_test"]
    # tail rows 11..29 -> blocks 11..20 and 21..29
    row = ft.iloc[1]
    assert (row["train_start"], row["train_end"]) == (dates[0], dates[19])
    assert (row["test_start"], row["test_end"]) == (dates[21], dates[29])
    assert ft["n_train"].tolist() == [10, 20] and ft["n_test"].tolist() == [10, 9]
    ids = fold_ids(30, splits)
    assert ids.tolist() == [-1] * 11 + [0] * 10 + [1] * 9
