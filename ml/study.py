"""Studies: Optuna searches and feature-set ablations inside the walk-forward runner.

A study (:mod:`almanac.study_spec`) varies a base experiment spec; every trial is an
ordinary run of :func:`ml.runner.run_experiment` on the data BEFORE the holdout, so the
runner's leakage rules and audits hold in every trial. Optuna proposes and records; the
lab writes no search algorithm of its own.

* **search** -- :class:`optuna.samplers.TPESampler` seeded from the study's seed (each
  proposal uses a sampler seeded with ``(seed, trials so far)``, so a rerun, a resumed
  study and a worker process propose the same trials given the same history). Each
  fold's score of the objective (the running mean over the folds so far) is reported as
  the trial's intermediate value; a :class:`optuna.pruners.MedianPruner` stops a trial
  whose running score is worse than the median of the earlier trials at the same fold
  (``pruner: {kind: none}`` turns it off). A pruned trial leaves no run.
* **ablation** -- no sampler: the base spec with each feature set alone, each left out and
  all of them, enqueued as fixed trials; :func:`ablation_table` gives the metric per
  combination with a 95 % stationary-block-bootstrap interval (:mod:`ml.baselines`, the same
  resampled days for every combination) and the difference from the full set with its
  own interval.
* **holdout** -- when the study ends, the best trial is refitted once on every day before
  ``holdout.start`` and scored on the days from it (:func:`ml.runner.holdout_predictions`);
  its DSR counts every trial of the study (pruned and failed ones with an undefined
  Sharpe).

Storage: ``$ALMANAC_HOME/studies/<study_id>/`` holds ``study.json`` (the validated study
and the data hashes), ``journal.log`` (Optuna's :class:`~optuna.storages.JournalStorage`
on a :class:`~optuna.storages.journal.JournalFileBackend`: it survives an interrupted
study), ``trials/<number>.json`` (the ledger :mod:`ml.trials` counts into every DSR),
``holdout.json`` and ``ablation.json``. The id is ``<name>-<8 hex>`` of the study and the
data hashes, so running the same study file on the same data again resumes it.

Trials: :func:`run_trial` runs ONE trial given the study id and the trial number, a
plain function any process may call (a worker of ``--jobs N``, later a Celery task).
A trial interrupted by Ctrl-C or a cancel is marked failed with ``interrupted`` and is
proposed again (same parameters) when the study resumes; completed trials are kept.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from almanac.atomic import atomic_write_json
from almanac.errors import AlmanacError, DataError, NotFoundError, SpecError
from almanac.settings import REPO_ROOT, Limits, get_limits, get_settings
from almanac.spec import MIN_TEST_DAYS, spec_from_dict, validate_against_store
from almanac.store import Store
from almanac.study_spec import (SUBSET_SEP, StudySpec, ablation_combinations, set_path, study_from_dict,
                                subset_choices)
from ml.models import check_params, valid_params
from ml.trials import LEDGER_DIR, STUDIES_DIR, record_study_trial

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
JOURNAL = "journal.log"
META = "study.json"
LOCK = ".lock"
STUDY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}-[0-9a-f]{8}$")
#: Bootstrap resamples of the ablation intervals for metrics without a vectorized form.
SLOW_RESAMPLES = 200


# ---------------------------------------------------------------------- paths and ids


def studies_dir(home: Path | str | None = None) -> Path:
    return (Path(home).resolve() if home is not None else get_settings().home) / STUDIES_DIR


def check_study_id(study_id: str) -> str:
    sid = str(study_id).strip()
    if not STUDY_ID_RE.match(sid):
        raise AlmanacError(f"{study_id!r} is not a study id: copy one from `python -m almanac study list`")
    return sid


def study_path(study_id: str, home: Path | str | None = None) -> Path:
    path = studies_dir(home) / check_study_id(study_id)
    if not (path / META).is_file():
        raise NotFoundError(f"no study {study_id} in {studies_dir(home)}: list them with "
                            "`python -m almanac study list`")
    return path


def study_meta(study_id: str, home: Path | str | None = None) -> dict:
    """The stored ``study.json`` of a study (the study, its data hashes, its storage)."""
    return json.loads((study_path(study_id, home) / META).read_text())


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "study"


def data_hashes(study: StudySpec, store: Store) -> dict[str, str]:
    spec = study.spec
    syms = [spec.data.symbol] + (spec.features.cross_assets if "cross_asset" in spec.features.sets
                                 or "features.sets" in study.search or study.kind == "ablation" else [])
    return {f"{s}/{f}": store.entry(s, f).sha256 for s in syms for f in ("1min", "1d") if store.has(s, f)}


def study_id_for(study: StudySpec, hashes: dict[str, str]) -> str:
    import hashlib

    digest = hashlib.sha256((study.fingerprint() + json.dumps(hashes, sort_keys=True)).encode()).hexdigest()
    return f"{_slug(study.name)}-{digest[:8]}"


# ---------------------------------------------------------------------- checks (nothing written)


def _param_kinds(study: StudySpec) -> list[str]:
    dim = study.search.get("model.kind")
    return list(dim.choice) if dim is not None and dim.choice else [study.spec.model.kind]


def check_study(study: StudySpec, store: Store | None = None) -> dict:
    """The checks that need the data or the model libraries; raises one line, writes nothing.

    * a ``model.params.<name>`` that no candidate model kind has (an unknown path), and each
      end of its range with the library's own rules on every kind that has it;
    * the trials' spec (data before the holdout) against the store: enough labelled days
      for the validation scheme (:func:`almanac.spec.validate_against_store`);
    * at least 20 labelled days from ``holdout.start`` on.
    """
    store = store if store is not None else Store()
    task = study.task
    kinds = _param_kinds(study)
    for path, dim in study.search.items():
        if not path.startswith("model.params."):
            continue
        name = path.split(".", 2)[2]
        having = [k for k in kinds if name in valid_params(k, task)]
        if not having:
            raise SpecError(f"study field search.{path}: no model kind of this search ({', '.join(kinds)}) has a "
                            f"parameter {name!r}: remove it or check its spelling")
        values = dim.choice if dim.choice is not None else (dim.int_ or dim.float_)
        for k in having:
            for v in values:
                try:
                    spec_from_dict(set_path(study.trial_spec_dict(), path, v))
                    check_params(k, task, {**_own_params(study.spec, k), name: v}, seed=study.spec.seed)
                except SpecError as exc:
                    raise SpecError(f"study field search.{path}: the value {v!r} is refused for {k} "
                                    f"({exc.message})") from None
    trial_spec = spec_from_dict(study.trial_spec_dict())
    try:
        days = validate_against_store(trial_spec, store)
    except SpecError as exc:
        if study.holdout is None:
            raise
        raise SpecError(f"study field holdout.start: {study.holdout.start} leaves too few days before it for the "
                        f"validation scheme ({exc.message})") from None
    if study.holdout is not None:
        after = spec_from_dict({**study.spec.to_dict(), "data": {**study.spec.to_dict()["data"],
                                                                  "start": study.holdout.start.isoformat()},
                                "validation": {"n_splits": 1, "gap": 0, "min_train": 20}})
        try:
            held = validate_against_store(after, store)["days"]
        except AlmanacError:
            held = 0
        if held < MIN_TEST_DAYS:
            raise SpecError(f"study field holdout.start: only {held} labelled days from {study.holdout.start} on, "
                            f"fewer than {MIN_TEST_DAYS}: choose an earlier holdout start")
    return days


def _own_params(spec, kind: str) -> dict:
    return dict(spec.model.params) if spec.model.kind == kind else {}


# ---------------------------------------------------------------------- optuna plumbing


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


_SHIELD = {"depth": 0}


@contextlib.contextmanager
def shielded():
    """Hold SIGINT and SIGTERM until the block ends, then deliver them as usual.

    Optuna's journal writes take a file lock and append a line; an interrupt in the middle
    leaves a stale lock or half a line behind. So every journal write (and the few
    multi-write steps: ask, tell) runs shielded: Ctrl-C or a cancel arrives a few
    milliseconds later, between writes. Only the main thread receives signals; elsewhere
    (and when nested) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread() or _SHIELD["depth"]:
        yield
        return
    pending: list[int] = []
    prev = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in (signal.SIGINT,
                                                                                        signal.SIGTERM)}
    _SHIELD["depth"] += 1
    try:
        yield
    finally:
        _SHIELD["depth"] -= 1
        for s, h in prev.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        for s in dict.fromkeys(pending):
            signal.raise_signal(s)


