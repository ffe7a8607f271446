"""Any table as a dataset: the rows, features, label and task of a spec whose ``data`` names a table.

``data: {table: NAME, target: COLUMN}`` + ``label: {kind: column}``: every row of the stored
table (:mod:`almanac.tables`) between ``data.start`` and ``data.end`` is a sample, its
``target`` the label and ``features.columns`` (default: the other numeric columns) the
features. Rows keep the table's time order; the walk-forward folds split by distinct time
(:class:`ml.splits.TimeGroupSplit`).

The task comes from the target's values unless ``label.task`` says otherwise
(:func:`infer_task`): only the values 0 and 1 -> binary; whole numbers with at most
:data:`MAX_CLASSES` distinct values -> multiclass; anything else -> regression. Class
labels are the sorted distinct values, encoded 0 .. k-1 (``run.json["classes"]``).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from almanac.errors import DataError, SpecError
from almanac.spec import validate_table_spec
from almanac.tables import Tables, _in_dates, feature_columns
from ml.labelers import LabelSpec

MAX_CLASSES = 20


def label_column(table: pd.DataFrame) -> np.ndarray:  # pragma: no cover - documentation carrier
    """The table's target column, as it is on each row: the label looks at no future beyond the
    row itself (the table's author decided what the row knows)."""
    raise NotImplementedError


def infer_task(y: np.ndarray) -> str:
    vals = np.unique(y[np.isfinite(y)])
    if len(vals) and set(vals.tolist()) <= {0.0, 1.0} and len(vals) == 2:
        return "binary"
    if 2 < len(vals) <= MAX_CLASSES and np.all(vals == np.round(vals)):
        return "multiclass"
    return "regression"


def _target(spec, store) -> tuple[np.ndarray, object]:
    tables = Tables(store.home)
    entry = tables.entry(spec.data.table, "dataset")
    frame = tables.read(entry)
    keep = _in_dates(pd.DatetimeIndex(frame[entry.key]), spec.data.start, spec.data.end)
    return frame[keep].reset_index(drop=True), entry


def table_label(spec, store) -> LabelSpec:
    """The column label of a table spec with its task (``label.task``, else inferred) and classes."""
    validate_table_spec(spec, store.home)
    frame, entry = _target(spec, store)
    y = frame[spec.data.target].to_numpy(dtype="float64")
    task = spec.label.task or infer_task(y)
    classes = None
    if task != "regression":
        vals = np.unique(y)
        if len(vals) < 2:
            raise SpecError(f"spec field label.task: {task} needs at least two classes but {spec.data.target} holds "
                            f"the one value {vals[0]:g}: use task regression or another target")
        if len(vals) > MAX_CLASSES or not np.all(vals == np.round(vals)):
            raise SpecError(f"spec field label.task: {spec.data.target} has {len(vals)} distinct values, not "
                            f"classes (at most {MAX_CLASSES} whole numbers): use task regression")
        if task == "binary" and len(vals) != 2:
            raise SpecError(f"spec field label.task: binary needs two classes, {spec.data.target} has {len(vals)}: "
                            "use task multiclass")
        classes = tuple(f"{v:g}" for v in vals)
    return LabelSpec("column", task, 0, (), classes, label_column)


def table_dataset(spec, store, lab: LabelSpec) -> tuple[pd.DataFrame, list[str], SimpleNamespace]:
    """(rows with the features + ``y``, feature names, provenance like a FeatureTable's)."""
    frame, entry = _target(spec, store)
    names = feature_columns(spec, entry)
    data = frame[names].astype("float64")
    y = frame[spec.data.target].to_numpy(dtype="float64")
    if lab.task != "regression":
        vals = np.array([float(c) for c in lab.classes])
        y = np.searchsorted(vals, y).astype("float64")
    data["y"] = y
    t = pd.DatetimeIndex(frame[entry.key])
    data.index = (t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t).rename("date")
    if not data.index.is_monotonic_increasing:
        raise DataError(f"table {entry.name} is not sorted by {entry.key}: import it again")
    label = f"table {entry.name} {entry.sha256[:12]}"
    lineage = {c: {"datasets": [label], "set": "table", "window": f"the row's own values (time {entry.key})",
                   "known_as_of": f"the row's {entry.key}", "definition": f"column {c} of table {entry.name}",
                   "table": {"name": entry.name, "sha256": entry.sha256, "source": entry.source}} for c in names}
    notes = [f"table {entry.name}: {len(data)} rows at {data.index.nunique()} distinct times; folds split by distinct "
             f"time ({entry.key}), so rows of one time never straddle a fold"]
    if entry.sample:
        notes.append(f"table {entry.name} is sample data: {'; '.join(entry.notes) or entry.source}")
    prov = SimpleNamespace(data_hashes={f"table {entry.name}": entry.sha256}, lineage=lineage, notes=notes,
                           sessions=None, entry=entry)
    return data, names, prov


__all__ = ["MAX_CLASSES", "infer_task", "table_dataset", "table_label"]
