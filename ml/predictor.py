"""A fitted model plus the exact feature columns it was trained on, and trading signals.

:class:`Predictor` refuses rows whose columns are not exactly the model's feature names
in the model's order (missing, extra, duplicated or reordered columns raise SpecError
naming them). It never reorders silently: a reordered frame is usually a sign that the
features were built by different code than at training time.

Signal (binary models), with ``p = P(up)`` and ``threshold`` t in [0.5, 1]:
``+1`` if ``p >= t``; else ``-1`` if ``p <= 1 − t`` and not ``long_only``; else ``0``.
At t = 0.5 a row with p = 0.5 is long (the long rule is checked first). Comparisons
allow 1e-12 of float error (p = 0.45 is short at t = 0.55), the same rule as
``ml.backtester``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from almanac.errors import SpecError

_TASKS = ("binary", "multiclass", "regression")
_EPS = 1e-12  # float tolerance of the threshold comparisons (as in ml.backtester)


class Predictor:
    """Predictions of a fitted ``model`` on frames with columns ``feature_names``.

    ``task`` is "binary", "multiclass" or "regression"; ``classes`` optionally names the
    classes in class-index order (e.g. ``("down", "up")``).
    """

    def __init__(self, model, feature_names: Sequence[str], task: str,
                 classes: Sequence[str] | None = None):
        if task not in _TASKS:
            raise SpecError(f"unknown task {task!r}; choose one of: {', '.join(_TASKS)}")
        names = [str(c) for c in feature_names]
        if len(set(names)) != len(names):
            dup = sorted({c for c in names if names.count(c) > 1})
            raise SpecError(f"feature names repeat: {', '.join(dup)}")
        self.model = model
        self.feature_names = names
        self.task = task
        self.classes = None if classes is None else [str(c) for c in classes]

    def check_features(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` unchanged if its columns are exactly :attr:`feature_names`, in order."""
        if not isinstance(X, pd.DataFrame):
            raise SpecError("pass feature rows as a DataFrame with named columns "
                            f"({', '.join(self.feature_names)})")
        cols = [str(c) for c in X.columns]
        if cols == self.feature_names:
            return X
        want = set(self.feature_names)
        missing = [c for c in self.feature_names if c not in cols]
        extra = [c for c in cols if c not in want]
        dup = sorted({c for c in cols if cols.count(c) > 1})
        problems = []
        if missing:
            problems.append(f"missing column(s) {', '.join(missing)}")
        if extra:
            problems.append(f"unexpected column(s) {', '.join(extra)}")
        if dup:
            problems.append(f"repeated column(s) {', '.join(dup)}")
        if not problems:
            moved = [c for c, w in zip(cols, self.feature_names, strict=True) if c != w]
            problems.append(f"columns are in a different order than at training "
                            f"(out of place: {', '.join(moved)}); expected order "
                            f"{', '.join(self.feature_names)} — select X[feature_names]")
        raise SpecError("feature columns do not match the model: " + "; ".join(problems))

    def predict(self, X: pd.DataFrame) -> pd.Series:
        """Class index (classifiers) or predicted value (regression), indexed like X."""
        X = self.check_features(X)
        return pd.Series(np.asarray(self.model.predict(X)), index=X.index, name="prediction")

    def predict_proba(self, X: pd.DataFrame) -> pd.DataFrame:
        """Class probabilities, one column per class (names from ``classes``)."""
        if self.task == "regression":
            raise SpecError("a regression model has no class probabilities; use predict")
        X = self.check_features(X)
        proba = np.asarray(self.model.predict_proba(X), dtype="float64")
        names = self.classes if self.classes and len(self.classes) == proba.shape[1] else \
            [str(c) for c in range(proba.shape[1])]
        return pd.DataFrame(proba, index=X.index, columns=names)

    def predict_proba_up(self, X: pd.DataFrame) -> pd.Series:
        """P(class 1) of a binary model, indexed like X."""
        if self.task != "binary":
            raise SpecError(f"P(up) needs a binary model; this one is {self.task}")
        proba = self.predict_proba(X)
        return proba.iloc[:, 1].rename("p_up")

    def signal(self, X: pd.DataFrame, threshold: float = 0.55,
               long_only: bool = False) -> pd.Series:
        """+1 / −1 / 0 per row (int8, indexed like X); see the module doc for the rule."""
        sig = signal_from_proba(self.predict_proba_up(X).to_numpy(), threshold, long_only)
        return pd.Series(sig, index=X.index, name="signal")


def signal_from_proba(p: np.ndarray, threshold: float = 0.55, long_only: bool = False) -> np.ndarray:
    """+1 / −1 / 0 (int8) for each P(up) in ``p``; see the module doc for the rule."""
    if not 0.5 <= threshold <= 1.0:
        raise SpecError(f"signal threshold must be between 0.5 and 1, got {threshold}")
    p = np.asarray(p, dtype="float64")
    long_ = p >= threshold - _EPS
    short = ~long_ & (p <= 1.0 - threshold + _EPS) & (not long_only)
    return np.where(long_, 1, np.where(short, -1, 0)).astype("int8")
