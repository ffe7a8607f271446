"""The deflated Sharpe ratio's trials: one definition for every page, report and command.

The trials of a run are **all complete runs in the registry on the same symbol and label
at the moment the number is shown**, this run included (a run without a backtest, such as
a multiclass one, is not a trial). Their annualized Sharpe ratios set the expected
maximum Sharpe that the DSR tests against (:func:`ml.stats.deflated_sharpe_ratio`). So
the count grows as the researcher tries more variants, and every view shows the same
count and the same DSR: /backtest, /models, the HTML report and ``runs show --json``
(``backtest.n_trials``, ``backtest.dsr``). The count frozen when the run was trained is
kept in ``run.json`` under ``backtest.n_trials_at_training``.

A multi-head run (:mod:`ml.heads`) registers each head as an ordinary run (a trial of
its own label) and its gated strategy counts as one more trial of the signal head's label.

Studies (:mod:`ml.study`) make many trials at once. A study trial that completes is an
ordinary run (so it is counted above); one that was pruned or failed leaves no run but
still counts: each finished trial writes a small ledger file
``$ALMANAC_HOME/studies/<study_id>/trials/<number>.json`` (:func:`record_study_trial`)
and every trial whose state is not ``complete`` adds one trial with an undefined (NaN)
Sharpe ratio: it raises ``n_trials`` (the expected maximum Sharpe) without entering the
variance of the trials' Sharpe ratios. :func:`trial_sharpes` is that full list.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from almanac import registry
from almanac.atomic import atomic_write_json
from almanac.settings import get_settings
from ml.backtester import deflate, dsr_trials
from ml.runinfo import label_kind, spec_value


STUDIES_DIR = "studies"
#: Multi-head runs (ml.heads): $ALMANAC_HOME/multihead/<id>/multihead.json
MULTIHEAD_DIR = "multihead"
MULTIHEAD_RECORD = "multihead.json"
LEDGER_DIR = "trials"


def _home(home: Path | str | None) -> Path:
    return Path(home).resolve() if home is not None else get_settings().home


def record_study_trial(folder: Path, number: int, state: str, symbol: str, label: str, **fields) -> None:
    """Write the ledger entry of study trial ``number`` (``folder``: the study's folder)."""
    atomic_write_json(Path(folder) / LEDGER_DIR / f"{int(number)}.json",
                      {"number": int(number), "state": state, "symbol": str(symbol).upper(), "label": label,
                       **fields})


def study_trial_states(symbol: str, label: str, home: Path | str | None = None) -> list[str]:
    """The states of every study trial recorded on ``symbol`` / ``label`` (all studies)."""
    root = _home(home) / STUDIES_DIR
    if not root.is_dir():
        return []
    sym, out = str(symbol).upper(), []
    for path in sorted(root.glob(f"[!.]*/{LEDGER_DIR}/*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(entry, dict) and entry.get("symbol") == sym and entry.get("label") == label:
            out.append(str(entry.get("state")))
    return out


def gated_trials(symbol: str, label: str, home: Path | str | None = None) -> list[float]:
    """The Sharpe ratio of every complete multi-head run's gated strategy on ``symbol`` whose
    signal head has ``label``, oldest first (counted as trials by :func:`trial_sharpes`)."""
    root = _home(home) / MULTIHEAD_DIR
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.glob(f"[!.]*/{MULTIHEAD_RECORD}")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        g = rec.get("gated_backtest") if isinstance(rec, dict) else None
        if isinstance(g, dict) and rec.get("symbol") == str(symbol).upper() and g.get("label") == label:
            s = g.get("sharpe")
            out.append(float(s) if isinstance(s, (int, float)) else float("nan"))
    return out


def trial_sharpes(symbol: str, label: str, home: Path | str | None = None) -> list[float]:
    """Every trial on ``symbol`` / ``label``: the Sharpe of each complete run (the registry's
    :func:`~almanac.registry.trial_sharpes`, oldest first), then the Sharpe of each multi-head
    run's gated strategy whose signal head has this label (:func:`gated_trials`), then
    NaN for each study trial that was pruned or failed (it ran, it left no run)."""
    runs = registry.trial_sharpes(symbol, label, home) + gated_trials(symbol, label, home)
    return runs + [math.nan for s in study_trial_states(symbol, label, home) if s != "complete"]


def current_trials(run: dict, home: Path | str | None = None) -> list[float]:
    """Annualized Sharpe of every complete run on the run's symbol and label (NaN where
    undefined), oldest first, the run itself included once it is registered; then NaN for
    every pruned or failed study trial on them (:func:`trial_sharpes`)."""
    symbol, label = spec_value(run, "data", "symbol"), label_kind(run)
    if not symbol or not label:
        return []
    return trial_sharpes(symbol, label, home)


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


__all__ = ["current_backtest", "current_trials", "deflated", "dsr_trials", "record_study_trial", "study_trial_states",
           "trial_sharpes", "gated_trials", "STUDIES_DIR", "MULTIHEAD_DIR"]
