"""The experiment runner: ``run_experiment(spec) -> run record``, a pure function of spec and data.

Stages (each timed in ``run.json["timings"]`` and reported through ``progress``):

1. **validate** -- in this order, each refusal one line: the gap against the label
   horizon; the model parameters with the library's own rules (:func:`ml.models.check_params`:
   a fit on a few synthetic rows, milliseconds); the spec against the store
   (:func:`almanac.spec.validate_against_store`: symbols present, label and features the
   data can give, enough labelled days, cross-asset data overlapping the days). Nothing is
   written (no feature cache, no ``runs/`` folder) before this passes.
2. **features** -- :func:`features.build_features` (cached by data hash and configuration).
3. **labels** -- :func:`ml.labelers.make_label` on the session table; rows whose label is
   NaN are dropped (labels are never filled). A feature without a single value on the
   labelled days is dropped (``run.json["dropped_features"]``, warning
   ``empty_features_dropped``).
4. **folds** -- :class:`ml.splits.WalkForwardSplit` over the remaining rows (gap >= label
   horizon). Per fold: a fresh ``make_model`` fitted on the training rows only (imputers
   and scalers live inside the model pipelines, so they are fitted in the fold too),
   out-of-fold predictions of the test rows, fold scores, SHAP values of a seeded sample
   of at most :data:`SHAP_ROWS_PER_FOLD` test rows (:func:`shap_rows`; all of them in a
   shorter fold; ``run.json["shap"]`` = ``{"rows_per_fold", "rows", "seed"}``; additivity
   checked by :mod:`ml.explain`) and PSI of every feature, train vs test.
5. **evaluation** -- pooled scores over all out-of-fold rows, threshold grid, ROC,
   reliability, rolling AUC (window :data:`ROLLING_WINDOW` days). Permutation importance
   (the LAST fold's model on the LAST fold's test rows, :data:`PERMUTATION_REPEATS`
   shuffles per feature, ``run.json["importance_note"]``) is not computed here: the run
   saves that model (``last_fold_model/``) and records how (``run.json["permutation"]``),
   and :func:`ml.explain.run_permutation_importance` computes the same numbers when asked
   (/evaluate's button, ``runs importance``), caching them in ``permutation.parquet``.
6. **backtest** -- :func:`ml.backtester.backtest` of the out-of-fold predictions, traded
   from the cutoff to the close. ``trial_sharpes`` = the Sharpe ratios of the complete runs
   in the registry with the same symbol and label, plus this run's own (``n_trials``).

   * binary: ``prob`` = P(up) with the spec's threshold / long_only / costs;
   * regression (forward_return): the position is the SIGN of the predicted return
     (``prob`` 1 for a positive, 0 for a negative prediction, none for exactly 0), so
     the threshold plays no role; PSR/DSR are computed on those daily returns as usual;
   * multiclass (archetype): a day-shape class is not a direction, so there is no
     backtest: ``run.json["backtest"]`` is None (with ``backtest_note``) and the run is
     not a trial of any other run's DSR.

   A day whose cutoff price or close is missing cannot be traded (``prob`` NaN there).
   ``backtest.n_trials`` / ``dsr`` are the values at training, also kept as
   ``n_trials_at_training`` / ``dsr_at_training``; what is shown later comes from
   :func:`ml.trials.deflated` (the trials in the registry at that moment).
6b. **baselines** -- :mod:`ml.baselines` on the same out-of-fold days
   (``run.json["baselines"]``): ``always_long`` and ``prior_day`` (binary, regression),
   ``majority`` (classification), ``lift`` with seeded stationary-bootstrap intervals.
   **warnings** (``run.json["warnings"]``, ``[{"code", "message"}]``, one line each):
   ``empty_features_dropped``, ``short_test_fold`` (a fold tests fewer than
   :data:`MIN_TEST_DAYS_WARN` days), ``few_trades`` (fewer than :data:`MIN_TRADES_WARN`),
   ``class_imbalance`` (a class below :data:`MIN_CLASS_SHARE_WARN` of the labelled days).
7. **final model** -- ``make_model`` refitted on every row, saved by
   :func:`ml.persist.save_model` in its native format. The refit starts when the folds
   are done, in a second thread (the libraries fit outside the GIL, one thread each),
   while stages 5-6b run; this stage's time is the wait for it. The last fold's model is
   saved too (``last_fold_model/``, for permutation importance on demand).
8. **writing** -- the artifacts of the contract's layout into ``runs/.tmp-<run_id>/``,
   fsynced, ``run.json`` last, then one ``rename`` to ``runs/<run_id>/``. Any exception
   (including a cancel's SIGTERM turned into an exception, or Ctrl-C) removes the
   temporary folder; a SIGKILL leaves it behind, but nothing lists dot-folders.

The run folder (:data:`almanac.registry.ARTIFACTS` are the files the registry reads)::

    run.json             the record: spec, data hashes, versions, code revision, folds with
                         their dates and scores, pooled metrics, backtest statistics, timings
    spec.yaml            the normalized spec (``python -m almanac train --config`` reruns it)
    dataset.parquet      features, y and the session prices of every labelled day
    oof.parquet          date, fold, y and the out-of-fold prob / pred / prob_<class>; regime (runs with
                         the hmm_regime set: the state of the day from its fold's HMM, ml.regimes; -1
                         none; run.json["regimes"] names the states and holds each fold's HMM; other
                         runs get regimes.json / regimes.parquet on first view, ml.run_regimes)
    folds.parquet        the fold table (train/test date ranges, sizes, scores)
    shap.parquet         SHAP values of each fold's model on its (sampled) test rows; shap_base.parquet
    importance.parquet   mean |SHAP| (over those rows) per feature
    last_fold_model/     the last fold's model (ml.persist), for permutation importance on demand;
                         permutation.parquet once it has been computed
    threshold_grid.json  confusion counts per threshold (binary), curves.json (ROC,
                         reliability, report), drift.json (rolling AUC, PSI per fold)
    backtest.parquet     date, prob, signal, position, strategy_return, equity, benchmark_equity,
                         drawdown; trades.parquet (date, side, entry, exit, gross and net return)
    model/               the final model in its native format (ml.persist)

with these choices: ``shap.parquet`` holds values in the model's raw output space (``run.json
["shap_output"]``: log-odds for boosted binary models) and, for multiclass runs, one block
of rows per class with a ``class`` column (index into ``run.json["classes"]``);
``drift.json["rolling_auc"]`` is the AUC of P(up) (binary) or of the predicted return
against "the day was up" (regression), empty for multiclass; classification scores use
the 0.5 cut (the backtest threshold applies to the backtest; ``threshold_grid.json``
holds the others).

Time limit: a spec's ``timeout_s`` bounds the whole run. The clock is checked at every
progress step (inside the features build too), between folds and stages, and after each
boosting round of LightGBM and XGBoost (their training callbacks); past the limit the run
stops with :class:`RunTimeout` ("run exceeded timeout_s=N ..."), its temporary folder is
removed and nothing is registered. scikit-learn fits (logistic, random_forest, hist_gb)
have no callback, so one fold's fit may overrun before the clock is read again.

Determinism: every model and the permutation shuffles are seeded from ``spec.seed`` and
thread counts are fixed (:mod:`ml.threads`), so a rerun on the same data gives identical
metrics, predictions and backtest numbers (only run_id, created_at and timings differ).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import faults, registry
from almanac.errors import AlmanacError, DataError
from almanac.recovery import RUN_LOCK
from almanac.settings import REPO_ROOT
from almanac.spec import ExperimentSpec, load_spec, spec_from_dict, validate_against_store
from almanac.store import Store
from ml import baselines, drift, evaluation, explain, persist, regimes
from ml.backtester import backtest
from ml.labelers import check_label_days, label_spec, spec_label
from ml.path_labels import DROP_FLAGS, drop_notes, flag_counts
from ml.models import check_params, make_model
from ml.splits import TimeGroupSplit, WalkForwardSplit, check_gap, fold_ids, fold_table, split_on_days
from ml.threads import limit_threads
from ml.trials import trial_sharpes

Progress = Callable[[float, str], None]

#: Trailing window (trading days) of the rolling out-of-fold AUC.
ROLLING_WINDOW = 63
#: Test rows per fold whose SHAP values a run computes (a seeded sample, :func:`shap_rows`;
#: None: every out-of-fold row). TreeSHAP costs about trees x leaves x depth² per row: on all
#: ~400 test days of each fold of the default spec about as much as the fold fits; 100 days
#: per fold keep the beeswarm and the mean |SHAP| ranking at a quarter of that. Recorded in
#: ``run.json["shap"]`` and stated in ``importance_note``. A runner constant, not a spec field.
SHAP_ROWS_PER_FOLD: int | None = 100
#: Shuffles per feature in the permutation importance (``run.json["importance_note"]`` says
#: how many). Two, not five: each shuffle costs a prediction of the last fold's test rows per
#: feature, 0.1-0.2 s of LightGBM per shuffle on the default spec. scikit-learn's shuffles of
#: one seed compose (repeat r applies the first r), so these are the first two of the five
#: that runs before used: each feature's mean is the mean of those two drops, and the std
#: (the error bar) is half their difference.
PERMUTATION_REPEATS = 2
#: Folder of the last fold's model in a run (permutation importance on demand).
LAST_FOLD_MODEL = "last_fold_model"
SESSION_COLUMNS = ("open", "high", "low", "close", "cutoff_price", "prev_close")


class _Clock:
    """Seconds spent per stage (accumulated)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


