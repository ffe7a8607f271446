"""The run registry: completed experiment runs under ``ALMANAC_HOME/runs/``.

A run is the folder ``runs/<run_id>/`` holding ``run.json`` and its artifacts (the
layout is listed in :mod:`ml.runner`, which writes them). The runner builds it
as ``runs/.tmp-<run_id>/`` and renames it into place as its very last step, so the
registry -- which ignores every dot-folder -- only ever sees complete runs. Deletion is
the reverse: rename to ``runs/.trash-<run_id>-<random>`` (atomic: the run disappears at
once), then remove the folder.

Run ids are ``<UTC yyyymmdd-hhmmss>-<symbol>-<label>-<model>-<6 hex>`` (see
:func:`new_run_id`): sortable by time and unique even for runs started in the same
second. An id with a path separator, a leading dot or ``..`` is refused, so no id can
reach outside the runs folder.

Active models: at most one run per (symbol, label) is *active* (the model the lab uses
for that market and question), recorded in ``runs/active.json`` (written atomically
under a lock).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

from almanac import faults
from almanac.atomic import atomic_write_json, file_lock
from almanac.errors import AlmanacError, NotFoundError
from almanac.settings import get_settings

log = logging.getLogger(__name__)

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
ACTIVE_FILE = "active.json"
TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
#: Files :func:`read_artifact` reads (parquet -> DataFrame, json -> parsed JSON).
ARTIFACTS = ("dataset.parquet", "oof.parquet", "folds.parquet", "shap.parquet", "shap_base.parquet",
             "importance.parquet", "backtest.parquet", "trades.parquet", "threshold_grid.json",
             "curves.json", "drift.json", "run.json")


def runs_dir(home: Path | str | None = None) -> Path:
    """``<home>/runs`` (home default: ``ALMANAC_HOME``)."""
    return (Path(home).resolve() if home is not None else get_settings().home) / "runs"


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:60].strip("-") or "run"


def new_run_id(symbol: str, label: str, model: str, now: datetime | None = None) -> str:
    """``20261122-081500-es-rest-of-day-lightgbm-1a2b3c`` (UTC time, random suffix)."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%d-%H%M%S}-{_slug(f'{symbol}-{label}-{model}')}-{uuid.uuid4().hex[:6]}"


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a plain run id; AlmanacError for anything that could be a path."""
    rid = str(run_id).strip()
    if not RUN_ID_RE.match(rid) or ".." in rid:
        raise AlmanacError(f"{run_id!r} is not a run id (letters, digits, '-', '_' and '.', no "
                           "path separators): copy one from `python -m almanac runs list`")
    return rid


def run_path(run_id: str, home: Path | str | None = None) -> Path:
    """The folder of complete run ``run_id``; NotFoundError if there is none."""
    rid = check_run_id(run_id)
    root = runs_dir(home)
    path = root / rid
    if path.resolve().parent != root.resolve() or not (path / "run.json").is_file():
        raise NotFoundError(f"no run {rid} in {root}: list the runs with `python -m almanac runs list`")
    return path


def _read_run(path: Path) -> dict:
    try:
        return json.loads((path / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise AlmanacError(f"run {path.name} has an unreadable run.json ({type(exc).__name__}): "
                           "delete the run and train it again") from None


def get_run(run_id: str, home: Path | str | None = None) -> dict:
    """The run's ``run.json`` plus ``"path"`` (its folder, as a string)."""
    path = run_path(run_id, home)
    return {**_read_run(path), "path": str(path)}


def _spec_part(run: dict, section: str, key: str):
    part = (run.get("spec") or {}).get(section)
    return part.get(key) if isinstance(part, dict) else None


def subject(run: dict) -> str | None:
    """What a run is about: its symbol, or ``table:<name>`` for a table dataset."""
    table = _spec_part(run, "data", "table")
    return f"table:{table}" if table else _spec_part(run, "data", "symbol")


