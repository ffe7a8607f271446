"""App-level state of the training job, so leaving ``/train`` and coming back breaks nothing.

The problem
-----------
Training runs as a Dash background callback: the ``DiskcacheManager`` forks a process
that runs the pipeline while the browser polls the server for its result. If the user
navigates to another page, the job keeps running in its process, but the components the
callback writes to (progress bar, buttons, results) are gone, and a page reload or a
second tab has no handle on the job at all.

The design
----------
* **Job id.** ``"<page token>-<n_clicks>"`` (:func:`job_id_for`): the page's per-load
  token (``pages._components.token``) and the click count of Train, so the synchronous
  "submit" callback and the background callback, fired by the same click with the same
  inputs, derive the same id without talking to each other.
* **Status file** (the single source of truth). The job itself writes
  ``$ALMANAC_HOME/jobs/status/<job id>.json`` (private folder, atomic writes)::

      {job_id, state, fraction, stage, pid, pid_started, started_at, updated_at,
       finished_at, run_id, error, error_kind, run_slug}

  ``state`` goes ``queued`` (written by the submit callback, only if no status exists
  yet) → ``running`` (the job, with its pid) → ``done`` (with ``run_id``) | ``failed``
  (with the one-line ``error``) | ``cancelled``. :func:`run_job` wraps the pipeline:
  it turns ``progress(fraction, stage)`` calls into status writes (throttled) and
  records the outcome; the traceback of an unexpected error goes to the log only.
* **App-level components** (in the app shell, so they survive page changes):
  :data:`JOB_STORE` (``dcc.Store``, ``storage_type="session"``: survives reloads of the
  tab) holds ``{"job_id": ...}`` of the tab's latest job; :data:`STATUS_STORE`
  (memory) holds the latest status dict; :data:`POLL` (``dcc.Interval``) ticks every
  :data:`POLL_MS` ms while a job is active and is disabled otherwise.
  :func:`poll_status` (the one app-level callback) is a thin reader: it reads the status
  file and writes the store only when something changed, so pages re-render on changes
  only. ``/train`` renders its progress bar, buttons and results from
  :data:`STATUS_STORE`; coming back to the page shows the job still running (the
  progress continues) or its result.
* **Liveness.** A ``running`` status whose process is gone (killed from outside, out
  of memory) reads as ``failed`` ("the training process ended without a result"), so
  the page never waits forever. The process is identified by pid *and* start time, so
  a reused pid is never mistaken for the job.
* **Cancel** (:func:`cancel_job`). Works from any page load, after a reload too (Dash's
  own ``cancel=`` only knows jobs the same page load started, and SIGKILLs them, which
  leaves the runner no chance to clean up): send SIGTERM to the job process and its
  children — the job turns it into :class:`JobCancelled`, so the runner's clean-up
  removes its ``runs/.tmp-<id>`` folder — then SIGKILL whatever is left after a grace
  period, remove a temporary run folder of the job's spec created since it started
  (only a killed job leaves one) and write ``cancelled``. Nothing is registered: a run
  only appears in the registry when the runner renames its temporary folder as its very
  last step.

Two measured behaviours shaped this (Dash 4.4, pyarrow 26):

* A callback whose *input* is on a page and whose *output* is in the app shell fires
  every time the page is shown, ``prevent_initial_call`` notwithstanding (the input is
  "inserted" while the output already exists). For a background callback, the renderer
  then sends the running job with the same output as an ``oldJob``, and the server
  kills it. So the training callback writes to a store *on the page*; only thin,
  guarded synchronous callbacks (submit, cancel) write to the app-level stores.
* The job is forked from a server thread while other threads may be serving requests.
  A fork taken while another thread is inside a Parquet read can leave the child
  deadlocked (pyarrow; reproduced here about 1 fork in 8), so the callbacks that fire
  on the Train click read no Parquet: the runner checks the spec against the data as
  its first step, inside the job.

The store holds ids and a few small fields only, never results: the page reads the
run's artifacts on the server from the run folder.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from dash import Input, Output, State, callback, dcc, no_update

from almanac.atomic import atomic_write_json
from almanac.errors import AlmanacError
from almanac.settings import get_settings

log = logging.getLogger(__name__)

JOB_STORE = "train-job"
STATUS_STORE = "train-job-status"
POLL = "train-job-poll"
POLL_MS = 500

ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled")
#: Seconds between two progress writes with the same stage text.
WRITE_EVERY_S = 0.25
#: Seconds a cancelled job gets to clean up after SIGTERM before it is killed.
CANCEL_GRACE_S = 5.0
#: Status files older than this are deleted when a new job is queued.
KEEP_DAYS = 30
_JOB_ID = re.compile(r"^[0-9a-f]{32}-\d{1,9}$")


class JobCancelled(BaseException):
    """Raised inside a job when it receives SIGTERM (a BaseException: ``except Exception``
    blocks in library code do not swallow it, ``finally`` blocks still run)."""


# ----------------------------------------------------------------------------- ids and files
def job_id_for(token: str, n_clicks: int) -> str:
    """The id of the job started by click ``n_clicks`` of the page load ``token``."""
    job_id = f"{str(token).lower()}-{int(n_clicks)}"
    if not _JOB_ID.match(job_id):
        raise AlmanacError(f"invalid job token {token!r}: reload the page")
    return job_id


def status_dir(home: Path | None = None) -> Path:
    """``$ALMANAC_HOME/jobs/status`` (created with mode 0700)."""
    settings = get_settings()
    folder = (Path(home) / "jobs" if home else settings.jobs_dir) / "status"
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def status_path(job_id: str, home: Path | None = None) -> Path:
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise AlmanacError(f"invalid job id {job_id!r}")
    return status_dir(home) / f"{job_id}.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def write_status(job_id: str, home: Path | None = None, **fields) -> dict:
    """Merge ``fields`` into the job's status file (atomic replace) and return the status."""
    path = status_path(job_id, home)
    status = read_status_file(path) or {"job_id": job_id}
    status.update(fields, updated_at=_now())
    atomic_write_json(path, status)
    return status


