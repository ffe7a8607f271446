"""Model bundles: export a run's final model, load it back safely, predict with it.

A bundle is one zip file::

    model/model.txt | model.json | model.skops   the final model (ml.persist formats)
    metadata.json                               what the model is (see below)
    README.md                                   the model card
    MANIFEST.sha256                             "<sha256>  <path>" for each file above
                                                (``sha256sum -c MANIFEST.sha256`` works)

and the zip comment ``almanac-bundle 1 manifest-sha256:<sha256 of MANIFEST.sha256>``.
``metadata.json`` also maps every other file to its SHA-256 (``files``). So altering any
file, the manifest or the metadata, or adding or removing a file, is detected by
:func:`load_bundle`, which refuses the bundle with a one-line :class:`AlmanacError`
naming the file. (The hashes detect damage and careless edits; they are not a
signature: someone who rewrites every hash consistently is not stopped.)

Loading a bundle (:func:`load_bundle`) is done in this order, each step refusing with one
line before the next starts:

1. the zip's central directory only: file size, member count and the sum of declared
   sizes within ``Limits.bundle_members`` / ``Limits.bundle_bytes``
   (``ALMANAC_MAX_BUNDLE_MEMBERS``, ``ALMANAC_MAX_BUNDLE_MB``); exact bundle member names
   (no folders, absolute paths or duplicates); no encryption; stored or deflated only;
   metadata.json, README.md and the manifest within their own bounds;
2. members read in chunks, never past their declared size + 1 byte;
3. comment -> manifest -> every file's SHA-256;
4. only then metadata.json parsed (size and depth bounded) and validated by
   :class:`BundleMetadata`;
5. the model is never loaded in this process: :mod:`ml.sandbox` loads and runs it in a
   child process with a memory limit (``ALMANAC_MODEL_MEMORY_MB``) and a time limit
   (``ALMANAC_MODEL_TIMEOUT_S``), so a damaged model that crashes LightGBM or XGBoost
   natively is refused with "the model in this bundle is damaged: ...".

Nothing in a bundle is unpickled (skops files only with allow-listed types).

metadata.json keys: format, format_version, run_id, name, created_at, exported_at,
model {kind, file, format, task, classes, params}, task, classes, feature_names (in the
model's order), features [{name, lineage}], label {kind, task, horizon_days, classes,
description}, training {start, end, n_rows}, threshold, long_only, cost_bps, metrics,
folds, backtest, data_hashes, versions (of the run), exported_with (versions at
export), code_revision, spec, files; an ensemble run's bundle adds parts and ensemble and
holds each part's model (:mod:`ml.ensemble_bundle`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from almanac import registry
from almanac.atomic import atomic_write, atomic_write_bytes
from almanac.errors import AlmanacError, NotFoundError
from almanac.settings import REPO_ROOT, Limits, get_limits
from ml import persist
from ml.modelcard import model_card
from ml.predictor import Predictor, signal_from_proba
from ml.runinfo import label_kind, spec_value, trading_rules
from ml.sandbox import SandboxedModel

FORMAT = "almanac-bundle"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.sha256"
METADATA = "metadata.json"
README = "README.md"
_COMMENT = re.compile(rb"^almanac-bundle (\d+) manifest-sha256:([0-9a-f]{64})$")
_MEMBER = re.compile(r"^(model/)?[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_METADATA_BYTES = 8 * 2**20  # metadata.json: refused before it is unpacked if larger
MAX_METADATA_DEPTH = 32         # nesting levels of metadata.json
MAX_DIRECTORY_BYTES = 2**20     # a zip's central directory (a few hundred bytes per member)
#: members with their own bound (declared size, checked before unpacking); the model
#: file is bounded by Limits.bundle_bytes (ALMANAC_MAX_BUNDLE_MB) with the rest
_MEMBER_BYTES = {METADATA: MAX_METADATA_BYTES, README: 4 * 2**20, MANIFEST: 64 * 2**10}
_VERSIONED = ("python", "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "xgboost",
              "skops", "shap", "sktime")  # sktime: the optional minirocket model kind (None without it)


def _json_safe(obj):
    """NaN / inf -> None, numpy scalars -> Python numbers, recursively."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- paths and run records

