"""The experiment spec: one validated, declarative object per run (docs/design.md §5).

On disk it is YAML::

    name: es-rest-of-day-lgbm                      # optional: default "<symbol>-<label>-<model>"
    data:       {symbol: ES, start: 2010-01-01, end: 2018-12-31}     # start/end optional
    features:   {sets: [early_session, cross_asset, regime], cutoff: "10:15", cross_assets: [VIX, CL]}
    label:      {kind: rest_of_day}                # direction | rest_of_day | archetype | forward_return
                                                   # | tradeable | first_touch | time_to_touch | max_excursion
    model:      {kind: lightgbm, params: {}}       # logistic | random_forest | hist_gb | lightgbm | xgboost | knn | minirocket
    validation: {scheme: expanding, n_splits: 5, gap: 1, min_train: 250}  # rolling: + train_size
    backtest:   {threshold: 0.55, cost_bps: 1.0, long_only: false}
    seed: 0                                        # optional: seeds the model and permutation importance
    timeout_s: 3600                                # optional: stop the run after this many seconds

Every section but ``data`` and ``label`` may be left out (the defaults above apply);
``label: rest_of_day`` and ``model: lightgbm`` are accepted as shorthands for
``{kind: ...}``. An unquoted ``cutoff: 10:15`` is read by YAML 1.1 as the base-60 integer
615; that integer is turned back into "10:15".

``timeout_s`` (optional, seconds, at most :data:`MAX_TIMEOUT_S`) bounds the whole run:
past it the runner stops with "run exceeded timeout_s=N ..." and registers nothing.

Validation happens here, before any work: unknown keys, unknown kinds, a start after the
end, a date range too short for the walk-forward splits, a cutoff outside the symbol's
session, a cross-asset symbol equal to the target, ``train_size`` without the rolling
scheme and model parameters outside :data:`PARAM_BOUNDS` are refused with a
:class:`~almanac.errors.SpecError` of ONE line naming the field and what to change, e.g.
``spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb,
lightgbm, xgboost, knn``. Checks that need the data (the symbol exists, the label and feature
sets the data can give, enough labelled days, cross-asset data overlapping them) are in
:func:`validate_against_store`; the library's own rules on model parameters are in
``ml.models.check_params``; the runner calls both before any heavy work or write.

YAML is read by :class:`SpecLoader` (:func:`parse_yaml`) within the limits of
:class:`almanac.settings.Limits`: at most ``yaml_bytes`` (checked before parsing,
``ALMANAC_MAX_YAML_KB``), ``yaml_aliases`` alias uses (``ALMANAC_MAX_YAML_ALIASES``) and
``yaml_values`` values with the aliases expanded (``ALMANAC_MAX_YAML_VALUES``), at most
:data:`MAX_YAML_DEPTH` levels of nesting; a key given twice in a mapping is refused at any
level, and an impossible date (``start: 2018-02-30``) is refused naming its field.

The kernel does not import ``ml`` or ``features``: the kinds are constants here and a
test checks that they match ``ml.labelers.LABELS``, ``ml.models.MODEL_KINDS``,
``ml.splits.SCHEMES`` and ``features.FEATURE_SETS``.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from almanac.errors import AlmanacError, DataError, NotFoundError, SpecError
from almanac.settings import Limits, get_limits
from almanac.sessions import KNOWN_SESSIONS, intraday_entry, parse_time, symbol_session
from almanac.store import Store, bar_minutes, normalize_symbol
from almanac.store_days import DaySpan, intraday_days

FEATURE_SETS: tuple[str, ...] = ("early_session", "cross_asset", "regime")
#: Sets chosen by name, never a default (must match features.lineage.SEQUENCE_SETS).
SEQUENCE_SETS: tuple[str, ...] = ("minute_path",)
#: Model kinds that read the raw sequence sets only (ml.rocket), and what they need.
SEQUENCE_MODELS: dict[str, str] = {"minirocket": "minute_path"}
#: Sets the user brings (must match features.lineage.USER_SETS): chosen by name, never a default.
USER_SETS: tuple[str, ...] = ("tables", "plugins")
#: Sets fitted inside each training fold by the runner (ml.regimes), never part of the cached
#: feature table nor of the default selection; ``features.hmm_states`` (2-4, default 3) sets
#: the number of HMM states. They add to the other sets.
FOLD_SETS: tuple[str, ...] = ("hmm_regime",)
#: The label of a table dataset (``data: {table, target}``): the target column itself.
TABLE_LABEL = "column"
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")
#: Labels that follow the minute bars after the cutoff, in ATR of D-1 (ml.path_labels).
PATH_LABELS: tuple[str, ...] = ("tradeable", "first_touch", "time_to_touch", "max_excursion")
#: Labels whose prediction is not a direction to trade, whatever their parameters (must match the
#: labels of ml.labelers.LABELS with ``untraded`` set; multiclass first_touch is refused by its task).
UNTRADED_LABELS: tuple[str, ...] = ("archetype", "tradeable", "time_to_touch", "max_excursion")
LABEL_KINDS: tuple[str, ...] = ("direction", "rest_of_day", "archetype", "forward_return") + PATH_LABELS
#: label kind -> task (must match ml.labelers.LABELS[kind].task; first_touch with classes: binary is binary)
LABEL_TASKS: dict[str, str] = {"direction": "binary", "rest_of_day": "binary",
                               "archetype": "multiclass", "forward_return": "regression",
                               "tradeable": "binary", "first_touch": "multiclass", "time_to_touch": "regression",
                               "max_excursion": "regression"}
#: label kind -> horizon in trading days (must match ml.labelers.LABELS[kind].horizon_days)
LABEL_HORIZON_DAYS: dict[str, int] = {k: 0 for k in LABEL_KINDS}
#: session-table prices each label needs (must match ml.labelers.LABELS[kind].columns)
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "direction": ("open", "close"), "rest_of_day": ("cutoff_price", "close"),
    "archetype": ("open", "high", "low", "close"), "forward_return": ("cutoff_price", "close"),
    **{k: ("cutoff_price",) for k in PATH_LABELS}}
#: label kind -> the parameters it takes (must match ml.labelers.LABELS[kind].params)
LABEL_PARAMS: dict[str, tuple[str, ...]] = {"tradeable": ("k",), "first_touch": ("k", "classes"),
                                            "time_to_touch": ("k",), "max_excursion": ("side",)}
#: Defaults of the label parameters (written into the spec, so a run records them).
LABEL_PARAM_DEFAULTS: dict[str, Any] = {"k": 1.0, "classes": "multiclass", "side": "up"}
#: Largest barrier distance ``k`` (in ATR) a spec may give (must match ml.path_labels.MAX_K).
MAX_LABEL_K = 10.0
MODEL_KINDS: tuple[str, ...] = ("logistic", "random_forest", "hist_gb", "lightgbm", "xgboost", "knn", "minirocket")
SCHEMES: tuple[str, ...] = ("expanding", "rolling")
#: Fewest test days per fold the spec accepts (a fold score on fewer days is noise).
MIN_TEST_DAYS = 20
#: Longest ``timeout_s`` a spec may set (one week).
MAX_TIMEOUT_S = 7 * 86_400

StrictInt = Annotated[int, Field(strict=True)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Problem(ValueError):
    """A cross-field problem raised inside a validator, with the field it is about."""

    def __init__(self, loc: str, message: str):
        super().__init__(message)
        self.loc = loc
        self.message = message


class DataSpec(_Section):
    """Bars of ``symbol``, or a stored dataset ``table`` with its ``target`` column (not both)."""

    symbol: str | None = None
    table: str | None = None
    target: str | None = None
    start: date | None = None
    end: date | None = None

    @field_validator("table", mode="before")
    @classmethod
    def _table(cls, v):
        if v is None:
            return v
        if not isinstance(v, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", v.strip().lower()):
            raise ValueError(f"{v!r} is not a table name: use the --name given to data import-table")
        return v.strip().lower()

    @field_validator("symbol", mode="before")
    @classmethod
    def _symbol(cls, v):
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError(f"{v!r} is not a symbol: use text such as ES")
        try:
            return normalize_symbol(v)
        except AlmanacError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _range(self):
        if (self.symbol is None) == (self.table is None):
            raise _Problem("data.symbol", "name either a symbol (bars) or a table (a dataset imported with data "
                                          "import-table), e.g. data: {symbol: ES} or data: {table: spx_options, "
                                          "target: delta}")
        if self.table is not None and not self.target:
            raise _Problem("data.target", f"a table dataset needs the column to predict: add target, e.g. "
                                          f"data: {{table: {self.table}, target: delta}}")
        if self.table is None and self.target is not None:
            raise _Problem("data.target", "target applies to a table dataset: remove it (a symbol's label is "
                                          "label.kind)")
        if self.start and self.end and self.start > self.end:
            raise _Problem("data.start", f"start {self.start} is after end {self.end}: "
                                         "choose a start on or before the end")
        return self


class FeatureSpec(_Section):
    sets: list[Literal[FEATURE_SETS + FOLD_SETS + SEQUENCE_SETS + USER_SETS]] = Field(default_factory=lambda: list(FEATURE_SETS))  # type: ignore[valid-type]
    cutoff: str = "10:15"
    cross_assets: list[str] = Field(default_factory=list)
    columns: list[str] | None = None  # a table dataset's feature columns (default: its other numeric columns)
    hmm_states: StrictInt | None = Field(None, ge=2, le=4)  # states of the regime HMM (ml.regimes; None: 3)

    @field_validator("sets")
    @classmethod
    def _sets(cls, v):
        if not v:
            raise ValueError(f"choose at least one of {', '.join(FEATURE_SETS + SEQUENCE_SETS + USER_SETS)}")
        if set(v) <= set(FOLD_SETS):
            raise ValueError(f"{', '.join(FOLD_SETS)} adds to the other sets: choose at least one of "
                             f"{', '.join(FEATURE_SETS + USER_SETS)} with it, e.g. [regime, hmm_regime]")
        return [s for s in FEATURE_SETS + FOLD_SETS + SEQUENCE_SETS + USER_SETS if s in v]  # canonical order, no repeats

    @field_validator("cutoff", mode="before")
    @classmethod
    def _cutoff(cls, v):
        if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 24 * 60:
            v = f"{v // 60:02d}:{v % 60:02d}"  # YAML 1.1 reads 10:15 as 615 (base 60)
        try:
            return f"{parse_time(v):%H:%M}"
        except AlmanacError as exc:
            raise ValueError(exc.message) from None

    @field_validator("cross_assets", mode="before")
    @classmethod
    def _cross(cls, v):
        if isinstance(v, str):
            v = [s for s in v.split(",") if s.strip()]
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"{v!r} is not a list of symbols: use e.g. [VIX, CL]")
        out = []
        for s in v:
            try:
                sym = normalize_symbol(s)
            except AlmanacError as exc:
                raise ValueError(exc.message) from None
            if sym not in out:
                out.append(sym)
        return out


class LabelSpec(_Section):
    """``kind``, and the parameters of a path label (:data:`LABEL_PARAMS`): ``k`` (barrier
    distance in ATR of D-1, 0 < k <= 10, default 1), ``classes`` (first_touch: multiclass or
    binary, "neither" days dropped) and ``side`` (max_excursion: up or down). A parameter
    the kind does not take is refused; the defaults are filled in, so the spec a run
    records says exactly which label it trained on."""

    kind: Literal[LABEL_KINDS + (TABLE_LABEL,)]  # type: ignore[valid-type]
    task: Literal[TASKS] | None = None  # type: ignore[valid-type]  # column labels: override the inferred task
    k: float | None = None
    classes: Literal["multiclass", "binary"] | None = None
    side: Literal["up", "down"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"kind": v} if isinstance(v, str) else v

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, v):
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= MAX_LABEL_K):
            raise _Problem("label.k", f"{v!r} is not a barrier distance in ATR: use a number with 0 < k <= "
                                      f"{MAX_LABEL_K:g}, e.g. k: 1.0")
        return float(v)

    @model_validator(mode="after")
    def _params(self):
        takes = LABEL_PARAMS.get(self.kind, ())
        for name in ("k", "classes", "side"):
            if getattr(self, name) is not None and name not in takes:
                who = [k for k, v in LABEL_PARAMS.items() if name in v]
                what = f"takes only {', '.join(takes)}" if takes else "takes no parameters"
                raise _Problem(f"label.{name}", f"{name} applies to {' and '.join(who)}; {self.kind} {what}: "
                                                f"remove {name}")
        for name in takes:
            if getattr(self, name) is None:
                object.__setattr__(self, name, LABEL_PARAM_DEFAULTS[name])
        return self

    def params(self) -> dict:
        """The label's parameters (empty for a label that takes none)."""
        return {name: getattr(self, name) for name in LABEL_PARAMS.get(self.kind, ())}

    @property
    def tag(self) -> str:
        """The kind and its parameters for a run name, e.g. ``first-touch-k1-binary``."""
        p = self.params()
        bits = [self.kind] + [f"k{p['k']:g}" if n == "k" else str(p[n]) for n in p]
        return "-".join(bits).replace("_", "-")

    @property
    def resolved_task(self) -> str:
        """binary | multiclass | regression of a bar label (first_touch: by ``classes``)."""
        if self.kind == "first_touch" and self.classes == "binary":
            return "binary"
        return LABEL_TASKS[self.kind]


