"""Reading a run record (``run.json``): the spec's values and the backtest's trading rules.

Shared by the export, the report and the pages, so that none of them imports another
for these small readers.
"""

from __future__ import annotations


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


def untraded(run: dict) -> str | None:
    """Why the run has no backtest (a multiclass label, a label that is not a direction such as
    tradeable or time_to_touch, a table dataset: the runner's ``backtest_note``), or None when
    it has one."""
    if isinstance(run.get("backtest"), dict):
        return None
    return run.get("backtest_note") or "no backtest: the label is not a direction to trade"


def label_unit(run: dict) -> str:
    """A regression run's outcome unit: ``return`` (a fraction; runs before units were recorded),
    ``minutes`` (time_to_touch) or ``ATR`` (max_excursion); "" for a classifier."""
    label = run.get("label") if isinstance(run.get("label"), dict) else {}
    return label.get("unit") or ("return" if run.get("task") == "regression" else "")


__all__ = ["label_kind", "label_unit", "spec_value", "trading_rules", "untraded"]
