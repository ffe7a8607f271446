"""Where a study lives and how it is read: ``$ALMANAC_HOME/studies/<study_id>/``.

``study.json`` (the validated study, its symbol, label and data hashes), ``journal.log``
(Optuna's :class:`~optuna.storages.JournalStorage` on a
:class:`~optuna.storages.journal.JournalFileBackend`; every append is :func:`shielded`
from Ctrl-C and cancels), ``trials/<number>.json`` (the ledger :mod:`ml.trials` counts into
every DSR), ``holdout.json`` and ``ablation.json`` (:mod:`ml.study_scores`), ``.lock`` (held
by the one ``study run`` of the study). :func:`study_report` is what ``study show --json``
prints; :func:`delete_study` removes the study with its trials' runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import threading
import uuid
from pathlib import Path

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError
from almanac.settings import get_settings
from almanac.store import Store
from almanac.study_spec import StudySpec, ablation_combinations, set_path, study_from_dict
from ml.models import valid_params
from ml.trials import STUDIES_DIR

log = logging.getLogger(__name__)

JOURNAL = "journal.log"   # Optuna's journal (the trials, their parameters, values and states)
META = "study.json"       # the validated study, symbol, label, data hashes, base file
LOCK = ".lock"            # flock held by the one `study run` of the study
STUDY_ID_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}-[0-9a-f]{8}$")


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


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-") or "study"


def data_hashes(study: StudySpec, store: Store) -> dict[str, str]:
    """SHA-256 of every dataset the study's trials may read (``"ES/1min": ...``)."""
    spec = study.spec
    syms = [spec.data.symbol] + (spec.features.cross_assets if "cross_asset" in spec.features.sets
                                 or "features.sets" in study.search or study.kind == "ablation" else [])
    return {f"{s}/{f}": store.entry(s, f).sha256 for s in syms for f in ("1min", "1d") if store.has(s, f)}


def study_id_for(study: StudySpec, hashes: dict[str, str]) -> str:
    """``<name>-<8 hex>`` of the study (budget aside) and the data: the same file on the same
    data is the same study (it resumes)."""
    digest = hashlib.sha256((study.fingerprint() + json.dumps(hashes, sort_keys=True)).encode()).hexdigest()
    return f"{_slug(study.name)}-{digest[:8]}"


def optuna_module():
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


def is_redis(folder: Path) -> bool:
    """The study keeps its trials in Redis (created with ``ALMANAC_REDIS_URL`` set)."""
    meta = read_json(folder / META)
    return isinstance(meta, dict) and meta.get("storage") == "redis"


def study_meta(study_id: str, home: Path | str | None = None) -> dict:
    """The stored ``study.json`` of a study (the study, its data hashes, its storage)."""
    return json.loads((study_path(study_id, home) / META).read_text())


def journal_storage(folder: Path):
    """The study's Optuna storage: the journal file in its folder, or Redis for a study
    created with ``ALMANAC_REDIS_URL`` set (``"storage": "redis"`` in study.json, see
    :mod:`ml.scale`)."""
    if is_redis(folder):
        from ml import scale

        return scale.storage(folder.name, shield=shielded)
    optuna = optuna_module()
    from optuna.storages.journal import JournalFileBackend

    class _Backend(JournalFileBackend):
        def append_logs(self, logs):
            with shielded():
                super().append_logs(logs)

    return optuna.storages.JournalStorage(_Backend(str(folder / JOURNAL)))


def _pruner(study: StudySpec):
    optuna = optuna_module()
    if study.kind == "ablation" or study.pruner.kind == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=study.pruner.n_startup_trials,
                                       n_warmup_steps=study.pruner.n_warmup_steps)


def load_stored(study_id: str, home, sampler=None):
    """(StudySpec, meta, optuna Study, folder) of a stored study."""
    folder = study_path(study_id, home)
    meta = json.loads((folder / META).read_text())
    study = study_from_dict(meta["study"])
    ost = optuna_module().load_study(study_name=study_id, storage=journal_storage(folder), sampler=sampler,
                                     pruner=_pruner(study))
    return study, meta, ost, folder


def counted(t) -> bool:
    return not t.user_attrs.get("interrupted")


def finished(t) -> bool:
    return t.state.is_finished() and counted(t)


@contextlib.contextmanager
def running_lock(folder: Path):
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


def budget_of(study: StudySpec) -> int:
    return len(ablation_combinations(study.spec.features.sets)) if study.kind == "ablation" \
        else study.budget.n_trials