#: The lab's bounds on model parameters that set how much work a fit does: name ->
#: (lowest, highest), None for "the library's own rule". They apply to every model kind
#: that has the parameter and keep a run finite (``n_estimators: 1000000000`` would run
#: for days). Everything else about a parameter (type, range, allowed values,
#: combinations) is the library's own rule, checked by ``ml.models.check_params``.
PARAM_BOUNDS: dict[str, tuple[int | None, int]] = {
    "n_estimators": (1, 20_000),      # trees / boosting rounds (random_forest, lightgbm, xgboost)
    "max_iter": (1, 20_000),          # boosting rounds (hist_gb), solver iterations (logistic)
    "num_leaves": (None, 65_536),     # leaves per tree (lightgbm)
    "max_leaf_nodes": (None, 65_536),  # leaves per tree (hist_gb)
    "max_leaves": (None, 65_536),     # leaves per tree (xgboost)
    "max_depth": (None, 64),          # tree depth (all tree models)
    "max_bin": (None, 4_096),         # histogram bins per feature (lightgbm, xgboost)
    "num_parallel_tree": (None, 100),  # trees per round (xgboost)
    "n_neighbors": (1, 5_000),        # neighbours that vote (knn)
    "num_kernels": (84, 50_000),      # MiniRocket kernels (minirocket): ~1 feature each, fitted per fold
    "max_dilations_per_kernel": (1, 64),  # MiniRocket dilations per kernel (minirocket)
}


