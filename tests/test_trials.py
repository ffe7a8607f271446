"""One trial count and one DSR for a run, wherever it is shown (ml.trials)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ml import stats
from ml.trials import current_trials, deflated, dsr_trials


def _run(home, run_id, sharpe, symbol="ES", label="rest_of_day", created="2026-01-01T00:00:00"):
    run = {"run_id": run_id, "status": "complete", "created_at": created,
           "spec": {"data": {"symbol": symbol}, "label": {"kind": label}},
           "backtest": {"sharpe": sharpe, "days": 500, "skew": -0.2, "kurtosis": 4.0, "n_trials": 1}}
    folder = home / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run))
    return run


def test_trials_are_every_complete_run_on_the_symbol_and_label_now(tmp_path):
    a = _run(tmp_path, "a", 1.2, created="2026-01-01")
    _run(tmp_path, "b", 0.4, created="2026-01-02")
    _run(tmp_path, "c", 2.0, label="direction")  # another label: not a trial
    _run(tmp_path, "d", 3.0, symbol="NQ")        # another symbol: not a trial
    assert current_trials(a, tmp_path) == [1.2, 0.4]
    got = deflated(a, tmp_path)
    var_day = np.var([1.2, 0.4], ddof=1) / 252  # the DSR's convention: per-day variance of annualized Sharpes
    want = stats.deflated_sharpe_ratio(1.2 / math.sqrt(252), 500, -0.2, 4.0, 2, var_day)
    assert got == {"n_trials": 2, "dsr": pytest.approx(want, rel=1e-12)}
    _run(tmp_path, "e", -0.3, created="2026-01-03")  # a third variant tried later lowers the DSR of a
    later = deflated(a, tmp_path)
    assert later["n_trials"] == 3 and later["dsr"] < got["dsr"]


def test_a_single_trial_gives_the_psr(tmp_path):
    a = _run(tmp_path, "a", 1.2)
    psr = stats.probabilistic_sharpe_ratio(1.2 / math.sqrt(252), 500, -0.2, 4.0)
    assert deflated(a, tmp_path) == {"n_trials": 1, "dsr": pytest.approx(psr, rel=1e-12)}


def test_the_screen_sharpe_replaces_the_recorded_one_once():
    assert dsr_trials([1.0, 0.5, 1.0], 1.0, 0.7) == [0.5, 1.0, 0.7]
    assert dsr_trials([float("nan"), 0.5], None, 0.2) == [0.5, 0.2]
    assert dsr_trials([0.5], 9.9, 0.2) == [0.5, 0.2]  # not registered yet: appended


def test_a_run_without_backtest_has_no_dsr(tmp_path):
    assert deflated({"spec": {}, "backtest": None}, tmp_path) == {"n_trials": None, "dsr": None}


def test_current_backtest_keeps_the_frozen_count_beside_the_current_one(tmp_path):
    from ml.trials import current_backtest

    a = _run(tmp_path, "a", 1.2, created="2026-01-01")  # an old run: n_trials only, no *_at_training
    _run(tmp_path, "b", 0.4, created="2026-01-02")
    bt = current_backtest(a, tmp_path)
    assert (bt["n_trials"], bt["n_trials_at_training"]) == (2, 1)
    assert bt["dsr"] == deflated(a, tmp_path)["dsr"] and bt["sharpe"] == 1.2
    assert current_backtest({"spec": {}, "backtest": None}, tmp_path) is None
