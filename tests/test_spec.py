"""almanac.spec: validated experiment specs, one-line refusals, checks against the store."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from almanac.errors import DataError, NotFoundError, SpecError
from almanac.sessions import Session
from almanac.store_days import trading_days
from almanac.spec import (FEATURE_SETS, LABEL_COLUMNS, LABEL_HORIZON_DAYS, LABEL_KINDS, LABEL_TASKS, MIN_TEST_DAYS,
                          MODEL_KINDS, SCHEMES, ExperimentSpec, load_spec, spec_from_dict,
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
    """Every file in configs/ is a valid experiment spec, a valid multi-head spec, or a valid study of one."""
    import yaml

    if "base" in yaml.safe_load(path.read_text()):  # a study (python -m almanac study run --config)
        from almanac.study_spec import load_study

        study = load_study(path)
        assert study.name == path.stem and study.kind in ("search", "ablation")
        return
    if "heads" in yaml.safe_load(path.read_text()):  # a multi-head spec (almanac.multihead)
        from almanac.multihead import load_experiment

        s = load_experiment(path)
        assert s.data.symbol == "ES" and s.name == path.stem and len(s.heads) >= 2
        return
    s = load_spec(path)
    assert (s.data.symbol == "ES" or s.data.table == "spx_option_delta") and s.name == path.stem


@pytest.mark.parametrize("d, expected", [
    (with_(model={"kind": "lgbm"}),
     "spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, xgboost, knn, minirocket"),
    (with_(label={"kind": "up"}),
     "spec field label.kind: 'up' is not one of direction, rest_of_day, archetype, forward_return, tradeable, "
     "first_touch, time_to_touch, max_excursion, column"),
    (with_(features={"sets": ["early", "regime"]}),
     "spec field features.sets[0]: 'early' is not one of early_session, cross_asset, regime, hmm_regime, minute_path, tables, plugins"),
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
     "spec field data.symbol: symbol 'E S' is not valid: use ASCII letters, digits, '-', '_' or '.', e.g. ES or VIX"),
    (with_(data={"symbol": "ES", "start": "someday"}),
     "spec field data.start: 'someday' is not a date: use YYYY-MM-DD, e.g. 2010-01-04"),
    (with_(data="ES"), "spec field data: 'ES' is not a mapping; write it as {symbol, table, target, start, end}"),
    ({"label": {"kind": "direction"}}, "spec field data is required: add it"),
])
def test_refusals_are_one_line_and_say_what_to_change(d, expected):
    assert refusal(d) == expected


def test_several_problems_on_one_line():
    msg = refusal(with_(model={"kind": "lgbm"}, backtest={"threshold": 2}))
    assert msg == ("spec field model.kind: 'lgbm' is not one of logistic, random_forest, hist_gb, lightgbm, "
                   "xgboost, knn, minirocket; spec field backtest.threshold: 2 is out of range: use at most 1.0")


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
    from features.lineage import SEQUENCE_SETS as Q

    from almanac.spec import SEQUENCE_SETS
    assert SEQUENCE_SETS == Q
    from almanac.spec import UNTRADED_LABELS
    assert UNTRADED_LABELS == tuple(k for k, v in LABELS.items() if v.untraded)


def test_kernel_does_not_import_ml_or_features():
    code = ("import sys, almanac.spec, almanac.registry; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ml', 'features', 'viz', 'pages', 'dash')); "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------- store checks


def minute_bars(dates, bars_per_day=6, step=5, first_minute=0) -> pd.DataFrame:
    """``bars_per_day`` bars every ``step`` minutes from ``first_minute`` after the open of each date."""
    opens = Session().opens(pd.DatetimeIndex(dates)).as_unit("us").asi8 + first_minute * 60_000_000
    stamps = (opens[:, None] + np.arange(bars_per_day) * step * 60_000_000).ravel()
    n = stamps.size
    price = 100 + np.arange(n) * 0.01
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(stamps.astype("datetime64[us]")).tz_localize("UTC"),
                         "open": price, "high": price + 0.05, "low": price - 0.05, "close": price,
                         "volume": np.full(n, 10.0)})


def test_trading_days_match_session_on_23h_futures_bars():
    from bench.synthetic import futures_minutes

    bars = futures_minutes("2018-03-01", days=30, step=15, overnight=True)  # spans a DST change
    assert trading_days(bars["timestamp"], Session()).equals(Session().trading_days(bars["timestamp"]))
    assert len(trading_days(bars["timestamp"], Session())) == 30


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


# ---------------------------------------------------------------- the YAML loader (issue 17)

GOOD = "data: {symbol: ES}\nlabel: rest_of_day\n"


def yaml_refusal(text: str, **kw) -> str:
    with pytest.raises(SpecError) as exc:
        spec_from_yaml(text, where="spec.yaml", **kw)
    msg = exc.value.message
    assert "\n" not in msg and len(msg) <= 300
    return msg


def laughs(levels: int = 9, width: int = 9) -> str:
    """The "billion laughs": ``width ** levels`` values from ``levels * width`` aliases."""
    lines = ["l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\ndata: {{symbol: ES}}\nlabel: rest_of_day\nfeatures: {{sets: *l{levels - 1}}}\n"


def test_alias_bomb_is_refused_in_milliseconds():
    msg = yaml_refusal(laughs())  # 9 ** 9 = 387 million values once expanded (measured: ~1 ms; was 148 s)
    assert msg.startswith("spec.yaml expands to more than 10000 values (aliases included) at line ")
    assert msg.endswith("remove the aliases or raise ALMANAC_MAX_YAML_VALUES")


def test_a_doubling_chain_within_the_alias_count_is_still_refused():
    # 2 aliases per level: 40 aliases (under the 64 allowed) would make 2 ** 20 values
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 21)]
    assert "expands to more than 10000 values" in yaml_refusal("\n".join(lines) + "\n" + GOOD)


def test_alias_count_limit_and_its_variable(monkeypatch):
    text = "x: &x 1\nys: [" + ", ".join(["*x"] * 65) + "]\n" + GOOD
    assert yaml_refusal(text).startswith("spec.yaml uses more than 64 aliases (*name) at line 2, column ")
    monkeypatch.setenv("ALMANAC_MAX_YAML_ALIASES", "100")
    assert "is not a known key" in yaml_refusal(text)  # past the loader: the spec's own check
    monkeypatch.setenv("ALMANAC_MAX_YAML_ALIASES", "4")
    assert "raise ALMANAC_MAX_YAML_ALIASES" in yaml_refusal(text)


def test_a_few_aliases_are_fine():
    s = spec_from_yaml("data: &d {symbol: ES}\nlabel: rest_of_day\nfeatures: {sets: &s [regime]}\n"
                       "model: {kind: lightgbm, params: &p {num_leaves: 7}}\n")
    assert s.features.sets == ["regime"] and s.model.params == {"num_leaves": 7}


def test_recursive_alias_and_deep_nesting_are_refused():
    assert yaml_refusal("a: &a [1, *a]\n" + GOOD).startswith(
        "spec.yaml has a recursive alias *a at line 1, column 11 (it refers to a value that contains it)")
    deep = "x: " + "[" * 5000 + "]" * 5000 + "\n" + GOOD  # would exhaust Python's recursion
    assert yaml_refusal(deep).startswith("spec.yaml nests values deeper than 10 levels at line 1, column ")


@pytest.mark.parametrize("text, key, where", [
    ("data: {symbol: ES}\nlabel: rest_of_day\nlabel: direction\n", "label", "line 2, column 1 and line 3, column 1"),
    ("data: {symbol: ES, symbol: NQ}\nlabel: rest_of_day\n", "symbol", "line 1, column 8 and line 1, column 20"),
    ("data: {symbol: ES}\nlabel: rest_of_day\nmodel:\n  kind: lightgbm\n  params:\n    num_leaves: 7\n"
     "    num_leaves: 9\n", "num_leaves", "line 6, column 5 and line 7, column 5"),
    ("data: {symbol: ES}\nlabel: direction\nyes: 1\ntrue: 2\n", "true", "line 3, column 1 and line 4, column 1"),
])
def test_duplicate_keys_are_refused_at_any_level(text, key, where):
    assert yaml_refusal(text) == (f"spec.yaml has the key {key!r} twice in one mapping ({where}): keep one "
                                  "(YAML would silently use the last)")


def test_merge_keys_may_still_be_overridden():
    s = spec_from_yaml("data: {symbol: ES}\nlabel: rest_of_day\nmodel: {<<: {kind: logistic}, kind: lightgbm}\n")
    assert s.model.kind == "lightgbm"


@pytest.mark.parametrize("text, expected", [
    ("data: {symbol: ES, start: 2018-02-30}\nlabel: rest_of_day\n",
     "spec field data.start: '2018-02-30' is not a date (day value is outside expected range): use YYYY-MM-DD, "
     "e.g. 2010-01-04"),
    ("data: {symbol: ES, end: 2018-13-01}\nlabel: rest_of_day\n",
     "spec field data.end: '2018-13-01' is not a date (month value is outside expected range of 1-12): use YYYY-MM-DD, "
     "e.g. 2010-01-04"),
    ("data: {symbol: ES}\nlabel: rest_of_day\nseed: " + "9" * 5000 + "\n", "spec field seed: '999"),
    ("- data\n- label\n", "a spec must be a mapping of sections"),
    ("just text\n", "a spec must be a mapping of sections"),
    (GOOD + "---\n" + GOOD,
     "spec.yaml is not valid YAML at line 3, column 1: expected a single document in the stream but found another "
     "document"),
    ("data: {symbol: ES\nlabel: [", "spec.yaml is not valid YAML at line 2, column"),
    ("data: {symbol: \"E\x00S\"}\nlabel: rest_of_day\n",
     "spec.yaml is not valid YAML: character '\\x00' at line 1 is not allowed; remove it"),
    ("x: !!python/object/apply:os.system [echo]\n" + GOOD,
     "spec.yaml is not valid YAML at line 1, column 4: could not determine a constructor"),
])
def test_yaml_values_the_constructor_cannot_take_are_one_line(text, expected):
    assert yaml_refusal(text).startswith(expected)


def test_size_is_checked_before_parsing(tmp_path, monkeypatch):
    one_line = 'name: "' + "a" * 3_850_000 + '"\n'  # the 3.85 MB "one line"
    assert yaml_refusal(one_line) == ("spec.yaml is 3.67 MB, more than the 256 KB a spec may have "
                                      "(ALMANAC_MAX_YAML_KB): a spec is a few lines; check the file or raise "
                                      "ALMANAC_MAX_YAML_KB")
    path = tmp_path / "big.yaml"
    path.write_text(one_line)
    with pytest.raises(SpecError, match=r"^spec file big.yaml is 3.67 MB, more than the 256 KB"):
        load_spec(path)
    monkeypatch.setenv("ALMANAC_MAX_YAML_KB", "0.05")  # 51 bytes
    with pytest.raises(SpecError, match=r"^spec is 61 bytes, more than the 51 bytes a spec may have"):
        spec_from_yaml(GOOD + "# " + "x" * 20 + "\n")


# ---------------------------------------------------------------- parameter bounds and timeout_s


@pytest.mark.parametrize("params, expected", [
    ({"n_estimators": 1_000_000_000}, "spec field model.params.n_estimators: 1000000000 is outside the lab's bounds "
                                      "for n_estimators (1..20000): choose a value in 1..20000"),
    ({"n_estimators": float("inf")}, "spec field model.params.n_estimators: inf is outside"),
    ({"num_leaves": 100_000}, "spec field model.params.num_leaves: 100000 is outside the lab's bounds for "
                              "num_leaves (at most 65536)"),
    ({"max_depth": 65}, "spec field model.params.max_depth: 65 is outside the lab's bounds for max_depth (at most 64)"),
    ({"max_iter": 0}, "spec field model.params.max_iter: 0 is outside the lab's bounds for max_iter (1..20000)"),
    ({"lr": [1]}, "spec field model.params: parameter(s) lr must be numbers, text or booleans"),
])
def test_parameter_bounds(params, expected):
    assert refusal(with_(model={"kind": "lightgbm", "params": params})).startswith(expected)


def test_bounds_leave_types_to_the_library():
    s = spec_from_dict(with_(model={"kind": "lightgbm", "params": {"n_estimators": "abc", "max_depth": -1}}))
    assert s.model.params == {"n_estimators": "abc", "max_depth": -1}  # refused by ml.models.check_params


def test_timeout_s():
    assert spec_from_dict(BASE).timeout_s is None
    assert spec_from_dict(with_(timeout_s=90)).timeout_s == 90
    assert spec_from_yaml(GOOD + "timeout_s: 2.5\n").timeout_s == 2.5
    assert refusal(with_(timeout_s=0)) == "spec field timeout_s: 0 is out of range: use more than 0.0"
    assert refusal(with_(timeout_s=10**7)) == "spec field timeout_s: 10000000 is out of range: use at most 604800.0"
    assert refusal(with_(timeout_s="soon")) == ("spec field timeout_s: 'soon' is not a number of seconds: use e.g. "
                                                "timeout_s: 600")
    assert refusal(with_(timeout_s=True)).startswith("spec field timeout_s: True is not a number of seconds")


# ---------------------------------------------------------------- impossible label / data pairs


def daily_ohlc(dates) -> pd.DataFrame:
    c = 100 + np.arange(len(dates)) % 9
    return pd.DataFrame({"date": dates, "open": c - 0.5, "high": c + 1.0, "low": c - 1.0, "close": c * 1.0,
                         "volume": 1000.0})


@pytest.fixture
def daily_store(store):
    dates = pd.bdate_range("2015-01-02", periods=400)
    store.write("NQ", "1d", daily_ohlc(dates), source="test")
    store.write("VIX", "1d", pd.DataFrame({"date": dates, "close": 15.0 + np.arange(400) % 7}), source="test")
    store.write("CL", "1d", pd.DataFrame({"date": dates, "close": 50.0 + np.arange(400) % 5}), source="test")
    store.write("OLD", "1d", pd.DataFrame({"date": pd.bdate_range("2001-01-02", periods=300), "close": 9.0}),
                source="test")
    return store


@pytest.mark.parametrize("d, expected", [
    ({"data": {"symbol": "NQ"}, "label": "direction", "features": {"sets": ["early_session", "regime"]}},
     "spec field features.sets: early_session features need 1-minute bars; NQ has only 1d: import NQ 1-minute "
     "bars or remove early_session, e.g. sets: [regime]"),
    ({"data": {"symbol": "NQ"}, "label": "direction"},  # the default sets include early_session
     "spec field features.sets: early_session features need 1-minute bars; NQ has only 1d"),
    ({"data": {"symbol": "NQ"}, "label": "rest_of_day", "features": {"sets": ["regime"]}},
     "spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, which needs 1-minute bars; NQ has "
     "only 1d bars (it would silently run from the open instead): import NQ 1-minute bars or use label direction"),
    ({"data": {"symbol": "NQ"}, "label": "forward_return", "features": {"sets": ["regime"]}},
     "spec field label.kind: forward_return starts at the price at the cutoff 10:15, which needs 1-minute bars"),
    ({"data": {"symbol": "VIX"}, "label": "rest_of_day", "features": {"sets": ["regime"]}},
     "spec field label.kind: rest_of_day starts at the price at the cutoff 10:15, which needs 1-minute bars; VIX "
     "has only 1d bars with closes only (date, close), so not one day can be labelled: import VIX 1-minute bars "
     "or use VIX as a cross-asset symbol"),
    ({"data": {"symbol": "CL"}, "label": "forward_return", "features": {"sets": ["regime"]}},
     "spec field label.kind: forward_return starts at the price at the cutoff 10:15, which needs 1-minute bars; CL "
     "has only 1d bars with closes only (date, close), so not one day can be labelled"),
    ({"data": {"symbol": "CL"}, "label": "archetype", "features": {"sets": ["regime"]}},
     "spec field label.kind: archetype needs open, high, low prices but CL 1d has only date, close: a close-only "
     "series cannot be labelled: import CL OHLC bars or use it as a cross-asset symbol"),
    ({"data": {"symbol": "NQ"}, "label": "direction", "features": {"sets": ["regime", "cross_asset"],
                                                                   "cross_assets": ["OLD"]}},
     "spec field features.cross_assets: OLD data covers 2001-01-02 .. 2002-02-25, which does not overlap the "
     "experiment's days 2015-01-02 .. 2016-07-14, so its features would all be empty: choose dates inside both "
     "or remove OLD"),
])
def test_impossible_label_and_data_pairs(daily_store, d, expected):
    with pytest.raises(SpecError if "cross_assets" not in expected and "needs open" not in expected
                       else (SpecError, DataError)) as exc:
        validate_against_store(spec_from_dict(d), daily_store)
    assert exc.value.message.startswith(expected) and len(exc.value.message) <= 300


def test_daily_ohlc_direction_and_partial_cross_asset_pass(daily_store):
    ok = spec_from_dict({"data": {"symbol": "NQ"}, "label": "direction",
                         "features": {"sets": ["regime", "cross_asset"], "cross_assets": ["VIX", "CL"]}})
    assert validate_against_store(ok, daily_store) == {"days": 400, "first": "2015-01-02", "last": "2016-07-14",
                                                       "freq": "1d"}


def test_days_without_a_price_are_not_labelled_days(store):
    dates = pd.bdate_range("2015-01-02", periods=400)
    bars = daily_ohlc(dates)
    bars.loc[100:, "open"] = np.nan  # only 100 days with an open
    store.write("NQ", "1d", bars, source="test")
    s = spec_from_dict({"data": {"symbol": "NQ"}, "label": "direction", "features": {"sets": ["regime"]}})
    with pytest.raises(SpecError, match=r"^spec field data.start: NQ has 100 labelled days \(of 400 trading days\) "
                                        r"in 2015-01-02 \.\. 2015-05-21, fewer than the 351"):
        validate_against_store(s, store)


def test_a_cutoff_before_every_first_bar_labels_nothing(store):
    dates = pd.bdate_range("2015-01-02", periods=400)
    late = minute_bars(dates, bars_per_day=6, step=5)
    late["timestamp"] += pd.Timedelta(hours=1)  # every day's first bar at 10:30, after the 10:15 cutoff
    store.write("ES", "1min", late, source="test")
    for kind in ("rest_of_day", "forward_return"):
        with pytest.raises(SpecError) as exc:
            validate_against_store(spec_from_dict(with_(label=kind)), store)
        assert exc.value.message == (f"spec field features.cutoff: not one of ES's 400 trading days in 2015-01-02 .. "
                                     f"2016-07-14 can be labelled with {kind}, each has no bar before the cutoff "
                                     "10:15: choose a later cutoff")
    later = spec_from_dict(with_(features={"cutoff": "11:00"}))
    assert validate_against_store(later, store)["days"] == 400
    assert validate_against_store(spec_from_dict(with_(label="direction")), store)["days"] == 400


def test_values_limit_counts_plain_values_too(monkeypatch):
    # GOOD has 7 values: the root mapping, data, {symbol: ES} (3 with its key and value), label, rest_of_day
    monkeypatch.setenv("ALMANAC_MAX_YAML_VALUES", "6")
    assert yaml_refusal(GOOD).startswith("spec.yaml expands to more than 6 values (aliases included) at line ")
    monkeypatch.setenv("ALMANAC_MAX_YAML_VALUES", "7")
    assert spec_from_yaml(GOOD).data.symbol == "ES"


def test_knn_neighbours_must_fit_the_first_fold():
    msg = refusal(with_(model={"kind": "knn", "params": {"n_neighbors": 300}}))
    assert msg == ("spec field model.params.n_neighbors: 300 neighbours is more than the 250 training days of the "
                   "first fold (validation.min_train / train_size): choose at most 250 or raise validation.min_train")
    assert spec_from_dict(with_(model={"kind": "knn", "params": {"n_neighbors": 250}})).model.kind == "knn"