class ModelSpec(_Section):
    """``kind`` and the estimator's ``params`` (override the factory's defaults).

    Parameters are checked in two places: here, that each value is a number, text or a
    boolean within :data:`PARAM_BOUNDS` (n_estimators and max_iter 1-20,000; num_leaves,
    max_leaf_nodes and max_leaves at most 65,536; max_depth at most 64; max_bin at most
    4,096; num_parallel_tree at most 100); and before any work by the runner, with the
    library's own rules (``ml.models.check_params`` builds the estimator and fits it on
    a few synthetic rows), so ``learning_rate: -1`` or ``num_leaves: 1`` is refused
    naming the parameter.
    """

    kind: Literal[MODEL_KINDS]  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        if isinstance(v, str):
            return {"kind": v}
        if isinstance(v, dict) and v.get("params") is None and "params" in v:
            return {**v, "params": {}}
        return v

    @field_validator("params")
    @classmethod
    def _params(cls, v):
        bad = [k for k, x in v.items() if not isinstance(x, (int, float, str, bool, type(None)))]
        if bad:
            raise ValueError(f"parameter(s) {', '.join(bad)} must be numbers, text or booleans")
        for name, x in v.items():
            if name not in PARAM_BOUNDS or isinstance(x, bool) or not isinstance(x, (int, float)):
                continue  # types are the library's rule
            lo, hi = PARAM_BOUNDS[name]
            if x > hi or (lo is not None and x < lo) or x != x:
                rng = f"{lo}..{hi}" if lo is not None else f"at most {hi}"
                raise _Problem(f"model.params.{name}", f"{x!r} is outside the lab's bounds for {name} ({rng}): "
                                                       f"choose a value in {rng}")
        return v