def create_status(job_id: str, home: Path | None = None, **fields) -> bool:
    """Write the first (``queued``) status of a job unless the job already wrote one.

    Atomic and exclusive: the file is written aside and *linked* into place, which fails
    if the job (racing on the same click) has already written its ``running`` status.
    """
    path = status_path(job_id, home)
    prune_statuses(path.parent)
    status = {"job_id": job_id, "state": "queued", "fraction": 0.0, "stage": "waiting to start",
              "started_at": _now(), "updated_at": _now(), **fields}
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(status, sort_keys=True))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def prune_statuses(folder: Path, keep_days: float = KEEP_DAYS) -> int:
    """Delete status files not touched for ``keep_days`` days; return how many."""
    cutoff = time.time() - keep_days * 86400
    gone = 0
    for path in folder.glob("*.json"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                gone += 1
        except FileNotFoundError:
            continue
    return gone


def read_status_file(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _process(status: dict):
    """The job's live ``psutil.Process`` (matched by pid and start time), else None."""
    import psutil

    pid = status.get("pid")
    if not pid:
        return None
    try:
        proc = psutil.Process(int(pid))
        if status.get("pid_started") and abs(proc.create_time() - float(status["pid_started"])) > 0.01:
            return None  # the pid was reused by another process
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.NoSuchProcess:
        return None


def _here(status: dict) -> bool:
    """The job runs on this machine (a Celery worker may run it on another: its pid means
    nothing here)."""
    return status.get("host", socket.gethostname()) == socket.gethostname()


def _task_id() -> str | None:
    """The id of the Celery task running this job (Dash's CeleryManager), else None."""
    if "celery" not in sys.modules:
        return None
    from celery import current_task

    return current_task.request.id if current_task and current_task.request else None


def read_status(job_id: str | None, home: Path | None = None) -> dict | None:
    """The job's status as the UI should show it (None: no such job).

    A ``running`` status whose process has died reads as ``failed``.
    """
    if not job_id:
        return None
    try:
        status = read_status_file(status_path(job_id, home))
    except AlmanacError:
        return None
    if status and status.get("state") == "running" and status.get("pid") and _here(status) \
            and _process(status) is None:
        status = {**status, "state": "failed", "error_kind": "lost",
                  "error": "the training process ended without a result (killed or out of memory?); "
                           "see the server log and train again"}
    return status


# ----------------------------------------------------------------------------- the job
def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    # one stop is enough: a second SIGTERM (a cancel's stop_processes after the job's own
    # cleanup began, or a deferred one re-sent by code that shielded a write) must not raise
    # again out of the cleanup, where Dash would report it as the callback's error (a 500)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise JobCancelled()


class _Reporter:
    """``progress(fraction, stage)`` → throttled status writes (always on a new stage)."""

    def __init__(self, job_id: str, home: Path | None):
        self.job_id, self.home = job_id, home
        self.last_stage, self.last_write = None, 0.0

    def __call__(self, fraction: float, stage: str = "") -> None:
        now = time.monotonic()
        if stage == self.last_stage and now - self.last_write < WRITE_EVERY_S:
            return
        self.last_stage, self.last_write = stage, now
        write_status(self.job_id, self.home, state="running",
                     fraction=max(0.0, min(1.0, float(fraction))), stage=str(stage))


def run_job(job_id: str, runner: Callable[..., dict], *args, home: Path | None = None, **kwargs) -> dict:
    """Run ``runner(*args, progress=..., **kwargs)`` as job ``job_id``; return its final status.

    Meant to run inside the background process. ``runner`` returns the run's
    ``run.json`` dict (its ``run_id`` is recorded). SIGTERM stops the job (see
    :func:`cancel_job`). Never raises for a failed run: the outcome is in the status.
    """
    import psutil

    current = read_status(job_id, home) or {}
    if current.get("state") == "cancelled":  # cancelled before it started
        return current
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    me = psutil.Process()
    write_status(job_id, home, state="running", fraction=0.0, stage="starting", pid=me.pid,
                 pid_started=me.create_time(), started_at=current.get("started_at") or _now(),
                 host=socket.gethostname(), task_id=_task_id())
    try:
        result = runner(*args, progress=_Reporter(job_id, home), **kwargs)
        return write_status(job_id, home, state="done", fraction=1.0, stage="done",
                            run_id=result.get("run_id"), finished_at=_now())
    except JobCancelled:
        log.info("job %s cancelled", job_id)
        return write_status(job_id, home, state="cancelled", stage="cancelled", finished_at=_now())
    except AlmanacError as exc:
        log.info("job %s refused: %s", job_id, exc.message)
        return write_status(job_id, home, state="failed", error=exc.message, error_kind=type(exc).__name__,
                            finished_at=_now())
    except Exception as exc:  # noqa: BLE001 - a bug: traceback to the log, a short message to the user
        log.error("job %s failed", job_id, exc_info=exc)
        return write_status(job_id, home, state="failed", error_kind="internal", finished_at=_now(),
                            error=f"an unexpected {type(exc).__name__} stopped the training; the traceback "
                                  "is in the server log")
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_processes(family: list, grace: float, reap_s: float = 2.0,
                   on_kill: Callable[[object], None] | None = None) -> None:
    """SIGTERM every ``psutil.Process`` of ``family`` (their own stop signal: the training
    job turns it into a cancel that cleans up), wait up to ``grace`` seconds, then SIGKILL
    the ones still alive (``on_kill(proc)`` first, e.g. to log it) and reap them. Processes
    that are already gone are skipped."""
    import psutil

    for p in family:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=grace)
    for p in alive:
        if on_kill is not None:
            on_kill(p)
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=reap_s)


