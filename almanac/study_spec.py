"""The study spec: many experiments searched (or ablated) over one base experiment spec.

On disk it is YAML, loaded with the experiment spec's loader and limits
(:func:`almanac.spec.parse_yaml`)::

    name: es-lgbm-search
    base: configs/es-rest-of-day-lgbm.yaml      # an experiment spec file, or inline under `spec:`
    kind: search                                # or: ablation
    objective: {metric: roc_auc, direction: maximize}   # direction defaults from the metric
    budget: {n_trials: 40, timeout_s: 900}      # timeout_s optional; an ablation runs its combinations
    holdout: {start: 2017-01-01}                # optional: no trial sees these dates
    pruner: {kind: median, n_startup_trials: 5, n_warmup_steps: 1}   # or {kind: none}
    seed: 0                                     # optional: the base spec's seed
    search:                                     # dotted paths into the base spec (kind: search)
      model.kind: {choice: [lightgbm, xgboost, logistic]}
      model.params.num_leaves: {int: [4, 64], log: true}
      model.params.learning_rate: {float: [0.005, 0.2], log: true}
      features.sets: {subsets: [early_session, cross_asset, regime]}
      features.cutoff: {choice: ["10:00", "10:15", "10:30"]}
      backtest.threshold: {float: [0.5, 0.7]}

What a search may vary (:data:`SEARCH_PATHS`): the feature sets (``subsets``: every
non-empty subset of the listed sets is one choice), the cutoff, the model kind, any model
parameter (``model.params.<name>``; a parameter applies to the trials whose model kind
has it, the others ignore it), the backtest threshold and the long-only rule. The data,
the label and the validation scheme stay those of the base spec: they define the question
and the out-of-fold days every trial is scored on.

Refused here with one line (SpecError "study field <path>: ..."), before anything is
written: unknown keys, an unknown or unsupported path, a low above a high, ``log`` with a
bound <= 0, an empty choice, ``n_trials`` < 1 or above ``Limits.study_trials``
(``ALMANAC_MAX_STUDY_TRIALS``), an objective the base spec's label does not produce
(:data:`OBJECTIVE_METRICS`), a holdout outside the base spec's dates, and any value at
the ends of a range (or any choice) that makes the base spec invalid. The checks that
need the data or the model libraries (the holdout leaves enough days for the
validation scheme, a parameter some candidate model kind has) are in
``ml.study.check_study``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import date, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from almanac.errors import NotFoundError, SpecError
from almanac.settings import Limits, get_limits
from almanac.spec import (FEATURE_SETS, ExperimentSpec, format_validation_error, load_spec,
                          parse_yaml, spec_from_dict)

KINDS = ("search", "ablation")
#: Pooled out-of-fold metrics per task (must match the keys of ``ml.evaluation.scores``),
#: plus ``sharpe`` (the backtest's) where the label is traded.
OBJECTIVE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "accuracy", "balanced_accuracy", "log_loss", "brier", "ece", "sharpe"),
    "multiclass": ("accuracy", "balanced_accuracy", "roc_auc", "log_loss", "brier"),
    "regression": ("ic", "hit_rate", "r2", "rmse", "mae", "sharpe"),
}
#: Metrics where lower is better (the default direction is ``minimize`` for them).
LOWER_IS_BETTER = ("log_loss", "brier", "ece", "mae", "rmse")
#: The paths a search may vary; ``model.params.<name>`` for any parameter.
SEARCH_PATHS = ("features.sets", "features.cutoff", "model.kind", "model.params.<name>", "backtest.threshold",
                "backtest.long_only")
_PARAM_RE = re.compile(r"^model\.params\.[A-Za-z_][A-Za-z0-9_]{0,63}$")
SUBSET_SEP = "+"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Objective(_Section):
    metric: str = "roc_auc"
    direction: Literal["maximize", "minimize"] | None = None

    @model_validator(mode="after")
    def _direction(self):
        if self.direction is None:
            object.__setattr__(self, "direction", "minimize" if self.metric in LOWER_IS_BETTER else "maximize")
        return self


class Budget(_Section):
    n_trials: int = Field(20, strict=True, ge=1)
    timeout_s: float | None = Field(None, gt=0, le=7 * 86_400)


class Holdout(_Section):
    start: date


class Pruner(_Section):
    kind: Literal["median", "none"] = "median"
    n_startup_trials: int = Field(5, strict=True, ge=0, le=1000)
    n_warmup_steps: int = Field(1, strict=True, ge=0, le=50)


class Dimension(_Section):
    """One search dimension: exactly one of choice / int / float / subsets."""

    choice: list[Any] | None = None
    int_: list[int] | None = Field(None, alias="int")
    float_: list[float] | None = Field(None, alias="float")
    subsets: list[str] | None = None
    log: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def type(self) -> str:
        return next(t for t in ("choice", "int", "float", "subsets") if self.get(t) is not None)

    def get(self, t: str):
        return {"choice": self.choice, "int": self.int_, "float": self.float_, "subsets": self.subsets}[t]

    def to_dict(self) -> dict:
        out: dict = {self.type: list(self.get(self.type))}
        if self.log:
            out["log"] = True
        return out


class StudySpec(_Section):
    """A validated study; build it with :func:`study_from_dict` or :func:`load_study`."""

    name: str
    kind: Literal["search", "ablation"] = "search"
    spec: ExperimentSpec
    base: str | None = None
    objective: Objective = Field(default_factory=Objective)
    budget: Budget = Field(default_factory=Budget)
    holdout: Holdout | None = None
    pruner: Pruner = Field(default_factory=Pruner)
    seed: int | None = Field(None, strict=True, ge=0, le=2**31 - 1)
    search: dict[str, Dimension] = Field(default_factory=dict)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        v = "" if v is None else str(v).strip()
        if not v or len(v) > 100 or any(not c.isprintable() for c in v):
            raise ValueError("give the study a short one-line name (1-100 printable characters)")
        return v

    @property
    def task(self) -> str:
        return self.spec.task  # first_touch with classes: binary is binary

    @property
    def sampler_seed(self) -> int:
        return self.spec.seed if self.seed is None else self.seed

    def trial_spec_dict(self) -> dict:
        """The base spec of every trial: the holdout's days cut off (``data.end``)."""
        d = self.spec.to_dict()
        if self.holdout is not None:
            d["data"]["end"] = (self.holdout.start - timedelta(days=1)).isoformat()
        return d

    def to_dict(self) -> dict:
        """Plain JSON-able dict with the base spec inlined (what the study folder keeps; the
        file it came from is ``base``), valid input of :func:`study_from_dict`."""
        return {"name": self.name, "kind": self.kind, "spec": self.spec.to_dict(),
                "objective": self.objective.model_dump(mode="json"), "budget": self.budget.model_dump(mode="json"),
                "holdout": self.holdout.model_dump(mode="json") if self.holdout else None,
                "pruner": self.pruner.model_dump(mode="json"), "seed": self.seed,
                "search": {k: v.to_dict() for k, v in self.search.items()}}

    def fingerprint(self) -> str:
        """SHA-256 of :meth:`to_dict` without the ``base`` path and the budget (the same study
        with a larger budget resumes and extends the stored one)."""
        d = {k: v for k, v in self.to_dict().items() if k != "budget"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


def subset_choices(sets: list[str]) -> list[str]:
    """Every non-empty subset of ``sets`` as ``"a+b"`` (canonical order), smallest first."""
    order = [s for s in FEATURE_SETS if s in sets]
    return [SUBSET_SEP.join(c) for k in range(1, len(order) + 1) for c in combinations(order, k)]


def ablation_combinations(sets: list[str]) -> list[list[str]]:
    """Each set alone, each set left out, all of them (no repeats; all last)."""
    order = [s for s in FEATURE_SETS if s in sets]
    out: list[list[str]] = []
    for combo in [[s] for s in order] + [[t for t in order if t != s] for s in order] + [order]:
        if combo and combo not in out:
            out.append(combo)
    out.remove(order)
    return out + [order]


def set_path(d: dict, path: str, value) -> dict:
    """``d`` (a spec dict, changed in place) with ``value`` at the dotted ``path``."""
    if path == "features.sets" and isinstance(value, str):
        value = value.split(SUBSET_SEP)
    *parents, last = path.split(".")
    node = d
    for p in parents:
        node = node.setdefault(p, {})
        if node is None:
            node = {}
    node[last] = value
    return d


def _path_ok(path: str) -> bool:
    return path in SEARCH_PATHS or bool(_PARAM_RE.match(path))


def _fail(loc: str, message: str):
    raise SpecError(f"study field {loc}: {message}")


def _check_dimension(path: str, dim: Dimension, base: dict, task: str) -> None:
    loc = f"search.{path}"
    if not _path_ok(path):
        _fail(loc, f"{path!r} is not a path a search can vary: use one of {', '.join(SEARCH_PATHS)}")
    given = [t for t in ("choice", "int", "float", "subsets") if dim.get(t) is not None]
    if len(given) != 1:
        _fail(loc, "give exactly one of choice: [..], int: [low, high], float: [low, high], subsets: [..]"
              + (f" (got {', '.join(given)})" if given else ""))
    t = given[0]
    values = dim.get(t)
    if t in ("choice", "subsets") and not values:
        _fail(loc, f"the {t} is empty: list at least one value")
    if t in ("int", "float"):
        if len(values) != 2:
            _fail(loc, f"{t} takes [low, high], got {len(values)} value(s)")
        lo, hi = values
        if not (math.isfinite(lo) and math.isfinite(hi)):
            _fail(loc, f"the bounds must be finite numbers, got [{lo}, {hi}]")
        if lo > hi:
            _fail(loc, f"low {lo} is above high {hi}: write [low, high] with low <= high")
        if dim.log and lo <= 0:
            _fail(loc, f"log: true needs bounds above 0, got low {lo}: raise low or drop log")
    elif dim.log:
        _fail(loc, f"log applies to int and float ranges, not to {t}: remove it")
    if (t == "subsets") != (path == "features.sets"):
        _fail(loc, "features.sets is searched with subsets: [..] and subsets only apply to features.sets")
    if t == "subsets":
        bad = [s for s in values if s not in FEATURE_SETS]
        if bad:
            _fail(loc, f"{bad[0]!r} is not a feature set: choose from {', '.join(FEATURE_SETS)}")
    if t == "choice" and any(not isinstance(v, (str, int, float, bool)) or isinstance(v, float) and not
                             math.isfinite(v) for v in values):
        _fail(loc, "choices must be numbers, text or booleans")
    if t == "choice" and len(set(map(repr, values))) != len(values):
        _fail(loc, "a choice is listed twice: list each value once")
    # every choice and both ends of a range must make a valid experiment spec
    probes = (subset_choices(values) if t == "subsets" else values)
    if path.startswith("model.params."):
        return  # a parameter applies to some model kinds only: ml.study.check_study checks it per kind
    for v in probes:
        try:
            spec_from_dict(set_path(json.loads(json.dumps(base)), path, v))
        except SpecError as exc:
            _fail(loc, f"the value {v!r} makes the base spec invalid ({exc.message})")


def _resolve_base(d: dict, where: Path | None) -> tuple[ExperimentSpec, str | None]:
    if ("base" in d) == ("spec" in d):
        _fail("base", "give the experiment spec either as base: <file.yaml> or inline under spec:")
    if "spec" in d:
        try:
            return spec_from_dict(d["spec"]), None
        except SpecError as exc:
            _fail("spec", exc.message)
    base = d["base"]
    if not isinstance(base, str) or not base.strip():
        _fail("base", f"{base!r} is not a file path: give the path of an experiment spec YAML")
    p = Path(base).expanduser()
    candidates = [p] if p.is_absolute() else [Path.cwd() / p] + ([where.parent / p] if where else [])
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise NotFoundError(f"study field base: spec file {base} does not exist: give a path relative to the "
                            "current folder or to the study file, e.g. configs/es-rest-of-day-lgbm.yaml")
    try:
        return load_spec(found), base
    except SpecError as exc:
        _fail("base", exc.message)


def study_from_dict(d: dict, where: Path | None = None, limits: Limits | None = None) -> StudySpec:
    """Validate a dict (parsed YAML or built by the UI) into a :class:`StudySpec`."""
    if isinstance(d, StudySpec):
        return d
    if not isinstance(d, dict):
        raise SpecError(f"a study must be a mapping (name, base, kind, objective, budget, search), "
                        f"got {type(d).__name__}")
    limits = limits or get_limits()
    known = set(StudySpec.model_fields)
    extra = [k for k in d if k not in known]
    if extra:
        _fail(str(extra[0]), f"not a known key: remove it (a study takes {', '.join(sorted(known))})")
    spec, base = _resolve_base(d, where)
    raw = {k: v for k, v in d.items() if k not in ("base", "spec")}
    try:
        study = StudySpec.model_validate({**raw, "spec": spec, "base": base})
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc).replace("spec field ", "study field ")) from None
    task = study.task
    metrics = OBJECTIVE_METRICS[task]
    if study.objective.metric not in metrics:
        _fail("objective.metric", f"{study.objective.metric!r} is not produced by the {spec.label.kind} label "
                                  f"({task}): choose one of {', '.join(metrics)}")
    var = Limits.var("study_trials")
    if study.budget.n_trials > limits.study_trials:
        _fail("budget.n_trials", f"{study.budget.n_trials} is more than the {limits.study_trials} trials a study "
                                 f"may run ({var}): lower n_trials or raise {var}")
    if study.holdout is not None:
        h = study.holdout.start
        if spec.data.start and h <= spec.data.start or spec.data.end and h > spec.data.end:
            _fail("holdout.start", f"{h} is outside the base spec's dates {spec.data.start or 'start'} .. "
                                   f"{spec.data.end or 'end'}: choose a date inside them")
    base_dict = study.trial_spec_dict()
    try:
        spec_from_dict(base_dict)
    except SpecError as exc:
        _fail("holdout.start", f"{study.holdout.start} leaves too few days before it for the validation scheme "
                               f"({exc.message})")
    if study.kind == "search":
        if not study.search:
            _fail("search", "a search needs at least one path to vary, e.g. model.params.learning_rate: "
                            "{float: [0.01, 0.2], log: true}")
        for path, dim in study.search.items():
            _check_dimension(path, dim, base_dict, task)
    else:
        if study.search:
            _fail("search", "an ablation varies the base spec's feature sets itself: remove search or use "
                            "kind: search")
        sets = spec.features.sets
        if len(sets) < 2:
            _fail("spec.features.sets", f"an ablation needs at least two feature sets, the base spec has "
                                        f"{', '.join(sets)}: add sets to the base spec")
        for combo in ablation_combinations(sets):
            try:
                spec_from_dict(set_path(json.loads(json.dumps(base_dict)), "features.sets", combo))
            except SpecError as exc:
                _fail("spec.features.sets", f"the combination {SUBSET_SEP.join(combo)} makes the base spec "
                                            f"invalid ({exc.message})")
    return study


