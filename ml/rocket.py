"""The ``minirocket`` model kind: MiniRocket (sktime) on the raw minute path, then a linear model.

It answers one question: do the engineered features beat the raw sequence? The input is
the ``minute_path`` feature set (:mod:`features.minute_path`: ln(close / session open) of
every bar from the open to the cutoff); the spec refuses any other set with this kind.

One estimator per task, fitted per training fold like every model kind:

1. **fill**: the path's gaps (missing minutes, a late first bar) are forward-filled along
   time and leading gaps set to 0 (= the open price): a stateless row-wise rule, nothing is
   learned. A series shorter than 9 points (MiniRocket's kernel length) is padded with its
   last value.
2. **MiniRocket** (``sktime.transformations.rocket.MiniRocket``, ``num_kernels`` 10,000 ->
   9,996 features, ``random_state`` = the spec's seed): its dilations and biases are fitted
   on the training rows only.
3. **StandardScaler** on those features (training rows only), then
4. ``LogisticRegression`` (binary / multiclass; the lab's metrics and backtest need
   ``predict_proba``, which the paper's RidgeClassifierCV does not give) or ``Ridge``
   (regression).

sktime is in requirements.txt (it caps pandas below 3.1 and compiles its numba kernels
once, on first use). In an environment without it the kind is refused in one line by
:func:`require_sktime` before any work. sktime, scikit-learn and numba are imported only
inside fit / transform.

Persistence: the fitted state is plain arrays (MiniRocket's dilations, features per
dilation and biases; the scaler's and linear model's coefficients), so ``ml.persist``
saves it with skops; loading rebuilds the transform from those arrays.

SHAP: per-minute attributions of :func:`path_shap` are baseline Shapley values estimated
from two permutations, time order and reverse time order (exact additivity; base value =
the model's output on the mean training path). Exact Shapley values over 45 minutes would
need thousands of MiniRocket transforms per explained row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin  # ml.models imports this module lazily

from almanac.errors import SpecError

INSTALL_HINT = "pip install -r requirements.txt"
MIN_LENGTH = 9  # MiniRocket's kernel length


def require_sktime() -> None:
    """One-line SpecError when sktime (the MiniRocket implementation) is not installed."""
    import importlib.util

    if importlib.util.find_spec("sktime") is None:
        raise SpecError("model minirocket needs the package sktime, which is not installed in this environment: "
                        f"run `{INSTALL_HINT}` or choose another model kind")


def fill_paths(X) -> np.ndarray:
    """Rows of ``X`` as complete float64 series: gaps forward-filled along time, leading gaps 0,
    padded with the last value to at least :data:`MIN_LENGTH` points."""
    a = np.asarray(X, dtype="float64")
    if a.ndim != 2:
        raise ValueError("paths must be a 2-D table: one row per day, one column per bar")
    a = pd.DataFrame(a).ffill(axis=1).fillna(0.0).to_numpy()
    if a.shape[1] < MIN_LENGTH:
        last = a[:, -1:] if a.shape[1] else np.zeros((len(a), 1))
        a = np.hstack([a, np.repeat(last, MIN_LENGTH - a.shape[1], axis=1)])
    return a


def _rocket_features(params: tuple, paths: np.ndarray) -> np.ndarray:
    """MiniRocket features (float32) of the filled ``paths`` with fitted ``params``.

    The kernel of ``sktime.transformations.rocket.MiniRocket.transform`` called directly:
    the public method checks and converts its input and returns a DataFrame, which cost 9x
    the transform itself here (26 s vs 2.9 s for 9,200 paths of 45 minutes, 9,996 features;
    the same numbers, tests/test_rocket.py). sktime is pinned to a minor range for it."""
    from sktime.transformations.rocket._minirocket_numba import _transform

    paths = np.ascontiguousarray(paths, dtype="float32")
    _check_parameters(params, paths.shape[1])
    return _transform(paths, params)


def _check_parameters(params, n_timepoints: int) -> None:
    """The kernel does not check its indices (numba): a model file whose arrays do not fit
    together (a damaged or hand-made bundle) is refused here instead of read out of bounds."""
    try:
        dilations, per_dilation, biases = params
        ok = (dilations.dtype == np.int32 and per_dilation.dtype == np.int32 and biases.dtype == np.float32
              and dilations.ndim == per_dilation.ndim == biases.ndim == 1 and len(dilations) == len(per_dilation)
              and (dilations >= 1).all() and (per_dilation >= 0).all()
              and len(biases) == 84 * int(per_dilation.sum())
              and (len(dilations) == 0 or 8 * int(dilations.max()) < n_timepoints))
    except (TypeError, ValueError, AttributeError):
        ok = False
    if not ok:
        raise ValueError(f"MiniRocket parameters do not fit together or do not fit paths of {n_timepoints} points: "
                         "refit the model")


#: Rows transformed at a time when many are predicted at once (the SHAP permutations):
#: 2,000 x 9,996 float32 features = 80 MB.
CHUNK_ROWS = 2_000


class _MiniRocketBase:
    """Shared fit/transform; subclasses add the scikit-learn mixin and the linear model."""

    def _fit_rocket(self, X):
        require_sktime()
        from sklearn.preprocessing import StandardScaler
        from sktime.transformations.rocket import MiniRocket

        paths = fill_paths(X)
        self.n_features_in_ = np.asarray(X).shape[1]
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        r = MiniRocket(num_kernels=self.num_kernels, max_dilations_per_kernel=self.max_dilations_per_kernel,
                       random_state=int(self.random_state))
        r.fit(paths[:, None, :].astype("float32"))
        self.rocket_parameters_ = tuple(np.asarray(p) for p in r.parameters)
        Z = _rocket_features(self.rocket_parameters_, paths)  # = r.transform(...), without its overhead
        self.scaler_ = StandardScaler().fit(Z)
        return self.scaler_.transform(Z)

    def check_fit(self, X, y):
        """What ``ml.models.check_params`` fits: the parameters' own rules without sktime (whose
        import and numba kernels cost seconds): the MiniRocket sizes must be whole numbers, and
        the linear model is fitted on ``X`` itself as if it were MiniRocket's features."""
        for name in ("num_kernels", "max_dilations_per_kernel"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, not {v!r}")
        self.model_ = self._linear().fit(fill_paths(X), np.asarray(y))
        return self

    def transform(self, X) -> np.ndarray:
        """The scaled MiniRocket features of ``X`` (what the linear model sees)."""
        if np.asarray(X).shape[1] != self.n_features_in_:
            raise ValueError(f"X has {np.asarray(X).shape[1]} path columns; the model was fitted on "
                             f"{self.n_features_in_}")
        return self.scaler_.transform(_rocket_features(self.rocket_parameters_, fill_paths(X)))

    def _chunked(self, method: str, X) -> np.ndarray:
        a = np.asarray(X, dtype="float64")
        parts = [getattr(self.model_, method)(self.transform(a[i:i + CHUNK_ROWS]))
                 for i in range(0, len(a), CHUNK_ROWS)]
        return np.concatenate(parts) if parts else getattr(self.model_, method)(self.transform(a))


class MiniRocketClassifier(_MiniRocketBase, ClassifierMixin, BaseEstimator):
    """Fill -> MiniRocket -> StandardScaler -> LogisticRegression (see the module doc)."""

    def __init__(self, num_kernels: int = 10_000, max_dilations_per_kernel: int = 32, C: float = 0.001,
                 max_iter: int = 1000, random_state: int = 0):
        self.num_kernels = num_kernels
        self.max_dilations_per_kernel = max_dilations_per_kernel
        self.C = C
        self.max_iter = max_iter
        self.random_state = random_state

    def _linear(self):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.random_state)

    def fit(self, X, y):
        Z = self._fit_rocket(X)
        self.model_ = self._linear().fit(Z, np.asarray(y))
        self.classes_ = self.model_.classes_
        return self

    def decision_function(self, X) -> np.ndarray:
        return self._chunked("decision_function", X)

    def predict_proba(self, X) -> np.ndarray:
        return self._chunked("predict_proba", X)

    def predict(self, X) -> np.ndarray:
        return self._chunked("predict", X)


