"""Run a model from an untrusted file in a child process, never in the caller's.

A model file from a bundle can be built to crash the native library that reads it
(LightGBM aborts on a damaged ``model.txt``, XGBoost segfaults on an out-of-range split
or child index) or to exhaust memory. :func:`predict_in_child` therefore loads the model
and predicts in a fresh interpreter (``subprocess``, not ``fork``: DESIGN.md §11) whose
address space is capped at ``Limits.model_memory_bytes`` (``ALMANAC_MODEL_MEMORY_MB``)
and whose run time is capped at ``Limits.model_seconds`` (``ALMANAC_MODEL_TIMEOUT_S``).

The exchange goes through a private temporary folder (0700): the parent writes the
model file, ``X.npy`` (float64 rows) and ``request.json``; the child writes ``out.npy``
or ``error.json``. Nothing is pickled either way (``allow_pickle=False``). A signal
death, an out-of-memory or an unexpected exception in the child becomes one
:class:`~almanac.errors.AlmanacError`: "the model in this bundle is damaged: the library
failed while loading it (<detail>)"; a refusal by :func:`ml.persist.load_model` keeps its
own message. The CLI's ``predict`` and any server use this one function.

This module imports only the standard library at the top: the child sets its memory
limit before numpy or any model library is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

DAMAGED = "the model in this bundle is damaged: the library failed while loading it"
_REPO = str(Path(__file__).resolve().parent.parent)
_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from ml.sandbox import _child_main; sys.exit(_child_main(sys.argv[2]))")
_EXIT_REFUSED, _EXIT_MEMORY, _EXIT_FAILED, _EXIT_SETUP = 3, 4, 5, 6
#: the library each format needs, imported before the model is read
_LIBRARY = {"lightgbm-text": "lightgbm", "xgboost-json": "xgboost", "skops": "skops.io"}


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def predict_in_child(model_bytes: bytes, meta: dict, X, method: str | None = None):
    """Predictions of the model ``model_bytes`` on rows ``X``, computed in a child process.

    ``meta``: ``file`` (plain file name), ``format``, ``task``, ``classes`` (as for
    :func:`ml.persist.load_model`) and ``feature_names`` (the columns of ``X``, in order).
    ``X``: a DataFrame or 2-D array of those columns (sent as float64). ``method``:
    ``"predict_proba"`` (default for classifiers) or ``"predict"`` (default for
    regression). Returns the numpy array the model's method returned.
    """
    import numpy as np

    from almanac.errors import AlmanacError
    from almanac.settings import Limits, get_limits

    limits = get_limits()
    names = [str(n) for n in meta["feature_names"]]
    task = meta.get("task")
    method = method or ("predict" if task == "regression" else "predict_proba")
    if method not in ("predict", "predict_proba"):
        raise ValueError(f"unknown method {method!r}")
    rows = np.ascontiguousarray(np.asarray(X, dtype="float64"))
    if rows.ndim != 2 or rows.shape[1] != len(names):
        raise AlmanacError(f"{rows.shape} rows do not have the model's {len(names)} feature columns")
    request = {"file": meta["file"], "format": meta.get("format"), "task": task,
               "classes": meta.get("classes"), "feature_names": names, "method": method,
               "memory_bytes": limits.model_memory_bytes}
    tmp = Path(tempfile.mkdtemp(prefix="almanac-model-"))  # 0700
    try:
        (tmp / "model").mkdir(mode=0o700)
        (tmp / "model" / meta["file"]).write_bytes(model_bytes)
        np.save(tmp / "X.npy", rows, allow_pickle=False)
        (tmp / "request.json").write_text(json.dumps(request))
        try:
            proc = subprocess.run([sys.executable, "-I", "-c", _CHILD, _REPO, str(tmp)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=limits.model_seconds,
                                  cwd=tmp)
        except subprocess.TimeoutExpired:
            raise AlmanacError(f"{DAMAGED} (it ran longer than {limits.model_seconds:g} s; "
                               f"raise {Limits.var('model_seconds')} if the input is large)") from None
        code = proc.returncode
        if code == 0:
            try:
                out = np.load(tmp / "out.npy", allow_pickle=False)
            except (OSError, ValueError):
                raise AlmanacError(f"{DAMAGED} (no readable predictions)") from None
            if out.ndim not in (1, 2) or len(out) != len(rows):
                raise AlmanacError(f"{DAMAGED} (predictions of shape {out.shape} for "
                                   f"{len(rows)} rows)")
            return out
        if code < 0:
            raise AlmanacError(f"{DAMAGED} ({_signal_name(code)})")
        detail = _read_error(tmp)
        if code == _EXIT_REFUSED and detail:
            raise AlmanacError(detail)
        if code == _EXIT_SETUP:
            raise AlmanacError(f"the model process could not start its library under "
                               f"{Limits.var('model_memory_bytes')}={limits.model_memory_bytes // 2**20} "
                               f"({detail or code}); raise it (the libraries need about 700 MB)")
        if code == _EXIT_MEMORY:
            raise AlmanacError(f"{DAMAGED} (out of memory under {Limits.var('model_memory_bytes')}="
                               f"{limits.model_memory_bytes // 2**20})")
        raise AlmanacError(f"{DAMAGED} ({detail or f'exit code {code}'})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read_error(tmp: Path) -> str:
    try:
        with open(tmp / "error.json", "rb") as fh:
            return str(json.loads(fh.read(4096))["message"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


class SandboxedModel:
    """The scikit-learn prediction API of a bundle's model, each call run by
    :func:`predict_in_child` (the model is never loaded in this process)."""

    def __init__(self, model_bytes: bytes, meta: dict):
        self.model_bytes = model_bytes
        self.meta = dict(meta)
        self.feature_names_in_ = list(meta["feature_names"])

    def predict_proba(self, X):
        return predict_in_child(self.model_bytes, self.meta, X, "predict_proba")

    def predict(self, X):
        return predict_in_child(self.model_bytes, self.meta, X, "predict")

    def check(self) -> None:
        """Load the model and predict one row of zeros in a child: AlmanacError if the
        library refuses or fails on it."""
        import numpy as np

        predict_in_child(self.model_bytes, self.meta,
                         np.zeros((1, len(self.feature_names_in_))))


def _child_main(folder: str) -> int:
    """Entry point of the child: memory limit, load, predict, write out.npy."""
    import resource

    tmp = Path(folder)
    request = json.loads((tmp / "request.json").read_text())
    limit = int(request["memory_bytes"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def fail(code: int, message: str) -> int:
        (tmp / "error.json").write_text(json.dumps({"message": message[:1000]}))
        return code

    try:  # the libraries first: a failure here is the memory limit's, not the model's
        import importlib

        import numpy as np
        import pandas as pd

        from almanac.errors import AlmanacError
        from ml import persist, threads

        threads.limit_threads()
        if request.get("format") in _LIBRARY:
            importlib.import_module(_LIBRARY[request["format"]])
    except Exception as exc:  # noqa: BLE001 - MemoryError, ImportError, OSError (mmap)
        return fail(_EXIT_SETUP, type(exc).__name__)
    try:
        try:
            model = persist.load_model(tmp / "model", request)
            X = pd.DataFrame(np.load(tmp / "X.npy", allow_pickle=False),
                             columns=request["feature_names"])
            out = np.asarray(getattr(model, request["method"])(X))
        except AlmanacError as exc:
            return fail(_EXIT_REFUSED, exc.message)
        if out.dtype == object:
            out = out.astype(str)
        np.save(tmp / "out.npy", out, allow_pickle=False)
        return 0
    except MemoryError:
        return fail(_EXIT_MEMORY, "out of memory")
    except Exception as exc:  # noqa: BLE001 - any library failure means a damaged model
        return fail(_EXIT_FAILED, type(exc).__name__)
