"""Scale-out: study trials on Celery workers over Redis (``ALMANAC_REDIS_URL``).

With ``ALMANAC_REDIS_URL`` unset nothing here runs: studies keep Optuna's journal file and
``--jobs`` local processes. When it is set:

* **Storage.** A study created then keeps its Optuna journal in Redis
  (:class:`optuna.storages.journal.JournalRedisBackend`, key prefix
  ``almanac:study:<study_id>``; ``study.json`` says ``"storage": "redis"``). Its folder
  under ``$ALMANAC_HOME/studies/`` (the study, the data hashes, the trial ledger) stays on
  the data home, which the web process and every worker share by path.
* **Queue.** :func:`run_queued` (called by :func:`ml.study.run_study`) sends one task
  :data:`TRIAL_TASK` per trial still to run; a worker (``celery -A worker worker``, see
  ``worker.py``) runs :func:`trial_task`: it proposes the next trial (under a Redis lock)
  and runs it with :func:`ml.study.run_trial`, the same function a local ``--jobs``
  process calls. At most one task per free trial is outstanding, so each task proposes
  with the history of every finished trial.
* **JSON only.** :func:`celery_config`: tasks and results are JSON (``accept_content``
  json), so whoever can write to the Redis server cannot make a worker unpickle anything.
* **Data.** The task carries the study's data hashes; a worker whose data home reads other
  hashes refuses: the trial is failed with the reason and nothing is computed, and the
  study run stops with that one line.
* **Heartbeat.** Optuna 5 implements heartbeats for ``RDBStorage`` only;
  :func:`storage` (``_heartbeat_class``) adds Optuna's :class:`~optuna.storages._heartbeat.BaseHeartbeat`
  to the Redis journal (a Redis key per running trial, stamped with the Redis server's
  clock every ``ALMANAC_HEARTBEAT_S`` seconds by Optuna's own heartbeat thread), so
  :func:`fail_stale` (as :func:`optuna.storages.fail_stale_trials`) fails a trial whose worker died (``kill -9``,
  a lost machine) after ``ALMANAC_GRACE_S`` seconds; the callback marks it interrupted,
  with the reason, and proposes its parameters again, so the study goes on.
* **Cancel.** Ctrl-C or a cancel revokes the queued tasks and terminates the running ones
  (SIGTERM: the trial is marked interrupted, its temporary run folder removed); the
  completed trials are kept, and running the study again resumes it.
* **Redis unreachable.** One line naming the masked URL (:func:`almanac.settings.mask_url`),
  on the CLI and the page; while a study runs, the coordinator waits for Redis to come
  back (``ALMANAC_REDIS_WAIT_S``) and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from collections.abc import Callable

from almanac.errors import AlmanacError
from almanac.settings import get_settings, mask_url

log = logging.getLogger(__name__)

TRIAL_TASK = "almanac.study_trial"
KEY_PREFIX = "almanac:study:"
#: How long (s) a running study waits for Redis to come back before it gives up.
REDIS_WAIT_S = float(os.environ.get("ALMANAC_REDIS_WAIT_S") or 120)
#: Seconds between two looks of a running study at its trials and tasks.
POLL_S = 0.5
# Optuna warns that its heartbeat is meant for Study.optimize; the lab beats per trial itself
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")


def worker_name() -> str:
    """Where this process runs: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def celery_config(url: str) -> dict:
    """The Celery settings the web process and the workers share: JSON only, one task at a
    time per worker process, acknowledged after it ran."""
    return {
        "broker_url": url, "result_backend": url,
        "task_serializer": "json", "result_serializer": "json",
        "accept_content": ["json"], "result_accept_content": ["json"],
        "task_acks_late": True, "worker_prefetch_multiplier": 1, "task_track_started": True,
        "broker_connection_retry_on_startup": True, "result_expires": 7 * 86400,
        "worker_hijack_root_logger": False, "worker_redirect_stdouts": False,
        # the broker and backend URLs in Celery's banner and logs keep the password masked
        "broker_transport_options": {"visibility_timeout": 6 * 3600},
    }


_CLIENTS: dict[str, object] = {}


