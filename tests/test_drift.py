"""PSI by hand and rolling AUC against a window-by-window scikit-learn loop."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from almanac.errors import SpecError
from ml.drift import psi, psi_level, psi_table, rolling_auc


def test_psi_by_hand():
    train = np.arange(1.0, 9.0)  # quartile edges (linear quantiles): 2.75, 4.5, 6.25
    test = np.array([1, 1, 1, 1, 5, 9, 9, 9], dtype=float)
    # train shares .25 each; test shares .5, 0 -> eps, .125, .375; NaN bin eps vs eps
    eps = 1e-4
    expected = ((0.5 - 0.25) * np.log(0.5 / 0.25) + (eps - 0.25) * np.log(eps / 0.25)
                + (0.125 - 0.25) * np.log(0.125 / 0.25) + (0.375 - 0.25) * np.log(0.375 / 0.25))
    assert psi(train, test, n_bins=4) == pytest.approx(expected)


def test_psi_missing_values_form_a_bin():
    train = np.arange(1.0, 11.0)  # median edge 5.5
    test = np.array([1, 2, 3, 7, 8, 9, 10, 11, np.nan, np.nan])
    expected = (0.3 - 0.5) * np.log(0.3 / 0.5) + (0.2 - 1e-4) * np.log(0.2 / 1e-4)
    assert psi(train, test, n_bins=2) == pytest.approx(expected)


def test_psi_identical_and_shifted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    assert psi(x, x) == 0.0
    assert psi(x, rng.permutation(x)) == 0.0
    assert psi(x, rng.normal(size=2000)) < 0.02
    assert psi(x, x + 1.0) > 0.25
    levels = [psi_level(v) for v in (0.05, 0.2, 0.3, np.nan)]
    assert levels == ["stable", "moderate", "major", "n/a"]


def test_psi_table():
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"a": rng.normal(size=500), "b": rng.normal(size=500)})
    test = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300) + 2})
    t = psi_table(train, test)
    assert t["feature"].tolist() == ["a", "b"]
    assert t["psi"].iloc[1] == pytest.approx(psi(train["b"], test["b"]))
    assert t["level"].tolist() == ["stable", "major"]
    with pytest.raises(SpecError, match="b"):
        psi_table(train, test[["a"]])


def test_rolling_auc_matches_window_loop():
    rng = np.random.default_rng(2)
    n, w, mp = 120, 30, 10
    dates = pd.bdate_range("2022-01-03", periods=n)
    y = rng.integers(0, 2, n)
    y[40:60] = 1  # a stretch with one class -> NaN there
    p = np.round(np.clip(0.5 + 0.2 * (y - 0.5) + 0.25 * rng.normal(size=n), 0, 1), 1)  # ties
    out = rolling_auc(dates, y, p, window=w, min_periods=mp)
    expected = []
    for i in range(n):
        yy, pp = y[max(0, i - w + 1): i + 1], p[max(0, i - w + 1): i + 1]
        ok = len(yy) >= mp and 0 < yy.sum() < len(yy)
        expected.append(roc_auc_score(yy, pp) if ok else np.nan)
    np.testing.assert_allclose(out["auc"].to_numpy(), expected, atol=1e-12)
    assert out["date"].tolist() == list(dates)
    assert out["n"].tolist()[:3] == [1, 2, 3] and out["n"].iloc[-1] == w
    assert np.isnan(out["auc"].iloc[mp - 2])  # fewer than min_periods rows


def test_rolling_auc_drops_missing_rows_and_checks_args():
    dates = pd.bdate_range("2022-01-03", periods=6)
    out = rolling_auc(dates, [0, 1, np.nan, 0, 1, 1], [.1, .9, .5, .2, .8, .4], window=4,
                      min_periods=4)
    assert len(out) == 5
    assert out["auc"].iloc[-1] == pytest.approx(roc_auc_score([1, 0, 1, 1], [.9, .2, .8, .4]))
    with pytest.raises(SpecError, match="min_periods"):
        rolling_auc(dates, [0] * 6, [0.5] * 6, window=5, min_periods=6)