class RunTimeout(AlmanacError):
    """The run took longer than its spec's ``timeout_s``."""


class _Deadline:
    """``timeout_s`` seconds from ``t0`` (perf_counter); None: no limit."""

    def __init__(self, timeout_s: float | None, t0: float):
        self.timeout_s, self.t0 = timeout_s, t0

    def check(self, where: str) -> None:
        if self.timeout_s is None:
            return
        spent = time.perf_counter() - self.t0
        if spent > self.timeout_s:
            raise RunTimeout(f"run exceeded timeout_s={self.timeout_s:g}: stopped at {where} after {spent:.1f} s, "
                             "nothing was registered; raise timeout_s or make the run smaller (fewer trees, folds "
                             "or days)")

    def fit_kwargs(self, model, kind: str) -> dict:
        """Training callbacks that read the clock after each boosting round (LightGBM:
        ``fit(callbacks=...)``; XGBoost: the estimator's ``callbacks``, set here and
        cleared by :meth:`clear`). Other kinds: nothing."""
        if self.timeout_s is None:
            return {}
        if kind == "lightgbm":
            def lgb_round(env):
                self.check(f"boosting round {env.iteration + 1}")
            return {"callbacks": [lgb_round]}
        if kind == "xgboost":
            from xgboost.callback import TrainingCallback

            deadline = self

            class _RoundClock(TrainingCallback):
                def after_iteration(self, model, epoch, evals_log) -> bool:
                    deadline.check(f"boosting round {epoch + 1}")
                    return False

            model.set_params(callbacks=[_RoundClock()])
        return {}

    def clear(self, model, kind: str) -> None:
        if self.timeout_s is not None and kind == "xgboost":
            model.set_params(callbacks=None)  # the fitted model keeps no reference to the run


def _as_spec(spec) -> ExperimentSpec:
    if isinstance(spec, ExperimentSpec):
        return spec
    if isinstance(spec, (str, Path)):
        return load_spec(spec)
    return spec_from_dict(spec)


