"""The multi-head spec: several labels ("heads") on ONE feature table and ONE fold split.

On disk it is an experiment spec (:mod:`almanac.spec`) whose ``label:`` is replaced by
``heads:``, a mapping of head names to sections of the same shape as ``label:`` (plus an
optional ``model:`` of the head's own)::

    name: es-multihead
    data:       {symbol: ES, start: 2010-01-01, end: 2018-12-31}
    features:   {sets: [early_session, regime], cutoff: "10:15"}
    model:      {kind: lightgbm, params: {n_estimators: 200}}     # every head's model by default
    heads:
      direction: {label: {kind: rest_of_day}}
      move:      {label: forward_return, model: {kind: xgboost}}  # a head may have its own model
      up_day:    {label: {kind: direction}}
    validation: {n_splits: 5, gap: 1, min_train: 250}
    backtest:   {threshold: 0.55, cost_bps: 1.0, signal: direction, gate: {head: up_day, min_proba: 0.6}}

Each head is an ordinary run (:meth:`MultiHeadSpec.head_spec` is its single-head spec: the
shared sections, the head's label, its model or the shared one). ``backtest.signal`` and
``backtest.gate`` describe the gated signal the parent run backtests: the signal head's
out-of-fold signal (binary: P(up); regression: the sign of the predicted return), kept only
on days when the gate head's P(class 1) >= ``min_proba`` (else flat). The signal head must
be tradable (binary or regression, not multiclass); the gate head binary and another head;
``min_proba`` strictly between 0 and 1. At most ``Limits.heads`` heads
(``ALMANAC_MAX_HEADS``), at least two. Every refusal is one line naming the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from almanac.errors import SpecError
from almanac.settings import Limits, get_limits
from almanac.spec import (TABLE_LABEL, BacktestSpec, DataSpec, ExperimentSpec, FeatureSpec, LabelSpec,
                          ModelSpec, StrictInt, ValidationSpec, _one, _Problem, _Section, format_validation_error,
                          parse_yaml, read_spec_file, spec_from_yaml, MAX_TIMEOUT_S, UNTRADED_LABELS)

HEAD_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,39}")


class HeadSpec(_Section):
    """One head: its label (the shape of the spec's ``label:``) and optionally its own model."""

    label: LabelSpec
    model: ModelSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"label": v} if isinstance(v, str) else v  # heads: {up: rest_of_day}


class GateSpec(_Section):
    head: str
    min_proba: float = Field(gt=0.0, lt=1.0)


class HeadsBacktestSpec(BacktestSpec):
    signal: str | None = None
    gate: GateSpec | None = None


