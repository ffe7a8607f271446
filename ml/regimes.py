"""HMM regimes: a Gaussian HMM on daily returns and ranges, fitted inside each training fold,
and the state of day D from FORWARD FILTERING on the data up to D-1.

* **Observations.** Day t's ``o_t = (ln(close_t / prev_close_t), ln(ln(high_t / low_t)))``
  from the session table (the regular-session bars; a daily-only symbol: its daily bars),
  known after day t's close. The log of the log range is close to Gaussian, the range
  itself is not. A day without a valid close, previous close or range has no observation.
* **Fit (per fold).** The model of a fold sees the observations the training days knew at
  their cutoffs: ``o_(D-1)`` for every training day D (the session day before the first
  training day up to the one before the last), standardized with their own mean and
  standard deviation (the scaler is fitted on the same rows), then
  ``hmmlearn.hmm.GaussianHMM(n_states, covariance_type="full", n_iter=100, tol=1e-4,
  random_state=spec.seed)``. No test day's bar reaches it.
* **Order.** States are sorted by the mean of their range component, smallest first, so
  state 0 is the calmest and the names (:data:`STATE_NAMES`) are stable across folds:
  2 states ``calm, volatile``; 3 ``calm, normal, volatile``; 4 ``calm, normal, active,
  volatile``.
* **State of day D.** The filtered posterior ``a_t = P(s_t | o_1..o_t)`` (forward algorithm,
  normalized every step: :func:`forward_filter`), then the prediction one day ahead:
  ``p_D = a_(D-1) @ transmat`` (:func:`predicted_probs`), ``p`` of the first session day =
  ``startprob``. A day without an observation is not an update (``a_t = a_(t-1) @ A``).
  Never smoothing (hmmlearn's ``predict_proba`` is forward-backward and uses the future),
  never Viterbi over the whole sample. The filter runs from the first session day of the
  spec's range.
* **Regime of a day** = ``argmax p_D`` (ties: the calmer state).

Every run on a symbol records the regime of each out-of-fold day from its fold's HMM
(``oof.parquet["regime"]``, ``run.json["regimes"]``: states, names and each fold's fitted
parameters), so any run can be scored and backtested by regime (:func:`regime_scores`).
The feature set ``hmm_regime`` also gives the model the probabilities and the state
(:data:`FEATURE_PREFIX` + name, ``hmm_state``); the final model's HMM is fitted on every
labelled day and recorded in ``run.json["regimes"]["final"]``.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd

#: The fold-fitted feature set (must match almanac.spec.FOLD_SETS).
HMM_SET = "hmm_regime"
DEFAULT_STATES = 3
STATE_NAMES: dict[int, tuple[str, ...]] = {2: ("calm", "volatile"), 3: ("calm", "normal", "volatile"),
                                           4: ("calm", "normal", "active", "volatile")}
FEATURE_PREFIX = "hmm_p_"
STATE_FEATURE = "hmm_state"
#: A fold with fewer training observations gets no HMM (its days have no regime).
MIN_OBS = 50
#: EM stops when an iteration gains less than TOL in log-likelihood (hmmlearn's default, 1e-2: on
#: 2,000 days of ES the states' means move in the third decimal against 1e-4, at half the iterations).
N_ITER, TOL = 100, 1e-2
METHOD = ("Gaussian HMM (hmmlearn, full covariance) on daily ln(close/prev close) and ln(ln(high/low)), "
          "standardized and fitted on each fold's training days only; the state of day D is the forward-filtered "
          "prediction from the days up to D-1 (never smoothed); states sorted by mean range, 0 = calmest")


def state_names(n_states: int) -> tuple[str, ...]:
    return STATE_NAMES[int(n_states)]


def feature_names(n_states: int) -> list[str]:
    return [f"{FEATURE_PREFIX}{n}" for n in state_names(n_states)] + [STATE_FEATURE]


def observations(sessions: pd.DataFrame) -> pd.DataFrame:
    """``ret`` and ``lrange`` of each session day (index ``date``; NaN when undefined)."""
    def col(c):
        return sessions[c].to_numpy(dtype="float64") if c in sessions.columns else np.full(len(sessions), np.nan)

    close, prev, high, low = col("close"), col("prev_close"), col("high"), col("low")
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = np.where((close > 0) & (prev > 0), np.log(close / prev), np.nan)
        rng = np.where((high > low) & (low > 0), np.log(high / low), np.nan)
        lrange = np.where(rng > 0, np.log(rng), np.nan)
    return pd.DataFrame({"ret": ret, "lrange": lrange}, index=pd.DatetimeIndex(sessions.index, name="date"))


# ---------------------------------------------------------------------------- the filter
def forward_filter(startprob, transmat, loglik) -> np.ndarray:
    """``a_t = P(s_t | o_1..o_t)`` for every row of ``loglik`` (n x k: ``ln p(o_t | s)``; a row
    of NaN = no observation, the step only predicts). Normalized at every step."""
    pi, A = np.asarray(startprob, dtype="float64"), np.asarray(transmat, dtype="float64")
    L = np.asarray(loglik, dtype="float64")
    out = np.empty_like(L)
    prior = pi
    for t in range(len(L)):
        if np.isfinite(L[t]).all():
            w = prior * np.exp(L[t] - L[t].max())
            s = w.sum()
            a = w / s if s > 0 else prior
        else:
            a = prior
        out[t] = a
        prior = a @ A
    return out


def predicted_probs(startprob, transmat, loglik) -> np.ndarray:
    """``p_t = P(s_t | o_1..o_(t-1))`` (n x k): row 0 = ``startprob``, row t = ``a_(t-1) @ A``.
    Row t never reads ``loglik[t]`` or any later row."""
    pi, A = np.asarray(startprob, dtype="float64"), np.asarray(transmat, dtype="float64")
    a = forward_filter(pi, A, loglik)
    return np.vstack([pi[None, :], a[:-1] @ A]) if len(a) else np.zeros((0, len(pi)))


# ---------------------------------------------------------------------------- one HMM
class RegimeHMM:
    """A fitted, ordered HMM with the scaler of its training observations."""

    def __init__(self, hmm, mean: np.ndarray, std: np.ndarray, n_obs: int, train_days: tuple[str, str]):
        order = np.argsort(hmm.means_[:, 1], kind="stable")  # by mean range: state 0 = calmest
        self.startprob = hmm.startprob_[order]
        self.transmat = hmm.transmat_[np.ix_(order, order)]
        self.means = hmm.means_[order]
        self.covars = hmm.covars_[order]
        self.hmm, self.order = hmm, order
        self.mean, self.std, self.n_obs, self.train_days = mean, std, n_obs, train_days
        self.converged = bool(hmm.monitor_.converged)
        self.log_likelihood = float(hmm.monitor_.history[-1]) if hmm.monitor_.history else None

    @property
    def n_states(self) -> int:
        return len(self.startprob)

    def loglik(self, obs: pd.DataFrame) -> np.ndarray:
        """``ln p(o_t | state)`` (ordered states) per row; NaN rows for missing observations."""
        z = (obs[["ret", "lrange"]].to_numpy(dtype="float64") - self.mean) / self.std
        ok = np.isfinite(z).all(axis=1)
        out = np.full((len(z), self.n_states), np.nan)
        if ok.any():
            out[ok] = self.hmm._compute_log_likelihood(z[ok])[:, self.order]
        return out

    def probs(self, obs: pd.DataFrame) -> np.ndarray:
        """``P(state of day t | observations of the days before t)`` for every row of ``obs``."""
        return predicted_probs(self.startprob, self.transmat, self.loglik(obs))

    def record(self) -> dict:
        """JSON-able parameters, enough to rebuild the model (:func:`from_record`): ``means`` and
        ``covars`` in the standardized space of ``scaler_mean`` / ``scaler_std``;
        ``mean_return`` (the state's mean ln(close/prev close)) and ``mean_range`` (exp of its
        mean ln(ln(high/low)): a typical ln(high/low), e.g. 0.008 for a 0.8 % day)."""
        raw = self.means * self.std + self.mean
        return {"obs_start": self.train_days[0], "obs_end": self.train_days[1], "n_obs": self.n_obs,
                "mean_return": raw[:, 0].tolist(), "mean_range": np.exp(raw[:, 1]).tolist(),
                "startprob": self.startprob.tolist(), "transmat": self.transmat.tolist(),
                "means": self.means.tolist(), "covars": self.covars.tolist(),
                "scaler_mean": self.mean.tolist(), "scaler_std": self.std.tolist(),
                "converged": self.converged, "log_likelihood": self.log_likelihood}


def from_record(rec: dict) -> RegimeHMM:
    """The :class:`RegimeHMM` of a recorded fold or final model (``run.json["regimes"]``)."""
    from hmmlearn.hmm import GaussianHMM

    k = len(rec["startprob"])
    m = GaussianHMM(n_components=k, covariance_type="full", init_params="", params="")
    m.startprob_, m.transmat_ = np.asarray(rec["startprob"]), np.asarray(rec["transmat"])
    m.means_ = np.asarray(rec["means"])
    m.n_features = m.means_.shape[1]
    m.covars_ = np.asarray(rec["covars"])
    hmm = RegimeHMM(m, np.asarray(rec["scaler_mean"]), np.asarray(rec["scaler_std"]), int(rec["n_obs"]),
                    (rec["obs_start"], rec["obs_end"]))
    hmm.converged, hmm.log_likelihood = bool(rec.get("converged")), rec.get("log_likelihood")
    return hmm


def fit_hmm(obs: pd.DataFrame, n_states: int = DEFAULT_STATES, seed: int = 0) -> RegimeHMM | None:
    """The ordered HMM of observations ``obs`` (rows with a missing value are left out), or
    None with fewer than :data:`MIN_OBS` of them or when the fit fails (a state without data)."""
    from hmmlearn.hmm import GaussianHMM

    x = obs[["ret", "lrange"]].to_numpy(dtype="float64")
    x = x[np.isfinite(x).all(axis=1)]
    if len(x) < max(MIN_OBS, 5 * n_states):
        return None
    mean, std = x.mean(axis=0), x.std(axis=0)
    if not (std > 0).all():
        return None
    model = GaussianHMM(n_components=int(n_states), covariance_type="full", n_iter=N_ITER, tol=TOL,
                        random_state=int(seed))
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # "model is not converging": recorded instead
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit((x - mean) / std)
    except ValueError:
        return None
    if not (np.isfinite(model.transmat_).all() and np.isfinite(model.means_).all()):
        return None
    days = (f"{obs.index[0]:%Y-%m-%d}", f"{obs.index[-1]:%Y-%m-%d}") if len(obs) else ("", "")
    return RegimeHMM(model, mean, std, int(len(x)), days)


def training_observations(obs: pd.DataFrame, first_day, last_day) -> pd.DataFrame:
    """The observations the training days ``first_day .. last_day`` knew at their cutoffs:
    ``o_(D-1)`` for each session day D in that range."""
    days = obs.index
    a = int(days.searchsorted(pd.Timestamp(first_day), side="left"))
    b = int(days.searchsorted(pd.Timestamp(last_day), side="right"))  # exclusive: the last training day + 1
    return obs.iloc[max(a - 1, 0): max(b - 1, 0)]


def regime_probs(obs: pd.DataFrame, train_first, train_last, n_states: int = DEFAULT_STATES,
                 seed: int = 0) -> tuple[RegimeHMM | None, pd.DataFrame]:
    """Fit on the training days ``train_first .. train_last`` and return ``(hmm, probs)``:
    ``probs`` has one row per session day of ``obs`` (columns = state names), NaN without an HMM."""
    hmm = fit_hmm(training_observations(obs, train_first, train_last), n_states, seed)
    cols = list(state_names(n_states))
    if hmm is None:
        return None, pd.DataFrame(np.nan, index=obs.index, columns=cols)
    return hmm, pd.DataFrame(hmm.probs(obs), index=obs.index, columns=cols)


def most_likely(probs: np.ndarray) -> np.ndarray:
    """Index of the most probable state per row (ties: the calmer), -1 for a row of NaN."""
    p = np.asarray(probs, dtype="float64")
    out = np.full(len(p), -1, dtype="int64")
    ok = np.isfinite(p).all(axis=1) if p.ndim == 2 and len(p) else np.zeros(len(p), dtype=bool)
    out[ok] = p[ok].argmax(axis=1)
    return out


# ---------------------------------------------------------------------------- a run's regimes
class RunRegimes:
    """The regimes of a run with the ``hmm_regime`` set: each fold's HMM fitted on its training
    days; its test days' regimes (``state``, -1 = none) and the features of every row the
    fold's model sees. ``data``: the run's labelled rows (index = dates). (A run without the
    set gets its regimes on first view: :mod:`ml.run_regimes`.)"""

    def __init__(self, n_states: int, seed: int, sessions: pd.DataFrame, data: pd.DataFrame):
        self.n_states, self.seed = int(n_states), int(seed)
        self.obs = observations(sessions)
        self.data = data
        self.feature_names = feature_names(self.n_states)
        self.state = np.full(len(data), -1, dtype="int64")
        self.folds: list[dict | None] = []
        self.final: dict | None = None
        for c in self.feature_names:
            data[c] = np.nan

    def _features(self, probs: pd.DataFrame, rows: pd.Index) -> pd.DataFrame:
        p = probs.reindex(rows)
        out = pd.DataFrame({f"{FEATURE_PREFIX}{c}": p[c].to_numpy() for c in p.columns}, index=rows)
        s = most_likely(p.to_numpy()).astype("float64")
        out[STATE_FEATURE] = np.where(s >= 0, s, np.nan)
        return out

    def fold(self, tr: np.ndarray, te: np.ndarray, X_tr: pd.DataFrame, X_te: pd.DataFrame):
        """Fit this fold's HMM on its training days; record its test days' regimes; return
        ``(X_tr, X_te)`` with the hmm_regime columns filled."""
        idx = self.data.index
        hmm, probs = regime_probs(self.obs.loc[:idx[te[-1]]], idx[tr[0]], idx[tr[-1]], self.n_states, self.seed)
        self.folds.append(hmm.record() if hmm is not None else None)
        self.state[te] = most_likely(probs.reindex(idx[te]).to_numpy())
        f_te = self._features(probs, idx[te])
        self.data.loc[idx[te], self.feature_names] = f_te[self.feature_names].to_numpy()
        return (X_tr.assign(**self._features(probs, idx[tr])[self.feature_names]),
                X_te.assign(**f_te[self.feature_names]))

    def fit_rows(self, tr: np.ndarray, X: pd.DataFrame, rows: np.ndarray | None = None):
        """The final model's (or a holdout's) features: an HMM fitted on the rows ``tr``, the
        columns filled for ``X`` (rows ``rows`` of the data, default ``tr``); the HMM's parameters
        go to ``final``."""
        idx = self.data.index
        rows = tr if rows is None else rows
        hmm, probs = regime_probs(self.obs.loc[:idx[rows].max()], idx[tr[0]], idx[tr[-1]], self.n_states, self.seed)
        self.final = hmm.record() if hmm is not None else None
        return X.assign(**self._features(probs, idx[rows])[self.feature_names])

    def record(self, task: str | None = None, y=None, pred=None, tested=None, bt=None) -> dict:
        """``run.json["regimes"]``; with the out-of-fold outcomes and predictions (``tested``: the
        mask of out-of-fold rows) also ``scores`` (:func:`regime_scores` at 0.5) and, with the
        backtest ``bt``, ``backtest`` (:func:`backtest_by_regime`'s table), one row per regime."""
        out = {"method": METHOD, "n_states": self.n_states, "names": list(state_names(self.n_states)),
               "features": True, "seed": self.seed, "folds": self.folds, "final": self.final}
        if task is not None:
            names = list(state_names(self.n_states))
            state = self.state[tested]
            out["scores"] = regime_scores(task, y, pred, state, names).to_dict("records")
            if bt is not None:
                series = pd.Series(state, index=pd.DatetimeIndex(self.data.index[tested]))
                out["backtest"] = backtest_by_regime(bt.daily, series, names)[0].to_dict("records")
        return out


def for_spec(spec, ft, data: pd.DataFrame) -> RunRegimes | None:
    """The run's :class:`RunRegimes` from its feature table ``ft`` (its session table) and
    labelled rows ``data``: a run with the ``hmm_regime`` set fits its folds' HMMs while it
    trains. None for any other run (its regimes are fitted on first view, :mod:`ml.run_regimes`)
    and for a table dataset (its rows are not trading days)."""
    if spec.data.table is not None or HMM_SET not in spec.features.sets:
        return None
    k = spec.features.hmm_states or DEFAULT_STATES
    return RunRegimes(k, spec.seed, ft.sessions, data)


def live_features(run: dict, day, home=None) -> dict[str, float | None]:
    """The hmm_regime features of trading day ``day`` for a run's final model (the live signal):
    the final HMM (``run.json["regimes"]["final"]``) forward-filtered over the session days from
    the spec's start (as at training) up to ``day``; day D's value reads the days before D only. None values
    when the run has no final HMM."""
    from almanac.store import Store
    from features import build_features

    rec = run.get("regimes") or {}
    names = feature_names(rec.get("n_states") or DEFAULT_STATES)
    if not rec.get("final"):
        return {c: None for c in names}
    f = (run.get("spec") or {}).get("features") or {}
    ft = build_features(run["spec"]["data"]["symbol"], cutoff=f.get("cutoff", "10:15"), sets=bar_sets(f["sets"]),
                        cross_assets=f.get("cross_assets") or [], start=run["spec"]["data"].get("start"),
                        end=day, store=Store(home))  # the filter starts where training's did
    obs = observations(ft.sessions)
    at = int(obs.index.get_indexer([pd.Timestamp(day)])[0])
    if at < 0:
        from almanac.errors import NotFoundError

        raise NotFoundError(f"{run['spec']['data']['symbol']} has no session on {pd.Timestamp(day):%Y-%m-%d}: "
                            "choose a trading day with stored bars")
    p = from_record(rec["final"]).probs(obs)[at]
    state = int(most_likely(p[None, :])[0])
    return {**{c: float(v) for c, v in zip(names[:-1], p, strict=True)}, STATE_FEATURE: float(state)}


def bar_sets(sets) -> list[str]:
    """The feature sets the feature table is built from (without the fold-fitted ones)."""
    return [s for s in sets if s != HMM_SET]


# ---------------------------------------------------------------------------- slices
NO_REGIMES = ("this run has no regimes: it is a table dataset's run, whose rows are not trading days of a "
              "symbol")


def names_of(run: dict) -> list[str]:
    """The run's regime names, state 0 first (empty without regimes)."""
    return list((run.get("regimes") or {}).get("names") or [])


def regime_scores(task: str, y, pred, regime, names, threshold: float = 0.5) -> pd.DataFrame:
    """One row of :func:`ml.evaluation.scores` per regime that occurs (``regime`` = state
    index, -1 = no regime), with ``regime`` (its name) and ``n`` days, calmest first."""
    from ml.evaluation import scores

    regime = np.asarray(regime, dtype="int64")
    y = np.asarray(y, dtype="float64")
    pred = np.asarray(pred, dtype="float64")
    rows = []
    for s in sorted(set(regime.tolist()), key=lambda v: (v < 0, v)):
        m = regime == s
        name = names[s] if 0 <= s < len(names) else "none"
        rows.append({"regime": name, "state": s, **scores(task, y[m], pred[m], threshold)})
    return pd.DataFrame(rows)


def oof_scores(run: dict, oof: pd.DataFrame) -> pd.DataFrame | None:
    """:func:`regime_scores` of a run's out-of-fold rows (``oof.parquet``, all folds or one);
    None when the run recorded no regimes."""
    if "regime" not in oof.columns or not names_of(run):
        return None
    task = run["task"]
    if task == "binary":
        pred = oof["prob"].to_numpy(dtype="float64")
    elif task == "regression":
        pred = oof["pred"].to_numpy(dtype="float64")
    else:
        pred = oof[[f"prob_{c}" for c in run.get("classes") or []]].to_numpy(dtype="float64")
    return regime_scores(task, oof["y"].to_numpy(), pred, oof["regime"].to_numpy(), names_of(run))


def backtest_by_regime(daily: pd.DataFrame, regime: pd.Series, names) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The backtest's days split by regime (``regime``: state per date, -1 none).

    Returns ``(table, curves)``: ``table`` one row per regime that occurs, calmest first:
    ``regime``, ``days``, ``trades`` (days with a position), ``total_return`` (the strategy's
    daily returns of those days compounded), ``mean_return`` (per day), ``sharpe``
    (annualized, :func:`ml.stats.sharpe` of those days' returns), ``win_rate`` (share of trades
    with a positive net return), ``share_of_days``; ``curves``: ``date``, ``regime``,
    ``equity`` (growth of 1 trading only that regime's days, flat on the others' dates
    left out)."""
    from ml import stats

    d = daily[["date", "position", "strategy_return"]].copy()
    d["date"] = pd.to_datetime(d["date"])
    reg = pd.Series(regime.to_numpy(), index=pd.DatetimeIndex(regime.index)).reindex(d["date"])
    d["state"] = reg.fillna(-1).astype("int64").to_numpy()
    rows, curves = [], []
    for s in sorted(set(d["state"].tolist()), key=lambda v: (v < 0, v)):
        part = d[d["state"] == s]
        r = part["strategy_return"].astype("float64").reset_index(drop=True)
        traded = part["position"].to_numpy() != 0
        name = names[s] if 0 <= s < len(names) else "none"
        rows.append({"regime": name, "days": int(len(part)), "trades": int(traded.sum()),
                     "total_return": stats.total_return(r), "mean_return": float(r.mean()) if len(r) else np.nan,
                     "sharpe": stats.sharpe(r),
                     "win_rate": float((r[traded] > 0).mean()) if traded.any() else np.nan,
                     "share_of_days": len(part) / len(d) if len(d) else np.nan})
        curves.append(pd.DataFrame({"date": part["date"].to_numpy(), "regime": name,
                                    "equity": (1.0 + r).cumprod().to_numpy()}))
    cols = ["date", "regime", "equity"]
    return pd.DataFrame(rows), (pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=cols))


def oof_regime_series(oof: pd.DataFrame) -> pd.Series:
    """State per out-of-fold date (``oof.parquet``'s ``regime``)."""
    return pd.Series(oof["regime"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(oof["date"]), name="regime")


__all__ = ["HMM_SET", "DEFAULT_STATES", "STATE_NAMES", "METHOD", "RegimeHMM", "RunRegimes", "bar_sets", "feature_names", "from_record", "live_features",
           "fit_hmm", "for_spec", "forward_filter", "most_likely", "observations", "predicted_probs",
           "NO_REGIMES", "backtest_by_regime", "names_of", "oof_regime_series", "oof_scores", "regime_probs", "regime_scores", "state_names", "training_observations"]
