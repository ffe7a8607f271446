"""A stored run's backtest replayed at any trading rules, from its files alone.

/backtest and the HTML report both show a run's backtest at the settings the user picks
(threshold, long only, cost in bp per side). Nothing is refitted and no model is loaded:
the backtest is recomputed from the run's out-of-fold predictions (``oof.parquet``) and
the session prices of the same days (``dataset.parquet``) with
:func:`ml.backtester.backtest`, the runner's own code and rules.

* :func:`replay`: the model's backtest at those settings; its DSR and trial count are
  those of :mod:`ml.trials` (every complete run on the symbol and label now). At the
  run's recorded settings they are exactly :func:`ml.trials.deflated` (the numbers of
  ``runs show --json``, /models and the report); at other settings this run's recorded
  Sharpe is swapped for the one on screen (:func:`ml.trials.dsr_trials`).
* :func:`always_long`: the naive baseline on the same days at the same cost (long from
  the cutoff to the close on every day that can be traded), drawn beside buy and hold.
* :func:`grid`: Sharpe and DSR at every threshold x cost (:func:`ml.backtester.sharpe_grid`,
  one vectorized pass).
* :func:`deciles`: a regression run's mean realized return per predicted decile.

The baselines recorded at training (``run["baselines"]``, written by the runner) are read
with :func:`recorded_baselines`; runs trained before they existed lack them.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from almanac.errors import NotFoundError
from ml import stats
from ml.backtester import BacktestResult, backtest, deflate, sharpe_grid, trading_columns
from ml.runinfo import trading_rules
from ml.trials import current_trials, deflated, dsr_trials

#: Thresholds of the heatmap (binary runs) and the costs of its columns, bp per side.
GRID_THRESHOLDS = tuple(np.round(np.arange(0.50, 0.8001, 0.01), 2))
GRID_COSTS = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)
ROLLING_DAYS = 126


def _artifact(run: dict, name: str, columns: list[str] | None = None) -> pd.DataFrame:
    """A Parquet artifact of the run: from its folder (``run["path"]``) when the record has
    one, else through the registry of the current data home."""
    if run.get("path"):
        path = Path(run["path"]) / name
        if not path.is_file():
            raise NotFoundError(f"run {run.get('run_id')} has no {name}: its folder is incomplete; retrain it")
        return pd.read_parquet(path, columns=columns)
    return registry.read_artifact(run["run_id"], name, columns=columns)


#: The files a run's replay reads: a cached frame is keyed by their modification times.
FRAME_FILES = ("oof.parquet", "dataset.parquet")


def _files_key(run: dict) -> tuple | None:
    """(folder, task, modification times of :data:`FRAME_FILES`): what the frame of a run
    with a folder depends on (None without one: read through the registry each time)."""
    path = run.get("path")
    if not path:
        return None
    try:
        return str(path), run.get("task"), tuple(Path(path, n).stat().st_mtime_ns for n in FRAME_FILES)
    except OSError:
        return None


@lru_cache(maxsize=8)
def _frame_of(path: str, task: str, _stamps: tuple) -> pd.DataFrame:
    return _read_frame({"path": path, "task": task})


@lru_cache(maxsize=16)
def _always_long_of(path: str, task: str, stamps: tuple, cost_bps: float) -> BacktestResult:
    return always_long(_frame_of(path, task, stamps), cost_bps)


def backtest_frame(run: dict) -> pd.DataFrame:
    """One row per out-of-fold day: date, prob, cutoff_price, close, prev_close.

    ``prob`` is the stored P(up) (binary) or 1 / 0 for a positive / negative predicted
    return (regression), NaN on days without both prices: the runner's own rule
    (``ml.runner._backtest_frame``), so the run's recorded backtest is reproduced. Read
    once per run and file version (a moved control on /backtest re-reads nothing); each
    caller gets its own copy.
    """
    key = _files_key(run)
    return (_read_frame(run) if key is None else _frame_of(*key)).copy()


def always_long_of(run: dict, cost_bps: float) -> BacktestResult:
    """:func:`always_long` on the run's :func:`backtest_frame`, computed once per run, file
    version and cost (a threshold or long-only step on /backtest does not change it); the
    statistics and parameters are the caller's own copies."""
    key = _files_key(run)
    cost = float(cost_bps)
    res = always_long(backtest_frame(run), cost) if key is None or not math.isfinite(cost) else \
        _always_long_of(*key, cost)
    return replace(res, stats=dict(res.stats), params=dict(res.params))