def _storage(folder: Path):
    """The study's Optuna storage: the journal file in its folder, or Redis for a study
    created with ``ALMANAC_REDIS_URL`` set (``"storage": "redis"`` in study.json)."""
    if _is_redis(folder):
        from ml import scale

        return scale.storage(folder.name, shield=shielded)
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    class _Backend(JournalFileBackend):
        def append_logs(self, logs):
            with shielded():
                super().append_logs(logs)

    return optuna.storages.JournalStorage(_Backend(str(folder / JOURNAL)))


def _is_redis(folder: Path) -> bool:
    meta = _read_json(folder / META)
    return isinstance(meta, dict) and meta.get("storage") == "redis"


def _pruner(study: StudySpec):
    optuna = _optuna()
    if study.kind == "ablation" or study.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=study.pruner.n_startup_trials,
                                       n_warmup_steps=study.pruner.n_warmup_steps)


def _load(study_id: str, home, sampler=None):
    """(StudySpec, meta, optuna Study, folder) of a stored study."""
    folder = study_path(study_id, home)
    meta = json.loads((folder / META).read_text())
    study = study_from_dict(meta["study"])
    ost = _optuna().load_study(study_name=study_id, storage=_storage(folder), sampler=sampler,
                               pruner=_pruner(study))
    return study, meta, ost, folder


