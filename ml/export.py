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

Nothing in a bundle is unpickled: members are read into memory under size limits, only
the exact member names above are accepted (no paths outside the bundle), and the model
is loaded by :func:`ml.persist.load_model` (skops files only with allow-listed types).

metadata.json keys: format, format_version, run_id, name, created_at, exported_at,
model {kind, file, format, task, classes, params}, task, classes, feature_names (in the
model's order), features [{name, lineage}], label {kind, task, horizon_days, classes,
description}, training {start, end, n_rows}, threshold, long_only, cost_bps, metrics,
folds, backtest, data_hashes, versions (of the run), exported_with (versions at
export), code_revision, spec, files.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from almanac.atomic import atomic_write, atomic_write_bytes
from almanac.errors import AlmanacError, NotFoundError
from almanac.settings import REPO_ROOT
from ml import persist
from ml.predictor import Predictor

FORMAT = "almanac-bundle"
FORMAT_VERSION = 1
MANIFEST = "MANIFEST.sha256"
METADATA = "metadata.json"
README = "README.md"
_COMMENT = re.compile(rb"^almanac-bundle (\d+) manifest-sha256:([0-9a-f]{64})$")
_MEMBER = re.compile(r"^(model/)?[A-Za-z0-9_][A-Za-z0-9_.-]*$")
MAX_MEMBER_BYTES = 1 << 30  # 1 GiB per file: a larger member is refused (zip bombs)
_VERSIONED = ("python", "numpy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "xgboost",
              "skops", "shap")


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


def spec_value(run: dict, section: str, key: str, default=None):
    """``run["spec"][section][key]`` if present, else ``default``."""
    spec = run.get("spec") or {}
    part = spec.get(section)
    return part.get(key, default) if isinstance(part, dict) else default


def label_kind(run: dict) -> str | None:
    label = (run.get("spec") or {}).get("label")
    return label.get("kind") if isinstance(label, dict) else label


def trading_rules(run: dict) -> dict:
    """threshold / long_only / cost_bps of the run's backtest (spec first, then stats)."""
    bt = run.get("backtest") or {}
    params = bt.get("params", {}) if isinstance(bt.get("params"), dict) else {}
    out = {}
    for key, default in (("threshold", 0.5), ("long_only", False), ("cost_bps", 0.0)):
        value = spec_value(run, "backtest", key)
        out[key] = value if value is not None else params.get(key, bt.get(key, default))
    return out


def _label_info(run: dict) -> dict:
    kind = label_kind(run)
    info = {"kind": kind, "task": run.get("task"), "horizon_days": None,
            "classes": run.get("classes"), "description": None}
    try:
        from ml.labelers import label_spec

        ls = label_spec(kind)
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
        "metrics": run.get("metrics"), "folds": run.get("folds"), "backtest": run.get("backtest"),
        "data_hashes": run.get("data_hashes"), "versions": run.get("versions"),
        "exported_with": versions(), "code_revision": run.get("code_revision"),
        "spec": run.get("spec"), "notes": run.get("notes"),
    }


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
    model_meta, model_path = _model_files(run_dir, run)
    member = f"model/{model_path.name}"
    metadata = build_metadata(run, run_dir, model_meta, member)

    model_bytes = model_path.read_bytes()
    if model_meta.get("sha256") and _sha256(model_bytes) != model_meta["sha256"]:
        raise AlmanacError(f"run {run_id}: model/{model_path.name} does not match the SHA-256 "
                           "recorded in run.json (altered or damaged); re-run the experiment")
    from ml.report import model_card  # ml.report imports this module

    readme = model_card(metadata).encode()
    metadata["files"] = {member: _sha256(model_bytes), README: _sha256(readme)}
    meta_bytes = (json.dumps(_json_safe(metadata), indent=2, default=str, allow_nan=False)
                  + "\n").encode()
    members = {member: model_bytes, README: readme, METADATA: meta_bytes}
    manifest = "".join(f"{_sha256(b)}  {n}\n" for n, b in sorted(members.items())).encode()
    members[MANIFEST] = manifest

    def writer(tmp: Path) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in (METADATA, README, MANIFEST, member):
                zf.writestr(name, members[name])
            zf.comment = f"{FORMAT} {FORMAT_VERSION} manifest-sha256:{_sha256(manifest)}".encode()

    atomic_write(path, writer, fault="export")
    try:
        load_bundle(path)  # never hand out a bundle that does not load
    except AlmanacError:
        path.unlink(missing_ok=True)
        raise
    return path


# ---------------------------------------------------------------- load

@dataclass(frozen=True)
class Bundle:
    """A verified bundle: ``predictor`` (ml.predictor.Predictor) and ``metadata``."""

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