def check_output_path(out: Path | str, default_name: str, suffixes: tuple[str, ...]) -> Path:
    """Where to write a user-requested output file.

    ``out`` may be a file path or an existing folder (then ``default_name`` inside it);
    its suffix must be one of ``suffixes``. Paths anywhere are allowed except the
    repository's ``assets/`` folder, which the web server publishes.
    """
    path = Path(out).expanduser()
    if path.is_dir():
        path = path / default_name
    path = path.resolve()
    assets = (REPO_ROOT / "assets").resolve()
    if path == assets or assets in path.parents:
        raise AlmanacError(f"refusing to write {path}: assets/ is served publicly by the web "
                           "app; choose another --out folder")
    if path.suffix.lower() not in suffixes:
        raise AlmanacError(f"output file {path.name} must end with {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise AlmanacError(f"folder {path.parent} does not exist; create it or choose another --out")
    return path


def versions() -> dict:
    """Versions of python and the model libraries in this environment."""
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in _VERSIONED[1:]:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:
                out[name] = metadata.version(f"{name}-cpu")  # xgboost-cpu
            except metadata.PackageNotFoundError:
                out[name] = None
    return out










def _label_info(run: dict) -> dict:
    kind = label_kind(run)
    info = {"kind": kind, "task": run.get("task"), "horizon_days": None,
            "classes": run.get("classes"), "description": None}
    try:
        from ml.labelers import label_spec

        recorded = run.get("label") if isinstance(run.get("label"), dict) else {}
        ls = label_spec(kind, recorded.get("params"))  # a path label's parameters (first_touch: binary)
        info.update(horizon_days=ls.horizon_days, description=ls.description,
                    classes=list(ls.classes) if ls.classes else None)
    except AlmanacError:
        pass
    recorded = run.get("label")
    if isinstance(recorded, dict):  # the runner's own record wins
        info.update({k: v for k, v in recorded.items() if v is not None})
    return info


def _training_range(run_dir: Path, run: dict) -> dict:
    path = run_dir / "dataset.parquet"
    start = end = None
    if path.is_file():
        frame = pd.read_parquet(path, columns=[])
        dates = pd.to_datetime(frame.index) if "date" == frame.index.name else None
        if dates is None:
            dates = pd.to_datetime(pd.read_parquet(path, columns=["date"])["date"])
        if len(dates):
            start, end = f"{dates.min():%Y-%m-%d}", f"{dates.max():%Y-%m-%d}"
    return {"start": start, "end": end, "n_rows": run.get("n_rows")}


def _backtest_now(run: dict):
    """The backtest record with the DSR and trial count as they are at export (ml.trials)."""
    from ml.trials import current_backtest

    return current_backtest(run, Path(run["path"]).parent.parent if run.get("path") else None)


def build_metadata(run: dict, run_dir: Path, model_meta: dict, model_member: str) -> dict:
    """The bundle's metadata.json (without ``files``) from a run record."""
    lineage = run.get("lineage") or {}
    names = list(run.get("feature_names") or [])
    rules = trading_rules(run)
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "run_id": run.get("run_id"), "name": run.get("name"), "created_at": run.get("created_at"),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": {"kind": model_meta.get("kind"), "file": model_member,
                  "format": model_meta.get("format"), "task": run.get("task"),
                  "classes": model_meta.get("classes"),
                  "params": spec_value(run, "model", "params") or {}},
        "task": run.get("task"), "classes": run.get("classes"),
        "feature_names": names,
        "features": [{"name": n, "lineage": lineage.get(n, {})} for n in names],
        "label": _label_info(run),
        "training": _training_range(run_dir, run),
        **rules,
        "metrics": run.get("metrics"), "folds": run.get("folds"), "backtest": _backtest_now(run),
        "data_hashes": run.get("data_hashes"), "versions": run.get("versions"),
        "exported_with": versions(), "code_revision": run.get("code_revision"),
        "spec": run.get("spec"), "notes": run.get("notes"),
        **user_inputs(lineage, names),
    }


def user_inputs(lineage: dict, names: list[str]) -> dict:
    """``plugins`` and ``tables`` the model's features came from (file/name and SHA-256), from their
    lineage: a bundle says which user code and tables it needs to be rebuilt."""
    plugins, tables = {}, {}
    for n in names:
        lin = lineage.get(n) or {}
        if lin.get("plugin"):
            p = lin["plugin"]
            plugins.setdefault(p["name"], {**p, "features": []})["features"].append(n)
        if lin.get("table"):
            t = lin["table"]
            tables.setdefault(t["name"], {**t, "features": []})["features"].append(n)
    return {"plugins": list(plugins.values()), "tables": list(tables.values())}


# ---------------------------------------------------------------- export