def distributions(study: StudySpec) -> dict:
    """Optuna distributions of the study's dimensions (``features.sets``: its subsets)."""
    d = _optuna().distributions
    if study.kind == "ablation":
        return {"features.sets": d.CategoricalDistribution(
            [SUBSET_SEP.join(c) for c in ablation_combinations(study.spec.features.sets)])}
    out = {}
    for path, dim in study.search.items():
        t = dim.type
        if t == "choice":
            out[path] = d.CategoricalDistribution(list(dim.choice))
        elif t == "subsets":
            out[path] = d.CategoricalDistribution(subset_choices(dim.subsets))
        elif t == "int":
            out[path] = d.IntDistribution(int(dim.int_[0]), int(dim.int_[1]), log=dim.log)
        else:
            out[path] = d.FloatDistribution(float(dim.float_[0]), float(dim.float_[1]), log=dim.log)
    return out


def trial_spec(study: StudySpec, params: dict, number: int) -> tuple[dict, list[str]]:
    """(the experiment spec dict of a trial, the searched model parameters its model kind
    does not have and so ignores)."""
    d = study.trial_spec_dict()
    kind = params.get("model.kind", d["model"]["kind"])
    if kind != d["model"]["kind"]:
        d["model"] = {"kind": kind, "params": {}}
    ignored = []
    names = set(valid_params(kind, study.task))
    for path, value in params.items():
        if path.startswith("model.params.") and path.split(".", 2)[2] not in names:
            ignored.append(path)
            continue
        set_path(d, path, value)
    d["name"] = f"{study.name[:80]}-t{number}"
    return d, ignored


def _counted(t) -> bool:
    return not t.user_attrs.get("interrupted")


def _finished(t) -> bool:
    return t.state.is_finished() and _counted(t)


# ---------------------------------------------------------------------- create / resume


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def prepare(study: StudySpec, store: Store | None = None) -> tuple[str, Path]:
    """Check the study (nothing written on a refusal), then create or reopen its folder and
    Optuna study; return ``(study_id, folder)``."""
    store = store if store is not None else Store()
    check_study(study, store)
    hashes = data_hashes(study, store)
    sid = study_id_for(study, hashes)
    folder = studies_dir(store.home) / sid
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LEDGER_DIR).mkdir(exist_ok=True)
    meta = _read_json(folder / META)
    if isinstance(meta, dict) and meta.get("study", {}).get("budget") != study.to_dict()["budget"]:
        atomic_write_json(folder / META, {**meta, "study": {**meta["study"], "budget": study.to_dict()["budget"]}})
    if not isinstance(meta, dict):
        atomic_write_json(folder / META, {"study_id": sid, "name": study.name, "kind": study.kind,
                                          "created_at": _now(), "symbol": study.spec.data.symbol,
                                          "label": study.spec.label.kind, "data_hashes": hashes, "base": study.base,
                                          "study": study.to_dict(),
                                          "storage": "redis" if get_settings().redis_url else "journal"})
    optuna = _optuna()
    ost = optuna.create_study(study_name=sid, storage=_storage(folder), load_if_exists=True,
                              direction=study.objective.direction)
    if study.kind == "ablation" and not ost.trials:
        for combo in ablation_combinations(study.spec.features.sets):
            ost.enqueue_trial({"features.sets": SUBSET_SEP.join(combo)})
    return sid, folder