def _read_frame(run: dict) -> pd.DataFrame:
    from ml.runner import _backtest_frame  # the runner's rule, imported when first needed

    oof = _artifact(run, "oof.parquet")
    data = _artifact(run, "dataset.parquet", columns=["cutoff_price", "close", "prev_close"])
    rows = data.reindex(pd.DatetimeIndex(oof["date"], name="date"))
    pred = oof["prob" if run["task"] == "binary" else "pred"].to_numpy(dtype="float64")
    return _backtest_frame(rows, pred, run["task"])


def settings(run: dict, threshold=None, cost_bps=None, long_only=None) -> dict:
    """The trading rules to show: each given value, else the run's recorded one."""
    rules = trading_rules(run)
    return {"threshold": float(rules["threshold"] if threshold is None else threshold),
            "cost_bps": float(rules["cost_bps"]) if cost_bps is None else cost_bps,
            "long_only": bool(rules["long_only"] if long_only is None else long_only)}


def at_recorded(run: dict, rules: dict) -> bool:
    """True when ``rules`` are the run's recorded trading rules (a regression run trades the
    sign of its prediction, so its threshold does not count)."""
    rec = settings(run)
    same_t = run.get("task") == "regression" or math.isclose(rules["threshold"], rec["threshold"], abs_tol=1e-9)
    try:
        same_c = math.isclose(float(rules["cost_bps"]), rec["cost_bps"], abs_tol=1e-12)
    except (TypeError, ValueError):
        same_c = False
    return same_t and same_c and bool(rules["long_only"]) == rec["long_only"]


def _deflate(result: BacktestResult, trials: list[float]) -> None:
    """Set ``result.stats`` dsr / n_trials against ``trials`` (this run's Sharpe included)."""
    s = result.stats
    s["n_trials"], dsr = deflate(s["sharpe"], s["days"], s["skew"], s["kurtosis"], trials)
    s["dsr"] = dsr if math.isfinite(s["sharpe"]) else float("nan")


def replay(run: dict, threshold=None, cost_bps=None, long_only=None,
           frame: pd.DataFrame | None = None) -> BacktestResult:
    """The run's backtest at these rules (missing ones: the recorded rules), DSR over the
    registry's trials now (see the module doc)."""
    rules = settings(run, threshold, cost_bps, long_only)
    frame = backtest_frame(run) if frame is None else frame
    cost = float(rules["cost_bps"]) if rules["cost_bps"] is not None else float("nan")
    result = backtest(frame, threshold=rules["threshold"], cost_bps=cost, long_only=rules["long_only"])
    if at_recorded(run, rules) and isinstance(run.get("backtest"), dict):
        d = deflated(run)
        result.stats["n_trials"] = d["n_trials"]
        result.stats["dsr"] = float("nan") if d["dsr"] is None else d["dsr"]
    else:
        recorded = (run.get("backtest") or {}).get("sharpe")
        _deflate(result, dsr_trials(current_trials(run), recorded, result.stats["sharpe"]))
    return result


def always_long(frame: pd.DataFrame, cost_bps: float) -> BacktestResult:
    """Long from the cutoff to the close on every day of ``frame`` that can be traded (both
    prices positive), paying ``cost_bps`` per side: ``backtest`` with P(up) = 1 and
    threshold 0.5 on the same days as the model's."""
    _, _, tradeable = trading_columns(frame)
    df = frame.sort_values("date", ignore_index=True) if "date" in frame.columns else frame
    return backtest(df.assign(prob=np.where(tradeable, 1.0, np.nan)), threshold=0.5,
                    cost_bps=float(cost_bps), long_only=True)