def cancel_job(job_id: str, home: Path | None = None, grace: float = CANCEL_GRACE_S,
               cleanup: Callable[[dict], None] | None = None) -> dict | None:
    """Stop job ``job_id`` for real and return its final status (None: unknown job).

    SIGTERM to the job process and its children, wait up to ``grace`` seconds, SIGKILL
    what is left, then ``cleanup(status)`` (e.g. remove a temporary run folder) and
    write ``cancelled``. A job that already finished keeps its status.
    """
    import psutil

    status = read_status(job_id, home)
    if status is None or status.get("state") in FINAL:
        return status
    if status.get("task_id"):  # on a Celery worker: revoke, SIGTERM where it runs; wait for its clean-up
        from ml.scale import client

        client().control.revoke(status["task_id"], terminate=True, signal="SIGTERM")
        end = time.monotonic() + grace
        while time.monotonic() < end and (read_status_file(status_path(job_id, home)) or {}).get("state") in ACTIVE:
            time.sleep(0.1)
    proc = _process(status) if _here(status) else None
    if proc is not None:
        try:
            family = proc.children(recursive=True) + [proc]
        except psutil.NoSuchProcess:
            family = []
        stop_processes(family, grace)
    status = read_status_file(status_path(job_id, home)) or status
    if cleanup is not None:
        cleanup(status)
    if status.get("state") != "cancelled":
        status = write_status(job_id, home, state="cancelled", stage="cancelled", finished_at=_now())
    log.info("job %s cancelled (pid %s)", job_id, status.get("pid"))
    return status


def remove_tmp_runs(runs_dir: Path, started_at: str, slug: str) -> list[Path]:
    """Remove the temporary run folders a killed job may have left; return them.

    A fallback for a job killed before its runner could remove its own
    ``runs/.tmp-<run_id>`` folder: removes the ``.tmp-<time>-<slug>-<hex>`` folders
    (``slug`` e.g. ``es-rest-of-day-lightgbm``) created since ``started_at`` (ISO).
    """
    removed = []
    t0 = datetime.fromisoformat(started_at).timestamp() - 1.0
    for folder in sorted(Path(runs_dir).glob(f".tmp-*-{slug}-*")):
        try:
            if folder.is_dir() and folder.stat().st_mtime >= t0:
                shutil.rmtree(folder)
                removed.append(folder)
        except FileNotFoundError:
            continue
    return removed


# ----------------------------------------------------------------------------- app shell
def job_stores() -> list:
    """The app-level components: put them in the app shell (outside the page container)."""
    return [
        dcc.Store(id=JOB_STORE, storage_type="session"),
        dcc.Store(id=STATUS_STORE, storage_type="memory"),
        dcc.Interval(id=POLL, interval=POLL_MS, disabled=True),
    ]


def next_status(job: dict | None, current: dict | None, home: Path | None = None):
    """What :func:`poll_status` returns: ``(status or no_update, poll disabled?)``."""
    status = read_status((job or {}).get("job_id"), home)
    disabled = not status or status.get("state") not in ACTIVE
    return (no_update if status == current else status), disabled


@callback(
    Output(STATUS_STORE, "data"), Output(POLL, "disabled"),
    Input(POLL, "n_intervals"), Input(JOB_STORE, "data"),
    State(STATUS_STORE, "data"),
)
def poll_status(_n, job, current):
    """Read the tab's job status; poll while the job is queued or running."""
    return next_status(job, current)