def _recover(ost, folder: Path) -> int:
    """Mark trials left RUNNING by a killed run as interrupted and enqueue their parameters
    again; return how many."""
    from optuna.trial import TrialState

    n = 0
    from optuna.trial import Trial

    for t in ost.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        Trial(ost, t._trial_id).set_user_attr("interrupted", True)
        ost.tell(t.number, state=TrialState.FAIL)
        ost.enqueue_trial(t.params, skip_if_exists=False)
        n += 1
    return n


@contextlib.contextmanager
def _running(folder: Path):
    """Hold the study's run lock (one ``study run`` of a study at a time)."""
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlmanacError(f"study {folder.name} is already running: wait for it or cancel it") from None
        yield
    finally:
        os.close(fd)


def next_trial(study_id: str, home=None, deadline: float | None = None) -> int | None:
    """Propose the next trial of the study (under the study's ask lock); its number, or None
    when the budget (or ``deadline``, a ``time.time()``) is spent."""
    from optuna.trial import TrialState

    folder = study_path(study_id, home)
    with shielded(), _ask_lock(folder):
        study = study_from_dict(json.loads((folder / META).read_text())["study"])
        ost = _optuna().load_study(study_name=study_id, storage=_storage(folder))
        if _is_redis(folder):
            from ml import scale

            scale.fail_stale(ost)  # a dead worker's trial is proposed again
        trials = ost.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if deadline is not None and time.time() > deadline:
            return None
        if not waiting and sum(_counted(t) for t in trials) >= _budget(study):
            return None
        seed = (study.sampler_seed * 1_000_003 + len(trials)) % 2**32
        ost.sampler = _optuna().samplers.TPESampler(seed=seed)
        return ost.ask(distributions(study)).number