class ValidationSpec(_Section):
    scheme: Literal[SCHEMES] = "expanding"  # type: ignore[valid-type]
    n_splits: StrictInt = Field(5, ge=1, le=50)
    gap: StrictInt = Field(1, ge=0, le=250)
    min_train: StrictInt = Field(250, ge=20)
    train_size: StrictInt | None = Field(None, ge=20)

    @model_validator(mode="after")
    def _rolling(self):
        if self.train_size is not None and self.scheme != "rolling":
            raise _Problem("validation.train_size", "train_size applies only to the rolling "
                                                    "scheme: remove it or set scheme: rolling")
        return self

    def min_days(self) -> int:
        """Fewest labelled trading days these splits accept (MIN_TEST_DAYS per fold)."""
        return self.min_train + self.gap + self.n_splits * MIN_TEST_DAYS


class BacktestSpec(_Section):
    threshold: float = Field(0.55, ge=0.5, le=1.0)
    cost_bps: float = Field(1.0, ge=0.0, le=1000.0)
    long_only: bool = False


class ExperimentSpec(_Section):
    """A whole experiment; build it with :func:`spec_from_dict` or :func:`load_spec`."""

    name: str = ""
    data: DataSpec
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    label: LabelSpec
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(kind="lightgbm"))
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    backtest: BacktestSpec = Field(default_factory=BacktestSpec)
    seed: StrictInt = Field(0, ge=0, le=2**31 - 1)
    timeout_s: float | None = Field(None, gt=0, le=MAX_TIMEOUT_S)

    @field_validator("timeout_s", mode="before")
    @classmethod
    def _timeout(cls, v):
        if isinstance(v, bool) or (v is not None and not isinstance(v, (int, float))):
            raise ValueError(f"{v!r} is not a number of seconds: use e.g. timeout_s: 600")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        v = "" if v is None else str(v).strip()
        if len(v) > 100 or any(not c.isprintable() for c in v):
            raise ValueError("use a short one-line name (at most 100 printable characters)")
        return v

    def _sequence_model(self) -> None:
        """A sequence model (minirocket) reads its raw sequence set and nothing else."""
        need = SEQUENCE_MODELS.get(self.model.kind)
        if need is None:
            return
        other = [s for s in self.features.sets if s != need]
        if need not in self.features.sets or other:
            raise _Problem("features.sets", f"model {self.model.kind} reads the raw {need} set only"
                           + (f", not {', '.join(other)}" if other else "") + f": set features.sets: [{need}] "
                           "(compare it with the engineered sets in a run of another model kind)")

    @model_validator(mode="after")
    def _neighbours(self):
        """knn: the neighbours that vote must exist in the smallest training fold."""
        k = self.model.params.get("n_neighbors", 50) if self.model.kind == "knn" else None
        rows = min(self.validation.min_train, self.validation.train_size or self.validation.min_train)
        if isinstance(k, int) and not isinstance(k, bool) and k > rows:
            raise _Problem("model.params.n_neighbors", f"{k} neighbours is more than the {rows} training days of the "
                                                      f"first fold (validation.min_train / train_size): choose at most "
                                                      f"{rows} or raise validation.min_train")
        return self

    @model_validator(mode="after")
    def _cross_fields(self):
        if self.data.table is not None or self.label.kind == TABLE_LABEL:
            return self._table_fields()
        if self.label.task is not None:
            raise _Problem("label.task", f"task applies to a table's column label; {self.label.kind} is "
                                         f"{LABEL_TASKS[self.label.kind]}: remove it")
        if self.features.columns is not None:
            raise _Problem("features.columns", "columns applies to a table dataset: remove it (a symbol's "
                                               "features are chosen by sets)")
        sym = self.data.symbol
        # a known symbol's hours are known here; another symbol's come with its data (its
        # calendar), so validate_against_store checks its cutoff
        session = KNOWN_SESSIONS.get(sym.upper())
        try:
            if session is not None:
                session.check_cutoff(self.features.cutoff)
        except AlmanacError as exc:
            raise _Problem("features.cutoff", exc.message) from None
        if sym in self.features.cross_assets:
            raise _Problem("features.cross_assets", f"{sym} is the target symbol itself: "
                                                    "choose other markets, e.g. [VIX, CL]")
        self._sequence_model()
        if self.features.sets == ["cross_asset"] and not self.features.cross_assets:
            raise _Problem("features.cross_assets", "the cross_asset set needs at least one "
                                                    "symbol, e.g. cross_assets: [VIX]")
        horizon = LABEL_HORIZON_DAYS[self.label.kind]
        if self.validation.gap < horizon:
            raise _Problem("validation.gap", f"gap {self.validation.gap} is shorter than the "
                                             f"{self.label.kind} label horizon of {horizon} days: "
                                             f"set gap to at least {horizon}")
        if self.data.start and self.data.end:
            weekdays = int(np.busday_count(self.data.start, self.data.end + timedelta(days=1)))
            need = self.validation.min_days()
            if weekdays < need:
                raise _Problem("data.start", too_few_days_message(
                    f"{self.data.start} .. {self.data.end} has at most {weekdays} trading days",
                    self.validation))
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        return self

    def _table_fields(self):
        if self.data.table is None:
            raise _Problem("label.kind", "label kind column predicts a table's column: name the table, e.g. "
                                         "data: {table: spx_options, target: delta}")
        if self.label.kind != TABLE_LABEL:
            raise _Problem("label.kind", f"a table dataset's label is its target column: use label: {{kind: "
                                         f"{TABLE_LABEL}}}, not {self.label.kind}")
        if self.features.columns is not None:
            if not self.features.columns:
                raise _Problem("features.columns", "choose at least one column, or remove columns to use every "
                                                   "other numeric column")
            if self.data.target in self.features.columns:
                raise _Problem("features.columns", f"{self.data.target} is the target: remove it from columns")
        if self.model.kind in SEQUENCE_MODELS:
            raise _Problem("model.kind", f"model {self.model.kind} reads the minute path of a symbol's intraday bars; "
                                         "a table dataset has none: choose another model kind")
        if not self.name:
            object.__setattr__(self, "name", self.default_name())
        return self

    # ------------------------------------------------------------------ derived
    @property
    def subject(self) -> str:
        """What the run is about: the symbol, or ``table:<name>``."""
        return self.data.symbol if self.data.table is None else f"table:{self.data.table}"

    def default_name(self) -> str:
        if self.data.table is not None:
            return f"{self.data.table}-{self.data.target}-{self.model.kind}".lower().replace("_", "-")
        return f"{self.data.symbol}-{self.label.tag}-{self.model.kind}".lower().replace("_", "-")

    @property
    def task(self) -> str:
        """binary | multiclass | regression (from the label; a table's column: ``label.task``, else
        regression until the runner infers it from the target's values)."""
        if self.label.kind == TABLE_LABEL:
            return self.label.task or "regression"
        return self.label.resolved_task

    @property
    def horizon_days(self) -> int:
        return LABEL_HORIZON_DAYS.get(self.label.kind, 0)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (dates as YYYY-MM-DD), every default filled in; the fields of the
        other kind of data (symbol vs table, target, features.columns, label.task) only when set."""
        d = self.model_dump(mode="json")
        for section, key in (("data", "symbol"), ("data", "table"), ("data", "target"), ("features", "columns"),
                             ("features", "hmm_states"), ("label", "task"), ("label", "k"), ("label", "classes"), ("label", "side")):
            if d[section].get(key) is None:
                d[section].pop(key, None)
        if self.data.table is not None:  # a table has no cutoff, bar feature sets or trading rules
            d["features"] = {k: v for k, v in d["features"].items() if k == "columns"}
            if not d["features"]:
                del d["features"]
            del d["backtest"]
        return d

    def to_yaml(self) -> str:
        """The normalized spec as YAML (sections in the documented order)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=100)