def client(url: str | None = None):
    """A Celery app that sends tasks by name (the web process and the CLI never import
    ``worker.py``)."""
    url = url or _url()
    if url not in _CLIENTS:
        from celery import Celery

        app = Celery("almanac")
        app.conf.update(celery_config(url))
        _CLIENTS[url] = app
    return _CLIENTS[url]


def _url() -> str:
    url = get_settings().redis_url
    if not url:
        raise AlmanacError("ALMANAC_REDIS_URL is not set: set it to the Redis server the workers use, "
                           "e.g. redis://localhost:6379/0")
    return url


def unreachable(url: str) -> AlmanacError:
    return AlmanacError(f"cannot reach Redis at {mask_url(url)}: start redis-server (or fix ALMANAC_REDIS_URL) "
                        "and try again")


def redis_client(url: str | None = None):
    import redis

    return redis.Redis.from_url(url or _url(), socket_connect_timeout=5, socket_timeout=30)


def ping(url: str | None = None) -> None:
    """Raise one line when Redis does not answer."""
    import redis

    url = url or _url()
    try:
        redis_client(url).ping()
    except redis.exceptions.RedisError:
        raise unreachable(url) from None


def while_away(fn: Callable[[], object]):
    """``fn()``, tried again every second while Redis does not answer, for up to
    ``ALMANAC_REDIS_WAIT_S`` seconds (then the last error)."""
    import redis

    end = time.monotonic() + REDIS_WAIT_S
    while True:
        try:
            return fn()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            if time.monotonic() > end:
                raise
            log.warning("Redis does not answer: trying again in 1 s")
            time.sleep(1.0)


# ---------------------------------------------------------------------- storage with a heartbeat


def _heartbeat_settings() -> tuple[float, float]:
    s = get_settings()
    return s.heartbeat_s, s.grace_s


def storage(study_id: str, url: str | None = None, shield: Callable = contextlib.nullcontext):
    """The study's Optuna storage in Redis (journal + heartbeat); each journal write runs
    inside ``shield()`` (:func:`ml.study.shielded`)."""
    from optuna.storages.journal import JournalRedisBackend

    url = url or _url()
    key = (url, study_id)
    if key in _STORAGES:  # one per process: the journal is read incrementally, not replayed per call
        return _STORAGES[key]

    class _Backend(JournalRedisBackend):
        def append_logs(self, logs):
            with shield():
                super().append_logs(logs)

    interval, grace = _heartbeat_settings()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # "JournalRedisBackend is experimental"
        backend = _Backend(url, prefix=KEY_PREFIX + study_id)
    _STORAGES[key] = _heartbeat_class()(backend, url, study_id, interval, grace)
    return _STORAGES[key]


_STORAGES: dict[tuple[str, str], object] = {}


def delete_storage(study_id: str, url: str | None = None) -> None:
    _STORAGES.pop((url or _url(), study_id), None)
    r = redis_client(url)
    keys = list(r.scan_iter(match=f"{KEY_PREFIX}{study_id}:*"))
    if keys:
        r.delete(*keys)


def _heartbeat_class():
    """``HeartbeatJournalStorage``, built on first use (Optuna is imported lazily)."""
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    global _HB_CLASS
    if _HB_CLASS is not None:
        return _HB_CLASS

    class _HeartbeatJournal(JournalStorage, BaseHeartbeat):
        """Optuna's journal storage plus Optuna's heartbeat protocol, kept in Redis."""

        def __init__(self, backend, url: str, study_key: str, interval: float, grace: float) -> None:
            super().__init__(backend)
            self._hb_url, self._hb_key = url, KEY_PREFIX + study_key + ":heartbeat"
            self._interval, self._grace = interval, grace
            self._stale_callback: Callable | None = None
            self._client = None

        def _redis(self):
            if self._client is None:
                self._client = redis_client(self._hb_url)
            return self._client

        def record_heartbeat(self, trial_id: int) -> None:
            import redis

            try:
                r = self._redis()
                sec, usec = r.time()  # the Redis server's clock: one clock for every machine
                r.hset(self._hb_key, str(trial_id), f"{sec + usec / 1e6:.3f}")
            except redis.exceptions.RedisError as exc:  # Redis away: keep beating, it may come back
                log.warning("heartbeat of trial %d not recorded: %s", trial_id, type(exc).__name__)

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            r = self._redis()
            sec, usec = r.time()
            now = sec + usec / 1e6
            beats = {int(k): float(v) for k, v in r.hgetall(self._hb_key).items()}
            stale = []
            for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                last = beats.get(t._trial_id)
                if last is None and t.datetime_start is not None:  # died between ask and first beat
                    last = t.datetime_start.timestamp() + (now - time.time())  # on the Redis clock
                if last is not None and now - last > self._grace:
                    stale.append(t._trial_id)
            return stale

        def get_heartbeat_interval(self) -> float:
            return self._interval

        def get_heartbeat_stale_trial_callback(self):
            return self._stale_callback

    _HB_CLASS = _HeartbeatJournal
    return _HB_CLASS