@contextlib.contextmanager
def _ask_lock(folder: Path):
    """One proposal at a time: a file lock in the study folder, or a Redis lock for a study
    stored in Redis (its workers may run on other machines)."""
    if _is_redis(folder):
        from ml import scale

        with scale.ask_lock(folder.name):
            yield
        return
    with open(folder / ".ask.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _budget(study: StudySpec) -> int:
    return len(ablation_combinations(study.spec.features.sets)) if study.kind == "ablation" \
        else study.budget.n_trials


# ---------------------------------------------------------------------- one trial


def _fold_score(metric: str, task: str, rows: pd.DataFrame, pred: np.ndarray, spec) -> float:
    from ml import evaluation
    from ml.backtester import backtest
    from ml.runner import backtest_frame

    if metric == "sharpe":
        frame = backtest_frame(rows, pred, task)
        return backtest(frame, threshold=spec.backtest.threshold, cost_bps=spec.backtest.cost_bps,
                        long_only=spec.backtest.long_only).stats["sharpe"]
    return evaluation.scores(task, rows["y"].to_numpy(), pred)[metric]


def _value(run: dict, metric: str) -> float:
    v = (run.get("backtest") or {}).get("sharpe") if metric == "sharpe" else (run.get("metrics") or {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan


def run_trial(study_id: str, number: int, home: Path | str | None = None, progress: Progress | None = None,
              worker: str | None = None, task_id: str | None = None) -> dict:
    """Run trial ``number`` of study ``study_id`` (proposed by :func:`next_trial`) and record
    its outcome; return ``{"number", "state", "value", "run_id"}``.

    A complete trial is a registered run with ``study_id`` and ``trial`` in its run.json;
    a pruned or failed one (e.g. parameters the library refuses) is recorded in the study
    and its ledger. Ctrl-C / SIGTERM: the trial is marked interrupted and the interrupt
    goes on. ``worker`` (default: this ``host:pid``) is recorded in the trial's user attrs
    and the run's run.json; ``task_id`` (a Celery task's) in the trial's. A storage with a
    heartbeat (Redis) gets one from Optuna's heartbeat thread while the trial runs.
    """
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import Trial

    store = Store(home) if home is not None else Store()
    study, meta, ost, folder = _load(study_id, store.home)
    frozen = ost.trials[number]
    trial = Trial(ost, frozen._trial_id)
    spec_dict, ignored = trial_spec(study, frozen.params, number)
    if ignored:
        trial.set_user_attr("ignored_params", ignored)
    spec = spec_from_dict(spec_dict)
    worker = worker or f"{socket.gethostname()}:{os.getpid()}"
    heartbeat = get_heartbeat_thread(frozen._trial_id, ost._storage)
    heartbeat.start()  # before anything else: a worker killed from here on is noticed
    try:
        trial.set_user_attr("worker", worker)
        if task_id:
            trial.set_user_attr("task_id", task_id)
        return _run_trial(study_id, study, meta, ost, folder, trial, number, store, spec, worker, progress)
    except BaseException:  # an interrupt before the run started (a cancel right after the ask)
        mark_interrupted(study_id, number, store.home, ost)
        raise
    finally:
        heartbeat.join()


def _run_trial(study_id, study, meta, ost, folder, trial, number, store, spec, worker, progress) -> dict:
    from optuna import TrialPruned
    from optuna.trial import TrialState

    metric, task = study.objective.metric, study.task
    scores: list[float] = []

    def on_fold(i, n, rows, pred):
        scores.append(_fold_score(metric, task, rows, pred, spec))
        finite = [s for s in scores if math.isfinite(s)]
        if finite:
            trial.report(float(np.mean(finite)), step=i)
            if trial.should_prune():
                raise TrialPruned(f"pruned after fold {i + 1} of {n}")

    ledger = dict(symbol=meta["symbol"], label=meta["label"])
    t0 = time.perf_counter()
    try:
        run = _run_quietly(spec, store, on_fold, {"study_id": study_id, "trial": int(number), "worker": worker},
                           progress)
    except TrialPruned:
        with shielded():
            return _close(ost, trial, folder, number, "pruned", None, ledger, folds=len(scores),
                          run_seconds=time.perf_counter() - t0)
    except AlmanacError as exc:
        with shielded():
            return _close(ost, trial, folder, number, "failed", None, ledger, error=exc.message)
    except BaseException:  # Ctrl-C, a cancel's SIGTERM, a bug: the trial did not finish
        with shielded(), contextlib.suppress(Exception):
            trial.set_user_attr("interrupted", True)
            ost.tell(number, state=TrialState.FAIL)
        raise
    with shielded():  # the run is registered: record it whatever arrives now
        value, sharpe = _value(run, metric), _value(run, "sharpe")
        attrs = {"run_id": run["run_id"], "sharpe": None if math.isnan(sharpe) else sharpe, "folds": len(scores),
                 "run_seconds": time.perf_counter() - t0}
        if math.isnan(value):
            return _close(ost, trial, folder, number, "failed", None, ledger,
                          error=f"{metric} is undefined for this run", **attrs)
        return _close(ost, trial, folder, number, "complete", value, ledger, **attrs)


def mark_interrupted(study_id: str, number: int, home=None, ost=None) -> bool:
    """Mark trial ``number`` interrupted (failed, proposed again on resume) if it is still
    running, e.g. after a cancel that arrived before :func:`run_trial` could; True if it was."""
    from optuna.trial import Trial, TrialState

    with shielded():
        try:
            ost = ost if ost is not None else _load(study_id, home)[2]
            frozen = ost.trials[number]
            if frozen.state != TrialState.RUNNING:
                return False
            Trial(ost, frozen._trial_id).set_user_attr("interrupted", True)
            ost.tell(number, state=TrialState.FAIL)
            return True
        except Exception as exc:  # noqa: BLE001 -- the interrupt goes on; a stale trial is recovered later
            log.warning("trial %d of %s: could not mark it interrupted: %r", number, study_id, exc)
            return False


def refuse_trial(study_id: str, number: int, home, error: str, worker: str) -> dict:
    """Record trial ``number`` as failed with ``error`` without computing anything (a worker
    that reads other data than the study's)."""
    from optuna.trial import Trial

    store = Store(home) if home is not None else Store()
    _study, meta, ost, folder = _load(study_id, store.home)
    trial = Trial(ost, ost.trials[number]._trial_id)
    with shielded():
        return _close(ost, trial, folder, number, "failed", None, dict(symbol=meta["symbol"], label=meta["label"]),
                      error=error, worker=worker)


def _close(ost, trial, folder: Path, number: int, state: str, value, ledger: dict, **attrs) -> dict:
    """Record a finished trial: its attributes, its state in Optuna, its ledger entry."""
    from optuna.trial import TrialState

    for k, v in attrs.items():
        trial.set_user_attr(k, v)
    if state == "complete":
        ost.tell(number, value)
    else:
        ost.tell(number, state=TrialState.PRUNED if state == "pruned" else TrialState.FAIL)
    keep = {k: attrs[k] for k in ("run_id", "error", "folds") if k in attrs}
    record_study_trial(folder, number, state, value=value, **keep, **ledger)
    return {"number": number, "state": state, "value": value, "run_id": attrs.get("run_id"),
            **({"error": attrs["error"]} if "error" in attrs else {})}


def _run_quietly(spec, store, on_fold, extra, progress):
    from ml.runner import run_experiment

    return run_experiment(spec, store=store, on_fold=on_fold, extra=extra,
                          progress=(lambda f, s: progress(f, s)) if progress else None)


# ---------------------------------------------------------------------- workers


class _Stop(KeyboardInterrupt):
    """SIGTERM in a worker: stop like Ctrl-C (the running trial is marked interrupted)."""


def _on_term(signum, frame):  # noqa: ARG001
    raise _Stop()


def work(study_id: str, home: str | None, deadline: float | None = None, progress: Progress | None = None) -> int:
    """Run trials of the study until its budget is spent; return how many ran here."""
    n = 0
    while True:
        number = next_trial(study_id, home, deadline)
        if number is None:
            return n
        run_trial(study_id, number, home, progress=progress)
        n += 1


def worker_main(study_id: str, home: str, deadline: float | None) -> None:
    """A ``--jobs`` worker process: SIGTERM stops it like Ctrl-C."""
    signal.signal(signal.SIGTERM, _on_term)
    try:
        work(study_id, home, deadline)
    except KeyboardInterrupt:
        pass


def _check_jobs(jobs: int) -> int:
    limits: Limits = get_limits()
    var = Limits.var("study_jobs")
    if not isinstance(jobs, int) or jobs < 1:
        raise AlmanacError(f"--jobs {jobs!r} is not a positive number of worker processes: use e.g. --jobs 2")
    if jobs > limits.study_jobs:
        raise AlmanacError(f"--jobs {jobs} is more than the {limits.study_jobs} worker processes a study may use "
                           f"({var}): lower --jobs or raise {var}")
    return jobs


def _progress_text(ost, budget: int, direction: str) -> tuple[int, str]:
    done = [t for t in ost.get_trials(deepcopy=False) if _finished(t)]
    values = [t.value for t in done if t.value is not None and t.state.name == "COMPLETE"]
    best = (max(values) if direction == "maximize" else min(values)) if values else None
    return len(done), f"trial {min(len(done) + 1, budget)}/{budget}" + (f" · best {best:.3f}" if best is not None
                                                                        else "")


def run_study(study: StudySpec | dict, store: Store | None = None, jobs: int = 1,
              progress: Progress | None = None, started: Callable[[str], None] | None = None) -> dict:
    """Run (or resume) a study to its budget, then score the holdout (and the ablation);
    return :func:`study_report`. Ctrl-C / a cancel keeps the completed trials (run again to
    resume). ``started(study_id)`` is called once the study is checked and stored."""
    study = study_from_dict(study)
    jobs = _check_jobs(jobs)
    store = store if store is not None else Store()
    if get_settings().redis_url:  # Redis down: one line, and nothing written
        from ml import scale

        scale.ping()
    sid, folder = prepare(study, store)
    if started is not None:
        started(sid)
    report = progress or (lambda f, s: None)
    budget = _budget(study)
    queued = bool(get_settings().redis_url)
    with _running(folder):
        if queued and not _is_redis(folder):
            raise AlmanacError(f"study {sid} was created without ALMANAC_REDIS_URL and keeps its trials in "
                               f"{folder / JOURNAL}: unset ALMANAC_REDIS_URL to resume it here")
        if not queued and _is_redis(folder):
            raise AlmanacError(f"study {sid} keeps its trials in Redis: set ALMANAC_REDIS_URL to resume it")
        ost = _optuna().load_study(study_name=sid, storage=_storage(folder))
        deadline = time.time() + study.budget.timeout_s if study.budget.timeout_s else None
        if queued:  # trials on the Celery workers (ml.scale); --jobs is theirs to set
            from ml import scale

            meta = json.loads((folder / META).read_text())
            scale.run_queued(sid, store.home, meta["data_hashes"], budget, deadline,
                             load=lambda: _optuna().load_study(study_name=sid, storage=_storage(folder)),
                             progress_text=lambda o: _progress_text(o, budget, study.objective.direction),
                             report=report)
        else:
            _run_local(sid, store, ost, folder, jobs, budget, deadline, study.objective.direction, report)
        report(0.99, "scoring the holdout" if study.holdout else "summarizing")
        finish(sid, store.home)
    report(1.0, "done")
    return study_report(sid, store.home)


def _run_local(sid, store, ost, folder, jobs, budget, deadline, direction, report) -> None:
    """The trials in local processes: ``jobs - 1`` worker processes, and this process works
    too (its libraries are loaded already)."""
    _recover(ost, folder)
    procs = _spawn_workers(sid, store.home, jobs - 1, deadline)
    try:
        while True:
            done, text = _progress_text(ost, budget, direction)
            report(done / budget, text)
            number = next_trial(sid, store.home, deadline)
            if number is None:
                break
            run_trial(sid, number, store.home,
                      progress=lambda f, s, d=done, t=text: report((d + f) / budget, f"{t} · {s}"))
        while any(p.poll() is None for p in procs):  # the workers' last trials
            done, text = _progress_text(ost, budget, direction)
            report(done / budget, text)
            time.sleep(0.25)
    except BaseException:
        _stop_workers(procs)
        raise
    bad = [p.returncode for p in procs if p.returncode]
    if bad:
        raise AlmanacError(f"{len(bad)} study worker(s) stopped with exit code {bad[0]}: see the log above; run "
                           "the study again to resume it")


def _spawn_workers(sid: str, home, n: int, deadline: float | None) -> list[subprocess.Popen]:
    """``n`` worker processes on the study: fresh interpreters (no OpenMP state forked, no
    main module re-imported), one thread each, in this process group (Ctrl-C reaches them)."""
    if n < 1:
        return []
    env = {**os.environ, "ALMANAC_THREADS": "1", "ALMANAC_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           **{v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    code = f"from ml.study import worker_main; worker_main({sid!r}, {str(home)!r}, {deadline!r})"
    return [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=str(REPO_ROOT)) for _ in range(n)]


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()  # SIGTERM: the worker marks its trial interrupted
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------- after the trials


def _best(ost, direction: str):
    done = [t for t in ost.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    if not done:
        return None
    return (max if direction == "maximize" else min)(done, key=lambda t: (t.value, -t.number))


def finish(study_id: str, home=None) -> None:
    """Score the best trial on the holdout and build the ablation table (when all done)."""
    study, meta, ost, folder = _load(study_id, home)
    best = _best(ost, study.objective.direction)
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
    trials = [t for t in ost.get_trials(deepcopy=False) if _finished(t)]
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


# ---------------------------------------------------------------------- reading


def _state(t) -> str:
    if t.user_attrs.get("interrupted"):
        return "interrupted"
    return t.state.name.lower()


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def study_report(study_id: str, home=None) -> dict:
    """What ``study run`` / ``study show --json`` print (see the CLI)."""
    study, meta, ost, folder = _load(study_id, home)
    trials = ost.get_trials(deepcopy=False)
    rows = [{"number": t.number, "state": _state(t), "value": t.value if t.state.name == "COMPLETE" else None,
             "intermediate": [t.intermediate_values[k] for k in sorted(t.intermediate_values)], "params": t.params,
             "run_id": t.user_attrs.get("run_id"), "error": t.user_attrs.get("error"),
             "folds": t.user_attrs.get("folds"), "run_seconds": t.user_attrs.get("run_seconds"),
             "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
             if t.datetime_complete and t.datetime_start else None, "worker": t.user_attrs.get("worker")}
            for t in trials if t.state.name != "WAITING"]
    counted = [r for r in rows if r["state"] != "interrupted"]
    best = _best(ost, study.objective.direction)
    out = {"study_id": study_id, "path": str(folder), "name": study.name, "kind": study.kind,
           "symbol": meta["symbol"], "label": meta["label"], "created_at": meta.get("created_at"),
           "objective": study.objective.model_dump(mode="json"), "budget": _budget(study),
           "n_trials": len(counted), "n_complete": sum(r["state"] == "complete" for r in rows),
           "n_pruned": sum(r["state"] == "pruned" for r in rows),
           "n_failed": sum(r["state"] == "failed" for r in rows),
           "n_interrupted": sum(r["state"] == "interrupted" for r in rows),
           "n_running": sum(r["state"] == "running" for r in rows),
           "best": None if best is None else {"trial": best.number, "run_id": best.user_attrs.get("run_id"),
                                              "value": best.value, "params": best.params},
           "holdout": _read_json(folder / "holdout.json") if study.holdout else None,
           "trials": rows, "study": study.to_dict()}
    if study.kind == "ablation":
        out["ablation"] = _read_json(folder / "ablation.json") or []
    return out


def list_studies(home=None) -> list[dict]:
    """Short summaries of every study, newest first."""
    root = studies_dir(home)
    out = []
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        if folder.name.startswith(".") or not (folder / META).is_file():
            continue
        try:
            r = study_report(folder.name, home)
        except (AlmanacError, ValueError, KeyError) as exc:
            log.warning("skipping study %s: %s", folder.name, exc)
            continue
        out.append({k: r[k] for k in ("study_id", "name", "kind", "symbol", "label", "created_at", "objective",
                                      "budget", "n_trials", "n_complete", "n_pruned", "n_failed", "best",
                                      "holdout", "path")})
    return sorted(out, key=lambda r: (str(r["created_at"]), r["study_id"]), reverse=True)


def load_optuna_study(study_id: str, home=None):
    """The stored Optuna study (for the charts of ``optuna.visualization``)."""
    return _load(study_id, home)[2]


def delete_study(study_id: str, home=None) -> list[str]:
    """Delete the study's trial runs and its folder; return the deleted run ids. Refused
    while the study runs."""
    folder = study_path(study_id, home)
    report = study_report(study_id, home)
    with _running(folder):
        gone = []
        for t in report["trials"]:
            if t.get("run_id"):
                with contextlib.suppress(NotFoundError):
                    registry.delete_run(t["run_id"], home)
                    gone.append(t["run_id"])
        if _is_redis(folder):
            from ml import scale

            scale.delete_storage(folder.name)
        trash = folder.with_name(f".trash-{folder.name}-{uuid.uuid4().hex[:8]}")
        folder.rename(trash)
    shutil.rmtree(trash, ignore_errors=True)
    return gone


def promote(study_id: str, home=None) -> dict:
    """Make the study's best trial the active model of its symbol and label."""
    r = study_report(study_id, home)
    if not r["best"] or not r["best"]["run_id"]:
        raise AlmanacError(f"study {study_id} has no complete trial to promote: run it first")
    return registry.set_active(r["best"]["run_id"], home)


__all__ = ["check_study", "prepare", "next_trial", "run_trial", "run_study", "study_report", "list_studies",
           "delete_study", "promote", "finish", "score_holdout", "ablation_table", "studies_dir", "study_path",
           "trial_spec", "distributions", "load_optuna_study", "work"]