def too_few_days_message(have: str, v: ValidationSpec) -> str:
    need = v.min_days()
    return (f"{have}, fewer than the {need} the splits need (min_train {v.min_train} + gap "
            f"{v.gap} + {v.n_splits} folds x {MIN_TEST_DAYS} test days): widen the date range "
            "or lower min_train or n_splits")


# ---------------------------------------------------------------------- errors


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_keys(loc: tuple) -> list[str]:
    """The keys the model at ``loc`` (a path of field names) accepts."""
    model: type[BaseModel] = ExperimentSpec
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        ann = getattr(field, "annotation", None)
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return []
        model = ann
    return list(model.model_fields)


def _one(err: dict) -> str:
    loc, kind, value = err["loc"], err["type"], err.get("input")
    ctx = err.get("ctx") or {}
    where = _loc(loc)
    if kind == "value_error" and isinstance(ctx.get("error"), _Problem):
        p = ctx["error"]
        return f"spec field {p.loc}: {p.message}"
    if kind == "extra_forbidden":
        keys = _section_keys(loc[:-1])
        section = _loc(loc[:-1]) or "the spec"
        return (f"spec field {where} is not a known key: remove it"
                + (f" ({section} takes {', '.join(keys)})" if keys else ""))
    if kind == "missing":
        return f"spec field {where} is required: add it"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        return f"spec field {where}: {value!r} is not one of {', '.join(choices)}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        keys = _section_keys(loc)
        return (f"spec field {where}: {value!r} is not a mapping"
                + (f"; write it as {{{', '.join(keys)}}}" if keys else ""))
    if kind == "value_error":
        return f"spec field {where}: {ctx.get('error', err['msg'])}"
    if kind.startswith(("date_", "datetime_")):
        why = ctx.get("error") if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else None
        return (f"spec field {where}: {value!r} is not a date" + (f" ({why})" if why else "")
                + ": use YYYY-MM-DD, e.g. 2010-01-04")
    bound = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le"),
             "greater_than": ("more than", "gt"), "less_than": ("less than", "lt")}.get(kind)
    if bound:
        return f"spec field {where}: {value!r} is out of range: use {bound[0]} {ctx.get(bound[1])}"
    if kind.startswith(("int_", "float_", "bool_", "string_", "list_")):
        what = {"int": "a whole number", "float": "a number", "bool": "true or false",
                "string": "text", "list": "a list"}[kind.split("_")[0]]
        return f"spec field {where}: {value!r} is not {what}"
    msg = err["msg"][0].lower() + err["msg"][1:]
    return f"spec field {where}: {value!r} is invalid ({msg})"


def format_validation_error(exc: ValidationError) -> str:
    """All problems of a pydantic ValidationError on one line (``; ``-separated)."""
    return "; ".join(dict.fromkeys(_one(e) for e in exc.errors()))


# ---------------------------------------------------------------------- constructors


def spec_from_dict(d: dict | ExperimentSpec) -> ExperimentSpec:
    """Validate a dict (e.g. parsed YAML or built by the UI) into an :class:`ExperimentSpec`."""
    if isinstance(d, ExperimentSpec):
        return d
    if not isinstance(d, dict):
        raise SpecError(f"a spec must be a mapping of sections (data, features, label, model, "
                        f"validation, backtest), got {type(d).__name__}")
    try:
        return ExperimentSpec.model_validate(d)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc)) from None


#: Deepest nesting a spec may have (a spec needs 4: spec > model > params > value).
MAX_YAML_DEPTH = 10


