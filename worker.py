"""The worker entry point: ``celery -A worker worker --concurrency N`` (from the repository root).

The second entry point beside ``app.py``; nothing under ``almanac/``, ``ml/``, ``features/``
or ``pages/`` imports it. It needs ``ALMANAC_REDIS_URL`` (the Redis server of the web
process) and the web's data home by path (``ALMANAC_HOME``, a shared volume or network
file system when the worker runs on another machine).

* :data:`celery_app`: the Celery app on ``ALMANAC_REDIS_URL``, JSON only
  (:func:`ml.scale.celery_config`: ``task_serializer``, ``result_serializer`` and
  ``accept_content`` are json, so a Redis that someone else can write to cannot make a
  worker unpickle anything).
* :func:`study_trial` (task ``almanac.study_trial``): runs ONE trial of a study
  (:func:`run_one_trial`: data hashes checked, trial proposed with
  :func:`ml.study.next_trial`, run with :func:`ml.study.run_trial`, the functions a local
  ``--jobs`` process calls; worker ``host:pid`` recorded).
* The Dash app's background callbacks (``dash.CeleryManager``, chosen by ``app.py`` when
  ``ALMANAC_REDIS_URL`` is set) are registered as tasks on this same app by importing
  ``app``: what they carry is JSON too (Dash's manager writes ``json.dumps`` of the
  callback's inputs, progress and outputs to the result backend).
"""

from __future__ import annotations

import os
import signal

from celery.signals import worker_process_init

from almanac.errors import AlmanacError
from almanac.settings import get_settings
from ml import scale

_url = get_settings().redis_url
if not _url:
    raise AlmanacError("worker.py needs ALMANAC_REDIS_URL (e.g. redis://localhost:6379/0): the Redis server the "
                       "web process uses")

celery_app = scale.client(_url)  # the same configured app the Dash CeleryManager uses (app.py)
app = celery_app  # `celery -A worker` looks for `app` or `celery`


class _Stop(KeyboardInterrupt):
    """SIGTERM (a revoke with ``terminate=True``) during a task: stop like Ctrl-C."""


def _on_term(signum, frame):  # noqa: ARG001
    raise _Stop()


@celery_app.task(name=scale.TRIAL_TASK, bind=True)
def study_trial(self, study_id: str, home: str, hashes: dict, deadline: float | None = None) -> dict:
    """One trial of a study: check the data, propose the next trial, run it.

    The data home is the worker's ``ALMANAC_HOME`` when set, else the web's path ``home``.
    Returns (JSON) ``{"state": "complete"|"pruned"|"failed"|"refused"|"interrupted"|"done",
    "worker", ...}``; ``done``: the budget was already spent. A worker whose data home reads
    other hashes than ``hashes`` (the study's) fails the trial with the reason, computes
    nothing, and returns ``refused`` (the study run stops with that line).
    """
    return run_one_trial(study_id, home, hashes, deadline, task_id=self.request.id)


@celery_app.task(name=scale.TRAIN_TASK, bind=True)
def train(self, spec: dict, home: str) -> dict:
    """``train --queue``: one experiment spec, run as ``train`` runs it, progress in the task's
    state (``PROGRESS``, ``{fraction, stage}``). A refused spec returns ``{"error": line}``."""
    from almanac.spec import spec_from_dict
    from almanac.store import Store
    from ml.runner import run_experiment

    who = scale.worker_name()
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        run = run_experiment(spec_from_dict(spec), store=Store(os.environ.get("ALMANAC_HOME") or home),
                             extra={"worker": who},
                             progress=lambda f, s: self.update_state(state="PROGRESS",
                                                                     meta={"fraction": f, "stage": s}))
    except AlmanacError as exc:
        return {"error": exc.message, "worker": who}
    finally:
        signal.signal(signal.SIGTERM, previous)
    return {"run_id": run["run_id"], "worker": who}


def run_one_trial(study_id: str, home: str, hashes: dict, deadline: float | None = None,
                  task_id: str | None = None) -> dict:
    from almanac.store import Store
    from almanac.study_spec import study_from_dict
    from ml import study as st

    home = os.environ.get("ALMANAC_HOME") or home
    who = scale.worker_name()
    if not os.path.isdir(home):
        return {"state": "refused", "worker": who,
                "error": f"worker {who} has no data home {home}: workers must share the web's data home by path "
                         "(set ALMANAC_HOME to it)"}
    previous = signal.signal(signal.SIGTERM, _on_term)
    try:
        try:
            study = study_from_dict(st.study_meta(study_id, home)["study"])
        except AlmanacError as exc:
            return {"state": "refused", "worker": who, "error": f"worker {who}: {exc.message}"}
        mine = st.data_hashes(study, Store(home))
        if mine != hashes:
            diff = sorted(k for k in set(mine) | set(hashes) if mine.get(k) != hashes.get(k))
            error = (f"worker {who} reads different data in {home} for {', '.join(diff)} than the study was "
                     "created on: point the worker's ALMANAC_HOME at the shared data home")
            number = st.next_trial(study_id, home, deadline)
            if number is not None:
                st.refuse_trial(study_id, number, home, error, worker=who)
            return {"state": "refused", "worker": who, "error": error, "number": number}
        number = st.next_trial(study_id, home, deadline)
        if number is None:
            return {"state": "done", "worker": who}
        try:
            out = st.run_trial(study_id, number, home, worker=who, task_id=task_id)
        except KeyboardInterrupt:
            st.mark_interrupted(study_id, number, home)
            return {"state": "interrupted", "number": number, "worker": who}
        return {**out, "worker": who}
    finally:
        signal.signal(signal.SIGTERM, previous)


@worker_process_init.connect
def _one_thread(**_kwargs) -> None:
    """Each worker process trains single-threaded: ``--concurrency`` is the parallelism."""
    for var in ("ALMANAC_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


if os.environ.get("ALMANAC_WORKER_WEB", "1") != "0":
    import app as _web  # noqa: E402,F401 -- registers the Dash app's background callbacks on celery_app