class MiniRocketRegressor(_MiniRocketBase, RegressorMixin, BaseEstimator):
    """Fill -> MiniRocket -> StandardScaler -> Ridge (see the module doc)."""

    def __init__(self, num_kernels: int = 10_000, max_dilations_per_kernel: int = 32, alpha: float = 1000.0,
                 random_state: int = 0):
        self.num_kernels = num_kernels
        self.max_dilations_per_kernel = max_dilations_per_kernel
        self.alpha = alpha
        self.random_state = random_state

    def _linear(self):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.alpha)

    def fit(self, X, y):
        Z = self._fit_rocket(X)
        self.model_ = self._linear().fit(Z, np.asarray(y, dtype="float64"))
        return self

    def predict(self, X) -> np.ndarray:
        return self._chunked("predict", X)


def is_minirocket(est) -> bool:
    return isinstance(est, _MiniRocketBase)


def raw_output(est, X) -> np.ndarray:
    """What SHAP explains: log-odds / logits (classifier), the prediction (regressor)."""
    return est.decision_function(X) if hasattr(est, "decision_function") else est.predict(X)


def path_shap(est, X: pd.DataFrame, background: pd.DataFrame):
    """Per-column attributions of ``est`` on rows ``X``: values (n, f[, K]), base, raw, output name.

    Baseline Shapley values with the mean filled training path as the baseline, estimated
    from the time-order and reverse-time-order permutations (their average): in time order
    column j gets ``f(x up to j, baseline after) - f(x up to j-1, baseline after)``. Each
    permutation's values add up exactly to ``f(x) - f(baseline)``, so their average does too.
    """
    from sklearn.base import is_classifier

    n, f = np.asarray(X).shape
    x = fill_paths(X)[:, :f]
    base_path = fill_paths(background)[:, :f].mean(axis=0)
    col, steps = np.arange(f)[None, None, :], np.arange(f + 1)[None, :, None]
    # step k of the forward order: the first k columns from x, the rest from the baseline;
    # of the reverse order: the last k columns from x
    fwd = np.where(col < steps, x[:, None, :], base_path[None, None, :])
    rev = np.where(col >= f - steps, x[:, None, :], base_path[None, None, :])
    out = raw_output(est, np.concatenate([fwd.reshape(-1, f), rev.reshape(-1, f)]))
    out = np.asarray(out, dtype="float64").reshape(2, n, f + 1, -1)
    fwd_v = np.diff(out[0], axis=1)                 # (n, f, K): column j revealed at step j
    rev_v = np.diff(out[1], axis=1)[:, ::-1, :]     # step k reveals column f - k
    values = (fwd_v + rev_v) / 2.0
    base = out[0, 0, 0, :]                          # f(baseline) (the same for every row)
    raw = out[0, :, f, :]
    if values.shape[2] == 1:
        values, base, raw = values[:, :, 0], base[0], raw[:, 0]
    clf = is_classifier(est)
    name = "prediction" if not clf else ("log_odds" if len(est.classes_) == 2 else "logit")
    return values, base, raw, name

