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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac.atomic import atomic_write_json
from almanac.errors import AlmanacError, NotFoundError, SpecError
from almanac.settings import REPO_ROOT, Limits, get_limits, get_settings
from almanac.spec import MIN_TEST_DAYS, spec_from_dict, validate_against_store
from almanac.store import Store
from almanac.study_spec import (SUBSET_SEP, StudySpec, ablation_combinations, set_path, study_from_dict,
                                subset_choices)
from ml.models import check_params, valid_params
from ml.study_scores import ablation_table, finish, score_holdout
from ml.study_store import (META, budget_of, counted, data_hashes, delete_study, finished, journal_storage,
                            is_redis, list_studies, load_optuna_study, load_stored, optuna_module, promote,
                            read_json, running_lock, shielded, studies_dir, study_id_for, study_meta, study_path,
                            study_report, trial_spec)
from ml.trials import LEDGER_DIR, record_study_trial

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


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


def distributions(study: StudySpec) -> dict:
    """Optuna distributions of the study's dimensions (``features.sets``: its subsets)."""
    d = optuna_module().distributions
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
    meta = read_json(folder / META)
    if isinstance(meta, dict) and meta.get("study", {}).get("budget") != study.to_dict()["budget"]:
        atomic_write_json(folder / META, {**meta, "study": {**meta["study"], "budget": study.to_dict()["budget"]}})
    if not isinstance(meta, dict):
        atomic_write_json(folder / META, {"study_id": sid, "name": study.name, "kind": study.kind,
                                          "created_at": _now(), "symbol": study.spec.data.symbol,
                                          "label": study.spec.label.kind, "data_hashes": hashes, "base": study.base,
                                          "study": study.to_dict(),
                                          "storage": "redis" if get_settings().redis_url else "journal"})
    optuna = optuna_module()
    ost = optuna.create_study(study_name=sid, storage=journal_storage(folder), load_if_exists=True,
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


def next_trial(study_id: str, home=None, deadline: float | None = None) -> int | None:
    """Propose the next trial of the study (under the study's ask lock); its number, or None
    when the budget (or ``deadline``, a ``time.time()``) is spent."""
    from optuna.trial import TrialState

    folder = study_path(study_id, home)
    with shielded(), _ask_lock(folder):
        study = study_from_dict(json.loads((folder / META).read_text())["study"])
        ost = optuna_module().load_study(study_name=study_id, storage=journal_storage(folder))
        if is_redis(folder):
            from ml import scale

            scale.fail_stale(ost)  # a dead worker's trial is proposed again
        trials = ost.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        if deadline is not None and time.time() > deadline:
            return None
        if not waiting and sum(counted(t) for t in trials) >= budget_of(study):
            return None
        seed = (study.sampler_seed * 1_000_003 + len(trials)) % 2**32
        ost.sampler = optuna_module().samplers.TPESampler(seed=seed)
        return ost.ask(distributions(study)).number


@contextlib.contextmanager
def _ask_lock(folder: Path):
    """One proposal at a time: a file lock in the study folder, or a Redis lock for a study
    stored in Redis (its workers may run on other machines)."""
    if is_redis(folder):
        from ml import scale

        with scale.ask_lock(folder.name):
            yield
        return
    with open(folder / ".ask.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


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
    heartbeat (Redis, :mod:`ml.scale`) gets one from Optuna's heartbeat thread meanwhile.
    """
    from optuna.storages._heartbeat import get_heartbeat_thread
    from optuna.trial import Trial

    store = Store(home) if home is not None else Store()
    study, meta, ost, folder = load_stored(study_id, store.home)
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
    from almanac import registry

    def record() -> dict:
        stored = ost._storage.get_trial(trial._trial_id)
        if stored.state == TrialState.COMPLETE and stored.user_attrs.get("run_id") == run["run_id"]:
            # only this worker completes its trial: an earlier attempt's writes reached Redis before the
            # connection broke (the reply was lost). The trial is this run's; write what may be missing
            return _ledger(folder, number, "complete", stored.value, ledger, dict(stored.user_attrs))
        if stored.state != TrialState.RUNNING:
            # failed meanwhile as stale (its heartbeat did not reach Redis) and proposed again:
            # the run belongs to no trial, so it leaves the registry
            registry.delete_run(run["run_id"], store.home)
            log.warning("trial %d of %s was failed as stale while it ran: its run %s is removed", number,
                        study_id, run["run_id"])
            return {"number": number, "state": "interrupted", "value": None, "run_id": None}
        value, sharpe = _value(run, metric), _value(run, "sharpe")
        attrs = {"run_id": run["run_id"], "sharpe": None if math.isnan(sharpe) else sharpe, "folds": len(scores),
                 "run_seconds": time.perf_counter() - t0}
        if math.isnan(value):
            return _close(ost, trial, folder, number, "failed", None, ledger,
                          error=f"{metric} is undefined for this run", **attrs)
        return _close(ost, trial, folder, number, "complete", value, ledger, **attrs)

    with shielded():  # the run is registered: record it whatever arrives now
        try:
            if is_redis(folder):  # Redis away: wait for it (ml.scale.REDIS_WAIT_S) rather than lose the trial
                from ml import scale

                return scale.while_away(record)
            return record()
        except Exception:
            with contextlib.suppress(NotFoundError):
                registry.delete_run(run["run_id"], store.home)  # a run no trial records is no run
            raise


def mark_interrupted(study_id: str, number: int, home=None, ost=None) -> bool:
    """Mark trial ``number`` interrupted (failed, proposed again on resume) if it is still
    running, e.g. after a cancel that arrived before :func:`run_trial` could; True if it was."""
    from optuna.trial import Trial, TrialState

    with shielded():
        try:
            ost = ost if ost is not None else load_stored(study_id, home)[2]
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
    _study, meta, ost, folder = load_stored(study_id, store.home)
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
    return _ledger(folder, number, state, value, ledger, attrs)


def _ledger(folder: Path, number: int, state: str, value, ledger: dict, attrs: dict) -> dict:
    """The ledger entry of a trial closed in Optuna, and its summary."""
    keep = {k: attrs[k] for k in ("run_id", "error", "folds") if k in attrs}
    record_study_trial(folder, number, state, value=value, **keep, **ledger)
    return {"number": number, "state": state, "value": value, "run_id": attrs.get("run_id"),
            **({"error": attrs["error"]} if "error" in attrs else {})}


def _run_quietly(spec, store, on_fold, extra, progress):
    from ml.runner import run_experiment

    return run_experiment(spec, store=store, on_fold=on_fold, extra=extra, one_core=True,
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
    done = [t for t in ost.get_trials(deepcopy=False) if finished(t)]
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
    queued = bool(get_settings().redis_url)
    if queued:  # Redis down: one line, and nothing written
        from ml import scale

        scale.ping()
    sid, folder = prepare(study, store)
    if started is not None:
        started(sid)
    report = progress or (lambda f, s: None)
    budget = budget_of(study)
    with running_lock(folder):
        if queued and not is_redis(folder):
            raise AlmanacError(f"study {sid} was created without ALMANAC_REDIS_URL and keeps its trials in "
                               f"{folder}: unset ALMANAC_REDIS_URL to resume it here")
        if not queued and is_redis(folder):
            raise AlmanacError(f"study {sid} keeps its trials in Redis: set ALMANAC_REDIS_URL to resume it")
        ost = optuna_module().load_study(study_name=sid, storage=journal_storage(folder))
        deadline = time.time() + study.budget.timeout_s if study.budget.timeout_s else None
        if queued:  # trials on the Celery workers (ml.scale); --jobs is theirs to set
            scale.run_queued(sid, store.home, study_meta(sid, store.home)["data_hashes"], budget, deadline,
                             load=lambda: optuna_module().load_study(study_name=sid, storage=journal_storage(folder)),
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


# ---------------------------------------------------------------------- reading


__all__ = ["check_study", "prepare", "next_trial", "run_trial", "run_study", "study_report", "list_studies",
           "delete_study", "promote", "finish", "score_holdout", "ablation_table", "studies_dir", "study_path",
           "trial_spec", "distributions", "load_optuna_study", "work"]
