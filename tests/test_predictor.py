"""Predictor: exact feature-column contract and the long/short/flat signal rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.errors import SpecError
from ml.models import make_model
from ml.predictor import Predictor


class FixedProba:
    """A stand-in model whose P(up) is the frame's column ``p``."""

    def predict_proba(self, X):
        p = X["p"].to_numpy()
        return np.column_stack([1 - p, p])


P = [0.30, 0.44, 0.45, 0.50, 0.549, 0.55, 0.60]


def test_signal_rule():
    X = pd.DataFrame({"p": P}, index=pd.bdate_range("2024-01-01", periods=len(P)))
    pr = Predictor(FixedProba(), ["p"], "binary")
    assert pr.signal(X, 0.55).tolist() == [-1, -1, -1, 0, 0, 1, 1]
    assert pr.signal(X, 0.55, long_only=True).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert pr.signal(X, 0.5).tolist() == [-1, -1, -1, 1, 1, 1, 1]  # p = .5 is long


def test_signal_from_proba_is_the_same_rule():
    """ml.export computes the signal from probabilities it already has (one model run)."""
    from ml.predictor import signal_from_proba

    X = pd.DataFrame({"p": P})
    pr = Predictor(FixedProba(), ["p"], "binary")
    for t, lo in ((0.55, False), (0.55, True), (0.5, False), (1.0, False)):
        assert signal_from_proba(np.array(P), t, lo).tolist() == pr.signal(X, t, lo).tolist()
    with pytest.raises(SpecError, match="between 0.5 and 1"):
        signal_from_proba(np.array(P), 0.4)
    assert pr.signal(X, 0.6).tolist() == [-1, 0, 0, 0, 0, 0, 1]
    assert pr.signal(X, 0.55).index.equals(X.index)
    with pytest.raises(SpecError, match="between 0.5 and 1"):
        pr.signal(X, 0.4)


def test_predictions_match_the_model():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] > 0).astype(int)
    model = make_model("logistic", "binary").fit(X, y)
    pr = Predictor(model, ["a", "b", "c"], "binary", classes=["down", "up"])
    np.testing.assert_array_equal(pr.predict_proba_up(X), model.predict_proba(X)[:, 1])
    assert list(pr.predict_proba(X).columns) == ["down", "up"]
    np.testing.assert_array_equal(pr.predict(X), model.predict(X))
    reg = Predictor(make_model("logistic", "regression").fit(X, X["a"]), ["a", "b", "c"],
                    "regression")
    with pytest.raises(SpecError, match="binary"):
        reg.predict_proba_up(X)


def test_feature_contract():
    pr = Predictor(FixedProba(), ["p", "q", "r"], "binary")
    X = pd.DataFrame({"p": [0.6], "q": [1.0], "r": [2.0]})
    assert pr.check_features(X) is X
    with pytest.raises(SpecError, match=r"missing column\(s\) r"):
        pr.predict_proba_up(X[["p", "q"]])
    with pytest.raises(SpecError, match=r"unexpected column\(s\) s"):
        pr.predict_proba_up(X.assign(s=1.0))
    with pytest.raises(SpecError,
                       match=r"different order.*out of place: r, q.*expected order p, q, r"):
        pr.predict_proba_up(X[["p", "r", "q"]])
    with pytest.raises(SpecError, match="DataFrame"):
        pr.predict_proba_up(X.to_numpy())
    with pytest.raises(SpecError, match="repeat"):
        Predictor(FixedProba(), ["p", "p"], "binary")
