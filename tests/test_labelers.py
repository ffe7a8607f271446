"""Labels from a session table: hand-computed values for every rule and edge case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.errors import DataError, SpecError
from ml.labelers import ARCHETYPE_CLASSES, LABELS, label_spec, make_label

NAN = np.nan


def table(rows):
    """rows: (date, open, high, low, close, cutoff_price)."""
    df = pd.DataFrame(rows, columns=["date", "open", "high", "low", "close", "cutoff_price"])
    df["date"] = pd.to_datetime(df["date"])
    return df


# range 100..110 on every day unless stated: pos(x) = (x - 100) / 10
DAYS = table([
    ("2024-01-02", 100.0, 110.0, 100.0, 110.0, 101.0),  # open bottom, close top -> TrendUp
    ("2024-01-03", 110.0, 110.0, 100.0, 100.0, 109.0),  # open top, close bottom -> TrendDown
    ("2024-01-04", 109.0, 110.0, 100.0, 108.0, 108.0),  # both top -> Reversal
    ("2024-01-05", 101.0, 110.0, 100.0, 102.0, 103.0),  # both bottom -> Reversal
    ("2024-01-08", 105.0, 110.0, 100.0, 109.0, 104.0),  # open middle, close top -> TrendUp
    ("2024-01-09", 101.0, 110.0, 100.0, 105.0, 105.0),  # close middle -> Range
    ("2024-01-10", 105.0, 110.0, 100.0, 101.0, 106.0),  # open middle, close bottom -> TrendDown
    ("2024-01-11", 100.0, 100.0, 100.0, 100.0, 100.0),  # zero range -> Range, flat
    ("2024-01-12", 100.0, NAN, 100.0, 104.0, NAN),      # missing high and cutoff
])


def test_direction_rest_of_day_forward_return_hand_values():
    d = make_label("direction", DAYS)
    r = make_label("rest_of_day", DAYS)
    f = make_label("forward_return", DAYS)
    np.testing.assert_array_equal(d.to_numpy(), [1, 0, 0, 1, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(r.to_numpy()[:8], [1, 0, 0, 0, 1, 0, 0, 0])
    assert np.isnan(r.iloc[8])
    np.testing.assert_allclose(f.to_numpy()[:3], [110 / 101 - 1, 100 / 109 - 1, 0.0])
    assert np.isnan(f.iloc[8])
    assert d.name == "direction" and d.index.name == "date"


def test_archetype_rules():
    a = make_label("archetype", DAYS)
    names = [None if np.isnan(v) else ARCHETYPE_CLASSES[int(v)] for v in a]
    assert names == ["TrendUp", "TrendDown", "Reversal", "Reversal", "TrendUp",
                     "Range", "TrendDown", "Range", None]
    assert ARCHETYPE_CLASSES == ("TrendUp", "TrendDown", "Range", "Reversal")


def test_archetype_third_boundaries():
    # pos exactly 1/3 and 2/3 belong to the middle third (range 3..6: pos 1/3 and 2/3)
    t = table([("2024-01-02", 4.0, 6.0, 3.0, 5.0, 4.0),
               ("2024-01-03", 4.5, 6.0, 3.0, 5.01, 4.0)])
    assert make_label("archetype", t).tolist() == [2.0, 0.0]  # Range, TrendUp


def test_no_shift_and_sorted_output():
    shuffled = DAYS.iloc[[3, 0, 2, 1]]
    out = make_label("forward_return", shuffled)
    assert list(out.index) == sorted(shuffled["date"])
    np.testing.assert_allclose(out.to_numpy(), [110 / 101 - 1, 100 / 109 - 1, 0.0, 102 / 103 - 1])


def test_non_positive_price_gives_nan():
    t = table([("2024-01-02", 0.0, 1.0, 0.0, 1.0, -1.0)])
    assert np.isnan(make_label("direction", t).iloc[0])
    assert np.isnan(make_label("forward_return", t).iloc[0])


def test_registry_metadata():
    assert {k: v.task for k, v in LABELS.items()} == {
        "direction": "binary", "rest_of_day": "binary",
        "archetype": "multiclass", "forward_return": "regression", "tradeable": "binary",
        "first_touch": "multiclass", "time_to_touch": "regression", "max_excursion": "regression"}
    assert all(v.horizon_days == 0 for v in LABELS.values())
    assert LABELS["rest_of_day"].classes == ("down", "up")
    assert "cutoff" in LABELS["rest_of_day"].description
    assert LABELS["forward_return"].classes is None


def test_errors():
    with pytest.raises(SpecError, match="direction, rest_of_day, archetype, forward_return"):
        label_spec("tomorrow")
    with pytest.raises(DataError, match="cutoff_price"):
        make_label("rest_of_day", DAYS.drop(columns="cutoff_price"))
    with pytest.raises(DataError, match="2024-01-02 more than once"):
        make_label("direction", pd.concat([DAYS.iloc[:1], DAYS.iloc[:1]]))


def test_label_descriptions_are_plain_text_for_the_train_page():
    text = LABELS["archetype"].description
    assert "ARCHETYPE_CLASSES" in text and ":data:" not in text and "``" not in text and "`" not in text