def summary(run: dict, active_ids: set[str] = frozenset()) -> dict:
    """The small dict :func:`list_runs` returns for a run record."""
    bt = run.get("backtest") or {}
    return {
        "run_id": run.get("run_id"), "created_at": run.get("created_at"), "name": run.get("name"),
        "user_notes": run.get("user_notes") or "",
        "symbol": subject(run), "label": _spec_part(run, "label", "kind"),
        "model": _spec_part(run, "model", "kind"), "task": run.get("task"), "n_rows": run.get("n_rows"),
        "metrics": run.get("metrics") or {}, "sharpe": bt.get("sharpe"), "dsr": bt.get("dsr"),
        "n_trials": bt.get("n_trials"), "active": run.get("run_id") in active_ids,
        "study_id": run.get("study_id"), "trial": run.get("trial"), "path": run.get("path"),
    }


def _complete_runs(home) -> list[dict]:
    root = runs_dir(home)
    if not root.is_dir():
        return []
    out = []
    for path in root.iterdir():
        if path.name.startswith(".") or not path.is_dir() or not (path / "run.json").is_file():
            continue
        try:
            run = _read_run(path)
        except AlmanacError as exc:
            log.warning("%s", exc.message)
            continue
        if run.get("status") == "complete":
            out.append({**run, "path": str(path)})
    return out


def list_runs(home: Path | str | None = None) -> list[dict]:
    """Summaries of the complete runs, newest first (created_at, then run id)."""
    active_ids = {a["run_id"] for a in active_runs(home)}
    runs = [summary(r, active_ids) for r in _complete_runs(home)]
    return sorted(runs, key=lambda r: (str(r["created_at"] or ""), str(r["run_id"])), reverse=True)


