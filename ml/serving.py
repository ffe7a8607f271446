"""Serving the registry's models: the in-memory model cache, hot swap, rows -> predictions,
today's signal at the cutoff, and the service's status file. No web framework here:
``api.py`` (FastAPI) maps these functions to routes and :class:`~almanac.errors.AlmanacError`
subclasses to status codes.

* **Trusted models only.** The service serves runs the lab trained itself: the final model
  in ``runs/<run_id>/model`` is loaded in this process by :func:`ml.persist.load_model`
  (native LightGBM text / XGBoost JSON / skops with allow-listed types; nothing is
  unpickled), after its file matched the SHA-256 recorded in ``run.json``. A file that
  does not is never loaded: :class:`ModelLoadError` (the API answers 500 with the reason).
* **Cache and hot swap.** :class:`ModelCache` keeps loaded models keyed by run id and the
  SHA-256 of the model file, and re-reads ``runs/active.json`` only when its ``os.stat``
  (inode, size, mtime) changes, a few microseconds per request. Each request takes ONE
  snapshot of the active table and ONE :class:`ServedModel`, so a response never mixes
  two models, and names the run id it used. Marking another run active (``/models`` or
  ``python -m almanac runs activate``) takes effect at the next request, no restart.
  A run's ``run.json`` and model file are also stat-ed per request: a changed file is
  verified and loaded again (or refused).
* **Same numbers as ``predict``.** Rows become a float64 frame in the model's column order
  and go through :func:`ml.export.predictions`, the function ``python -m almanac predict``
  uses (there the model runs in a child process; here the same model file in this one).
* **Signal.** :mod:`ml.day_signal` builds day D's features with the training code and
  predicts that one row through this module.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError
from almanac.settings import REPO_ROOT, Limits, get_limits, get_settings

DEFAULT_PORT = 8060
API_PREFIX = "/api/v1"
#: Rows one ``POST /predict`` takes; more go to ``/predict/batch`` (Limits.api_rows).
PREDICT_MAX_ROWS = 100
#: Models kept loaded (least recently used dropped first).
MAX_MODELS = 16
STATUS_FILE = "serve.json"


class ModelLoadError(AlmanacError):
    """A run's model file failed its SHA-256 check or could not be read: a server-side
    problem (HTTP 5xx), never loaded."""


class RequestError(AlmanacError):
    """The request asks for something the model cannot take (HTTP 4xx)."""


def lab_version() -> str:
    """The lab's version (pyproject.toml), e.g. ``"0.5.0"``."""
    import tomllib

    try:
        with open(REPO_ROOT / "pyproject.toml", "rb") as fh:
            return str(tomllib.load(fh)["project"]["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def file_signature(path: Path) -> tuple | None:
    """(inode, size, mtime_ns) of ``path``, None if it is missing: a replaced or rewritten
    file (atomic writes rename a new inode into place) gets another signature."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


# ---------------------------------------------------------------------- one served model

@dataclass(frozen=True)
class ServedModel:
    """A run's final model loaded in memory, with what a prediction needs."""

    run_id: str
    sha256: str
    run: dict
    bundle: object            # ml.export.Bundle around the in-process model
    signature: tuple          # stat of run.json and the model file when loaded
    columns: object = None    # pandas Index of the feature names, built once (pandas 3: arrow strings)

    @property
    def feature_names(self) -> list[str]:
        return self.bundle.feature_names

    @property
    def task(self) -> str:
        return self.bundle.task

    def describe(self) -> dict:
        """What ``GET /models`` shows of this model (:func:`describe_run`)."""
        return describe_run(self.run)


def describe_run(run: dict) -> dict:
    """A run as the service lists it, from its run.json alone (the model is not loaded):
    run id, symbol, label, model, task, trained range, metrics, trading rules, SHA-256 of
    the model file, features."""
    from ml.runinfo import label_kind, spec_value, trading_rules

    rules = trading_rules(run)
    final = run.get("final_model") or {}
    return {"run_id": run.get("run_id"), "name": run.get("name"), "symbol": spec_value(run, "data", "symbol"),
            "label": label_kind(run), "model": spec_value(run, "model", "kind"), "task": run.get("task"),
            "trained": {k: (run.get("date_range") or {}).get(k) for k in ("start", "end")},
            "n_rows": run.get("n_rows"), "metrics": run.get("metrics") or {},
            "threshold": float(rules["threshold"] or 0.5), "long_only": bool(rules["long_only"]),
            "sha256": final.get("sha256"), "model_file": final.get("file"),
            "feature_names": list(run.get("feature_names") or []), "features": features_config(run)}


def features_config(run: dict) -> dict:
    """The run's feature configuration: symbol, cutoff, sets, cross_assets."""
    from ml.runinfo import spec_value

    f = (run.get("spec") or {}).get("features") or {}
    return {"symbol": spec_value(run, "data", "symbol"), "cutoff": f.get("cutoff", "10:15"),
            "sets": list(f.get("sets") or []), "cross_assets": list(f.get("cross_assets") or [])}


def _files(run_id: str, home) -> tuple[dict, Path, Path, dict]:
    """(run record, run.json path, model file path, final_model meta); NotFoundError if gone."""
    run = registry.get_run(run_id, home)
    rdir = Path(run["path"])
    final = dict(run.get("final_model") or {})
    if not final.get("file") or Path(str(final["file"])).name != final["file"]:
        raise ModelLoadError(f"run {run_id} records no final model file in run.json; train it again")
    return run, rdir / "run.json", rdir / "model" / final["file"], final


def load_served(run_id: str, home=None) -> ServedModel:
    """Verify (SHA-256 against run.json) and load run ``run_id``'s final model."""
    import pandas as pd

    from ml import persist
    from ml.export import Bundle
    from ml.predictor import Predictor
    from ml.runinfo import trading_rules

    run, run_json, model_file, final = _files(run_id, home)
    signature = (file_signature(run_json), file_signature(model_file))
    if not final.get("sha256"):
        raise ModelLoadError(f"run {run_id}: run.json records no SHA-256 of model/{final['file']}, so it "
                             "cannot be verified and is not loaded; train the run again")
    final.setdefault("task", run.get("task"))
    try:
        if final.get("kind") == "ensemble":  # its parts' final models, combined (ml.ensemble)
            from ml.ensemble import load_final

            model = load_final(model_file.parent, final)
        else:
            model = persist.load_model(model_file.parent, final)  # checks the SHA-256 before reading
    except NotFoundError as exc:
        raise ModelLoadError(exc.message) from None
    except AlmanacError as exc:
        raise ModelLoadError(f"run {run_id}: {exc.message}") from None
    names = list(run.get("feature_names") or [])
    rules = trading_rules(run)
    metadata = {"run_id": run_id, "task": run.get("task"), "classes": run.get("classes"),
                "feature_names": names, "threshold": float(rules["threshold"] or 0.5),
                "long_only": bool(rules["long_only"]), "training": run.get("date_range") or {}}
    predictor = Predictor(model, names, run.get("task"), run.get("classes"))
    return ServedModel(run_id, final["sha256"], run, Bundle(predictor=predictor, metadata=metadata),
                       signature, pd.Index(names))


def card_of(run_id: str, home=None) -> dict:
    """:func:`describe_run` of a run plus its model card (the README.md of its bundle) and
    whether it is active; the model is not loaded."""
    from ml.export import build_metadata
    from ml.modelcard import model_card

    run = registry.get_run(run_id, home)
    final = dict(run.get("final_model") or {})
    meta = build_metadata(run, Path(run["path"]), final, f"model/{final.get('file')}")
    active = any(e["run_id"] == run["run_id"] for e in registry.active_runs(home))
    return {**describe_run(run), "active": active, "card": model_card(meta)}


# ---------------------------------------------------------------------- the cache

@dataclass
class ModelCache:
    """Loaded models by run id (LRU, :data:`MAX_MODELS`) and the active table, re-read when
    ``active.json`` changes. Thread-safe; every public method returns immutable snapshots."""

    home: Path | None = None
    root: Path = None             # runs/ (resolved once)
    _models: OrderedDict = field(default_factory=OrderedDict)
    _active: tuple = (None, {})   # (stat of active.json, {(symbol, label): run_id})
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self):
        self.root = registry.runs_dir(self.home)
        self._active_file = self.root / registry.ACTIVE_FILE

    def active(self) -> dict[tuple[str, str], str]:
        """``{(symbol, label): run_id}`` as in ``active.json`` now (cached by its stat)."""
        sig = file_signature(self._active_file)
        snap = self._active
        if snap[0] == sig and sig is not None:
            return snap[1]
        table = {(str(e["symbol"]), str(e["label"])): str(e["run_id"])
                 for e in registry.active_runs(self.home)}
        self._active = (sig, table)
        return table

    def get(self, run_id: str) -> ServedModel:
        """The loaded model of ``run_id``; loaded (verified) again if its files changed."""
        rid = registry.check_run_id(run_id)
        root = self.root / rid
        with self._lock:
            served = self._models.get(rid)
            if served is not None:
                model_file = root / "model" / served.run["final_model"]["file"]
                if served.signature == (file_signature(root / "run.json"), file_signature(model_file)):
                    self._models.move_to_end(rid)
                    return served
                del self._models[rid]
            served = load_served(rid, self.home)
            self._models[rid] = served
            while len(self._models) > MAX_MODELS:
                self._models.popitem(last=False)
            return served

    def resolve(self, run_id: str | None = None, symbol: str | None = None,
                label: str | None = None) -> ServedModel:
        """The model a request names: ``run_id``, or the active model of (symbol, label)."""
        if run_id is not None:
            if symbol is not None or label is not None:
                raise RequestError("give either run_id or symbol and label, not both")
            return self.get(run_id)
        if not symbol:
            raise RequestError("name the model: give run_id, or symbol and label of an active model "
                               "(GET /api/v1/models lists them)")
        return self.get(self.active_run_id(symbol, label))

    def active_run_id(self, symbol: str, label: str | None) -> str:
        table = self.active()
        sym = str(symbol).strip().upper()
        labels = sorted(lb for s, lb in table if s == sym)
        if label is None:
            if len(labels) == 1:
                label = labels[0]
            elif not labels:
                raise NotFoundError(f"no active model for {sym}: mark a run active on /models or with "
                                    "`python -m almanac runs activate RUN_ID`")
            else:
                raise RequestError(f"{sym} has active models for labels {', '.join(labels)}: pass label=")
        rid = table.get((sym, str(label)))
        if rid is None:
            raise NotFoundError(f"no active model for {sym} / {label}: mark a run active on /models or with "
                                "`python -m almanac runs activate RUN_ID`"
                                + (f" (active for {sym}: {', '.join(labels)})" if labels else ""))
        return rid

    def warm(self) -> list[str]:
        """Load every active model now (so the first request does not pay for it)."""
        loaded = []
        for rid in self.active().values():
            try:
                self.get(rid)
                loaded.append(rid)
            except AlmanacError:
                pass  # reported when a request asks for it
        return loaded


# ---------------------------------------------------------------------- rows -> predictions

def check_rows(served: ServedModel, rows: list[dict], max_rows: int, route: str):
    """The rows as a float64 frame in the model's column order, or RequestError naming the
    first problem (no rows, too many, missing or unexpected columns, an infinite value)."""
    import numpy as np
    import pandas as pd

    if not rows:
        raise RequestError("rows is empty: send at least one row {feature: value, ...}")
    if len(rows) > max_rows:
        fix = (f"use {API_PREFIX}/predict/batch (up to {get_limits().api_rows:,} rows)"
               if route == "predict" else f"split them or raise {Limits.var('api_rows')}")
        raise RequestError(f"{len(rows):,} rows are more than the {max_rows:,} {route} takes: {fix}")
    names = served.feature_names
    want = set(names)
    for i, row in enumerate(rows):
        if row.keys() != want:
            missing = [c for c in names if c not in row]
            extra = sorted(c for c in row if c not in want)
            what = "; ".join(p for p in (f"missing column(s) {', '.join(missing)}" if missing else "",
                                         f"unknown column(s) {', '.join(extra)}" if extra else "") if p)
            raise RequestError(f"rows[{i}] does not match run {served.run_id}'s features: {what}; send exactly "
                               f"its {len(names)} feature columns (GET {API_PREFIX}/models/{served.run_id} "
                               "lists them), null for a missing value")
    values = np.array([[row[c] for c in names] for row in rows], dtype="float64")
    inf = np.isinf(values)
    if inf.any():
        i, j = map(int, np.argwhere(inf)[0])
        raise RequestError(f"rows[{i}].{names[j]} is infinite: send a finite number, or null for a "
                           "missing value")
    return pd.DataFrame(values, columns=served.columns)


def predict_frame(served: ServedModel, frame) -> list[dict]:
    """The predictions of the frame's rows as JSON-able records, with the columns of
    :func:`ml.export.predictions` (``python -m almanac predict``). A binary run takes the
    same two calls that function makes for it (:meth:`Predictor.predict_proba_up`, then
    :func:`~ml.predictor.signal_from_proba` at the run's threshold) without its frame
    copies, which cost more than the model on one row; other tasks go through it whole."""
    import numpy as np

    from ml.export import predictions
    from ml.predictor import signal_from_proba

    from ml.persist import LightGBMModel

    md = served.bundle.metadata
    predictor = served.bundle.predictor
    if served.task == "binary":
        if isinstance(predictor.model, LightGBMModel):
            # the columns are the model's, in order (check_rows, Predictor.check_features); LightGBM
            # reads a float64 frame as its values, and its pandas path costs 10x the prediction
            prob = np.asarray(predictor.model.predict_proba(predictor.check_features(frame).to_numpy()),
                              dtype="float64")[:, 1]
        else:
            prob = predictor.predict_proba_up(frame).to_numpy()
        if not served.bundle.trades:  # P(tradeable): no direction, no signal (as ml.export.predictions)
            return [{"prob": json_value(p)} for p in prob.tolist()]
        sig = signal_from_proba(prob, served.bundle.threshold, bool(md.get("long_only", False)))
        return [{"prob": json_value(p), "signal": s} for p, s in zip(prob.tolist(), sig.tolist(), strict=True)]
    out = predictions(served.bundle, frame)
    return [{k: json_value(v) for k, v in rec.items()} for rec in out.to_dict("records")]


def json_value(v):
    """``v`` as a JSON value: numpy scalars as Python numbers, NaN and ±inf as None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item"):
        return json_value(v.item())
    return v


def predict_rows(cache: ModelCache, body: dict, max_rows: int, route: str = "predict") -> dict:
    """``{"run_id", "sha256", "task", "threshold", "predictions": [...]}`` for a request body
    ``{"run_id" or ("symbol", "label"), "rows": [...]}`` (already type-checked)."""
    served = cache.resolve(body.get("run_id"), body.get("symbol"), body.get("label"))
    frame = check_rows(served, body.get("rows") or [], max_rows, route)
    return {"run_id": served.run_id, "sha256": served.sha256, "task": served.task,
            "threshold": served.bundle.metadata["threshold"], "predictions": predict_frame(served, frame)}


# ---------------------------------------------------------------------- status (for /models)

def status_path(home: Path | None = None) -> Path:
    return (Path(home) if home is not None else get_settings().home) / STATUS_FILE


def write_status(host: str, port: int, token: bool, home: Path | None = None) -> Path:
    from almanac.atomic import atomic_write_json

    path = status_path(home)
    atomic_write_json(path, {"host": host, "port": int(port), "pid": os.getpid(), "token_required": bool(token),
                             "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return path


def clear_status(home: Path | None = None) -> None:
    path = status_path(home)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses (a wildcard bind is reached on loopback)."""
    h = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else \
        (f"[{host}]" if ":" in host else host)
    return f"http://{h}:{port}"


def service_status(home: Path | None = None, timeout_s: float = 0.5) -> dict:
    """``{"running": bool, "url", "token_required", "detail"}``: the status file the
    service writes, confirmed by ``GET /api/v1/health``."""
    path = status_path(home)
    try:
        info = json.loads(path.read_text())
        url = base_url(str(info["host"]), int(info["port"]))
    except (OSError, ValueError, KeyError, TypeError):
        return {"running": False, "url": base_url("127.0.0.1", DEFAULT_PORT), "token_required": False,
                "detail": "not running"}
    out = {"url": url, "token_required": bool(info.get("token_required")), "pid": info.get("pid"),
           "started_at": info.get("started_at")}
    try:
        with urllib.request.urlopen(f"{url}{API_PREFIX}/health", timeout=timeout_s) as resp:
            health = json.loads(resp.read(65536))
        return {**out, "running": True, "detail": f"{health.get('active_models', 0)} active model(s)"}
    except (OSError, ValueError):
        return {**out, "running": False, "detail": f"no answer at {url} (stale {STATUS_FILE})"}


def curl_lines(run_id: str, feature_row: dict, symbol: str | None, label: str | None,
               url: str, token: bool = False) -> list[str]:
    """The ``curl`` commands that call the service for one run."""
    auth = ' -H "Authorization: Bearer $ALMANAC_API_TOKEN"' if token else ""
    body = json.dumps({"run_id": run_id, "rows": [feature_row]}, allow_nan=False)
    lines = [f"curl -s {url}{API_PREFIX}/health",
             f"curl -s{auth} {url}{API_PREFIX}/models/{run_id}",
             f"curl -s{auth} -X POST {url}{API_PREFIX}/predict -H 'Content-Type: application/json' "
             f"-d '{body}'"]
    if symbol and label:
        lines.append(f"curl -s{auth} '{url}{API_PREFIX}/signal?symbol={symbol}&label={label}'")
    return lines


def run_example(run_id: str, home=None) -> dict:
    """What /models shows to call the service for one run: ``{"run_id", "symbol", "label",
    "row"}`` with ``row`` = the run's last training day's features (NaN -> None), read from
    its dataset.parquet (the model is not loaded)."""
    import pandas as pd

    run = registry.get_run(run_id, home)
    names = list(run.get("feature_names") or [])
    d = describe_run(run)
    try:
        last = pd.read_parquet(Path(run["path"]) / "dataset.parquet", columns=names).iloc[-1]
        row = {c: json_value(float(v)) for c, v in last.items()}
    except (OSError, ValueError, KeyError, IndexError):
        row = dict.fromkeys(names)
    return {"run_id": d["run_id"], "symbol": d["symbol"], "label": d["label"], "row": row}


__all__ = ["API_PREFIX", "DEFAULT_PORT", "ModelCache", "ModelLoadError", "PREDICT_MAX_ROWS", "RequestError",
           "ServedModel", "card_of", "check_rows", "describe_run", "curl_lines", "file_signature", "json_value",
           "lab_version", "load_served",
           "predict_frame", "predict_rows", "run_example", "service_status", "write_status"]