def study_from_yaml(text: str, where: str = "study", path: Path | None = None) -> StudySpec:
    data = parse_yaml(text, where)
    if data is None:
        raise SpecError(f"{where} is empty: write a study with name, base, kind, objective, budget and search")
    return study_from_dict(data, where=path)


def load_study(path: str | Path) -> StudySpec:
    """Read and validate a study YAML file (its size checked before it is read)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"study file {p} does not exist: pass the path of a study YAML")
    limits = get_limits()
    if p.stat().st_size > limits.yaml_bytes:
        var = Limits.var("yaml_bytes")
        raise SpecError(f"study file {p.name} is larger than the {limits.yaml_bytes // 1024} KB a spec may have "
                        f"({var}): check the file or raise {var}")
    try:
        text = p.read_bytes()[: limits.yaml_bytes + 1].decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read study file {p} ({type(exc).__name__}): pass a UTF-8 YAML file") from None
    return study_from_yaml(text, where=f"study file {p.name}", path=p)


__all__ = ["StudySpec", "Dimension", "KINDS", "OBJECTIVE_METRICS", "LOWER_IS_BETTER", "SEARCH_PATHS", "SUBSET_SEP",
           "study_from_dict", "study_from_yaml", "load_study", "subset_choices", "ablation_combinations",
           "set_path"]
