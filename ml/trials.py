"""The deflated Sharpe ratio's trials: one definition for every page, report and command.

The trials of a run are **all complete runs in the registry on the same symbol and label
at the moment the number is shown**, this run included (a run without a backtest, such as
a multiclass one, is not a trial). Their annualized Sharpe ratios set the expected
maximum Sharpe that the DSR tests against (:func:`ml.stats.deflated_sharpe_ratio`). So
the count grows as the researcher tries more variants, and every view shows the same
count and the same DSR: /backtest, /models, the HTML report and ``runs show --json``
(``backtest.n_trials``, ``backtest.dsr``). The count frozen when the run was trained is
kept in ``run.json`` under ``backtest.n_trials_at_training``.
"""

from __future__ import annotations

import math
from pathlib import Path

from almanac import registry
from ml.backtester import deflate, dsr_trials
from ml.runinfo import label_kind, spec_value


def current_trials(run: dict, home: Path | str | None = None) -> list[float]:
    """Annualized Sharpe of every complete run on the run's symbol and label (NaN where
    undefined), oldest first; the run itself included once it is registered."""
    symbol, label = spec_value(run, "data", "symbol"), label_kind(run)
    if not symbol or not label:
        return []
    return registry.trial_sharpes(symbol, label, home)


def deflated(run: dict, home: Path | str | None = None, trials: list[float] | None = None) -> dict:
    """``{"n_trials", "dsr"}`` of the run's recorded backtest against the trials now in the
    registry (or ``trials``, the :func:`current_trials` of the run when the caller has them);
    ``{"n_trials": None, "dsr": None}`` for a run without a backtest."""
    bt = run.get("backtest")
    if not isinstance(bt, dict):
        return {"n_trials": None, "dsr": None}
    sr, days = bt.get("sharpe"), bt.get("days")
    sk, ku = bt.get("skew"), bt.get("kurtosis")
    trials = dsr_trials(current_trials(run, home) if trials is None else trials, sr,
                        sr if sr is not None else float("nan"))
    if not all(isinstance(v, (int, float)) for v in (sr, days, sk, ku)) or not math.isfinite(sr):
        return {"n_trials": len(trials), "dsr": None}
    n_trials, dsr = deflate(sr, int(days), float(sk), float(ku), trials)
    return {"n_trials": n_trials, "dsr": None if dsr is None or not math.isfinite(dsr) else float(dsr)}


def current_backtest(run: dict, home: Path | str | None = None, trials: list[float] | None = None):
    """The run's ``backtest`` record with ``n_trials`` / ``dsr`` as they are NOW
    (:func:`deflated`) and the values frozen at training as ``n_trials_at_training`` /
    ``dsr_at_training`` (read from ``n_trials`` / ``dsr`` for runs trained before those keys
    existed); None (or whatever is recorded) for a run without a backtest."""
    bt = run.get("backtest")
    if not isinstance(bt, dict):
        return bt
    return {**bt, "n_trials_at_training": bt.get("n_trials_at_training", bt.get("n_trials")),
            "dsr_at_training": bt.get("dsr_at_training", bt.get("dsr")), **deflated(run, home, trials)}


__all__ = ["current_backtest", "current_trials", "deflated", "dsr_trials"]
