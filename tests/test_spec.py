"""almanac.spec: validated experiment specs, one-line refusals, checks against the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from almanac.errors import NotFoundError, SpecError
from almanac.sessions import Session
from almanac.spec import (FEATURE_SETS, LABEL_COLUMNS, LABEL_HORIZON_DAYS, LABEL_KINDS, LABEL_TASKS, MIN_TEST_DAYS,
                          MODEL_KINDS, SCHEMES, ExperimentSpec, _trading_days, load_spec, spec_from_dict,
                          spec_from_yaml, validate_against_store)

ROOT = Path(__file__).resolve().parent.parent
BASE = {"data": {"symbol": "ES"}, "label": {"kind": "rest_of_day"}}


def with_(**sections) -> dict:
    d = {k: dict(v) if isinstance(v, dict) else v for k, v in BASE.items()}
    for k, v in sections.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) and isinstance(d.get(k), dict) else v
    return d


def refusal(d) -> str:
    with pytest.raises(SpecError) as exc:
        spec_from_dict(d)
    msg = exc.value.message
    assert "\n" not in msg
    return msg


def test_defaults_and_normalization():
    s = spec_from_dict({"data": {"symbol": "es", "start": "2010-01-04"}, "label": "rest_of_day",
                        "model": "lightgbm", "features": {"sets": ["regime", "early_session", "regime"],
                                                          "cross_assets": "vix, cl,VIX"}})
    assert s.name == "es-rest-of-day-lightgbm"
    assert s.data.symbol == "ES" and str(s.data.start) == "2010-01-04" and s.data.end is None
    assert s.features.sets == ["early_session", "regime"]  # canonical order, no repeats
    assert s.features.cross_assets == ["VIX", "CL"]
    assert s.features.cutoff == "10:15"
    assert (s.validation.scheme, s.validation.n_splits, s.validation.gap, s.validation.min_train) == \
        ("expanding", 5, 1, 250)
    assert (s.backtest.threshold, s.backtest.cost_bps, s.backtest.long_only) == (0.55, 1.0, False)
    assert s.task == "binary" and s.horizon_days == 0 and s.seed == 0
    assert s.validation.min_days() == 250 + 1 + 5 * MIN_TEST_DAYS


def test_yaml_round_trip_and_unquoted_cutoff():
    text = """
