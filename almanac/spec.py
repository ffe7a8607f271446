"""The experiment spec: one validated, declarative object per run (docs/design.md §5).

On disk it is YAML::

    name: es-rest-of-day-lgbm                      # optional: default "<symbol>-<label>-<model>"
    data:       {symbol: ES, start: 2010-01-01, end: 2018-12-31}     # start/end optional
    features:   {sets: [early_session, cross_asset, regime], cutoff: "10:15", cross_assets: [VIX, CL]}
    label:      {kind: rest_of_day}                # direction | rest_of_day | archetype | forward_return
    model:      {kind: lightgbm, params: {}}       # logistic | random_forest | hist_gb | lightgbm | xgboost
    validation: {scheme: expanding, n_splits: 5, gap: 1, min_train: 250}  # rolling: + train_size
    backtest:   {threshold: 0.55, cost_bps: 1.0, long_only: false}
    seed: 0                                        # optional: seeds the model and permutation importance

Every section but ``data`` and ``label`` may be left out (the defaults above apply);
``label: rest_of_day`` and ``model: lightgbm`` are accepted as shorthands for
``{kind: ...}``. An unquoted ``cutoff: 10:15`` is read by YAML 1.1 as the base-60 integer
615; that integer is turned back into "10:15".

Validation happens here, before any work: unknown keys, unknown kinds, a start after the
end, a date range too short for the walk-forward splits, a cutoff outside the symbol's
session, a cross-asset symbol equal to the target and ``train_size`` without the rolling
scheme are refused with a :class:`~almanac.errors.SpecError` of ONE line naming the field
and what to change, e.g. ``spec field model.kind: 'lgbm' is not one of logistic,
random_forest, hist_gb, lightgbm, xgboost``. Checks that need the data (the symbol
exists, enough trading days, the label's prices are there) are in
:func:`validate_against_store`, which the runner calls before any heavy work.

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
from almanac.sessions import parse_time, session_for
from almanac.store import Store, normalize_symbol

FEATURE_SETS: tuple[str, ...] = ("early_session", "cross_asset", "regime")
LABEL_KINDS: tuple[str, ...] = ("direction", "rest_of_day", "archetype", "forward_return")
#: label kind -> task (must match ml.labelers.LABELS[kind].task)
LABEL_TASKS: dict[str, str] = {"direction": "binary", "rest_of_day": "binary",
                               "archetype": "multiclass", "forward_return": "regression"}
#: label kind -> horizon in trading days (must match ml.labelers.LABELS[kind].horizon_days)
LABEL_HORIZON_DAYS: dict[str, int] = {k: 0 for k in LABEL_KINDS}
#: session-table prices each label needs (must match ml.labelers.LABELS[kind].columns)
LABEL_COLUMNS: dict[str, tuple[str, ...]] = {
    "direction": ("open", "close"), "rest_of_day": ("cutoff_price", "close"),
    "archetype": ("open", "high", "low", "close"), "forward_return": ("cutoff_price", "close")}
MODEL_KINDS: tuple[str, ...] = ("logistic", "random_forest", "hist_gb", "lightgbm", "xgboost")
SCHEMES: tuple[str, ...] = ("expanding", "rolling")
#: Fewest test days per fold the spec accepts (a fold score on fewer days is noise).
MIN_TEST_DAYS = 20

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
    symbol: str
    start: date | None = None
    end: date | None = None

    @field_validator("symbol", mode="before")
    @classmethod
    def _symbol(cls, v):
        if not isinstance(v, str):
            raise ValueError(f"{v!r} is not a symbol: use text such as ES")
        try:
            return normalize_symbol(v)
        except AlmanacError as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _range(self):
        if self.start and self.end and self.start > self.end:
            raise _Problem("data.start", f"start {self.start} is after end {self.end}: "
                                         "choose a start on or before the end")
        return self


class FeatureSpec(_Section):
    sets: list[Literal[FEATURE_SETS]] = Field(default_factory=lambda: list(FEATURE_SETS))  # type: ignore[valid-type]
    cutoff: str = "10:15"
    cross_assets: list[str] = Field(default_factory=list)

    @field_validator("sets")
    @classmethod
    def _sets(cls, v):
        if not v:
            raise ValueError(f"choose at least one of {', '.join(FEATURE_SETS)}")
        return [s for s in FEATURE_SETS if s in v]  # canonical order, no repeats

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
    kind: Literal[LABEL_KINDS]  # type: ignore[valid-type]

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v):
        return {"kind": v} if isinstance(v, str) else v


class ModelSpec(_Section):
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

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        v = "" if v is None else str(v).strip()
        if len(v) > 100 or any(not c.isprintable() for c in v):
            raise ValueError("use a short one-line name (at most 100 printable characters)")
        return v

    @model_validator(mode="after")
    def _cross_fields(self):
        sym = self.data.symbol
        session = session_for(sym)
        try:
            session.check_cutoff(self.features.cutoff)
        except AlmanacError as exc:
            raise _Problem("features.cutoff", exc.message) from None
        if sym in self.features.cross_assets:
            raise _Problem("features.cross_assets", f"{sym} is the target symbol itself: "
                                                    "choose other markets, e.g. [VIX, CL]")
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

    # ------------------------------------------------------------------ derived
    def default_name(self) -> str:
        return f"{self.data.symbol}-{self.label.kind}-{self.model.kind}".lower().replace("_", "-")

    @property
    def task(self) -> str:
        """binary | multiclass | regression (from the label)."""
        return LABEL_TASKS[self.label.kind]

    @property
    def horizon_days(self) -> int:
        return LABEL_HORIZON_DAYS[self.label.kind]

    def to_dict(self) -> dict:
        """Plain JSON-able dict (dates as YYYY-MM-DD), every default filled in."""
        return self.model_dump(mode="json")

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
        return f"spec field {where}: {value!r} is not a date: use YYYY-MM-DD, e.g. 2010-01-04"
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


def spec_from_yaml(text: str, where: str = "spec") -> ExperimentSpec:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SpecError(f"{where} is not valid YAML{at}: {problem}; fix the indentation or quoting") from None
    if data is None:
        raise SpecError(f"{where} is empty: write a spec with at least data and label sections")
    return spec_from_dict(data)


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a YAML spec file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"spec file {p} does not exist: pass the path of a YAML spec, "
                            "e.g. configs/es-rest-of-day-lgbm.yaml")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {p} ({type(exc).__name__}): pass a UTF-8 YAML file") from None
    return spec_from_yaml(text, where=f"spec file {p.name}")


# ---------------------------------------------------------------------- store checks


def _trading_days(ts: pd.Series, session) -> pd.DatetimeIndex:
    """Local dates with at least one bar in the regular session (sorted UTC bar starts).

    Same result as :meth:`Session.trading_days`, without converting every timestamp:
    candidate dates are the UTC dates of the bars +- 1 day, and a candidate counts when
    ``searchsorted`` finds a bar in ``[open, close)`` of that date (DST-correct times
    from :meth:`Session.opens` / :meth:`Session.closes`).
    """
    us = pd.DatetimeIndex(ts).as_unit("us").asi8
    if us.size == 0:
        return pd.DatetimeIndex([], name="date")
    day = np.unique(us // 86_400_000_000)
    cand = np.unique(np.concatenate([day - 1, day, day + 1])).astype("datetime64[D]")
    dates = pd.DatetimeIndex(cand.astype("datetime64[us]"))
    lo = np.searchsorted(us, session.opens(dates).as_unit("us").asi8, side="left")
    hi = np.searchsorted(us, session.closes(dates).as_unit("us").asi8, side="left")
    return dates[hi > lo].rename("date")


def validate_against_store(spec: ExperimentSpec, store: Store | None = None) -> dict:
    """Checks that need the data, done before any heavy work.

    Refuses (NotFoundError / SpecError / DataError, one line) a symbol or cross-asset
    symbol missing from the store, a date range outside the data, a label whose prices
    the data lacks (close-only daily series), early-session features as the only set on
    a daily-only symbol, and fewer trading days in the range than the splits need.
    Returns ``{"days": n, "first": date, "last": date, "freq": "1min"|"1d"}``.
    """
    store = store if store is not None else Store()
    sym = spec.data.symbol
    have = ", ".join(store.symbols()) or "nothing yet"
    if not (store.has(sym, "1min") or store.has(sym, "1d")):
        raise NotFoundError(f"spec field data.symbol: {sym} has no data in the store (it holds {have}): "
                            f"import {sym} first or choose another symbol")
    for c in spec.features.cross_assets:
        if "cross_asset" in spec.features.sets and not (store.has(c, "1min") or store.has(c, "1d")):
            raise NotFoundError(f"spec field features.cross_assets: {c} has no data in the store "
                                f"(it holds {have}): import {c} first or remove it")
    freq = "1min" if store.has(sym, "1min") else "1d"
    entry = store.entry(sym, freq)
    if freq == "1d":
        if spec.features.sets == ["early_session"]:
            raise SpecError(f"spec field features.sets: {sym} has only daily bars, so early_session features "
                            "cannot be built: add regime or cross_asset")
        need = [c for c in LABEL_COLUMNS[spec.label.kind] if c not in ("cutoff_price",) and c not in entry.columns]
        if need:
            raise DataError(f"spec field label.kind: {spec.label.kind} needs {', '.join(need)} prices but "
                            f"{sym} 1d has only {', '.join(entry.columns)}: import OHLC bars or pick another label")
    start, end = spec.data.start, spec.data.end
    if freq == "1min":
        ts = store.read_bars(sym, "1min", start=start, end=end, columns=["timestamp"])["timestamp"]
        days = _trading_days(ts, session_for(sym))
    else:
        days = pd.DatetimeIndex(store.read_bars(sym, "1d", start=start, end=end, columns=["close"])["date"])
    span = f"{entry.start[:10]} .. {entry.end[:10]}"
    if len(days) == 0:
        raise NotFoundError(f"spec field data.start: {sym} has no trading day between {start or 'the start'} and "
                            f"{end or 'the end'}: its {freq} data covers {span}; choose dates inside it")
    if len(days) < spec.validation.min_days():
        raise SpecError("spec field data.start: " + too_few_days_message(
            f"{sym} has {len(days)} trading days in {days[0]:%Y-%m-%d} .. {days[-1]:%Y-%m-%d}", spec.validation))
    return {"days": int(len(days)), "first": f"{days[0]:%Y-%m-%d}", "last": f"{days[-1]:%Y-%m-%d}", "freq": freq}


__all__ = ["FEATURE_SETS", "LABEL_KINDS", "LABEL_TASKS", "LABEL_HORIZON_DAYS", "LABEL_COLUMNS", "MODEL_KINDS",
           "SCHEMES", "MIN_TEST_DAYS", "ExperimentSpec", "DataSpec", "FeatureSpec", "LabelSpec", "ModelSpec",
           "ValidationSpec", "BacktestSpec", "spec_from_dict", "spec_from_yaml", "load_spec",
           "validate_against_store", "format_validation_error"]