def code_revision() -> str:
    """``git rev-parse HEAD`` of the repository (+ ``-dirty`` with uncommitted changes to
    tracked files), or ``"unknown"``."""
    try:
        def git(*a):
            return subprocess.run(["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True,
                                  timeout=10, check=True).stdout.strip()
        head = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _versions() -> dict:
    from ml.export import versions

    return versions()


def _provenance() -> dict:
    """``run.json``'s ``versions`` and ``code_revision`` (two git calls and package metadata:
    ~35 ms, computed on the run's worker thread)."""
    return {"versions": _versions(), "code_revision": code_revision()}


def _iso(d) -> str:
    return f"{pd.Timestamp(d):%Y-%m-%d}"


# ---------------------------------------------------------------------- stages


def _dataset(spec: ExperimentSpec, store: Store, prog: Progress, clock: _Clock):
    """(dataset with features + "y" + session columns, feature names, FeatureTable)."""
    from features import build_features

    with clock.stage("features"):
        ft = build_features(spec.data.symbol, cutoff=spec.features.cutoff, sets=regimes.bar_sets(spec.features.sets),
                            cross_assets=spec.features.cross_assets, start=spec.data.start,
                            end=spec.data.end, store=store,
                            progress=lambda f, s: prog(0.12 * f, f"features: {s}"))
    prog(0.13, "labels")
    with clock.stage("labels"):
        lf = spec_label(spec, ft.sessions.reset_index(), store)  # the label and its flags (path labels)
        dropped = [c for c in lf.columns if c in DROP_FLAGS]
        ft.notes = [*ft.notes, *drop_notes(spec.label.kind, {c: lf[c].to_numpy() for c in dropped})]
        names = list(ft.frame.columns)
        data = ft.frame.join(lf.drop(columns=dropped).rename(columns={spec.label.kind: "y"}).add_prefix("label:")
                             .rename(columns={"label:y": "y"}), how="left")
        sess = ft.sessions.reindex(ft.frame.index)
        for c in SESSION_COLUMNS:
            data[c] = sess[c].to_numpy(dtype="float64") if c in sess.columns else np.nan
        data = data[data["y"].notna()]  # never fill a label
        data.index.name = "date"
    return data, names, ft


def _check_classes(y: np.ndarray, k: int, where: str) -> None:
    missing = sorted(set(range(k)) - set(np.unique(y).astype(int)))
    if missing:
        raise DataError(f"{where} lack class(es) {missing} of the label: widen the date range or raise "
                        "validation.min_train so every class occurs in training")


def _fit(model, kind: str, X: pd.DataFrame, y: np.ndarray, deadline: _Deadline | None = None):
    """``model.fit(X, y)``. hist_gb cannot bin a feature that has no value at all in the
    training rows (scikit-learn raises; e.g. a 200-day average in a first fold of 150
    days), so for fitting only such columns get the constant 0: a constant column has one
    bin, the model never splits on it, and its values at prediction time (or NaN) change
    neither predictions nor SHAP values. The other kinds take all-NaN columns as they are."""
    if kind == "hist_gb":
        empty = [c for c in X.columns[X.isna().all().to_numpy()]]
        if empty:
            X = X.assign(**{c: 0.0 for c in empty})
    if deadline is None:
        return model.fit(X, y)
    try:
        return model.fit(X, y, **deadline.fit_kwargs(model, kind))
    finally:
        deadline.clear(model, kind)


def _predict(model, X: pd.DataFrame, task: str) -> np.ndarray:
    if task == "regression":
        return np.asarray(model.predict(X), dtype="float64")
    proba = np.asarray(model.predict_proba(X), dtype="float64")
    return proba[:, 1] if task == "binary" else proba


def shap_rows(n: int, fold: int, seed: int, per_fold: int | None = None) -> np.ndarray:
    """Positions (sorted) of the test rows of fold ``fold`` (0-based, ``n`` rows) whose SHAP
    values are computed: all of them when ``n <= per_fold`` (``per_fold`` defaults to
    :data:`SHAP_ROWS_PER_FOLD`; if that is None, always all), else ``per_fold`` drawn
    without replacement by ``numpy.random.default_rng([seed, fold])`` -- the same rows for
    the same seed, fold and size, whatever the model."""
    per_fold = SHAP_ROWS_PER_FOLD if per_fold is None else per_fold
    if per_fold is None or n <= per_fold:
        return np.arange(n)
    rng = np.random.default_rng([int(seed), int(fold)])
    return np.sort(rng.choice(n, size=int(per_fold), replace=False))


def _folds(spec, data, names, task, classes, prog, clock, deadline: _Deadline, pool: ThreadPoolExecutor,
           on_fold: FoldHook | None = None, reg: regimes.RunRegimes | None = None, split_days=None,
           lifted: bool = True):
    """Walk-forward loop: out-of-fold predictions, SHAP, PSI, per-fold times.

    This thread fits and predicts the folds one after another; each fitted fold's SHAP
    values and PSI (:func:`_explain_fold`) go to ``pool``'s one worker thread, so they are
    computed while the next fold fits (both libraries' work runs outside the GIL). The
    results are gathered in fold order, so the output does not depend on the timing."""
    X, y = data[names], data["y"].to_numpy()
    kind = TimeGroupSplit if spec.data.table is not None else WalkForwardSplit  # a table: by distinct time
    splitter = kind(n_splits=spec.validation.n_splits, scheme=spec.validation.scheme,
                    gap=spec.validation.gap, min_train=spec.validation.min_train,
                    train_size=spec.validation.train_size)
    # split_days (a multi-head run's heads, ml.heads): the folds are cut on those days, shared by every head
    splits = (list(splitter.split(X, groups=data.index)) if split_days is None
              else split_on_days(splitter, split_days, data.index))
    table = fold_table(data.index, splits)
    n = len(splits)
    # the lift's bootstrap days depend only on the number of out-of-fold days: drawn by the
    # worker while this thread fits (it is idle between the folds' SHAP jobs); none when the
    # run has no lift to resample (``lifted``: see _lifted)
    boot = pool.submit(baselines.bootstrap_days if lifted else _nothing, int(sum(len(te) for _, te in splits)),
                       spec.seed)
    k = len(classes) if classes else 2
    pred = np.full((len(data), k) if task == "multiclass" else len(data), np.nan)
    fit_s, jobs = [], []
    model = None
    for i, (tr, te) in enumerate(splits):
        prog(0.15 + 0.5 * i / n, f"fold {i + 1} of {n}: fitting")
        X_tr, X_te = X.iloc[tr], X.iloc[te]
        if reg is not None:  # hmm_regime: the fold's HMM, fitted on its training days (ml.regimes)
            with clock.stage("regimes"):
                X_tr, X_te = reg.fold(tr, te, X_tr, X_te)
        if task != "regression":
            _check_classes(y[tr], k, f"the training rows of fold {i + 1} ({_iso(X_tr.index[0])} .. "
                                     f"{_iso(X_tr.index[-1])})")
        model = make_model(spec.model.kind, task, spec.model.params, seed=spec.seed)
        with clock.stage("fit"):
            t = time.perf_counter()
            _fit(model, spec.model.kind, X_tr, y[tr].astype("int64") if task != "regression" else y[tr], deadline)
            fit_s.append(time.perf_counter() - t)
        deadline.check(f"fold {i + 1} of {n} (after fitting)")
        with clock.stage("predict"):
            pred[te] = _predict(model, X_te, task)
        if on_fold is not None:  # a study's pruner: this fold's score, before the next fold fits
            on_fold(i, n, data.iloc[te], pred[te])
        jobs.append(pool.submit(_explain_fold, spec, model, X_tr, X_te, i, clock, deadline))
    shap_parts, base_parts, psi, shap_n = [], [], {}, 0
    for i, ((_, te), job) in enumerate(zip(splits, jobs, strict=True)):
        prog(0.65 + 0.1 * i / n, f"fold {i + 1} of {n}: SHAP")
        out = job.result()
        shap_parts += out["shap"]
        base_parts += out["base"]
        psi[str(i)] = out["psi"]
        shap_n += out["rows"]
        shap_output = out["output"]
    return {"splits": splits, "table": table, "pred": pred, "model": model, "fit_seconds": fit_s,
            "shap": pd.concat(shap_parts, ignore_index=True), "shap_base": pd.concat(base_parts, ignore_index=True),
            "shap_output": shap_output, "psi": psi, "regimes": reg, "boot": boot,
            "shap_info": {"rows_per_fold": SHAP_ROWS_PER_FOLD, "rows": shap_n, "seed": int(spec.seed)}}


def _explain_fold(spec, model, X_tr: pd.DataFrame, X_te: pd.DataFrame, i: int, clock, deadline) -> dict:
    """Fold ``i``'s SHAP values of its sampled test rows, and the PSI of its features."""
    n = "fold %d" % (i + 1)
    with clock.stage("shap"):
        X_ex = X_te.iloc[shap_rows(len(X_te), i, spec.seed)]
        results = explain.shap_values_by_class(model, X_ex, background=X_tr)
        shap_parts, base_parts = [], []
        for c, r in enumerate(results):
            part = r.values.reset_index()
            part.insert(1, "fold", i)
            base = pd.DataFrame({"date": X_ex.index, "fold": i, "base_value": r.base_value})
            if len(results) > 1:  # multiclass: one block of rows per class index (run.json classes)
                part.insert(2, "class", c)
                base.insert(2, "class", c)
            shap_parts.append(part)
            base_parts.append(base)
    deadline.check(f"{n} (after SHAP)")
    with clock.stage("drift"):
        p = drift.psi_table(X_tr, X_te)
    return {"shap": shap_parts, "base": base_parts, "rows": len(X_ex), "output": results[0].output,
            "psi": dict(zip(p["feature"], p["psi"], strict=True))}


def _shap_rows_text(info: dict) -> str:
    """What the SHAP values cover, e.g. "100 sampled test days per fold (500 days, seed 0)"."""
    if info["rows_per_fold"] is None:
        return f"all folds' test rows ({info['rows']} days)"
    return (f"at most {info['rows_per_fold']} sampled test days per fold ({info['rows']} days, "
            f"seed {info['seed']})")


def _importance(f: dict, names) -> pd.DataFrame:
    """feature, mean_abs_shap (all folds' explained test rows; multiclass: summed over the
    classes' means), largest first. Permutation importance is computed on demand from the
    saved last-fold model (:func:`ml.explain.run_permutation_importance`)."""
    shap_abs = f["shap"][names].abs()
    mean_abs = shap_abs.groupby(f["shap"]["class"]).mean().sum() if "class" in f["shap"] else shap_abs.mean()
    out = pd.DataFrame({"feature": names, "mean_abs_shap": mean_abs.reindex(names).to_numpy()})
    return out.sort_values("mean_abs_shap", ascending=False, kind="stable").reset_index(drop=True)


def _no_backtest(why: str | None) -> str:
    return f"no backtest: {why or 'the label is not a direction to trade'}; this run is not a trial in other runs' " \
           "deflated Sharpe ratio"


def _label_extra(spec, lab, data: pd.DataFrame, tested: np.ndarray) -> dict:
    """``run.json["label"]`` fields of a label with parameters or a unit: ``params``, its flags'
    counts (time_to_touch: ``censored`` days, all and out-of-fold) and ``unit`` (regression)."""
    flags = {c.split(":", 1)[1]: data[c].to_numpy() for c in data.columns if c.startswith("label:")}
    params = spec.label.params() if spec.data.table is None else {}
    unit = getattr(lab, "unit", "")
    return {**({"params": params} if params else {}), **({"flags": flag_counts(flags, tested)} if flags else {}),
            **({"unit": unit} if unit else {})}
_NO_TABLE_BACKTEST = ("no backtest: a table dataset has no trading day to trade (its rows are samples, not "
                      "positions); judge it by its out-of-fold scores")


def _backtest(spec, store, rows: pd.DataFrame, pred: np.ndarray, task: str):
    """(BacktestResult with DSR over the registry's trials + this run, note)."""
    frame = _backtest_frame(rows, pred, task)
    kw = dict(threshold=spec.backtest.threshold, cost_bps=spec.backtest.cost_bps, long_only=spec.backtest.long_only)
    own = backtest(frame, **kw).stats["sharpe"]
    trials = trial_sharpes(spec.data.symbol, spec.label.kind, home=store.home) + [own]
    t = spec.backtest.threshold
    rule = ("position = sign of the predicted return (threshold not used)" if task == "regression"
            else f"long when P(up) >= {t}" + ("" if spec.backtest.long_only else f", short when P(up) <= {1 - t:.2f}"))
    note = (f"out-of-fold signals traded from the cutoff to the close; {rule}; the DSR counts every complete run "
            f"and every pruned or failed study trial on {spec.data.symbol} / {spec.label.kind} as a trial "
            f"({len(trials)} when this run was trained)")
    return backtest(frame, trial_sharpes=trials, **kw), note


def backtest_frame(data: pd.DataFrame, pred: np.ndarray, task: str) -> pd.DataFrame:
    """The backtest's input for dataset rows ``data`` and their predictions ``pred``
    (binary: P(up); regression: the sign of the predicted return as 1 / 0)."""
    return _backtest_frame(data, pred, task)


def _backtest_frame(data: pd.DataFrame, pred: np.ndarray, task: str) -> pd.DataFrame:
    if task == "binary":
        prob = pred.astype("float64")
    else:  # regression: trade the sign of the predicted return
        prob = np.where(pred > 0, 1.0, np.where(pred < 0, 0.0, np.nan))
    tradable = (data["cutoff_price"] > 0).to_numpy() & (data["close"] > 0).to_numpy()
    return pd.DataFrame({"date": data.index, "prob": np.where(tradable, prob, np.nan),
                         "cutoff_price": data["cutoff_price"].to_numpy(), "close": data["close"].to_numpy(),
                         "prev_close": data["prev_close"].to_numpy()})


def _drop_empty(data: pd.DataFrame, names: list[str]) -> tuple[list[str], list[str]]:
    """(kept, dropped): features without a single value on the labelled days are dropped
    (a model cannot learn from them; they would only make SHAP and PSI tables noisier)."""
    dropped = [c for c in names if not data[c].notna().any()]
    kept = [c for c in names if c not in dropped]
    if not kept:
        raise DataError(f"every feature ({', '.join(names)}) is empty on the {len(data)} labelled days: import "
                        "data that covers the experiment's dates or choose other feature sets")
    return kept, dropped


def _baselines(spec, data, ft, tested, splits, oof_y, oof_pred, task, classes, bt, boot=None) -> dict:
    """``run.json["baselines"]`` (:mod:`ml.baselines`) on the out-of-fold days (``boot``: the
    lift's bootstrap days drawn ahead, :func:`ml.baselines.bootstrap_days`)."""
    out: dict = {}
    if task != "regression":
        k = len(classes) if classes else 2
        shares = baselines.train_shares(data["y"].to_numpy(), splits, k)[tested]
        out["majority"] = {"metrics": baselines.majority(oof_y, shares, classes)}
    else:  # the mean of each fold's training outcomes: the honest floor of a regression's scores
        out["train_mean"] = {"metrics": baselines.train_mean(data["y"].to_numpy(), splits, tested)}
    model_ret = base_ret = None
    if bt is not None:
        rows = data[tested]
        frame = _backtest_frame(rows, np.ones(len(rows)), "binary").drop(columns="prob")
        cost = spec.backtest.cost_bps
        along = baselines.always_long(frame, cost)
        out["always_long"] = {"stats": baselines.baseline_stats(along),
                              "params": {"cost_bps": float(cost), "threshold": None, "long_only": True}}
        prev = ft.sessions["prev_close"]
        prior = (prev / prev.shift(1) - 1.0).replace([np.inf, -np.inf], np.nan)
        frame["prior_return"] = prior.reindex(rows.index).to_numpy(dtype="float64")
        up = oof_y if task == "binary" else (oof_y > 0).astype("float64")
        out["prior_day"] = baselines.prior_day(frame, up, cost, long_only=spec.backtest.long_only)
        model_ret, base_ret = bt.daily["strategy_return"].to_numpy(), along.daily["strategy_return"].to_numpy()
    auc_y, auc_pred = (oof_y, oof_pred) if task != "regression" else (None, None)
    out["lift"] = baselines.lift(spec.seed, model_ret, base_ret, auc_y, auc_pred, days=boot)
    return out


#: Below these, a result is too thin to trust (the warnings of ``run.json["warnings"]``).
MIN_TEST_DAYS_WARN = 100
MIN_TRADES_WARN = 30
MIN_CLASS_SHARE_WARN = 0.20


def _warnings(data, task, classes, dropped, folds, bt) -> list[dict]:
    """``[{"code", "message"}]``: what makes this result weak, one line each, with what to do."""
    out = []
    if dropped:
        out.append({"code": "empty_features_dropped", "message": (
            f"{len(dropped)} feature(s) had no value on any labelled day and were dropped ({', '.join(dropped)}): "
            "the model never saw them; import data covering the experiment's dates or remove their set")})
    short = [(i + 1, f["n_test"]) for i, f in enumerate(folds) if f["n_test"] < MIN_TEST_DAYS_WARN]
    if short:
        which = ", ".join(f"fold {i} ({n} days)" for i, n in short)
        out.append({"code": "short_test_fold", "message": (
            f"{which} tested fewer than {MIN_TEST_DAYS_WARN} days: per-fold scores that small swing widely by "
            "chance; use fewer splits, a lower min_train or a longer date range")})
    if bt is not None and bt.stats["trades"] < MIN_TRADES_WARN:
        out.append({"code": "few_trades", "message": (
            f"the backtest made only {bt.stats['trades']} trade(s) (fewer than {MIN_TRADES_WARN}): its Sharpe, win "
            "rate and DSR rest on too few days to mean much; lower the threshold or lengthen the date range")})
    if task != "regression":
        k = len(classes) if classes else 2
        y = data["y"].to_numpy().astype("int64")
        share = np.bincount(y, minlength=k)[:k] / len(y)
        names = list(classes) if classes else [str(c) for c in range(k)]
        rare = [(names[c], share[c]) for c in range(k) if share[c] < MIN_CLASS_SHARE_WARN]
        if rare:
            which = ", ".join(f"{n} {s:.0%}" for n, s in rare)
            top = int(share.argmax())
            out.append({"code": "class_imbalance", "message": (
                f"class(es) below {MIN_CLASS_SHARE_WARN:.0%} of the {len(y)} labelled days ({which}): the model "
                f"sees few of them and accuracy leans on the common class (always '{names[top]}' scores "
                f"{share[top]:.0%}); judge it by balanced accuracy, ROC AUC and the majority baseline")})
    return out


def _json_safe(obj):
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_json_safe(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (pd.Timestamp, datetime)):
        return obj.isoformat()
    return obj


def _columns(rows: list[dict]) -> dict:
    """List of row dicts -> dict of column lists."""
    return {k: [r.get(k) for r in rows] for k in (rows[0] if rows else {})}


# ---------------------------------------------------------------------- writing


def _fsync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _own(folder: Path) -> int:
    """Hold an flock on ``folder/.lock`` (released when the process ends, even by SIGKILL)."""
    fd = os.open(folder / RUN_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _publish(tmp: Path, final: Path) -> None:
    _fsync_tree(tmp)
    os.rename(tmp, final)  # atomic on one filesystem: the run appears complete or not at all
    fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(_json_safe(obj), indent=1, allow_nan=False) + "\n")


# ---------------------------------------------------------------------- the run


#: ``on_fold(i, n, rows, pred)``: called after fold ``i`` (0-based) of ``n`` is predicted, with
#: the fold's test rows of the dataset (features, ``y`` and the session prices) and their
#: out-of-fold predictions. A study reports the fold's score to its pruner here; an exception
#: raised by the hook stops the run like any other (nothing is registered).
FoldHook = Callable[[int, int, pd.DataFrame, np.ndarray], None]


def run_experiment(spec, store: Store | None = None, progress: Progress | None = None,
                   on_fold: FoldHook | None = None, extra: dict | None = None, one_core: bool = False,
                   store_checked: bool = False, split_days=None) -> dict:
    """Run ``spec`` (an ExperimentSpec, a dict or a YAML path) end to end; see the module doc.

    Returns the run record (the contents of ``run.json``) plus ``"path"``, the run folder.
    User mistakes raise :class:`~almanac.errors.AlmanacError` before anything is written.
    ``on_fold``: see :data:`FoldHook`. ``extra``: small JSON fields added to ``run.json``
    (a study's trial: ``{"study_id", "trial"}``). ``one_core``: no second thread (a study's
    trial: ``--jobs N`` processes and queue workers each give a trial one core); the same
    results, computed one after another. ``store_checked``: the caller has just run
    :func:`~almanac.spec.validate_against_store` on this spec and store (``almanac train``
    does, to refuse before the heavy imports): not repeated (it reads every bar's time).
    ``split_days``: cut the walk-forward folds on these
    sorted dates instead of the run's labelled days (:func:`ml.splits.split_on_days`; the
    heads of a multi-head run, :mod:`ml.heads`, share one split this way).
    """
    t0 = time.perf_counter()
    clock = _Clock()
    spec = _as_spec(spec)
    deadline = _Deadline(spec.timeout_s, t0)
    report: Progress = progress or (lambda f, s: None)

    def prog(fraction: float, stage: str) -> None:  # every progress step reads the clock
        deadline.check(stage)
        report(fraction, stage)

    store = store if store is not None else Store()
    limit_threads()
    with clock.stage("validate"):  # no progress and no write before this passes: a refusal is one line
        if spec.data.table is not None:
            from ml.tabular import table_label

            lab = table_label(spec, store)  # the table's checks, and the task from the target's values
        else:
            lab = label_spec(spec.label.kind, spec.label.params())
        check_gap(spec.validation.gap, lab.horizon_days)
        check_params(spec.model.kind, lab.task, spec.model.params, seed=spec.seed)  # the library's own rules
        if not store_checked:
            validate_against_store(spec, store)
        check_label_days(spec, store)  # a path label's days, before the features are built
    created = datetime.now(timezone.utc)
    run_id = registry.new_run_id(spec.data.symbol or spec.data.table, spec.label.kind, spec.model.kind, created)

    def write(tmp: Path) -> dict:
        prog(0.0, f"started {run_id}")
        return _run(spec, store, lab, run_id, created, tmp, prog, clock, t0, deadline, on_fold, extra, one_core,
                    split_days)

    return build_run(store.home, run_id, write, report)


def build_run(home, run_id: str, write: Callable[[Path], dict], report: Progress) -> dict:
    """Build run ``run_id`` in ``runs/.tmp-<id>/`` (``write(tmp)`` writes its files and returns
    its record, run.json written last) and publish it with one rename; on any error, or a
    cancel, the folder is removed and nothing is registered. Returns the record plus ``"path"``.
    The runner and ensembles (:mod:`ml.ensemble`) build their runs this way."""
    root = registry.runs_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{registry.TMP_PREFIX}{run_id}"
    tmp.mkdir()
    owner = _own(tmp)  # the start-up sweep leaves a folder alone while its runner lives
    try:
        record = write(tmp)
        report(0.99, "registering")  # the work is done: no clock reading from here on
        (tmp / RUN_LOCK).unlink()
        faults.point("run:written")
        _publish(tmp, root / run_id)
        faults.point("run:published")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(owner)
    report(1.0, "done")
    return {**record, "path": str(root / run_id)}


def holdout_predictions(spec, start, store: Store | None = None) -> dict:
    """The winner's honest score: ``spec``'s model refitted ONCE on every labelled day before
    ``start`` (the last ``validation.gap`` of them purged) and its predictions for the days from
    ``start`` on (``spec.data`` must reach past ``start``). Nothing is written.

    Returns ``{"rows": dataset rows of the holdout days, "pred", "task", "classes",
    "train_start", "train_end", "n_train"}``; DataError when fewer than ``min_train``
    training days or fewer than 20 holdout days are labelled.
    """
    spec = _as_spec(spec)
    store = store if store is not None else Store()
    limit_threads()
    lab = label_spec(spec.label.kind, spec.label.params())
    check_params(spec.model.kind, lab.task, spec.model.params, seed=spec.seed)
    data, names, ft = _dataset(spec, store, lambda f, s: None, _Clock())
    names, _ = _drop_empty(data, names)
    reg = regimes.for_spec(spec, ft, data)  # hmm_regime: an HMM fitted on the training days
    names = names + (reg.feature_names if reg is not None else [])
    start = pd.Timestamp(start)
    before = np.flatnonzero(data.index < start)
    train = before[: max(0, len(before) - spec.validation.gap)]
    after = data.index >= start
    if len(train) < spec.validation.min_train or int(after.sum()) < 20:
        raise DataError(f"the holdout from {start:%Y-%m-%d} has {int(after.sum())} labelled days and "
                        f"{len(train)} training days before it: it needs at least 20 and min_train "
                        f"{spec.validation.min_train}; move holdout.start")
    y = data["y"].to_numpy()
    task = lab.task
    if task == "binary":
        _check_classes(y[train], 2, f"the {len(train)} training days before the holdout")
    model = make_model(spec.model.kind, task, spec.model.params, seed=spec.seed)
    X_train, rows = data[names].iloc[train], data[after]
    X_rows = rows[names]
    if reg is not None:
        X_train, X_rows = reg.fit_rows(train, X_train), reg.fit_rows(train, X_rows, np.flatnonzero(after))
    _fit(model, spec.model.kind, X_train, y[train].astype("int64") if task != "regression" else y[train])
    return {"rows": rows, "pred": _predict(model, X_rows, task), "task": task,
            "classes": list(lab.classes) if lab.classes else None, "n_train": int(len(train)),
            "train_start": _iso(data.index[train[0]]), "train_end": _iso(data.index[train[-1]])}


def _run(spec, store, lab, run_id, created, tmp, prog, clock, t0, deadline: _Deadline, on_fold=None,
         extra=None, one_core: bool = False, split_days=None) -> dict:
    task = lab.task
    classes = list(lab.classes) if lab.classes else None
    if spec.data.table is not None:
        from ml.tabular import table_dataset

        prog(0.05, f"reading table {spec.data.table}")
        with clock.stage("features"):
            data, names, ft = table_dataset(spec, store, lab)
            for c in SESSION_COLUMNS:
                data[c] = np.nan
    else:
        data, names, ft = _dataset(spec, store, prog, clock)
    names, dropped = _drop_empty(data, names)
    reg = regimes.for_spec(spec, ft, data)  # each fold's HMM regimes (+ the hmm_regime features)
    names = names + (reg.feature_names if reg is not None else [])
    y = data["y"].to_numpy()
    if task == "binary":
        _check_classes(y, 2, f"the {len(data)} labelled days")

    # One worker thread beside this one: each fold's SHAP while the next fold fits, then the
    # final refit while this thread evaluates (see _folds). Leaving early (an error, a
    # cancel, Ctrl-C) drops the queued work and waits for the running piece, so the
    # temporary folder is never removed under a save.
    pool = _Inline() if one_core else ThreadPoolExecutor(max_workers=1, thread_name_prefix="run-worker")
    try:
        provenance = pool.submit(_provenance)  # git and package metadata: the worker, before fold 1's SHAP
        f = _folds(spec, data, names, task, classes, prog, clock, deadline, pool, on_fold, reg, split_days,
                   lifted=_lifted(spec, lab, task))
        fid = fold_ids(len(data), f["splits"])
        tested = fid >= 0
        oof_pred = f["pred"][tested]
        oof_y = y[tested]

        faults.point("run:folds-fitted")
        # the final refit depends on nothing below: the worker fits it while this thread evaluates
        X_all = data[names] if reg is None else reg.fit_rows(np.arange(len(data)), data[names])
        final_job = pool.submit(_final_model, spec, task, X_all, y, tmp, deadline)
        return _finish(spec, store, lab, run_id, created, tmp, prog, clock, t0, deadline, task, classes, data,
                       names, dropped, ft, y, f, fid, tested, oof_pred, oof_y, final_job, extra, provenance)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _traded(spec, lab, task: str) -> bool:
    """Whether the run gets a backtest: a direction to trade (not multiclass, not a label
    such as tradeable or time_to_touch) on market data (not a table dataset)."""
    return task != "multiclass" and getattr(lab, "untraded", None) is None and spec.data.table is None


def _lifted(spec, lab, task: str) -> bool:
    """Whether the run's lift has a series to resample (:func:`_baselines`): the AUC of a
    classifier, the Sharpe of a backtest."""
    return task != "regression" or _traded(spec, lab, task)


def _nothing(*_args) -> None:
    return None


class _Inline:
    """The worker thread's stand-in for a one-core run: each job runs at once, in this
    thread (an exception, a cancel included, propagates from ``submit`` at once)."""

    def submit(self, fn, *args, **kwargs) -> Future:
        done: Future = Future()
        done.set_result(fn(*args, **kwargs))
        return done

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def _final_model(spec, task: str, X: pd.DataFrame, y: np.ndarray, tmp: Path, deadline) -> dict:
    """Refit on every row and save (ml.persist); returns the saved model's metadata."""
    final = make_model(spec.model.kind, task, spec.model.params, seed=spec.seed)
    _fit(final, spec.model.kind, X, y.astype("int64") if task != "regression" else y, deadline)
    return persist.save_model(final, spec.model.kind, task, tmp / "model")


def _finish(spec, store, lab, run_id, created, tmp, prog, clock, t0, deadline, task, classes, data, names, dropped,
            ft, y, f, fid, tested, oof_pred, oof_y, final_job, extra=None, provenance=None) -> dict:
    prog(0.76, "evaluation")
    with clock.stage("evaluation"):
        ev = evaluation.evaluate(task, oof_y, oof_pred, folds=fid[tested], threshold=0.5, classes=classes)
        if task == "multiclass" or (task == "regression" and getattr(lab, "untraded", None)):
            roll = pd.DataFrame({"date": [], "auc": []})  # no direction to rank up-days by
        else:  # regression: how well the predicted return ranks up-days (y > 0) above the others
            up = oof_y if task == "binary" else (oof_y > 0).astype("float64")
            roll = drift.rolling_auc(data.index[tested], up, oof_pred, window=ROLLING_WINDOW)

    last_te = f["splits"][-1][1]
    importance = _importance(f, names)

    untraded = getattr(lab, "untraded", None)
    bt, bt_record, bt_note = None, None, _no_backtest(untraded) if spec.data.table is None else _NO_TABLE_BACKTEST
    if _traded(spec, lab, task):
        prog(0.84, "backtest")
        with clock.stage("backtest"):
            bt, bt_note = _backtest(spec, store, data[tested], oof_pred, task)
            bt_record = {**bt.stats, "n_trials_at_training": bt.stats["n_trials"],
                         "dsr_at_training": bt.stats["dsr"], "params": bt.params}

    prog(0.86, "baselines")
    with clock.stage("baselines"):
        base = _baselines(spec, data, ft, tested, f["splits"], oof_y, oof_pred, task, classes, bt, f["boot"].result())

    prog(0.88, "final model")
    with clock.stage("final_model"):  # what is left of the refit running since the folds ended
        last_meta = persist.save_model(f["model"], spec.model.kind, task, tmp / LAST_FOLD_MODEL)
        final_meta = final_job.result()

    faults.point("run:final-fitted")
    prog(0.93, "writing")  # the last clock reading: past it, the run is complete
    with clock.stage("writing"):
        per_fold = {r["fold"]: r for r in ev["per_fold"]}
        folds = []
        for row in f["table"].to_dict("records"):
            m = {k_: v for k_, v in per_fold.get(row["fold"], {}).items() if k_ != "fold"}
            folds.append({**row, **{c: _iso(row[c]) for c in ("train_start", "train_end", "test_start", "test_end")},
                          **m})
        _write_artifacts(tmp, spec, data, names, task, classes, fid, tested, oof_pred, f, ev, roll,
                         importance, bt, folds)
    timings = {**clock.seconds, "fold_fits": f["fit_seconds"], "total": time.perf_counter() - t0}
    last_dates = data.index[last_te]
    record = {
        "run_id": run_id, "name": spec.name, "created_at": created.isoformat(timespec="milliseconds"),
        "status": "complete", "spec": spec.to_dict(), "seed": spec.seed,
        "data_hashes": ft.data_hashes, **(provenance.result() if provenance else _provenance()),
        "task": task, "classes": classes, "label": {"kind": lab.name, "horizon_days": lab.horizon_days,
                                                   "description": lab.description,
                                                   **_label_extra(spec, lab, data, tested)},
        "feature_names": names, "dropped_features": dropped,
        "lineage": {k_: v for k_, v in ft.lineage.items() if k_ in names}, "notes": ft.notes,
        "warnings": _warnings(data, task, classes, dropped, folds, bt),
        "n_rows": int(len(data)), "date_range": {"start": _iso(data.index[0]), "end": _iso(data.index[-1])},
        "n_oof": int(tested.sum()), "metrics": ev["pooled"], "folds": folds,
        "backtest": bt_record, "backtest_note": bt_note, "baselines": base,
        "shap_output": f["shap_output"], "shap": f["shap_info"],
        "importance_note": (f"permutation importance: the last fold's model on the last fold's "
                            f"{len(last_te)} test rows ({_iso(last_dates[0])} .. {_iso(last_dates[-1])}), "
                            f"{PERMUTATION_REPEATS} shuffles per feature, computed on demand; mean |SHAP| over "
                            + _shap_rows_text(f["shap_info"])),
        "permutation": {"model": {k_: last_meta[k_] for k_ in ("file", "format", "sha256", "kind", "task",
                                                                "classes")},
                        "folder": LAST_FOLD_MODEL, "fold": len(f["splits"]), "repeats": PERMUTATION_REPEATS,
                        "seed": spec.seed, "rows": int(len(last_te)), "test_start": _iso(last_dates[0]),
                        "test_end": _iso(last_dates[-1])},
        "rolling_auc_window": ROLLING_WINDOW if task != "multiclass" else None,
        "regimes": f["regimes"].record(task, oof_y, oof_pred, tested, bt) if f["regimes"] is not None else None,
        "timings": timings, **(extra or {}),
        "final_model": {"kind": spec.model.kind, "file": final_meta["file"], "format": final_meta["format"],
                        "sha256": final_meta["sha256"], "task": task, "classes": final_meta["classes"],
                        "n_rows": int(len(data))},
    }
    record = _json_safe(record)
    (tmp / "spec.yaml").write_text(spec.to_yaml())
    _write_json(tmp / "run.json", record)  # last: a folder without run.json is never a run
    return record


def _write_artifacts(tmp, spec, data, names, task, classes, fid, tested, oof_pred, f, ev, roll, importance, bt,
                     folds) -> None:
    def parquet(df: pd.DataFrame, name: str, index: bool = False) -> None:
        df.to_parquet(tmp / name, index=index, compression="zstd")

    ds = data[[*names, "y", *SESSION_COLUMNS]]
    parquet(ds, "dataset.parquet", index=True)
    oof = pd.DataFrame({"date": data.index[tested], "fold": fid[tested], "y": data["y"].to_numpy()[tested]})
    for c in (c for c in data.columns if c.startswith("label:")):  # a path label's flags, e.g. censored
        oof[c.split(":", 1)[1]] = data[c].to_numpy()[tested]
    if task == "binary":
        oof["prob"] = oof_pred
    elif task == "regression":
        oof["pred"] = oof_pred
    else:
        for c, name in enumerate(classes):
            oof[f"prob_{name}"] = oof_pred[:, c]
    if f["regimes"] is not None:  # the regime of each day from its fold's HMM (-1: none)
        oof["regime"] = f["regimes"].state[tested]
    parquet(oof, "oof.parquet")
    parquet(pd.DataFrame(folds).assign(**{c: lambda d, c=c: pd.to_datetime(d[c]) for c in
                                          ("train_start", "train_end", "test_start", "test_end")}),
            "folds.parquet")
    parquet(f["shap"], "shap.parquet")
    parquet(f["shap_base"], "shap_base.parquet")
    parquet(importance, "importance.parquet")
    curves = {"task": task, "confusion": ev.get("confusion"), "classification_report": ev.get("report"),
              "roc": None, "reliability": None, "ece": ev["pooled"].get("ece")}
    if task == "binary":
        roc = _columns(ev["roc"])
        curves["roc"] = {"fpr": roc.get("fpr", []), "tpr": roc.get("tpr", []), "thresholds": roc.get("threshold", [])}
        curves["reliability"] = _columns(ev["reliability"])
        _write_json(tmp / "threshold_grid.json", {"threshold_used_for_metrics": 0.5,
                                                  "backtest_threshold": spec.backtest.threshold,
                                                  "grid": ev["threshold_grid"]})
    _write_json(tmp / "curves.json", curves)
    _write_json(tmp / "drift.json", {"rolling_auc": {"window": ROLLING_WINDOW,
                                                     "date": [_iso(d) for d in roll["date"]],
                                                     "auc": roll["auc"].tolist()},
                                     "psi": f["psi"]})
    if bt is not None:
        parquet(bt.daily, "backtest.parquet")
        parquet(bt.trades, "trades.parquet")


__all__ = ["run_experiment", "code_revision", "FoldHook", "backtest_frame", "holdout_predictions", "RunTimeout", "ROLLING_WINDOW", "PERMUTATION_REPEATS",
           "SHAP_ROWS_PER_FOLD", "shap_rows"]