class _Refused(yaml.MarkedYAMLError):
    """A limit of the spec loader was hit (the message is complete, the mark says where)."""

    def __init__(self, problem: str, mark=None):
        super().__init__(problem=problem, problem_mark=mark)


def _line(mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "an unknown line"


class SpecLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the spec's limits, checked while the document is composed.

    * at most ``Limits.yaml_aliases`` alias uses (``*name``) and at most
      ``Limits.yaml_values`` values with every alias expanded (an alias "bomb" nests a few
      aliases into billions of values: it is refused after a few thousand, in
      milliseconds); an alias that refers to a value containing itself is refused;
    * at most :data:`MAX_YAML_DEPTH` levels of nesting (deeper input would exhaust
      Python's recursion in the composer);
    * a key given twice in one mapping, at any level, is refused (plain YAML keeps the
      last one silently); keys coming from a ``<<`` merge may be overridden as usual;
    * a date or integer the constructor cannot convert (``2018-02-30``, 5,000 digits)
      stays text, so the spec field it belongs to refuses it by name.
    """

    def __init__(self, stream, limits: Limits | None = None):
        super().__init__(stream)
        self.limits = limits or get_limits()
        self._aliases = 0
        self._values = 0
        self._depth = 0
        self._sizes: dict[int, int] = {}   # id(node) -> values in it, aliases expanded
        self._checked: set[int] = set()    # mappings already checked for duplicate keys

    def _count(self, n: int, mark) -> None:
        self._values += n
        if self._values > self.limits.yaml_values:
            var = Limits.var("yaml_values")
            raise _Refused(f"expands to more than {self.limits.yaml_values} values (aliases included) at "
                           f"{_line(mark)}: a spec has a few dozen; remove the aliases or raise {var}", mark)

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > self.limits.yaml_aliases:
                var = Limits.var("yaml_aliases")
                raise _Refused(f"uses more than {self.limits.yaml_aliases} aliases (*name) at "
                               f"{_line(event.start_mark)}: a spec needs few or none; remove them or raise {var}",
                               event.start_mark)
            node = self.anchors.get(event.anchor)
            if node is not None:  # an undefined alias is the composer's own error
                size = self._sizes.get(id(node))
                if size is None:
                    raise _Refused(f"has a recursive alias *{event.anchor} at {_line(event.start_mark)} (it "
                                   "refers to a value that contains it): write the value out", event.start_mark)
                self._count(size, event.start_mark)
            return super().compose_node(parent, index)
        mark = self.peek_event().start_mark
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise _Refused(f"nests values deeper than {MAX_YAML_DEPTH} levels at {_line(mark)}: a spec needs 4 "
                           "(e.g. model > params > name: value)", mark)
        first = self._values
        self._count(1, mark)
        node = super().compose_node(parent, index)
        self._depth -= 1
        self._sizes[id(node)] = self._values - first
        return node

    def flatten_mapping(self, node):
        if id(node) not in self._checked:  # before merges are flattened into node.value
            self._checked.add(id(node))
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # unhashable: the constructor says so
                    continue
                if first is not key_node:
                    raise _Refused(f"has the key {key_node.value!r} twice in one mapping ({_line(first.start_mark)} "
                                   f"and {_line(key_node.start_mark)}): keep one (YAML would silently use the "
                                   "last)", key_node.start_mark)
        super().flatten_mapping(node)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            return node.value  # the field's check refuses it by name

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # e.g. more digits than Python converts
            return node.value


SpecLoader.add_constructor("tag:yaml.org,2002:timestamp", SpecLoader.construct_yaml_timestamp)
SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml_int)


def _size_text(n: int) -> str:
    return f"{n / 2**20:.2f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{n} bytes"


def _check_size(n: int, where: str, limits: Limits) -> None:
    if n > limits.yaml_bytes:
        var = Limits.var("yaml_bytes")
        raise SpecError(f"{where} is {_size_text(n)}, more than the {_size_text(limits.yaml_bytes)} a spec may "
                        f"have ({var}): a spec is a few lines; check the file or raise {var}")


def parse_yaml(text: str, where: str = "spec", limits: Limits | None = None):
    """The YAML document ``text`` as Python data, read by :class:`SpecLoader`.

    Refused with one line (SpecError): more than ``Limits.yaml_bytes`` bytes (checked
    before parsing), the loader's limits, and any YAML error (with its line and column).
    """
    limits = limits or get_limits()
    _check_size(len(text.encode("utf-8", "surrogatepass")), where, limits)
    loader = None
    try:
        loader = SpecLoader(text, limits)  # the reader refuses control characters here
        return loader.get_single_data()
    except _Refused as exc:
        raise SpecError(f"{where} {exc.problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise SpecError(f"{where} is not valid YAML: character {char!r} at line {line} is not "
                        "allowed; remove it") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at {_line(mark)}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        context = getattr(exc, "context", None)
        problem = f"{context} {problem}" if context and not problem.startswith(context) else problem
        raise SpecError(f"{where} is not valid YAML{at}: {problem}; fix the indentation or quoting") from None
    finally:
        if loader is not None:
            loader.dispose()


def spec_from_yaml(text: str, where: str = "spec") -> ExperimentSpec:
    """Validate YAML text into an :class:`ExperimentSpec` (see :func:`parse_yaml` for the limits)."""
    data = parse_yaml(text, where)
    if data is None:
        raise SpecError(f"{where} is empty: write a spec with at least data and label sections")
    return spec_from_dict(data)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a YAML spec file (its size is checked before it is read)."""
    text, where = read_spec_file(path)
    return spec_from_yaml(text, where=where)


def read_spec_file(path: str | Path) -> tuple[str, str]:
    """(text, "spec file NAME") of a YAML spec file, its size checked before it is read."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"spec file {p} does not exist: pass the path of a YAML spec, "
                            "e.g. configs/es-rest-of-day-lgbm.yaml")
    limits = get_limits()
    where = f"spec file {p.name}"
    try:
        _check_size(p.stat().st_size, where, limits)
        with p.open("rb") as f:
            raw = f.read(limits.yaml_bytes + 1)  # the file may have grown since stat
        _check_size(len(raw), where, limits)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {p} ({type(exc).__name__}): pass a UTF-8 YAML file") from None
    return text, where


# ---------------------------------------------------------------------- store checks


def _span_of(store: Store, sym: str) -> tuple[str, str]:
    """First and last date (YYYY-MM-DD) of any of ``sym``'s datasets."""
    entries = [e for e in (intraday_entry(store, sym), store.entry(sym, "1d") if store.has(sym, "1d") else None) if e]
    return min(e.start[:10] for e in entries), max(e.end[:10] for e in entries)


#: Labels measured from the price at the cutoff (they need 1-minute bars).
CUTOFF_LABELS: tuple[str, ...] = ("rest_of_day", "forward_return") + PATH_LABELS


def _check_user_sets(spec: ExperimentSpec, store: Store, sym: str, freq: str) -> None:
    """The tables and plugins sets need something imported / added (plugins: intraday bars)."""
    from almanac.plugins import Plugins
    from almanac.tables import Tables

    sets = spec.features.sets
    if "tables" in sets and not Tables(store.home).list("features"):
        raise NotFoundError("spec field features.sets: no feature table imported yet: import one with `python -m "
                            "almanac data import-features FILE --name NAME --known-at HH:MM`, or remove tables")
    if "plugins" in sets:
        if not Plugins(store.home).list():
            raise NotFoundError("spec field features.sets: no plugin added yet: add one with `python -m almanac "
                                "plugins add FILE.py`, or remove plugins")
        if freq == "1d":
            raise SpecError(f"spec field features.sets: plugins need intraday bars and {sym} has only 1d: remove "
                            "plugins or choose a symbol with intraday bars")


def validate_against_store(spec: ExperimentSpec, store: Store | None = None) -> dict:
    """Checks that need the data, done before any heavy work (features, cache, ``runs/``).

    Refuses (NotFoundError / SpecError / DataError, one line naming the field and the
    data it needs):

    * a symbol or cross-asset symbol missing from the store;
    * on a daily-only symbol: ``early_session`` features (they need 1-minute bars), a
      label measured from the cutoff (``rest_of_day``, ``forward_return``: a daily-only
      symbol has no price at the cutoff; it would silently fall back to the open, and a
      close-only series has no open either), and a label whose prices the file lacks
      (e.g. ``direction`` on closes only);
    * a date range without trading days, a cutoff before which no day has a bar, and
      fewer *labelled* days than the splits need (so a spec that cannot label a single
      day is refused here, not after the features were built);
    * a cross-asset symbol whose data does not overlap the labelled days at all.

    Returns ``{"days": n, "first": date, "last": date, "freq": "1min"|"1d"}`` for the
    labelled days of the range.
    """
    store = store if store is not None else Store()
    if spec.data.table is not None:
        return validate_table_spec(spec, store.home)
    sym, kind, cutoff = spec.data.symbol, spec.label.kind, spec.features.cutoff
    have = ", ".join(store.symbols()) or "nothing yet"
    minute = intraday_entry(store, sym)
    if not (minute or store.has(sym, "1d")):
        raise NotFoundError(f"spec field data.symbol: {sym} has no data in the store (it holds {have}): "
                            f"import {sym} first or choose another symbol")
    crosses = spec.features.cross_assets if "cross_asset" in spec.features.sets else []
    for c in crosses:
        if not (intraday_entry(store, c) or store.has(c, "1d")):
            raise NotFoundError(f"spec field features.cross_assets: {c} has no data in the store "
                                f"(it holds {have}): import {c} first or remove it")
    entry = minute or store.entry(sym, "1d")
    freq = entry.freq
    _check_user_sets(spec, store, sym, freq)
    start, end = spec.data.start, spec.data.end
    span_text = f"{entry.start[:10]} .. {entry.end[:10]}"
    session = symbol_session(store, sym)
    if freq != "1d":
        try:
            session.check_cutoff(cutoff, bar_minutes(freq), f"{sym} {freq}")
        except AlmanacError as exc:
            raise SpecError(f"spec field features.cutoff: {exc.message}") from None
    if freq == "1d":
        closes_only = "open" not in entry.columns
        if "early_session" in spec.features.sets:
            raise SpecError(f"spec field features.sets: early_session features need 1-minute bars; {sym} has only "
                            f"1d: import {sym} 1-minute bars or remove early_session, e.g. sets: [regime]")
        if kind in PATH_LABELS:
            raise SpecError(f"spec field label.kind: {kind} follows the minute bars after the cutoff {cutoff}, "
                            f"which needs 1-minute bars; {sym} has only 1d bars: import {sym} 1-minute bars or use "
                            "label direction or archetype")
        if "minute_path" in spec.features.sets:
            raise SpecError(f"spec field features.sets: minute_path is the path of intraday bars from the open to "
                            f"the cutoff; {sym} has only 1d: import {sym} 1-minute bars or choose another set")
        if kind in CUTOFF_LABELS:
            why = (f"with closes only ({', '.join(entry.columns)}), so not one day can be labelled: import {sym} "
                   f"1-minute bars or use {sym} as a cross-asset symbol" if closes_only else
                   f"(it would silently run from the open instead): import {sym} 1-minute bars or use label "
                   "direction")
            raise SpecError(f"spec field label.kind: {kind} starts at the price at the cutoff {cutoff}, which "
                            f"needs 1-minute bars; {sym} has only 1d bars {why}")
        need = [c for c in LABEL_COLUMNS[kind] if c not in entry.columns]
        if need:
            hint = (f"a close-only series cannot be labelled: import {sym} OHLC bars or use it as a cross-asset "
                    "symbol" if closes_only else "import OHLC bars or pick another label")
            raise DataError(f"spec field label.kind: {kind} needs {', '.join(need)} prices but {sym} 1d has only "
                            f"{', '.join(entry.columns)}: {hint}")
        cols = [c for c in LABEL_COLUMNS[kind]]
        bars = store.read_bars(sym, "1d", start=start, end=end, columns=cols)
        days = pd.DatetimeIndex(bars["date"])
        ok = np.ones(len(bars), dtype=bool)
        for c in cols:
            x = pd.to_numeric(bars[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            ok &= x > 0  # NaN compares False: a missing or non-positive price labels nothing
        span, labelled, counts = DaySpan.of(days), DaySpan.of(days[ok]), None
    else:  # reads every bar's time: remembered by the file's hash once the check passes (almanac.store_days)
        counts = intraday_days(store, entry, start, end, session, cutoff if kind in CUTOFF_LABELS else None)
        span, labelled = counts.days, counts.labelled
    if span.n == 0:
        raise NotFoundError(f"spec field data.start: {sym} has no trading day between {start or 'the start'} and "
                            f"{end or 'the end'}: its {freq} data covers {span_text}; choose dates inside it")
    rng = span.text()
    if labelled.n == 0:
        where = ("features.cutoff", f"no bar before the cutoff {cutoff}: choose a later cutoff") \
            if freq != "1d" else ("data.start", "a missing or non-positive price: choose other dates")
        raise SpecError(f"spec field {where[0]}: not one of {sym}'s {span.n} trading days in {rng} can be "
                        f"labelled with {kind}, each has {where[1]}")
    if labelled.n < spec.validation.min_days():
        what = "trading days" if labelled.n == span.n else f"labelled days (of {span.n} trading days)"
        raise SpecError("spec field data.start: " + too_few_days_message(
            f"{sym} has {labelled.n} {what} in {labelled.text()}", spec.validation))
    first, last = labelled.first, labelled.last
    for c in crosses:
        c_first, c_last = _span_of(store, c)
        if c_last < first or c_first >= last:  # a day's cross features read closes up to D-1
            raise SpecError(f"spec field features.cross_assets: {c} data covers {c_first} .. {c_last}, which does "
                            f"not overlap the experiment's days {first} .. {last}, so its features would all be "
                            f"empty: choose dates inside both or remove {c}")
    if counts is not None:
        counts.keep()
    return {"days": labelled.n, "first": first, "last": last, "freq": freq}


def validate_table_spec(spec, home=None) -> dict:
    """The checks of :func:`almanac.spec.validate_against_store` for a table dataset: the table
    exists (the option sample is written on first use), target and feature columns are numeric,
    and there are enough distinct times for the splits. Returns ``{"days", "first", "last",
    "freq", "rows", "features"}`` (``days``: distinct times)."""
    from almanac.sample_options import SAMPLE_TABLE, ensure_option_sample
    from almanac.tables import Tables, feature_columns, table_times

    tables = Tables(home)
    name = spec.data.table
    if name == SAMPLE_TABLE and not tables.has(name, "dataset"):
        ensure_option_sample(tables.home)  # the sample is written on first use
    try:
        entry = tables.entry(name, "dataset")
    except AlmanacError as exc:
        raise NotFoundError(f"spec field data.table: {exc.message}") from None
    cols = feature_columns(spec, entry)
    t = table_times(tables, entry, spec.data.start, spec.data.end)
    if len(t) == 0:
        raise NotFoundError(f"spec field data.start: table {name} has no row between {spec.data.start or 'the start'} "
                            f"and {spec.data.end or 'the end'}: its times cover {entry.start} .. {entry.end}")
    distinct = int(pd.Index(t).nunique())
    if distinct < spec.validation.min_days():
        raise SpecError("spec field data.start: " + too_few_days_message(
            f"table {name} has {distinct} distinct times in {t[0]} .. {t[-1]}", spec.validation))
    return {"days": distinct, "first": f"{t[0]:%Y-%m-%d}", "last": f"{t[-1]:%Y-%m-%d}", "freq": "table",
            "rows": int(len(t)), "features": cols}


__all__ = ["validate_table_spec", "FEATURE_SETS", "USER_SETS", "TABLE_LABEL", "TASKS", "LABEL_KINDS", "LABEL_TASKS", "LABEL_HORIZON_DAYS", "LABEL_COLUMNS", "MODEL_KINDS",
           "PATH_LABELS", "LABEL_PARAMS", "LABEL_PARAM_DEFAULTS", "MAX_LABEL_K",
           "SCHEMES", "MIN_TEST_DAYS", "ExperimentSpec", "DataSpec", "FeatureSpec", "LabelSpec", "ModelSpec",
           "ValidationSpec", "BacktestSpec", "spec_from_dict", "spec_from_yaml", "load_spec",
           "validate_against_store", "format_validation_error", "parse_yaml", "read_spec_file", "SpecLoader", "PARAM_BOUNDS",
           "CUTOFF_LABELS", "MAX_YAML_DEPTH", "MAX_TIMEOUT_S"]