_HB_CLASS = None


def fail_stale(ost) -> list[int]:
    """Fail the running trials whose heartbeat is older than the grace period (what
    :func:`optuna.storages.fail_stale_trials` does, with the stale ids of Optuna's
    heartbeat protocol); each is marked interrupted with the reason first (a finished
    trial's attributes are frozen) and its parameters are proposed again. Returns their
    numbers. Callers hold the study's propose lock (:func:`ask_lock`)."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    st = ost._storage
    if not hasattr(st, "_stale_callback"):
        return []
    _, grace = _heartbeat_settings()
    failed = []
    for tid in st._get_stale_trial_ids(ost._study_id):
        trial = st.get_trial(tid)
        who = trial.user_attrs.get("worker", "?")
        try:
            st.set_trial_user_attr(tid, "interrupted", True)
            st.set_trial_user_attr(tid, "error", f"worker {who} stopped answering (no heartbeat for {grace:g} s): "
                                                 "the trial runs again")
            if not st.set_trial_state_values(tid, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # it finished meanwhile
        ost.enqueue_trial(trial.params, skip_if_exists=False)
        failed.append(trial.number)
        log.warning("trial %d of %s: worker %s lost; its parameters are proposed again", trial.number,
                    ost.study_name, who)
    return failed


@contextlib.contextmanager
def ask_lock(study_id: str):
    """The study's propose lock, in Redis (workers on other machines share it)."""
    lock = redis_client().lock(f"{KEY_PREFIX}{study_id}:ask", timeout=120, blocking_timeout=300)
    if not lock.acquire():
        raise AlmanacError(f"study {study_id}: could not take the propose lock in Redis within 300 s")
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            lock.release()


# ---------------------------------------------------------------------- coordinator (web process / CLI)


def run_queued(study_id: str, home, hashes: dict, budget: int, deadline: float | None,
               load: Callable[[], object], progress_text: Callable[[object], tuple[int, str]],
               report: Callable[[float, str], None]) -> None:
    """Keep one task per trial still to run on the queue until the study's budget is spent;
    report progress; on any interrupt revoke the queued tasks and terminate the running ones.

    ``load()`` gives the Optuna study, ``progress_text(ost)`` ``(finished trials, "trial k/n ·
    best v")`` (:mod:`ml.study` passes its own)."""
    import redis

    url = _url()
    ping(url)
    app = client(url)
    sent: dict[str, object] = {}   # task id -> AsyncResult
    dead: set[str] = set()
    failures = 0
    lost_since = None
    ost = None
    try:
        while True:
            try:
                ost = ost or load()
                with ask_lock(study_id):
                    fail_stale(ost)
                trials = ost.get_trials(deepcopy=False)
                done, text = progress_text(ost)
                running_tasks = {t.user_attrs.get("task_id") for t in trials if t.state.name == "RUNNING"}
                finished_tasks = {t.user_attrs.get("task_id") for t in trials if t.state.is_finished()}
                live = []
                for tid, res in sent.items():
                    if tid in dead:
                        continue
                    state = res.state
                    if state in ("SUCCESS", "FAILURE", "REVOKED"):
                        dead.add(tid)
                        if state == "SUCCESS":
                            out = res.result or {}
                            if out.get("state") == "refused":
                                raise AlmanacError(out.get("error") or "a worker refused the study")
                        elif state == "FAILURE":
                            failures += 1
                            log.warning("study %s: task %s failed on a worker: %s", study_id, tid, res.result)
                            if failures > budget:
                                raise AlmanacError(f"study {study_id}: {failures} tasks failed on the workers "
                                                   f"(last: {str(res.result)[:150]}): see the worker logs")
                        continue
                    if state == "STARTED" and tid in finished_tasks and tid not in running_tasks:
                        dead.add(tid)  # its trial was failed as stale: the worker is gone
                        continue
                    live.append(tid)
                lost_since = None
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
                if not isinstance(exc, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)) \
                        and "redis" not in type(exc).__module__:
                    raise
                lost_since = lost_since or time.monotonic()
                if time.monotonic() - lost_since > REDIS_WAIT_S:
                    raise unreachable(url) from None
                report(0.0, f"waiting for Redis at {mask_url(url)} to come back")
                time.sleep(1.0)
                continue
            report(done / budget, f"{text} · {len(live)} on the queue")
            out_of_time = deadline is not None and time.time() > deadline
            need = 0 if out_of_time else budget - done - len(live)
            if need <= 0 and not live:
                return
            for _ in range(max(0, need)):
                res = app.send_task(TRIAL_TASK, args=[study_id, str(home), hashes, deadline])
                sent[res.id] = res
            time.sleep(POLL_S)
    except BaseException:
        stop_tasks(app, [tid for tid in sent if tid not in dead])
        _wait_trials_settled(ost, load)
        raise


