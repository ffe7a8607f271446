"""What a study concludes: the winner on the holdout, and the ablation table.

* :func:`score_holdout` -- the best trial's spec refitted ONCE on every day before
  ``holdout.start`` (:func:`ml.runner.holdout_predictions`) and scored on the days from it;
  its DSR counts every trial of the study (pruned and failed ones with an undefined
  Sharpe: they raise the count, not the variance).
* :func:`ablation_table` -- each feature-set combination's metric on the out-of-fold days
  all combinations share, with a 95 % stationary-block-bootstrap interval
  (:func:`ml.baselines.stationary_indices`, the same resampled days for every combination,
  so the difference from the full set is paired and has its own interval).
"""

from __future__ import annotations

import math

import numpy as np

from almanac import registry
from almanac.atomic import atomic_write_json
from almanac.errors import AlmanacError
from almanac.spec import spec_from_dict
from almanac.store import Store
from almanac.study_spec import SUBSET_SEP, StudySpec, ablation_combinations
from ml.study_store import best_trial, finished, load_stored, trial_spec

#: Bootstrap resamples of the ablation intervals for metrics without a vectorized form.
SLOW_RESAMPLES = 200


def finish(study_id: str, home=None) -> None:
    """Score the best trial on the holdout and build the ablation table (when all done)."""
    study, meta, ost, folder = load_stored(study_id, home)
    best = best_trial(ost, study.objective.direction)
    store = Store(home) if home is not None else Store()
    if study.holdout is not None and best is not None:
        atomic_write_json(folder / "holdout.json", score_holdout(study, ost, best, store))
    if study.kind == "ablation":
        runs = {t.params["features.sets"]: t.user_attrs.get("run_id") for t in ost.trials
                if t.state.name == "COMPLETE"}
        atomic_write_json(folder / "ablation.json", ablation_table(study, runs, store.home))


def score_holdout(study: StudySpec, ost, best, store: Store) -> dict:
    """The best trial refitted on every day before the holdout, scored on the holdout days."""
    from ml import evaluation
    from ml.backtester import backtest
    from ml.runner import backtest_frame, holdout_predictions

    d, _ = trial_spec(study, best.params, best.number)
    d["data"]["end"] = study.spec.data.end.isoformat() if study.spec.data.end else None
    spec = spec_from_dict(d)
    out = holdout_predictions(spec, study.holdout.start, store)
    rows, pred, task = out["rows"], out["pred"], out["task"]
    metric = study.objective.metric
    trials = [t for t in ost.get_trials(deepcopy=False) if finished(t)]
    sharpes = [float(t.user_attrs["sharpe"]) if t.state.name == "COMPLETE" and
               isinstance(t.user_attrs.get("sharpe"), (int, float)) else math.nan for t in trials]
    bt = None
    if task != "multiclass":
        bt = backtest(backtest_frame(rows, pred, task), threshold=spec.backtest.threshold,
                      cost_bps=spec.backtest.cost_bps, long_only=spec.backtest.long_only,
                      trial_sharpes=sharpes or None).stats
    value = bt["sharpe"] if metric == "sharpe" else evaluation.scores(task, rows["y"].to_numpy(), pred)[metric]

    def num(v):
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None

    return {"start": f"{rows.index[0]:%Y-%m-%d}", "end": f"{rows.index[-1]:%Y-%m-%d}", "days": int(len(rows)),
            "metric": metric, "value": num(value), "cv_value": num(best.value), "trial": best.number,
            "run_id": best.user_attrs.get("run_id"),
            "sharpe": num(bt["sharpe"]) if bt else None, "dsr": num(bt["dsr"]) if bt else None,
            "n_trials": len(trials), "train_start": out["train_start"], "train_end": out["train_end"]}


def _metric_draws(metric: str, task: str, y: np.ndarray, pred: np.ndarray, ret: np.ndarray | None,
                  idx: np.ndarray) -> np.ndarray:
    """The metric on each resample (rows of day indices ``idx``)."""
    from ml import baselines, evaluation
    if metric == "sharpe":
        r = np.nan_to_num(ret)[idx]
        sd = r.std(axis=1, ddof=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(sd > 0, r.mean(1) / sd * math.sqrt(252), np.nan)
    if metric == "roc_auc" and task == "binary":
        return baselines._resampled_auc_rows(y.astype("int64"), pred, idx)
    return np.array([evaluation.scores(task, y[i], pred[i])[metric] for i in idx])


def ablation_table(study: StudySpec, runs: dict[str, str | None], home) -> list[dict]:
    """``[{sets, run_id, value, ci_low, ci_high, delta_vs_full, delta_ci_low, delta_ci_high}]``:
    the metric of each combination on the out-of-fold days they share, with 95 %
    stationary-bootstrap intervals (the same resampled days for every combination, so the
    difference from the full set is paired)."""
    from ml import baselines

    metric, task, seed = study.objective.metric, study.task, study.sampler_seed
    combos = [SUBSET_SEP.join(c) for c in ablation_combinations(study.spec.features.sets)]
    frames = {}
    for c in combos:
        rid = runs.get(c)
        if not rid:
            continue
        try:
            oof = registry.read_artifact(rid, "oof.parquet", home).set_index("date")
            if metric == "sharpe":
                bt = registry.read_artifact(rid, "backtest.parquet", home, columns=["date", "strategy_return"])
                oof = oof.join(bt.set_index("date"), how="left")
        except AlmanacError:
            continue
        frames[c] = oof
    if not frames:
        return []
    common = sorted(set.intersection(*(set(f.index) for f in frames.values())))
    n = len(common)
    resamples = baselines.RESAMPLES if metric in ("sharpe", "roc_auc") else SLOW_RESAMPLES
    idx = baselines.stationary_indices(n, baselines.BLOCK_DAYS, resamples, seed)
    whole = np.arange(n)[None, :]
    full = combos[-1]
    values, draws = {}, {}
    for c, f in frames.items():
        f = f.loc[common]
        y = f["y"].to_numpy(dtype="float64")
        pred = (f["prob"] if task == "binary" else f["pred"] if task == "regression"
                else f[[k for k in f.columns if k.startswith("prob_")]]).to_numpy(dtype="float64")
        ret = f["strategy_return"].to_numpy(dtype="float64") if metric == "sharpe" else None
        values[c] = float(_metric_draws(metric, task, y, pred, ret, whole)[0])
        draws[c] = _metric_draws(metric, task, y, pred, ret, idx)
    out = []
    for c in combos:
        if c not in values:
            out.append({"sets": c.split(SUBSET_SEP), "run_id": runs.get(c), "value": None, "ci_low": None,
                        "ci_high": None, "delta_vs_full": None, "delta_ci_low": None, "delta_ci_high": None})
            continue
        ci = baselines._interval(values[c], draws[c], baselines.LEVEL)
        row = {"sets": c.split(SUBSET_SEP), "run_id": runs[c], "value": ci["value"], "ci_low": ci["lo"],
               "ci_high": ci["hi"], "delta_vs_full": None, "delta_ci_low": None, "delta_ci_high": None}
        if full in values:
            d = baselines._interval(values[c] - values[full], draws[c] - draws[full], baselines.LEVEL)
            row.update(delta_vs_full=d["value"], delta_ci_low=d["lo"], delta_ci_high=d["hi"])
        out.append(row)
    return out


__all__ = ["finish", "score_holdout", "ablation_table", "SLOW_RESAMPLES"]