class MultiHeadSpec(_Section):
    """A multi-head experiment; build it with :func:`multihead_from_dict`."""

    name: str = ""
    data: DataSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    heads: dict[str, HeadSpec]
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(kind="lightgbm"))
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    backtest: HeadsBacktestSpec = Field(default_factory=HeadsBacktestSpec)
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1)
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)

    @model_validator(mode="before")
    @classmethod
    def _no_label(cls, v):
        if isinstance(v, dict) and "label" in v:
            raise _Problem("label", "a multi-head spec lists its labels under heads: move label into a head, "
                                    "e.g. heads: {up: {label: {kind: rest_of_day}}}")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        return ExperimentSpec._name(v)

    @field_validator("heads")
    @classmethod
    def _heads(cls, v):
        limit = get_limits().heads
        if len(v) < 2:
            raise ValueError("list at least two heads (with one, write label: instead of heads:)")
        if len(v) > limit:
            var = Limits.var("heads")
            raise ValueError(f"{len(v)} heads are more than the {limit} a spec may list ({var}): each head is a "
                             f"whole run; drop heads or raise {var}")
        for name, head in v.items():
            if not HEAD_NAME_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a head name: use lower-case letters, digits and _ "
                                 "(at most 40, starting with a letter), e.g. tradeable")
            if head.label.kind == TABLE_LABEL:
                raise ValueError(f"head {name}: a table's column label cannot be a head: heads label a symbol's days")
        return v

    @model_validator(mode="after")
    def _gate(self):
        for name in self.heads:  # each head's spec passes the single-head rules (gap vs horizon, ...)
            self.head_spec(name)
        bt = self.backtest
        if bt.gate is not None and bt.signal is None:
            raise _Problem("backtest.gate", "a gate needs the head whose signal it gates: add backtest.signal")
        if bt.signal is None:
            return self._heads_valid()
        if bt.signal not in self.heads:
            raise _Problem("backtest.signal", f"{bt.signal!r} is not a head: choose one of {', '.join(self.heads)}")
        if self.head_task(bt.signal) == "multiclass":
            raise _Problem("backtest.signal", f"head {bt.signal} is multiclass ({self.heads[bt.signal].label.kind}),"
                                              " not a direction to trade: choose a binary or regression head")
        if self.heads[bt.signal].label.kind in UNTRADED_LABELS:
            kind = self.heads[bt.signal].label.kind
            raise _Problem("backtest.signal", f"head {bt.signal} ({kind}) is not a direction to trade: choose a head "
                                              "whose label is one (rest_of_day, forward_return, direction, binary "
                                              f"first_touch) and gate it with {bt.signal}")
        if bt.gate is None:
            raise _Problem("backtest.signal", f"head {bt.signal}'s own backtest is already on its run: add "
                                              "backtest.gate, e.g. gate: {head: NAME, min_proba: 0.6}, or remove "
                                              "signal")
        g = bt.gate.head
        if g not in self.heads:
            raise _Problem("backtest.gate.head", f"{g!r} is not a head: choose one of {', '.join(self.heads)}")
        if g == bt.signal:
            raise _Problem("backtest.gate.head", f"head {g} cannot gate itself (raise backtest.threshold for that): "
                                                 "choose another head")
        if self.head_task(g) != "binary":
            raise _Problem("backtest.gate.head", f"head {g} is {self.head_task(g)} "
                                                 f"({self.heads[g].label.kind}); a gate reads P(class 1) of a "
                                                 "binary head: choose a binary head")
        return self._heads_valid()

    def _heads_valid(self):
        if not self.name:
            object.__setattr__(self, "name", f"{self.data.symbol}-heads-{'-'.join(self.heads)}"[:100]
                               .lower().replace("_", "-"))
        return self

    # ------------------------------------------------------------------ derived
    def head_task(self, name: str) -> str:
        """binary | multiclass | regression of head ``name`` (its spec's task: a label whose task
        depends on its parameters gets it from there)."""
        return self.head_spec(name).task

    def head_dict(self, name: str) -> dict:
        """The single-head spec of head ``name`` as a dict."""
        head = self.heads[name]
        d = self.model_dump(mode="json", exclude={"heads", "name"})
        d["backtest"] = {k: d["backtest"][k] for k in ("threshold", "cost_bps", "long_only")}
        d["label"] = head.label.model_dump(mode="json", exclude_none=True)
        if head.model is not None:
            d["model"] = head.model.model_dump(mode="json")
        if d.get("timeout_s") is None:
            d.pop("timeout_s", None)
        d["name"] = f"{self.name or self.data.symbol}/{name}"[:100]
        return d

    def head_spec(self, name: str) -> ExperimentSpec:
        """Head ``name`` as an ordinary spec; a refusal names the head's field (``heads.NAME.label...``)."""
        try:
            return ExperimentSpec.model_validate(self.head_dict(name))
        except ValidationError as exc:
            msg = format_validation_error(exc)
            own = self.heads[name].model is not None
            for section in ("label", "name") + (("model",) if own else ()):
                msg = msg.replace(f"spec field {section}", f"spec field heads.{name}.{section}")
            raise SpecError(msg) from None  # not a ValueError: pydantic lets it through as it is

    def to_dict(self) -> dict:
        d = self.model_dump(mode="json", exclude_none=False)
        d["heads"] = {n: {"label": h.label.model_dump(mode="json", exclude_none=True),
                          **({"model": h.model.model_dump(mode="json")} if h.model is not None else {})}
                      for n, h in self.heads.items()}
        for k in ("signal", "gate"):
            if d["backtest"].get(k) is None:
                d["backtest"].pop(k, None)
        for k in ("symbol", "table", "target"):
            if d["data"].get(k) is None:
                d["data"].pop(k, None)
        if d["features"].get("columns") is None:
            d["features"].pop("columns", None)
        if d.get("timeout_s") is None:
            d.pop("timeout_s", None)
        return d


def _format(exc: ValidationError) -> str:
    """:func:`almanac.spec.format_validation_error`, with a head's own cross-field problems (e.g. a
    model parameter out of bounds) named under the head: ``spec field heads.ret.model.params...``."""
    out = []
    for e in exc.errors():
        line, loc = _one(e), e["loc"]
        if len(loc) > 2 and loc[0] == "heads" and isinstance((e.get("ctx") or {}).get("error"), _Problem):
            line = line.replace("spec field ", f"spec field heads.{loc[1]}.", 1)
        out.append(line)
    return "; ".join(dict.fromkeys(out))


def multihead_from_dict(d: dict | MultiHeadSpec) -> MultiHeadSpec:
    """Validate a dict with ``heads:`` into a :class:`MultiHeadSpec` (SpecError: one line)."""
    if isinstance(d, MultiHeadSpec):
        return d
    if not isinstance(d, dict):
        raise SpecError(f"a spec must be a mapping of sections, got {type(d).__name__}")
    try:
        spec = MultiHeadSpec.model_validate(d)
    except ValidationError as exc:
        raise SpecError(_format(exc)) from None
    if spec.data.table is not None:
        raise SpecError("spec field data.table: a multi-head spec labels a symbol's days: use data: {symbol: ...}")
    return spec


def is_multihead(d: Any) -> bool:
    return isinstance(d, dict) and "heads" in d


def experiment_from_dict(d) -> ExperimentSpec | MultiHeadSpec:
    """A multi-head spec when ``d`` has ``heads:``, else an ordinary one."""
    from almanac.spec import spec_from_dict

    if isinstance(d, (ExperimentSpec, MultiHeadSpec)):
        return d
    return multihead_from_dict(d) if is_multihead(d) else spec_from_dict(d)


def load_experiment(path: str | Path) -> ExperimentSpec | MultiHeadSpec:
    """Read a spec file: a :class:`MultiHeadSpec` when it has ``heads:``, else :func:`almanac.spec.load_spec`'s."""
    text, where = read_spec_file(path)
    data = parse_yaml(text, where)
    if is_multihead(data):
        return multihead_from_dict(data)
    return spec_from_yaml(text, where)


__all__ = ["HeadSpec", "GateSpec", "HeadsBacktestSpec", "MultiHeadSpec", "multihead_from_dict", "is_multihead",
           "experiment_from_dict", "load_experiment", "HEAD_NAME_RE"]