name: my run
data: {symbol: ES, start: 2011-01-03, end: 2016-12-30}
features: {sets: [early_session], cutoff: 10:45}
label: {kind: forward_return}
model: {kind: xgboost, params: {max_depth: 2}}
validation: {scheme: rolling, n_splits: 3, gap: 2, min_train: 300, train_size: 400}
"""
    s = spec_from_yaml(text)
    assert s.features.cutoff == "10:45"  # YAML 1.1 read 10:45 as 645; turned back into the time
    assert s.task == "regression" and s.model.params == {"max_depth": 2}
    again = spec_from_yaml(s.to_yaml())
    assert again == s and again.to_dict() == s.to_dict()
    d = s.to_dict()
    assert d["data"] == {"symbol": "ES", "start": "2011-01-03", "end": "2016-12-30"}
    assert list(d) == ["name", "data", "features", "label", "model", "validation", "backtest", "seed", "timeout_s"]


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path):
    s = load_spec(path)
    assert s.data.symbol == "ES" and s.name == path.stem


@pytest.mark.parametrize("d, expected", [
    (with_(model={"kind": "lgbm"}),
     "spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, xgboost"),
    (with_(label={"kind": "up"}),
     "spec field label.kind: 'up' is not one of direction, rest_of_day, archetype, forward_return"),
    (with_(features={"sets": ["early", "regime"]}),
     "spec field features.sets[0]: 'early' is not one of early_session, cross_asset, regime"),
    (with_(validation={"scheme": "sliding"}),
     "spec field validation.scheme: 'sliding' is not one of expanding, rolling"),
    (with_(featurs={}),
     "spec field featurs is not a known key: remove it (the spec takes name, data, features, label, model, "
     "validation, backtest, seed, timeout_s)"),
    (with_(model={"kind": "lightgbm", "lr": 0.1}),
     "spec field model.lr is not a known key: remove it (model takes kind, params)"),
    (with_(data={"symbol": "ES", "start": "2012-01-02", "end": "2011-01-03"}),
     "spec field data.start: start 2012-01-02 is after end 2011-01-03: choose a start on or before the end"),
    # weekdays Jan..Jun 2012: 22 + 21 + 22 + 21 + 23 + 21 = 130
    (with_(data={"symbol": "ES", "start": "2012-01-02", "end": "2012-06-29"}),
     "spec field data.start: 2012-01-02 .. 2012-06-29 has at most 130 trading days, fewer than the 351 the "
     "splits need (min_train 250 + gap 1 + 5 folds x 20 test days): widen the date range or lower min_train "
     "or n_splits"),
    (with_(features={"cutoff": "16:30"}),
     "spec field features.cutoff: cutoff 16:30 is outside the regular session 09:30–16:00 America/New_York: "
     "choose a time after 09:30 and no later than 16:00"),
    (with_(features={"cutoff": "9:30"}),
     "spec field features.cutoff: cutoff 09:30 is outside the regular session 09:30–16:00 America/New_York: "
     "choose a time after 09:30 and no later than 16:00"),
    (with_(features={"cutoff": "quarter past ten"}),
     "spec field features.cutoff: time 'quarter past ten' is not HH:MM (24-hour), e.g. 10:15"),
    (with_(features={"cross_assets": ["es"]}),
     "spec field features.cross_assets: ES is the target symbol itself: choose other markets, e.g. [VIX, CL]"),
    (with_(features={"sets": ["cross_asset"]}),
     "spec field features.cross_assets: the cross_asset set needs at least one symbol, e.g. cross_assets: [VIX]"),
    (with_(validation={"train_size": 300}),
     "spec field validation.train_size: train_size applies only to the rolling scheme: remove it or set "
     "scheme: rolling"),
    (with_(validation={"n_splits": 0}), "spec field validation.n_splits: 0 is out of range: use at least 1"),
    (with_(validation={"n_splits": 2.5}), "spec field validation.n_splits: 2.5 is not a whole number"),
    (with_(backtest={"threshold": 0.4}), "spec field backtest.threshold: 0.4 is out of range: use at least 0.5"),
    (with_(data={"symbol": "E S"}),
     "spec field data.symbol: symbol 'E S' is not valid: use letters, digits, '-', '_' or '.', e.g. ES or VIX"),
    (with_(data={"symbol": "ES", "start": "someday"}),
     "spec field data.start: 'someday' is not a date: use YYYY-MM-DD, e.g. 2010-01-04"),
    (with_(data="ES"), "spec field data: 'ES' is not a mapping; write it as {symbol, start, end}"),
    ({"label": {"kind": "direction"}}, "spec field data is required: add it"),
])
def test_refusals_are_one_line_and_say_what_to_change(d, expected):
    assert refusal(d) == expected


def test_several_problems_on_one_line():
    msg = refusal(with_(model={"kind": "lgbm"}, backtest={"threshold": 2}))
    assert msg == ("spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, "
                   "xgboost; spec field backtest.threshold: 2 is out of range: use at most 1.0")


def test_yaml_and_file_errors(tmp_path):
    with pytest.raises(SpecError, match=r"is not valid YAML at line 2, column"):
        spec_from_yaml("data: {symbol: ES\nlabel: [", where="spec")
    with pytest.raises(SpecError, match="is empty"):
        spec_from_yaml("")
    with pytest.raises(SpecError, match="must be a mapping"):
        spec_from_yaml("- a\n- b\n")
    with pytest.raises(NotFoundError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_constants_match_the_ml_and_features_registries():
    from features import FEATURE_SETS as F
    from ml.labelers import LABELS
    from ml.models import MODEL_KINDS as M
    from ml.splits import SCHEMES as S

    assert LABEL_KINDS == tuple(LABELS)
    assert LABEL_TASKS == {k: v.task for k, v in LABELS.items()}
    assert LABEL_HORIZON_DAYS == {k: v.horizon_days for k, v in LABELS.items()}
    assert LABEL_COLUMNS == {k: v.columns for k, v in LABELS.items()}
    assert (MODEL_KINDS, SCHEMES, FEATURE_SETS) == (M, S, F)


def test_kernel_does_not_import_ml_or_features():
    code = ("import sys, almanac.spec, almanac.registry; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ml', 'features', 'viz', 'pages', 'dash')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------- store checks


def minute_bars(dates, bars_per_day=6, step=5) -> pd.DataFrame:
    """``bars_per_day`` bars every ``step`` minutes from the open of each date."""
    opens = Session().opens(dates).as_unit("us").asi8
    stamps = (opens[:, None] + np.arange(bars_per_day) * step * 60_000_000).ravel()
    n = stamps.size
    price = 100 + np.arange(n) * 0.01
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(stamps.astype("datetime64[us]")).tz_localize("UTC"),
                         "open": price, "high": price + 0.05, "low": price - 0.05, "close": price,
                         "volume": np.full(n, 10.0)})


def test_trading_days_match_session_on_23h_futures_bars():
    from features.synthetic import futures_minutes

    bars = futures_minutes("2018-03-01", days=30, step=15, overnight=True)  # spans a DST change
    assert _trading_days(bars["timestamp"], Session()).equals(Session().trading_days(bars["timestamp"]))
    assert len(_trading_days(bars["timestamp"], Session())) == 30


def test_validate_against_store(store):
    dates = pd.bdate_range("2015-01-02", periods=360)
    store.write("ES", "1min", minute_bars(dates), source="test")
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": 15.0 + np.arange(360) % 7}), source="test")
    ok = spec_from_dict(with_(features={"cross_assets": ["VIX"]}))
    assert validate_against_store(ok, store) == {"days": 360, "first": "2015-01-02", "last": "2016-05-19",
                                                 "freq": "1min"}
    with pytest.raises(NotFoundError, match=r"^spec field data.symbol: NQ has no data in the store \(it holds ES, VIX\)"):
        validate_against_store(spec_from_dict(with_(data={"symbol": "NQ"})), store)
    with pytest.raises(NotFoundError, match=r"^spec field features.cross_assets: CL has no data"):
        validate_against_store(spec_from_dict(with_(features={"cross_assets": ["VIX", "CL"]})), store)
    # 360 days, but from 2015-02-02 only 339 remain (the 21 weekdays of January 2015 go): 351 needed
    late = spec_from_dict(with_(data={"symbol": "ES", "start": "2015-02-01"}))
    with pytest.raises(SpecError, match=r"ES has 339 trading days in 2015-02-02 \.\. 2016-05-19, fewer than the 351"):
        validate_against_store(late, store)
    with pytest.raises(NotFoundError, match=r"no trading day between 2020-01-01 and the end: its 1min data covers "
                                            r"2015-01-02 \.\. 2016-05-19"):
        validate_against_store(spec_from_dict(with_(data={"symbol": "ES", "start": "2020-01-01"})), store)


def test_validate_against_store_daily_only_symbol(store):
    dates = pd.bdate_range("2015-01-02", periods=400)
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": 15.0 + np.arange(400) % 7}), source="test")
    s = spec_from_dict({"data": {"symbol": "VIX"}, "label": "direction", "features": {"sets": ["regime"]}})
    with pytest.raises(Exception, match=r"^spec field label.kind: direction needs open prices but VIX 1d has only "
                                        r"date, close"):
        validate_against_store(s, store)
    early = spec_from_dict({"data": {"symbol": "VIX"}, "label": "rest_of_day", "features": {"sets": ["early_session"]}})
    with pytest.raises(SpecError, match=r"^spec field features.sets: early_session features need 1-minute bars; "
                                        r"VIX has only 1d: import VIX 1-minute bars or remove early_session"):
        validate_against_store(early, store)


def test_spec_objects_are_frozen():
    s = spec_from_dict(BASE)
    with pytest.raises(Exception):
        s.model = None  # type: ignore[misc]
    assert isinstance(s, ExperimentSpec)