def _read_members(path: Path) -> tuple[dict[str, bytes], bytes]:
    where = path.name
    if not path.is_file():
        raise NotFoundError(f"model bundle {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise AlmanacError(f"{where} is not a model bundle (not a zip file); export one with "
                           "`python -m almanac export`")
    try:
        with zipfile.ZipFile(path) as zf:
            # a folder entry "model/" (as `zip -r` writes) holds nothing: skip it
            infos = [i for i in zf.infolist() if i.filename != "model/"]
            names = [i.filename for i in infos]
            for name in names:
                if not _MEMBER.match(name) or ".." in name:
                    raise AlmanacError(f"{where}: refusing member {name!r}: not a file name of "
                                       "a model bundle (unexpected folder or path)")
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise AlmanacError(f"{where}: member {dup[0]} appears more than once; "
                                   "the bundle was altered")
            data = {}
            for info in infos:
                if info.file_size > MAX_MEMBER_BYTES:
                    raise AlmanacError(f"{where}: {info.filename} is too large "
                                       f"({info.file_size:,} bytes) for a model bundle")
                with zf.open(info) as fh:
                    blob = fh.read(MAX_MEMBER_BYTES + 1)
                if len(blob) > MAX_MEMBER_BYTES:
                    raise AlmanacError(f"{where}: {info.filename} is too large for a model bundle")
                data[info.filename] = blob
            return data, zf.comment
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise AlmanacError(f"{where} is damaged ({type(exc).__name__}: {exc}); "
                           "export the bundle again") from None


def _verify(where: str, members: dict[str, bytes], comment: bytes) -> dict:
    """Check comment -> manifest -> every file; return the parsed metadata."""
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
    listed = {}
    for line in manifest.decode("utf-8", "replace").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
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
    try:
        metadata = json.loads(members[METADATA])
    except ValueError:
        raise AlmanacError(f"{where}: {METADATA} is not valid JSON") from None
    files = metadata.get("files") or {}
    if files != {n: d for n, d in listed.items() if n != METADATA}:
        raise AlmanacError(f"{where}: {METADATA} lists other files than {MANIFEST}; "
                           "the bundle was altered")
    if metadata.get("format") != FORMAT:
        raise AlmanacError(f"{where}: {METADATA} is not almanac bundle metadata")
    return metadata


def load_bundle(path: Path | str) -> Bundle:
    """Verify and load a bundle written by :func:`export_run` (see the module doc)."""
    path = Path(path).expanduser()
    members, comment = _read_members(path)
    metadata = _verify(path.name, members, comment)
    model = metadata.get("model") or {}
    member = model.get("file", "")
    if member not in members or not member.startswith("model/"):
        raise AlmanacError(f"{path.name}: model file {member!r} is missing; the bundle was altered")
    meta = {"file": member.split("/", 1)[1], "format": model.get("format"),
            "task": metadata.get("task"), "classes": model.get("classes"),
            "sha256": metadata["files"][member]}
    with tempfile.TemporaryDirectory(prefix="almanac-bundle-") as tmp:
        (Path(tmp) / meta["file"]).write_bytes(members[member])
        try:
            estimator = persist.load_model(tmp, meta)
        except AlmanacError as exc:
            raise AlmanacError(f"{path.name}: {exc.message}") from None
    predictor = Predictor(estimator, metadata["feature_names"], metadata["task"],
                          metadata.get("classes"))
    return Bundle(predictor=predictor, metadata=metadata, path=path)


# ---------------------------------------------------------------- predict

def _read_input(path: Path, names: list[str]) -> pd.DataFrame:
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
    bad = [c for c in names if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise AlmanacError(f"feature column(s) {', '.join(bad)} of {path.name} are not numeric")
    return frame


def predictions(bundle: Bundle, frame: pd.DataFrame) -> pd.DataFrame:
    """The bundle's predictions for the rows of ``frame`` (which holds its feature columns).

    Binary: ``prob`` = P(up) and ``signal`` (+1/−1/0) at the bundle's threshold and
    long-only rule. Multiclass: ``prob_<class>`` per class and ``pred`` (class name).
    Regression: ``pred`` and ``signal`` = sign(pred) (0 for short days when long-only).
    A ``date`` column is carried through first.
    """
    X = frame.loc[:, bundle.feature_names].astype("float64")
    p = bundle.predictor
    out = pd.DataFrame(index=frame.index)
    if "date" in frame.columns:
        out["date"] = frame["date"]
    long_only = bool(bundle.metadata.get("long_only", False))
    if bundle.task == "binary":
        out["prob"] = p.predict_proba_up(X).to_numpy()
        out["signal"] = p.signal(X, bundle.threshold, long_only).to_numpy()
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
    return out.reset_index(drop=True)


def predict_bundle(bundle: Bundle | Path | str, input_parquet: Path | str,
                   out: Path | str) -> Path:
    """Predict the rows of ``input_parquet`` with ``bundle`` (a Bundle or a bundle path)
    and write :func:`predictions` to ``out`` (.parquet or .csv); returns the path."""
    if not isinstance(bundle, Bundle):
        bundle = load_bundle(bundle)
    src = Path(input_parquet).expanduser().resolve()
    path = check_output_path(out, f"{src.stem}-predictions.parquet", (".parquet", ".csv"))
    if path == src:
        raise AlmanacError(f"--out {path} is the input file; choose another output path")
    result = predictions(bundle, _read_input(src, bundle.feature_names))
    if path.suffix.lower() == ".csv":
        atomic_write_bytes(path, result.to_csv(index=False).encode())
    else:
        buf = io.BytesIO()
        result.to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())
    return path


__all__ = ["Bundle", "check_output_path", "export_run", "load_bundle", "predict_bundle",
           "predictions", "versions"]
