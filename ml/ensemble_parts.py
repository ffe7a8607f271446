"""Which runs can be combined into an ensemble (:mod:`ml.ensemble`): the checks made before
anything is read beyond the parts' ``run.json``, so a refused ``ensemble`` command answers
without importing the model libraries.

Compatible parts: not an ensemble themselves; the same symbol (or table), label (kind and
every label parameter), cutoff, task and fold dates (each fold's train and test first and
last day). The first difference is refused in one line naming it.
"""

from __future__ import annotations

import json

from almanac import registry
from almanac.errors import AlmanacError

METHODS = ("mean", "stack")
DATES = ("train_start", "train_end", "test_start", "test_end")
#: Most parts an ensemble has: its bundle lists at most 16 files (ml.export), README and
#: ensemble.json included.
MAX_PARTS = 13

def _differ(a: dict, b: dict, what: str, va, vb) -> AlmanacError:
    return AlmanacError(f"runs {a['run_id']} and {b['run_id']} differ in {what} ({va} vs {vb}): an ensemble "
                        "needs runs with the same symbol, label, cutoff and fold dates")


def _part(run: dict, key: str):
    spec = run.get("spec") or {}
    if key == "symbol":
        d = spec.get("data") or {}
        return f"table {d['table']}" if d.get("table") else d.get("symbol")
    if key == "label":  # the kind and every label parameter, e.g. "first_touch (k=1.5)"
        label = spec.get("label") or {}
        label = label if isinstance(label, dict) else {"kind": label}
        params = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(label.items()) if k != "kind")
        return f"{label.get('kind')}" + (f" ({params})" if params else "")
    if key == "cutoff":
        return (spec.get("features") or {}).get("cutoff")
    return run.get(key)


def check_compatible(parts: list[dict]) -> None:
    """One-line AlmanacError naming the first difference between ``parts[0]`` and another."""
    for run in parts:
        if run.get("kind") == "ensemble":
            raise AlmanacError(f"run {run['run_id']} is an ensemble: build the new ensemble from its parts "
                               f"({', '.join(p['run_id'] for p in run['ensemble']['parts'])})")
    a = parts[0]
    for b in parts[1:]:
        for key, what in (("symbol", "symbol"), ("label", "label"), ("cutoff", "cutoff"), ("task", "task")):
            if _part(a, key) != _part(b, key):
                raise _differ(a, b, what, _part(a, key), _part(b, key))
        fa, fb = a.get("folds") or [], b.get("folds") or []
        if len(fa) != len(fb):
            raise _differ(a, b, "the number of folds", len(fa), len(fb))
        for i, (x, y) in enumerate(zip(fa, fb, strict=True)):
            for d in DATES:
                if x.get(d) != y.get(d):
                    raise _differ(a, b, f"fold {i + 1} {d}", x.get(d), y.get(d))


def load_parts(run_ids: list[str], home=None) -> list[dict]:
    """The parts' run records (checked ids, no repeats, compatible)."""
    ids = [registry.check_run_id(r) for r in run_ids if str(r).strip()]
    if not ids:
        raise AlmanacError("no runs given: pass --runs A,B (run ids from `python -m almanac runs list`)")
    if len(ids) > MAX_PARTS:
        raise AlmanacError(f"{len(ids)} runs given: an ensemble combines at most {MAX_PARTS} (its bundle holds each "
                           "part's model); choose fewer")
    dup = sorted({r for r in ids if ids.count(r) > 1})
    if dup:
        raise AlmanacError(f"run {dup[0]} is listed twice: list each part once")
    parts = [registry.get_run(r, home) for r in ids]
    check_compatible(parts)
    return parts



def check_request(run_ids: list[str], method: str, home=None) -> list[dict]:
    """The parts of a requested ensemble (:func:`load_parts`), or the one-line refusal: an
    unknown method, incompatible runs, or ``stack`` on a regression label."""
    if method not in METHODS:
        raise AlmanacError(f"unknown ensemble method {method!r}: choose mean or stack")
    parts = load_parts(run_ids, home)
    task = parts[0]["task"]
    if method == "stack" and task == "regression":
        label = (parts[0].get("spec") or {}).get("label") or {}
        raise AlmanacError(f"stacking needs a classification label; {label.get('kind', label)} is {task}: use "
                           "--method mean")
    return parts


__all__ = ["DATES", "MAX_PARTS", "METHODS", "check_compatible", "check_request", "load_parts"]