def rolling_sharpe(daily: pd.DataFrame, window: int = ROLLING_DAYS) -> pd.Series:
    """Annualized Sharpe of the trailing ``window`` days of a backtest's daily returns."""
    return stats.rolling_sharpe(daily["strategy_return"], window)


def grid(run: dict, long_only: bool, frame: pd.DataFrame | None = None) -> dict:
    """Sharpe and DSR at every threshold (binary runs; a regression run has one row: the
    sign of its prediction) x cost of :data:`GRID_COSTS`, trials as on screen."""
    frame = backtest_frame(run) if frame is None else frame
    thresholds = GRID_THRESHOLDS if run.get("task") == "binary" else (0.5,)
    return sharpe_grid(frame, thresholds, GRID_COSTS, long_only=bool(long_only),
                       trial_sharpes=current_trials(run), recorded_sharpe=(run.get("backtest") or {}).get("sharpe"))


def decile_returns(pred, realized, n: int = 10) -> pd.DataFrame:
    """Mean realized return per decile of the prediction: columns decile (1 = lowest
    predictions), mean, count, pred_mean. Deciles split the rows with both values, ranked
    by prediction (ties by order), into ``n`` groups whose sizes differ by at most one."""
    p = np.asarray(pred, dtype="float64")
    y = np.asarray(realized, dtype="float64")
    ok = np.isfinite(p) & np.isfinite(y)
    p, y = p[ok], y[ok]
    if len(p) == 0:
        return pd.DataFrame(columns=["decile", "mean", "count", "pred_mean"])
    rank = np.empty(len(p), dtype="int64")
    rank[np.argsort(p, kind="stable")] = np.arange(len(p))
    dec = rank * min(n, len(p)) // len(p) + 1
    out = pd.DataFrame({"decile": dec, "y": y, "p": p}).groupby("decile").agg(
        mean=("y", "mean"), count=("y", "size"), pred_mean=("p", "mean")).reset_index()
    return out


def deciles(run: dict) -> pd.DataFrame:
    """A regression run's out-of-fold :func:`decile_returns` (prediction vs realized label)."""
    oof = _artifact(run, "oof.parquet")
    return decile_returns(oof["pred"], oof["y"])


def recorded_baselines(run: dict) -> dict:
    """``run["baselines"]`` (written at training) or {} for runs trained before it existed."""
    b = run.get("baselines")
    return b if isinstance(b, dict) else {}


def lift(run: dict, rules: dict, model_stats: dict, long_stats: dict | None) -> str | None:
    """The model's Sharpe minus always long's, as text: at the run's recorded settings the
    lift recorded at training with its 95 % bootstrap interval (``run["baselines"]["lift"]``),
    else the difference at ``rules``; None without always long."""
    from ml.modelcard import lift_text, signed

    recorded = lift_text(recorded_baselines(run).get("lift"))
    if recorded is not None and at_recorded(run, rules):
        return recorded
    if long_stats is None:
        return None
    return signed(model_stats.get("sharpe", float("nan")) - long_stats.get("sharpe", float("nan")))


def warnings_of(run: dict) -> list[str]:
    """The run's warning messages (``run["warnings"]``), one line each; [] when absent."""
    out = []
    for w in run.get("warnings") or []:
        msg = w.get("message") if isinstance(w, dict) else w
        if msg:
            out.append(str(msg))
    return out


__all__ = ["GRID_COSTS", "GRID_THRESHOLDS", "ROLLING_DAYS", "always_long", "at_recorded", "backtest_frame",
           "decile_returns", "deciles", "grid", "lift", "recorded_baselines", "replay", "rolling_sharpe", "settings",
           "warnings_of"]