def _wait_trials_settled(ost, load, wait_s: float = 15.0) -> None:
    """After a cancel, wait until no trial of the study is still RUNNING: a terminated task's
    worker marks its trial interrupted a moment after its Celery state has changed, and the
    study must not be reported (or resumed) before that. Gives up quietly after ``wait_s``
    (a lost worker's trial is failed later by the heartbeat's grace period)."""
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        try:
            ost = ost or load()
            if not any(t.state.name == "RUNNING" for t in ost.get_trials(deepcopy=False)):
                return
        except Exception:  # noqa: BLE001 - Redis gone or the study not created: nothing to wait for
            return
        time.sleep(0.2)


TRAIN_TASK = "almanac.train"


def train_queued(spec: dict, home, report: Callable[[float, str], None]) -> dict:
    """``train --queue``: run one experiment spec on a worker (task :data:`TRAIN_TASK`),
    with its progress; return ``{"run_id", "worker"}``. Ctrl-C terminates the task (the
    worker's runner removes its temporary run folder: nothing is registered)."""
    url = _url()
    ping(url)
    app = client(url)
    res = app.send_task(TRAIN_TASK, args=[spec, str(home)])
    try:
        last = None
        while True:
            state = res.state
            if state == "PROGRESS" and isinstance(res.info, dict) and res.info != last:
                last = res.info
                report(float(res.info.get("fraction", 0.0)), str(res.info.get("stage", "")))
            elif state == "PENDING" and last is None:
                report(0.0, "waiting for a worker")
                last = {}
            if state in ("SUCCESS", "FAILURE", "REVOKED"):
                break
            time.sleep(0.25)
    except BaseException:
        stop_tasks(app, [res.id])
        raise
    if state != "SUCCESS":
        raise AlmanacError(f"the training task {state.lower()} on the worker: {str(res.result)[:200]}; see the "
                           "worker's log")
    out = res.result or {}
    if out.get("error"):
        raise AlmanacError(out["error"])
    return out


def stop_tasks(app, task_ids: list[str], wait_s: float = 15.0) -> None:
    """Revoke the queued tasks and terminate (SIGTERM) the running ones; wait until they
    stopped (their trials marked interrupted)."""
    if not task_ids:
        return
    with contextlib.suppress(Exception):
        app.control.revoke(task_ids, terminate=True, signal="SIGTERM")
    end = time.monotonic() + wait_s
    pending = list(task_ids)
    while pending and time.monotonic() < end:
        with contextlib.suppress(Exception):
            pending = [t for t in pending if app.AsyncResult(t).state in ("STARTED", "PROGRESS")]
        if pending:
            time.sleep(0.2)
    if pending:
        log.warning("%d task(s) still running %.0f s after the cancel", len(pending), wait_s)


__all__ = ["TRIAL_TASK", "TRAIN_TASK", "train_queued", "celery_config", "client", "storage", "run_queued", "stop_tasks",
           "ping", "worker_name", "fail_stale", "ask_lock", "delete_storage"]