def best_trial(ost, direction: str):
    done = [t for t in ost.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    if not done:
        return None
    sign = 1.0 if direction == "maximize" else -1.0
    return max(done, key=lambda t: (sign * t.value, -t.number))  # ties: the earliest trial


def _state(t) -> str:
    """complete, pruned, failed, running, waiting or interrupted (Optuna's FAIL is "failed",
    the word ``n_failed`` and the trial ledger use)."""
    if t.user_attrs.get("interrupted"):
        return "interrupted"
    name = t.state.name.lower()
    return "failed" if name == "fail" else name


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def trial_spec(study: StudySpec, params: dict, number: int) -> tuple[dict, list[str]]:
    """(the experiment spec dict of a trial, the searched model parameters its model kind
    does not have and so ignores)."""
    d = study.trial_spec_dict()
    kind = params.get("model.kind", d["model"]["kind"])
    names = set(valid_params(kind, study.task))
    if kind != d["model"]["kind"]:  # another model kind keeps the base parameters it has
        d["model"] = {"kind": kind, "params": {k: v for k, v in d["model"]["params"].items() if k in names}}
    ignored = []
    for path, value in params.items():
        if path.startswith("model.params.") and path.split(".", 2)[2] not in names:
            ignored.append(path)
            continue
        set_path(d, path, value)
    d["name"] = f"{study.name[:80]}-t{number}"
    return d, ignored


def study_report(study_id: str, home=None) -> dict:
    """What ``study run`` / ``study show --json`` print (see the CLI)."""
    study, meta, ost, folder = load_stored(study_id, home)
    trials = ost.get_trials(deepcopy=False)
    rows = [{"number": t.number, "state": _state(t), "value": t.value if t.state.name == "COMPLETE" else None,
             "intermediate": [t.intermediate_values[k] for k in sorted(t.intermediate_values)], "params": t.params,
             "run_id": t.user_attrs.get("run_id"), "error": t.user_attrs.get("error"),
             "folds": t.user_attrs.get("folds"), "run_seconds": t.user_attrs.get("run_seconds"),
             "seconds": (t.datetime_complete - t.datetime_start).total_seconds()
             if t.datetime_complete and t.datetime_start else None, "worker": t.user_attrs.get("worker")}
            for t in trials if t.state.name != "WAITING"]
    counted = [r for r in rows if r["state"] != "interrupted"]
    best = best_trial(ost, study.objective.direction)
    out = {"study_id": study_id, "path": str(folder), "name": study.name, "kind": study.kind,
           "symbol": meta["symbol"], "label": meta["label"], "created_at": meta.get("created_at"),
           "objective": study.objective.model_dump(mode="json"), "budget": budget_of(study),
           "n_trials": len(counted), "n_complete": sum(r["state"] == "complete" for r in rows),
           "n_pruned": sum(r["state"] == "pruned" for r in rows),
           "n_failed": sum(r["state"] == "failed" for r in rows),
           "n_interrupted": sum(r["state"] == "interrupted" for r in rows),
           "n_running": sum(r["state"] == "running" for r in rows),
           "best": None if best is None else {"trial": best.number, "run_id": best.user_attrs.get("run_id"),
                                              "value": best.value, "params": best.params},
           "holdout": read_json(folder / "holdout.json") if study.holdout else None,
           "trials": rows, "study": study.to_dict()}
    if study.kind == "ablation":
        out["ablation"] = read_json(folder / "ablation.json") or []
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
    return load_stored(study_id, home)[2]


def delete_study(study_id: str, home=None) -> list[str]:
    """Delete the study's trial runs and its folder; return the deleted run ids. Refused
    while the study runs."""
    folder = study_path(study_id, home)
    report = study_report(study_id, home)
    with running_lock(folder):
        gone = []
        for t in report["trials"]:
            if t.get("run_id"):
                with contextlib.suppress(NotFoundError):
                    registry.delete_run(t["run_id"], home)
                    gone.append(t["run_id"])
        if is_redis(folder):
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


__all__ = ["JOURNAL", "META", "LOCK", "load_stored", "best_trial", "finished", "counted", "budget_of",
           "running_lock", "read_json", "optuna_module", "journal_storage", "studies_dir", "check_study_id",
           "study_path", "data_hashes", "study_id_for", "shielded", "trial_spec", "study_report", "list_studies",
           "load_optuna_study", "delete_study", "promote"]