def delete_run(run_id: str, home: Path | str | None = None) -> None:
    """Remove a run: atomic rename out of the listing, then delete; drops it from active."""
    path = run_path(run_id, home)
    trash = path.with_name(f"{TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        raise NotFoundError(f"no run {path.name}: it was deleted meanwhile") from None
    faults.point("run.delete:renamed")
    _drop_active(path.name, home)
    faults.point("run.delete:deactivated")
    shutil.rmtree(trash, ignore_errors=True)


NAME_MAX_CHARS = 100     # a run's name: one line (as the spec's ``name``)
NOTES_MAX_CHARS = 2000   # a run's free-text notes (``run.json["user_notes"]``)


def _check_label(text, what: str, limit: int, multiline: bool) -> str:
    text = "" if text is None else str(text).strip()
    if len(text) > limit:
        raise AlmanacError(f"the {what} {'have' if what.endswith('s') else 'has'} {len(text):,} characters, "
                           f"more than the {limit:,} allowed: shorten it")
    bad = [c for c in text if not (c.isprintable() or (multiline and c in "\n\t"))]
    if bad:
        fix = "use one line of printable text" if not multiline else "remove the control characters"
        verb = "hold" if what.endswith("s") else "holds"
        raise AlmanacError(f"the {what} {verb} a line break or control character ({bad[0]!r}): {fix}")
    return text


def check_labels(name: str | None = None, notes: str | None = None) -> tuple[str | None, str | None]:
    """The cleaned ``(name, notes)`` (None stays None), or AlmanacError with one line saying
    what to change: a name is one non-empty line of at most :data:`NAME_MAX_CHARS`
    printable characters, notes at most :data:`NOTES_MAX_CHARS` characters of text."""
    new_name = None if name is None else _check_label(name, "run name", NAME_MAX_CHARS, multiline=False)
    if new_name == "":
        raise AlmanacError("the run name is empty: give the run a short one-line name")
    new_notes = None if notes is None else _check_label(notes, "notes", NOTES_MAX_CHARS, multiline=True)
    return new_name, new_notes


def update_run_labels(run_id: str, name: str | None = None, notes: str | None = None,
                      home: Path | str | None = None) -> dict:
    """Set a run's ``name`` (one line, at most :data:`NAME_MAX_CHARS`) and/or its free-text
    ``user_notes`` (at most :data:`NOTES_MAX_CHARS`); None leaves a label as it is.

    Both are checked before anything is written (a refused label changes nothing); an
    empty name is refused too (a run keeps a name). ``run.json`` is rewritten atomically
    under a lock, so two edits at once cannot lose each other. Returns the new record.
    The spec stored in the run (``run["spec"]``) is left as it was trained.
    """
    new_name, new_notes = check_labels(name, notes)
    path = run_path(run_id, home)
    with file_lock(runs_dir(home) / ".labels.lock"):
        run = _read_run(path)
        if new_name is not None:
            run["name"] = new_name
        if new_notes is not None:
            run["user_notes"] = new_notes
        if not path.is_dir():
            raise NotFoundError(f"no run {path.name}: it was deleted meanwhile")
        atomic_write_json(path / "run.json", run)
    return {**run, "path": str(path)}


def trial_sharpes(symbol: str, label: str, home: Path | str | None = None) -> list[float]:
    """Annualized backtest Sharpe of every complete run on ``symbol`` with label ``label``
    (NaN for a run whose Sharpe is undefined, e.g. it never traded), oldest first.

    These are the earlier trials of the deflated Sharpe ratio: the runner appends its own.
    Runs without a backtest (multiclass labels) are not trials."""
    sym = str(symbol).upper()
    out = []
    runs = sorted(_complete_runs(home), key=lambda r: (str(r.get("created_at")), str(r.get("run_id"))))
    for run in runs:
        if _spec_part(run, "data", "symbol") != sym or _spec_part(run, "label", "kind") != label:
            continue
        bt = run.get("backtest")
        if not isinstance(bt, dict):
            continue
        s = bt.get("sharpe")
        out.append(float(s) if isinstance(s, (int, float)) and math.isfinite(s) else float("nan"))
    return out


# ---------------------------------------------------------------------- active models


def _active_path(home) -> Path:
    return runs_dir(home) / ACTIVE_FILE


def _load_active(home) -> dict:
    path = _active_path(home)
    if not path.is_file():
        return {}
    try:
        return dict(json.loads(path.read_text()).get("active", {}))
    except (OSError, ValueError, AttributeError):
        log.warning("ignoring unreadable %s", path)
        return {}


def _key(symbol: str, label: str) -> str:
    return f"{symbol}/{label}"


def set_active(run_id: str, home: Path | str | None = None) -> dict:
    """Make ``run_id`` the active model of its (symbol, label); returns the entry."""
    run = get_run(run_id, home)
    sym, label = subject(run), _spec_part(run, "label", "kind")
    entry = {"symbol": sym, "label": label, "run_id": run["run_id"],
             "set_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    root = runs_dir(home)
    with file_lock(root / ".active.lock"):
        active = _load_active(home)
        active[_key(sym, label)] = entry
        atomic_write_json(_active_path(home), {"version": 1, "active": active})
    return entry


def _drop_active(run_id: str, home) -> None:
    root = runs_dir(home)
    with file_lock(root / ".active.lock"):
        active = _load_active(home)
        kept = {k: v for k, v in active.items() if v.get("run_id") != run_id}
        if kept != active:
            atomic_write_json(_active_path(home), {"version": 1, "active": kept})


def active_runs(home: Path | str | None = None) -> list[dict]:
    """``[{symbol, label, run_id, set_at}]`` of the active models whose run still exists."""
    root = runs_dir(home)
    out = []
    for entry in _load_active(home).values():
        rid = str(entry.get("run_id", ""))
        if RUN_ID_RE.match(rid) and (root / rid / "run.json").is_file():
            out.append(entry)
    return sorted(out, key=lambda e: (str(e.get("symbol")), str(e.get("label"))))


# ---------------------------------------------------------------------- artifacts


def read_artifact(run_id: str, name: str, home: Path | str | None = None, columns: list[str] | None = None):
    """An artifact of a run: Parquet files as a DataFrame (``columns`` to prune), JSON as
    the parsed object. ``name`` is one of :data:`ARTIFACTS`; NotFoundError if the run
    has no such file (e.g. ``threshold_grid.json`` of a regression run)."""
    if name not in ARTIFACTS:
        raise AlmanacError(f"{name!r} is not a run artifact: choose one of {', '.join(ARTIFACTS)}")
    path = run_path(run_id, home) / name
    if not path.is_file():
        raise NotFoundError(f"run {run_id} has no {name} (not produced for this kind of run)")
    if name.endswith(".json"):
        return json.loads(path.read_text())
    import pandas as pd

    return pd.read_parquet(path, columns=columns)


__all__ = ["ARTIFACTS", "active_runs", "check_run_id", "delete_run", "get_run", "list_runs", "new_run_id",
           "read_artifact", "run_path", "runs_dir", "set_active", "summary", "trial_sharpes"]