def _model_files(run_dir: Path, run: dict) -> tuple[dict, Path]:
    """(model meta for persist.load_model, path of the model file) of a run."""
    final = dict(run.get("final_model") or {})
    folder = run_dir / "model"
    if not final.get("file"):
        kind = final.get("kind") or spec_value(run, "model", "kind")
        if kind not in persist.FILES:
            raise AlmanacError(f"run {run.get('run_id')} records no final model; re-run it")
        final["file"], final["format"] = persist.FILES[kind]
    final.setdefault("task", run.get("task"))
    path = folder / Path(final["file"]).name
    if not path.is_file():
        raise NotFoundError(f"run {run.get('run_id')} has no model file model/{path.name}; "
                            "re-run the experiment")
    return final, path


def export_run(run_id: str, out: Path | str) -> Path:
    """Write the bundle of run ``run_id`` to ``out`` (a .zip path, or a folder to hold
    ``<run_id>.zip``) and return its path.

    The run's model file must match the SHA-256 the runner recorded (if any); the written
    bundle is read back with :func:`load_bundle` (hashes verified, model loaded) and
    removed again if that fails."""
    run = registry.get_run(run_id)
    run_dir = Path(run["path"])
    path = check_output_path(out, f"{run_id}.zip", (".zip",))
    if run.get("kind") == "ensemble":  # its parts' models and its weights (ml.ensemble_bundle)
        from ml.ensemble_bundle import MODEL_MEMBER, model_members

        models, model_meta, extra = model_members(run, run_dir)
        member = MODEL_MEMBER
        metadata = {**build_metadata(run, run_dir, model_meta, member), **extra}
    else:
        model_meta, model_path = _model_files(run_dir, run)
        member = f"model/{model_path.name}"
        metadata = build_metadata(run, run_dir, model_meta, member)
        models = {member: model_path.read_bytes()}
        if model_meta.get("sha256") and _sha256(models[member]) != model_meta["sha256"]:
            raise AlmanacError(f"run {run_id}: model/{model_path.name} does not match the SHA-256 "
                               "recorded in run.json (altered or damaged); re-run the experiment")

    readme = model_card(metadata).encode()
    metadata["files"] = {**{m: _sha256(b) for m, b in models.items()}, README: _sha256(readme)}
    meta_bytes = (json.dumps(_json_safe(metadata), indent=2, default=str, allow_nan=False)
                  + "\n").encode()
    members = {**models, README: readme, METADATA: meta_bytes}
    manifest = "".join(f"{_sha256(b)}  {n}\n" for n, b in sorted(members.items())).encode()
    members[MANIFEST] = manifest

    def writer(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in (METADATA, README, MANIFEST, *models):
                zf.writestr(name, members[name])
            zf.comment = f"{FORMAT} {FORMAT_VERSION} manifest-sha256:{_sha256(manifest)}".encode()

    atomic_write(path, writer, fault="export")
    try:
        load_bundle(path)  # never hand out a bundle that does not load
    except AlmanacError:
        path.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- metadata schema

_Text = Annotated[str, StringConstraints(max_length=1000)]
_Name = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Class = Annotated[str, StringConstraints(max_length=200)] | int | float  # y values: 0.0 / 1.0
_Free = dict[str, Any] | list[Any] | None  # free-form JSON: bounded by size and depth


class _Schema(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


_ENSEMBLE = ("ensemble", "model/ensemble.json", "almanac-ensemble")  # an ensemble run's bundle (ml.ensemble_bundle)


class ModelEntry(_Schema):
    kind: Literal[(*persist.FILES, _ENSEMBLE[0])]
    file: Annotated[str, StringConstraints(pattern=r"^model/[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")]
    format: Literal[(*sorted({f for _, f in persist.FILES.values()}), _ENSEMBLE[2])]
    task: Literal["binary", "multiclass", "regression"] | None = None
    classes: Annotated[list[_Class], Field(max_length=1000)] | None = None
    params: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _file_of_kind(self):
        if self.kind == _ENSEMBLE[0]:
            if (self.file, self.format) != _ENSEMBLE[1:]:
                raise ValueError(f"an ensemble is {_ENSEMBLE[1]} in format {_ENSEMBLE[2]}")
            return self
        name, fmt = persist.FILES[self.kind]
        if (self.file, self.format) != (f"model/{name}", fmt):
            raise ValueError(f"a {self.kind} model is model/{name} in format {fmt}")
        return self


class PartEntry(_Schema):
    """One part of an ensemble bundle: its model file ``model/part-<i>-<file>``."""

    kind: Literal[tuple(persist.FILES)]
    file: Annotated[str, StringConstraints(pattern=r"^model/part-[0-9]{1,2}-[A-Za-z0-9_.-]{1,40}$")]
    format: Literal[tuple(sorted({f for _, f in persist.FILES.values()}))]
    task: Literal["binary", "multiclass", "regression"] | None = None
    classes: Annotated[list[_Class], Field(max_length=1000)] | None = None
    run_id: _Text | None = None
    feature_names: Annotated[list[_Name], Field(min_length=1, max_length=10_000)]

    @model_validator(mode="after")
    def _file_of_kind(self):
        name, fmt = persist.FILES[self.kind]
        if not self.file.endswith(f"-{name}") or self.format != fmt:
            raise ValueError(f"a {self.kind} part is model/part-<i>-{name} in format {fmt}")
        return self


class StackerEntry(_Schema):
    """Binary: one coefficient per part and one intercept; multiclass: one row of
    (parts x classes) coefficients and one intercept per class (ml.ensemble.combine)."""

    coef: Annotated[list[float], Field(min_length=1, max_length=16)] | \
        Annotated[list[Annotated[list[float], Field(max_length=16_000)]], Field(min_length=2, max_length=1000)]
    intercept: float | Annotated[list[float], Field(min_length=2, max_length=1000)]


class EnsembleEntry(_Schema):
    method: Literal["mean", "stack"]
    weights: Annotated[list[float], Field(min_length=1, max_length=16)] | None = None
    stacker: StackerEntry | None = None


class FeatureEntry(_Schema):
    name: _Name
    lineage: dict[str, Any] | None = None


class BundleMetadata(_Schema):
    """The schema of metadata.json (see the module doc): the keys a bundle is used by are
    required and typed; descriptive ones are optional, bounded by the file's size
    (MAX_METADATA_BYTES) and nesting depth (MAX_METADATA_DEPTH)."""

    format: Literal["almanac-bundle"]
    format_version: Literal[1]
    run_id: _Text | None = None
    name: _Text | None = None
    created_at: _Text | None = None
    exported_at: _Text | None = None
    model: ModelEntry
    task: Literal["binary", "multiclass", "regression"]
    classes: Annotated[list[_Class], Field(max_length=1000)] | None = None
    feature_names: Annotated[list[_Name], Field(min_length=1, max_length=10_000)]
    features: Annotated[list[FeatureEntry], Field(max_length=10_000)] | None = None
    label: _Free = None
    training: _Free = None
    threshold: Annotated[float, Field(ge=0.5, le=1.0)] | None = None
    long_only: bool | None = None
    cost_bps: Annotated[float, Field(ge=0, le=10_000)] | None = None
    metrics: _Free = None
    folds: _Free = None
    backtest: _Free = None
    data_hashes: _Free = None
    versions: _Free = None
    exported_with: _Free = None
    code_revision: _Text | None = None
    spec: _Free = None
    notes: _Free = None
    files: Annotated[dict[str, Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]],
                     Field(max_length=16)]
    parts: Annotated[list[PartEntry], Field(min_length=1, max_length=13)] | None = None
    ensemble: EnsembleEntry | None = None

    @model_validator(mode="after")
    def _consistent(self):
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ValueError("feature_names repeat a name")
        if self.features is not None and [f.name for f in self.features] != self.feature_names:
            raise ValueError("features do not name the feature_names in order")
        if self.model.task not in (None, self.task):
            raise ValueError(f"model.task {self.model.task} is not task {self.task}")
        if self.model.file not in self.files:
            raise ValueError(f"files does not list the model file {self.model.file}")
        if self.task == "regression" and self.classes:
            raise ValueError("a regression model has no classes")
        if self.task == "binary" and self.classes is not None and len(self.classes) != 2:
            raise ValueError("a binary model has two classes")
        if (self.model.kind == _ENSEMBLE[0]) != (self.parts is not None and self.ensemble is not None):
            raise ValueError("an ensemble bundle, and only one, lists parts and ensemble")
        for p in self.parts or []:
            if p.file not in self.files:
                raise ValueError(f"files does not list the part's model file {p.file}")
            if p.task not in (None, self.task) or not set(p.feature_names) <= set(self.feature_names):
                raise ValueError(f"part {p.file} has another task or features outside feature_names")
        if self.ensemble is not None and self.parts is not None:
            n = len(self.parts)
            st, k = self.ensemble.stacker, len(self.classes or [])
            if self.ensemble.method == "stack":
                if st is None or self.task == "regression":
                    raise ValueError("a stacked ensemble is a classifier with a stacker")
                if self.task == "binary":
                    good = isinstance(st.intercept, float) and len(st.coef) == n and \
                        all(isinstance(c, float) for c in st.coef)
                else:
                    good = isinstance(st.intercept, list) and len(st.intercept) == k and len(st.coef) == k and \
                        all(isinstance(r, list) and len(r) == n * k for r in st.coef)
                if not good:
                    raise ValueError(f"the stacker does not have one coefficient per part ({n}) and class and one "
                                     "intercept (per class)")
            if self.ensemble.method == "mean" and len(self.ensemble.weights or []) != n:
                raise ValueError(f"a mean ensemble has one weight per part ({n})")
        return self


# ---------------------------------------------------------------- load

@dataclass(frozen=True)
class Bundle:
    """A verified bundle: ``predictor`` (ml.predictor.Predictor around an
    :class:`ml.sandbox.SandboxedModel`: every prediction runs in a child process) and
    ``metadata`` (validated against :class:`BundleMetadata`)."""

    predictor: Predictor
    metadata: dict
    path: Path | None = None

    @property
    def feature_names(self) -> list[str]:
        return list(self.metadata["feature_names"])

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def threshold(self) -> float:
        return float(self.metadata.get("threshold") or 0.5)

    @property
    def trades(self) -> bool:
        """Whether a prediction is a direction to trade (a ``signal``): not for a label such as
        tradeable, time_to_touch or max_excursion (``ml.labelers.LabelSpec.untraded``)."""
        from ml.labelers import label_spec

        label = self.metadata.get("label") if isinstance(self.metadata.get("label"), dict) else {}
        try:
            return label_spec(label.get("kind"), label.get("params")).untraded is None
        except AlmanacError:  # a table's column label: as before
            return True


def _limit_error(where: str, what: str, name: str, limits: Limits) -> AlmanacError:
    value = getattr(limits, name)
    bound = f"{value:,} bytes" if name == "bundle_bytes" else f"{value:,}"
    return AlmanacError(f"{where}: {what}, more than the limit of {bound}; refused before "
                        f"unpacking (raise {Limits.var(name)} if the bundle is genuine)")


def _read_members(path: Path) -> tuple[dict[str, bytes], bytes]:
    """The members of bundle ``path`` and its zip comment, read under the bundle limits.

    Everything a zip file declares is checked in its central directory BEFORE any member
    is decompressed: the file size, the member count, member names (plain bundle names,
    no folders, absolute paths or duplicates), no encryption, only stored / deflated
    members, each declared size within its own bound and their sum within
    ``Limits.bundle_bytes``. Members are then read in chunks, never past their declared
    size + 1 byte (a member that inflates beyond it is refused)."""
    where = path.name
    if not path.is_file():
        raise NotFoundError(f"model bundle {path} does not exist")
    limits = get_limits()
    size = path.stat().st_size
    if size > limits.bundle_bytes:
        raise _limit_error(where, f"the bundle is {size:,} bytes", "bundle_bytes", limits)
    _check_directory(path, where, limits)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > limits.bundle_members:
                raise _limit_error(where, f"it holds {len(infos):,} members", "bundle_members",
                                   limits)
            # a folder entry "model/" (as `zip -r` writes) holds nothing: skip it
            infos = [i for i in infos if i.filename != "model/"]
            names = [i.filename for i in infos]
            for name in names:
                if not _MEMBER.match(name) or ".." in name:
                    raise AlmanacError(f"{where}: refusing member {name!r}: not a file name of "
                                       "a model bundle (unexpected folder or path)")
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise AlmanacError(f"{where}: member {dup[0]} appears more than once; "
                                   "the bundle was altered")
            for info in infos:
                if info.flag_bits & 0x1:
                    raise AlmanacError(f"{where}: {info.filename} is encrypted; bundles are not")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise AlmanacError(f"{where}: {info.filename} uses zip compression method "
                                       f"{info.compress_type}; bundles are stored or deflated")
                bound = _MEMBER_BYTES.get(info.filename)
                if bound is not None and info.file_size > bound:
                    raise AlmanacError(f"{where}: {info.filename} declares {info.file_size:,} "
                                       f"bytes, more than the {bound:,} a bundle allows")
            total = sum(i.file_size for i in infos)
            if total > limits.bundle_bytes:
                raise _limit_error(where, f"its members unpack to {total:,} bytes",
                                   "bundle_bytes", limits)
            # MANIFEST first: a bundle whose manifest is altered is refused before the rest
            infos.sort(key=lambda i: (i.filename != MANIFEST, i.file_size))
            data = {}
            for info in infos:
                data[info.filename] = _read_bounded(zf, info, where)
            return data, zf.comment
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise AlmanacError(f"{where} is damaged ({type(exc).__name__}: {exc}); "
                           "export the bundle again") from None


def _check_directory(path: Path, where: str, limits: Limits) -> None:
    """Refuse a file that is not a zip, or whose end record declares more members than
    the limit or a central directory larger than MAX_DIRECTORY_BYTES, before zipfile
    parses that directory (it builds one object per entry, whatever the count says)."""
    try:
        with open(path, "rb") as fh:
            end = zipfile._EndRecData(fh)  # the end-of-central-directory record (+ zip64)
    except OSError:
        end = None
    if not end:
        raise AlmanacError(f"{where} is not a model bundle (not a zip file); export one with "
                           "`python -m almanac export`")
    count, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if count > limits.bundle_members:
        raise _limit_error(where, f"it holds {count:,} members", "bundle_members", limits)
    if size > MAX_DIRECTORY_BYTES:
        raise AlmanacError(f"{where}: its zip directory is {size:,} bytes, more than the "
                           f"{MAX_DIRECTORY_BYTES:,} a bundle of at most {limits.bundle_members} "
                           f"files needs; the file was altered")


def _read_bounded(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> bytes:
    """The bytes of one member, reading at most its declared size + 1."""
    left = info.file_size + 1
    chunks = []
    with zf.open(info) as fh:
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    blob = b"".join(chunks)
    if len(blob) != info.file_size:
        raise AlmanacError(f"{where}: {info.filename} unpacks to a different size than the "
                           f"{info.file_size:,} bytes it declares; the bundle was altered")
    return blob


_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _parse_manifest(where: str, manifest: bytes) -> dict[str, str]:
    """name -> SHA-256 of each '<sha256>  <name>' line; anything else refuses the bundle."""
    try:
        text = manifest.decode("utf-8")
    except UnicodeDecodeError:
        raise AlmanacError(f"{where}: {MANIFEST} is not UTF-8 text; the bundle was altered") from None
    listed: dict[str, str] = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        if not sep or not _HEX64.match(digest) or not _MEMBER.match(name) or ".." in name \
                or name == MANIFEST or name in listed:
            raise AlmanacError(f"{where}: {MANIFEST} has a malformed or repeated line "
                               f"{line[:80]!r}; the bundle was altered")
        listed[name] = digest
    return listed


def _json_depth(obj) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        item, d = stack.pop()
        if isinstance(item, (dict, list)):
            depth = max(depth, d)
            if depth > MAX_METADATA_DEPTH:
                return depth
            stack.extend((v, d + 1) for v in (item.values() if isinstance(item, dict) else item))
    return depth


def _parse_metadata(where: str, raw: bytes) -> dict:
    """metadata.json parsed (size and depth bounded) and validated by BundleMetadata."""
    if len(raw) > MAX_METADATA_BYTES:
        raise AlmanacError(f"{where}: {METADATA} is {len(raw):,} bytes, more than the "
                           f"{MAX_METADATA_BYTES:,} a bundle allows")
    try:
        metadata = json.loads(raw)
    except RecursionError:
        raise AlmanacError(f"{where}: {METADATA} is nested too deeply; export the bundle again") from None
    except ValueError:
        raise AlmanacError(f"{where}: {METADATA} is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise AlmanacError(f"{where}: {METADATA} is not a JSON object; export the bundle again")
    if _json_depth(metadata) > MAX_METADATA_DEPTH:
        raise AlmanacError(f"{where}: {METADATA} is nested more than {MAX_METADATA_DEPTH} levels "
                           "deep; export the bundle again")
    try:
        BundleMetadata.model_validate(metadata)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise AlmanacError(f"{where}: {METADATA} is not valid bundle metadata: {loc}: "
                           f"{err['msg']}; export the bundle again") from None
    return metadata


def _verify(where: str, members: dict[str, bytes], comment: bytes) -> dict:
    """Check comment -> manifest -> every file's hash, and only then parse and validate
    metadata.json; return it."""
    m = _COMMENT.match(comment or b"")
    if not m:
        raise AlmanacError(f"{where} is not an almanac model bundle (no bundle comment); "
                           "export one with `python -m almanac export`")
    if int(m.group(1)) != FORMAT_VERSION:
        raise AlmanacError(f"{where} has bundle format {int(m.group(1))}; this lab reads "
                           f"format {FORMAT_VERSION}")
    if MANIFEST not in members:
        raise AlmanacError(f"{where}: {MANIFEST} is missing; the bundle was altered")
    manifest = members[MANIFEST]
    if _sha256(manifest) != m.group(2).decode():
        raise AlmanacError(f"{where}: {MANIFEST} does not match its SHA-256 in the bundle "
                           "comment; the bundle was altered")
    listed = _parse_manifest(where, manifest)
    extra = sorted(set(members) - set(listed) - {MANIFEST})
    if extra:
        raise AlmanacError(f"{where}: {extra[0]} is not in {MANIFEST}; the bundle was altered")
    for name, digest in sorted(listed.items()):
        if name not in members:
            raise AlmanacError(f"{where}: {name} is missing; the bundle was altered")
        if _sha256(members[name]) != digest:
            raise AlmanacError(f"{where}: {name} does not match its SHA-256 in {MANIFEST}; "
                               "the bundle was altered or damaged")
    if METADATA not in listed:
        raise AlmanacError(f"{where}: {METADATA} is missing; the bundle was altered")
    metadata = _parse_metadata(where, members[METADATA])
    if metadata["files"] != {n: d for n, d in listed.items() if n != METADATA}:
        raise AlmanacError(f"{where}: {METADATA} lists other files than {MANIFEST}; "
                           "the bundle was altered")
    return metadata


def load_bundle(path: Path | str, check_model: bool = True) -> Bundle:
    """Verify a bundle written by :func:`export_run` (see the module doc) and return it.

    The model is never loaded in this process: predictions run in a child
    (:mod:`ml.sandbox`). With ``check_model`` (default) the model is loaded and run on
    one row there now, so a model the library cannot read is refused here; without it,
    at the first prediction."""
    path = Path(path).expanduser()
    members, comment = _read_members(path)
    metadata = _verify(path.name, members, comment)
    member = metadata["model"]["file"]
    if member not in members:
        raise AlmanacError(f"{path.name}: model file {member!r} is missing; the bundle was altered")
    if metadata["model"]["kind"] == _ENSEMBLE[0]:  # its parts, each sandboxed (ml.ensemble_bundle)
        from ml import ensemble_bundle

        model = ensemble_bundle.sandboxed(members, metadata, path.name)
        check = lambda: ensemble_bundle.check(model)  # noqa: E731
    else:
        meta = {"file": member.split("/", 1)[1], "format": metadata["model"]["format"],
                "task": metadata["task"], "classes": metadata["model"].get("classes"),
                "feature_names": metadata["feature_names"]}
        model = SandboxedModel(members[member], meta)
        check = model.check
    if check_model:
        try:
            check()
        except AlmanacError as exc:
            raise AlmanacError(f"{path.name}: {exc.message}") from None
    predictor = Predictor(model, metadata["feature_names"], metadata["task"],
                          metadata.get("classes"))
    return Bundle(predictor=predictor, metadata=metadata, path=path)


# ---------------------------------------------------------------- predict

def _read_input(path: Path, names: list[str], warn=None) -> pd.DataFrame:
    """The rows of features file ``path``: refused if it has no rows, lacks a feature
    column, or a feature column is not numeric, is boolean or holds ±inf; an all-NaN
    feature column is passed to ``warn`` (one line)."""
    if not path.is_file():
        raise NotFoundError(f"input file {path} does not exist")
    try:
        frame = pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise AlmanacError(f"{path.name} is not a readable Parquet file ({type(exc).__name__}); "
                           "pass a Parquet file of features") from None
    if "date" not in frame.columns and frame.index.name == "date":
        frame = frame.reset_index()
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise AlmanacError(f"{path.name} lacks feature column(s) {', '.join(missing)} that the "
                           f"model needs; build features with the same sets and cutoff")
    if len(frame) == 0:
        raise AlmanacError(f"{path.name} has no rows; pass a Parquet file with at least one "
                           "row of features")
    if frame.columns.duplicated().any():
        dup = sorted({str(c) for c in frame.columns[frame.columns.duplicated()]})
        raise AlmanacError(f"{path.name} repeats column(s) {', '.join(dup)}")
    boolean = [c for c in names if pd.api.types.is_bool_dtype(frame[c])]
    if boolean:
        raise AlmanacError(f"feature column(s) {', '.join(boolean)} of {path.name} are boolean; "
                           "the model was trained on numbers: cast them to float (0/1)")
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise AlmanacError(f"feature column(s) {', '.join(bad)} of {path.name} are not numeric")
    values = frame[names].to_numpy(dtype="float64", na_value=np.nan)
    inf = np.isinf(values)
    if inf.any():
        cols = [c for c, hit in zip(names, inf.any(axis=0), strict=True) if hit]
        raise AlmanacError(f"feature column(s) {', '.join(cols)} of {path.name} hold infinite "
                           f"values ({int(inf.sum())} cells); replace them with NaN (missing) "
                           "or drop those rows")
    empty = [c for c, all_nan in zip(names, np.isnan(values).all(axis=0), strict=True) if all_nan]
    if empty and warn is not None:
        warn(f"feature column(s) {', '.join(empty)} of {path.name} are missing (NaN) in every "
             "row; the model predicts them as missing values")
    return frame


def in_sample_rows(metadata: dict, frame: pd.DataFrame) -> int:
    """How many rows of ``frame`` have a ``date`` inside the bundle's training period
    (``metadata["training"]`` start .. end, inclusive): the final model was fitted on those
    days, so its predictions there are in-sample. 0 without dates or a recorded period."""
    t = metadata.get("training")
    if not isinstance(t, dict) or not t.get("start") or not t.get("end") or "date" not in frame.columns:
        return 0
    try:
        start, end = pd.Timestamp(t["start"]), pd.Timestamp(t["end"])
        dates = pd.to_datetime(frame["date"], errors="coerce")
    except (ValueError, TypeError):
        return 0
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_localize(None)
    dates = dates.dt.normalize()
    return int(((dates >= start) & (dates <= end)).sum())


def predictions(bundle: Bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The bundle's predictions for the rows of ``frame`` (which holds its feature columns).

    Binary: ``prob`` = P(up) and ``signal`` (+1/−1/0) at the bundle's threshold and
    long-only rule. Multiclass: ``prob_<class>`` per class and ``pred`` (class name).
    Regression: ``pred`` and ``signal`` = sign(pred) (0 for short days when long-only).
    A label that is not a direction (tradeable, time_to_touch, max_excursion) has no ``signal``.
    A ``date`` column is carried through first. The model runs once, in a child process.
    """
    X = frame.loc[:, bundle.feature_names].astype("float64")
    p = bundle.predictor
    out = pd.DataFrame(index=frame.index)
    if "date" in frame.columns:
        out["date"] = frame["date"]
    long_only = bool(bundle.metadata.get("long_only", False))
    if bundle.task == "binary":
        prob = p.predict_proba_up(X).to_numpy()
        out["prob"] = prob
        out["signal"] = signal_from_proba(prob, bundle.threshold, long_only)
    elif bundle.task == "multiclass":
        proba = p.predict_proba(X)
        for col in proba.columns:
            out[f"prob_{col}"] = proba[col].to_numpy()
        out["pred"] = np.asarray(proba.columns)[proba.to_numpy().argmax(axis=1)]
    else:
        pred = p.predict(X).to_numpy(dtype="float64")
        sig = np.sign(pred).astype("int8")
        out["pred"] = pred
        out["signal"] = np.where(long_only & (sig < 0), 0, sig).astype("int8")
    if "signal" in out and not bundle.trades:  # P(tradeable), minutes, ATR: no direction to sign
        out = out.drop(columns="signal")
    return out.reset_index(drop=True)


def predict_bundle(bundle: Bundle | Path | str, input_parquet: Path | str,
                   out: Path | str, warn=None) -> Path:
    """Predict the rows of ``input_parquet`` with ``bundle`` (a Bundle or a bundle path)
    and write :func:`predictions` to ``out`` (.parquet or .csv); returns the path.

    The bundle is verified and the input checked before the model runs (once, in a
    child process, on the input's rows); ``warn(message)`` receives one-line warnings."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle, check_model=False)  # the model first runs on the rows below
    src = Path(input_parquet).expanduser().resolve()
    path = check_output_path(out, f"{src.stem}-predictions.parquet", (".parquet", ".csv"))
    if path == src:
        raise AlmanacError(f"--out {path} is the input file; choose another output path")
    frame = _read_input(src, bundle.feature_names, warn)
    try:
        result = predictions(bundle, frame)
    except AlmanacError as exc:
        where = bundle.path.name if bundle.path else "bundle"
        raise AlmanacError(exc.message if exc.message.startswith(where) else f"{where}: {exc.message}") from None
    inside = in_sample_rows(bundle.metadata, frame)  # said with a result, not before a refusal
    if inside and warn is not None:
        t = bundle.metadata["training"]
        warn(f"{inside} rows fall inside the model's training period ({t['start']} → {t['end']}): in-sample")
    if path.suffix.lower() == ".csv":
        atomic_write_bytes(path, result.to_csv(index=False).encode())
    else:
        buf = io.BytesIO()
        result.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    return path


__all__ = ["Bundle", "BundleMetadata", "check_output_path", "export_run", "in_sample_rows", "load_bundle",
           "predict_bundle", "predictions", "versions"]
