"""The bundle of an ensemble run: one verified zip (:mod:`ml.export`) that holds its parts.

Members besides metadata.json, README.md and MANIFEST.sha256::

    model/ensemble.json          method, weights or stacker, and the parts (the run's model/ensemble.json)
    model/part-<i>-<file>        part i's final model in its native format (model.txt, model.json, model.skops)

``metadata.json["model"]`` is ``{"kind": "ensemble", "file": "model/ensemble.json", "format":
"almanac-ensemble"}``; ``metadata.json["parts"]`` lists each part (run id, kind, file, format,
task, classes, feature_names) and ``metadata.json["ensemble"]`` holds ``method``,
``weights`` / ``stacker``. Both are validated by :class:`ml.export.BundleMetadata` and must
agree with ``model/ensemble.json``. Loading builds an :class:`ml.ensemble.EnsembleModel`
around one :class:`ml.sandbox.SandboxedModel` per part: every part predicts in a child
process, and :func:`ml.ensemble.combine` (plain arithmetic on the JSON weights) combines
them here, so the bundle predicts what the run's final model predicts.
"""

from __future__ import annotations

import json
from pathlib import Path

from almanac.errors import AlmanacError, NotFoundError
from ml import persist
from ml.ensemble import ENSEMBLE_FILE, ENSEMBLE_FORMAT, EnsembleModel
from ml.sandbox import SandboxedModel

MODEL_MEMBER = f"model/{ENSEMBLE_FILE}"


def _described(meta: dict) -> dict:
    """What ``model/ensemble.json`` and metadata.json must agree on."""
    return {"method": meta["method"], "stacker": meta.get("stacker"), "weights": meta.get("weights"),
            "parts": [{k: p.get(k) for k in ("run_id", "kind", "format", "task", "classes", "feature_names")}
                      for p in meta["parts"]]}


def model_members(run: dict, run_dir: Path) -> tuple[dict[str, bytes], dict, dict]:
    """(members {name: bytes}, model meta for the metadata's ``model`` entry, extra metadata
    ``{"parts", "ensemble"}``) of ensemble run ``run``; each file checked against its SHA-256."""
    final = run.get("final_model") or {}
    folder = run_dir / "model"
    path = folder / ENSEMBLE_FILE
    if not path.is_file():
        raise NotFoundError(f"run {run.get('run_id')} has no model/{ENSEMBLE_FILE}; make the ensemble again")
    raw = path.read_bytes()
    if final.get("sha256") and persist.file_sha256(path) != final["sha256"]:
        raise AlmanacError(f"run {run.get('run_id')}: model/{ENSEMBLE_FILE} does not match the SHA-256 recorded in "
                           "run.json (altered or damaged); make the ensemble again")
    meta = json.loads(raw)
    members = {MODEL_MEMBER: raw}
    parts = []
    for i, p in enumerate(meta["parts"], start=1):
        src = folder / p["folder"] / p["file"]
        if not src.is_file() or (p.get("sha256") and persist.file_sha256(src) != p["sha256"]):
            raise AlmanacError(f"run {run.get('run_id')}: model/{p['folder']}/{p['file']} is missing or does not "
                               "match its SHA-256 (altered or damaged); make the ensemble again")
        member = f"model/part-{i}-{p['file']}"
        members[member] = src.read_bytes()
        parts.append({"run_id": p["run_id"], "kind": p["kind"], "file": member, "format": p["format"],
                      "task": p.get("task"), "classes": p.get("classes"), "feature_names": p["feature_names"]})
    model_meta = {"kind": "ensemble", "format": ENSEMBLE_FORMAT, "classes": final.get("classes")}
    extra = {"parts": parts, "ensemble": {"method": meta["method"], "weights": meta.get("weights"),
                                          "stacker": meta.get("stacker")}}
    return members, model_meta, extra


def sandboxed(members: dict[str, bytes], metadata: dict, where: str) -> EnsembleModel:
    """The ensemble of a verified bundle's metadata: its parts sandboxed (ml.sandbox)."""
    ens = metadata["ensemble"]
    meta = {"method": ens["method"], "stacker": ens.get("stacker"), "weights": ens.get("weights"),
            "task": metadata["task"], "parts": metadata["parts"]}
    try:
        recorded = json.loads(members[MODEL_MEMBER])
        agree = _described({**recorded, "parts": recorded["parts"]}) == _described(meta)
    except (KeyError, TypeError, ValueError):
        agree = False
    if not agree:
        raise AlmanacError(f"{where}: {MODEL_MEMBER} and metadata.json describe different ensembles; "
                           "the bundle was altered")
    models = []
    for p in metadata["parts"]:
        models.append(SandboxedModel(members[p["file"]], {
            "file": persist.FILES[p["kind"]][0], "format": p["format"], "task": metadata["task"],
            "classes": p.get("classes"), "feature_names": p["feature_names"]}))
    return EnsembleModel(models, meta)


def check(model: EnsembleModel) -> None:
    """Load every part in a child and predict one row there (AlmanacError if one fails)."""
    for part in model.models:
        part.check()


__all__ = ["MODEL_MEMBER", "check", "model_members", "sandboxed"]
