"""A run's regimes when it was trained without the ``hmm_regime`` set: computed on first
view, then kept with the run.

A run with ``hmm_regime`` fits each fold's HMM while it trains (its model reads the regime
probabilities) and records the regime of every out-of-fold day (``oof.parquet["regime"]``,
``run.json["regimes"]``, :mod:`ml.regimes`). Any other run on a symbol can be sliced by
regime too, but a user who never opens the "by regime" cards should not wait for five HMM
fits in every training (about half a second: the EM of :func:`ml.regimes.fit_hmm`). So
:func:`ensure` fits them the first time /evaluate, /backtest or an ensemble asks, with the
same inputs the runner would have used (the run's session table from the feature cache,
each fold's training days, its seed and ``features.hmm_states``): the same HMMs, the same
states. They are written to the run folder, ``regimes.parquet`` (date, regime) and then
``regimes.json`` (the record; written last, so its presence means both are complete), each
atomically; later calls read them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from almanac import registry
from ml import regimes

STATES_FILE = "regimes.parquet"
RECORD_FILE = "regimes.json"


def ensure(run_id: str, home=None) -> tuple[dict, pd.DataFrame]:
    """``(run, oof)``: the run record with ``"regimes"`` and its out-of-fold rows with a
    ``regime`` column (state index, -1 none), computed and kept on first call for a run
    trained without regimes. A table dataset's run (its rows are not trading days) and a run
    without folds come back unchanged (no ``regime`` column)."""
    run = registry.get_run(run_id, home=home)
    oof = registry.read_artifact(run_id, "oof.parquet", home=home)
    if "regime" in oof.columns and regimes.names_of(run):  # recorded at training (hmm_regime)
        return run, oof
    spec = run.get("spec") or {}
    if (spec.get("data") or {}).get("table") or not spec.get("data", {}).get("symbol") or not run.get("folds"):
        return run, oof
    folder = registry.run_path(run_id, home=home)
    if (folder / RECORD_FILE).exists():
        record = json.loads((folder / RECORD_FILE).read_text())
        states = pd.read_parquet(folder / STATES_FILE)
    else:
        from almanac.atomic import atomic_write, atomic_write_json

        record, states = compute(run, oof, home)
        atomic_write(folder / STATES_FILE, lambda tmp: states.to_parquet(tmp, index=False))
        atomic_write_json(folder / RECORD_FILE, record)
    by_date = pd.Series(states["regime"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(states["date"]))
    oof = oof.assign(regime=by_date.reindex(pd.DatetimeIndex(oof["date"])).fillna(-1).to_numpy(dtype="int64"))
    return {**run, "regimes": record}, oof


def compute(run: dict, oof: pd.DataFrame, home=None) -> tuple[dict, pd.DataFrame]:
    """Each fold's HMM fitted on its training days (:func:`ml.regimes.regime_probs`, as
    :class:`ml.regimes.RunRegimes` does during training) and the state of each out-of-fold
    day of ``oof`` (the run's ``oof.parquet``): ``(record, DataFrame[date, regime])``."""
    from almanac.store import Store
    from features import build_features

    spec = run["spec"]
    data, feats = spec["data"], spec.get("features") or {}
    ft = build_features(data["symbol"], cutoff=feats.get("cutoff", "10:15"), sets=regimes.bar_sets(feats["sets"]),
                        cross_assets=feats.get("cross_assets") or [], start=data.get("start"), end=data.get("end"),
                        store=Store(home))  # the run's own build: read from the feature cache
    obs = regimes.observations(ft.sessions)
    k = int(feats.get("hmm_states") or regimes.DEFAULT_STATES)
    seed = int(run.get("seed") or 0)
    dates = pd.DatetimeIndex(oof["date"])
    state = np.full(len(oof), -1, dtype="int64")
    folds = []
    for i, f in enumerate(run["folds"]):
        hmm, probs = regimes.regime_probs(obs.loc[:pd.Timestamp(f["test_end"])], f["train_start"], f["train_end"],
                                          k, seed)
        folds.append(hmm.record() if hmm is not None else None)
        rows = np.flatnonzero(oof["fold"].to_numpy() == int(f.get("fold", i)))
        state[rows] = regimes.most_likely(probs.reindex(dates[rows]).to_numpy())
    record = {"method": regimes.METHOD, "n_states": k, "names": list(regimes.state_names(k)), "features": False,
              "seed": seed, "folds": folds, "final": None, "computed": "on first view (trained without hmm_regime)"}
    return record, pd.DataFrame({"date": dates, "regime": state})


__all__ = ["ensure", "compute", "STATES_FILE", "RECORD_FILE"]
