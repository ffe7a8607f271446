"""Path labels (ml.path_labels) on hand-built minute bars: every value computed by hand.

The market: XNYS hours 09:30-16:00 New York with the exchange calendar (Thanksgiving
2018-11-22 is a holiday, 2018-11-23 closes at 13:00), cutoff 10:15, a few bars per day.
Fifteen quiet history days (high 101, low 99, close 100: true range 2 from the second
day on) make ATR(14) exactly 2 at the 15th day, so the first labelled day is the 16th.
Wilder's ATR then moves by (TR - ATR) / 14 per day; each test day's TR is worked out in
its comment.
"""

from __future__ import annotations

from datetime import time

import numpy as np
import pandas as pd
import pytest

from almanac.errors import SpecError
from almanac.sessions import Session
from features.paths import paths_from_bars
from features.sessions_table import session_table
from ml.labelers import LABELS, label_spec, make_label, make_label_frame
from ml.path_labels import touch_minutes

NY = Session("America/New_York", time(9, 30), time(16, 0), calendar="XNYS")
CUT = "10:15"
NAN = np.nan
HISTORY = pd.bdate_range("2018-10-26", periods=15)  # 10-26 .. 11-15: 15 trading days, no holiday
T1, T2, T3, T4, T5, T6, T7 = pd.to_datetime(["2018-11-16", "2018-11-19", "2018-11-20", "2018-11-21", "2018-11-23",
                                             "2018-11-26", "2018-11-27"])

# ATR(14) of D-1 for each test day (Wilder: a' = a + (TR - a) / 14)
A1 = 2.0                      # after 15 quiet days
A2 = A1 + (5.5 - A1) / 14     # T1: H 102.5, L 97, prev close 100 -> TR 5.5
A3 = A2 + (5.25 - A2) / 14    # T2: H 103, L 97.75, prev close 98 -> TR 5.25
A4 = A3 + (3.0 - A3) / 14     # T3: H 102, L 99, prev close 101.5 -> TR 3
A5 = A4 + (20.0 - A4) / 14    # T4: H 110, L 90, prev close 101 -> TR 20


def _day(d, bars):
    """bars: (HH:MM local start, open, high, low, close) -> canonical rows."""
    rows = []
    for hm, o, h, lo, c in bars:
        ts = pd.Timestamp(f"{d:%Y-%m-%d} {hm}", tz="America/New_York").tz_convert("UTC")
        rows.append((ts, o, h, lo, c, 1.0))
    return rows


DAYS = {
    # up first: the 10:30 bar reaches 102.5 >= 100 + 2 (ends 16 minutes after the cutoff); down later
    T1: [("10:00", 100, 100.5, 99.5, 100), ("10:15", 100, 101, 99.5, 100.5), ("10:30", 100.5, 102.5, 100, 101),
         ("11:00", 101, 101, 97, 97.5), ("15:59", 97.5, 98, 97.5, 98)],
    # down first: the 10:15 bar's low 97.75 <= 100 - 2.25 (ends 1 minute after the cutoff); up later
    T2: [("10:00", 99, 100.5, 99, 100), ("10:15", 100, 100.5, 97.75, 98), ("10:30", 98, 103, 98, 102),
         ("15:59", 102, 102, 101, 101.5)],
    # neither: 99 .. 102 stays inside 100 -+ A3 (~2.46): censored at the 16:00 close, 345 minutes
    T3: [("10:00", 101.5, 101.5, 99.5, 100), ("10:15", 100, 101, 99, 100.5), ("11:00", 100.5, 102, 99, 101),
         ("15:59", 101, 101.5, 100.5, 101)],
    # one bar touches both barriers: ambiguous
    T4: [("10:00", 101, 101, 99.5, 100), ("10:15", 100, 110, 90, 100)],
    # half day (13:00 close): no touch before 13:00 -> censored at 165 minutes; the 13:30 bar (130 / 70)
    # comes after the early close, so it belongs to the next day's overnight and touches nothing
    T5: [("10:00", 100, 100.5, 99.5, 100), ("10:15", 100, 100.4, 99.6, 100.2), ("12:59", 100.2, 100.5, 100, 100.3),
         ("13:30", 100.3, 130, 70, 100)],
    # no bar after the cutoff: the path is unknown -> no label
    T6: [("09:30", 100.3, 100.5, 100, 100.2), ("10:00", 100.2, 100.4, 100, 100.1)],
    T7: [("10:00", 100, 100.5, 99.5, 100), ("10:15", 100, 100.5, 99.5, 100)],
}


def bars(days=DAYS) -> pd.DataFrame:
    rows = []
    for d in HISTORY:
        rows += _day(d, [("09:30", 100, 101, 99, 100), ("10:00", 100, 101, 99, 100)])
    for d, b in days.items():
        rows += _day(d, b)
    return pd.DataFrame(rows, columns=["timestamp", "open", "high", "low", "close", "volume"])


def labels(kind, b=None, cutoff=CUT, **params):
    b = bars() if b is None else b
    table = session_table(b, NY, cutoff).reset_index()
    return make_label_frame(kind, table, params, paths_from_bars(b, NY, cutoff))


def at(frame, *days):
    return frame.reindex(pd.DatetimeIndex(days)).iloc[:, 0].to_numpy()


TEST_DAYS = (T1, T2, T3, T4, T5, T6)


def test_atr_is_of_d_minus_1_and_missing_for_the_first_15_days():
    p = paths_from_bars(bars(), NY, CUT)
    atr = pd.Series(p.atr_prev, index=p.days)
    assert atr.iloc[:15].isna().all()
    np.testing.assert_allclose(atr.reindex([T1, T2, T3, T4, T5]).to_numpy(), [A1, A2, A3, A4, A5])
    for kind in LABELS:
        if LABELS[kind].path:
            assert labels(kind).iloc[:15, 0].isna().all(), kind


def test_tradeable():
    np.testing.assert_array_equal(at(labels("tradeable", k=1.0), *TEST_DAYS), [1, 1, 0, 1, 0, NAN])
    # k = 1.4: T1's up move 2.5 < 2.8 but its down move 3 >= 2.8; T2's moves 3 and 2.25 < 1.4 * 2.25 = 3.15
    np.testing.assert_array_equal(at(labels("tradeable", k=1.4), T1, T2), [1, 0])


def test_first_touch_multiclass_and_binary():
    multi = labels("first_touch", k=1.0, classes="multiclass")
    np.testing.assert_array_equal(at(multi, *TEST_DAYS), [1, 0, 2, NAN, 2, NAN])  # up, down, neither, ambiguous
    assert multi["ambiguous"].reindex([T1, T2, T3, T4, T5, T6]).tolist() == [False, False, False, True, False, False]
    binary = labels("first_touch", k=1.0, classes="binary")
    np.testing.assert_array_equal(at(binary, *TEST_DAYS), [1, 0, NAN, NAN, NAN, NAN])
    assert binary["neither"].reindex(list(TEST_DAYS)).tolist() == [False, False, True, False, True, False]
    assert label_spec("first_touch", {"classes": "binary"}).classes == ("down", "up")
    assert label_spec("first_touch", {"classes": "binary"}).task == "binary"
    assert label_spec("first_touch", {"k": 2.0}).task == "multiclass"


def test_time_to_touch_with_censoring():
    f = labels("time_to_touch", k=1.0)
    # T1: the 10:30 bar ends at 10:31 = 16 min; T2/T4: the 10:15 bar ends at 10:16 = 1 min;
    # T3: censored at 16:00 = 345 min; T5: censored at the 13:00 early close = 165 min
    np.testing.assert_array_equal(at(f, *TEST_DAYS), [16, 1, 345, 1, 165, NAN])
    assert f["censored"].reindex(list(TEST_DAYS)).tolist() == [False, False, True, False, True, False]
    assert not f["censored"].iloc[:15].any()  # unlabelled days are not censored days


def test_max_excursion_up_and_down():
    up = at(labels("max_excursion", side="up"), *TEST_DAYS)
    down = at(labels("max_excursion", side="down"), *TEST_DAYS)
    np.testing.assert_allclose(up, [2.5 / A1, 3 / A2, 2 / A3, 10 / A4, 0.5 / A5, NAN])
    np.testing.assert_allclose(down, [3 / A1, 2.25 / A2, 1 / A3, 10 / A4, 0.4 / A5, NAN])


def test_a_touch_exactly_at_the_barrier_counts_and_just_short_does_not():
    p = paths_from_bars(bars(), NY, CUT)
    i = list(p.days).index(T2)
    up, down = touch_minutes(p, 1.0)
    assert down[i] == 1  # low 97.75 == 100 - 2.25 exactly
    up, down = touch_minutes(p, 1.0 + 1e-9)
    assert down[i] == np.inf and up[i] == 16


def test_half_day_closed_before_the_cutoff_has_no_label():
    f = labels("time_to_touch", cutoff="13:30", k=1.0)
    assert np.isnan(at(f, T5)[0])  # closed at 13:00, before the 13:30 cutoff
    assert at(f, T3)[0] == 150  # an ordinary day: censored at 16:00, 150 minutes after 13:30


def _equal(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("kind,params", [("tradeable", {"k": 1.0}), ("first_touch", {"k": 1.0}),
                                         ("time_to_touch", {"k": 1.0}), ("max_excursion", {"side": "up"}),
                                         ("max_excursion", {"side": "down"})])
def test_leakage_a_days_label_ignores_its_other_bars_before_the_cutoff_and_all_after_its_close(kind, params):
    base = labels(kind, **params)
    d = dict(DAYS)
    # T1's 10:00 bar sets the cutoff price: any other bar before the cutoff of T1 is free to change
    d[T1] = [("09:30", 50, 150, 40, 60)] + DAYS[T1]
    changed = labels(kind, bars(d), **params)
    assert at(changed, T1)[0] == at(base, T1)[0] or np.isnan(at(base, T1)[0])
    # everything after T1's close (overnight, T2 and later) changed: T1's label does not move
    d = {T1: DAYS[T1], T2: [("08:00", 1, 500, 1, 2), ("10:00", 50, 60, 40, 55), ("10:15", 55, 90, 20, 30)],
         T3: [("10:00", 10, 11, 9, 10)]}
    b = bars(d)
    extra = pd.DataFrame({"timestamp": [pd.Timestamp("2018-11-16 17:00", tz="America/New_York").tz_convert("UTC")],
                          "open": [100.0], "high": [300.0], "low": [1.0], "close": [100.0], "volume": [1.0]})
    cut = labels(kind, pd.concat([b, extra], ignore_index=True), **params)
    _equal(cut.loc[:T1], base.loc[:T1])
    # and cutting the data after T1's close changes no label up to T1
    b_all = bars()
    keep = b_all["timestamp"] < pd.Timestamp("2018-11-16 16:00", tz="America/New_York")
    _equal(labels(kind, b_all[keep], **params).loc[:T1], base.loc[:T1])


def test_a_bar_after_the_cutoff_of_d_minus_1_moves_d_through_the_atr_only():
    # documented: D-1's whole session (its post-cutoff bars included) enters ATR(14 of D-1), nothing else of D-1
    d = dict(DAYS)
    d[T1] = DAYS[T1][:-1] + [("15:59", 97.5, 98, 96, 98)]  # T1's low 97 -> 96: TR 5.5 -> 6.5
    a2 = A1 + (6.5 - A1) / 14
    np.testing.assert_allclose(at(labels("max_excursion", bars(d), side="up"), T2), [3 / a2])


def test_spec_parameters_reach_the_labeler_and_are_refused_where_they_do_not_apply():
    from almanac.spec import LABEL_PARAMS, MAX_LABEL_K, spec_from_dict
    from ml.path_labels import MAX_K

    assert LABEL_PARAMS == {k: v.params for k, v in LABELS.items() if v.params}
    assert MAX_LABEL_K == MAX_K
    base = {"data": {"symbol": "ES"}}
    s = spec_from_dict({**base, "label": "first_touch"})
    assert (s.label.k, s.label.classes, s.task, s.name) == (1.0, "multiclass", "multiclass",
                                                            "es-first-touch-k1-multiclass-lightgbm")
    s = spec_from_dict({**base, "label": {"kind": "first_touch", "k": 0.5, "classes": "binary"}})
    assert s.task == "binary" and s.to_dict()["label"] == {"kind": "first_touch", "k": 0.5, "classes": "binary"}
    assert spec_from_dict({**base, "label": {"kind": "max_excursion", "side": "down"}}).name == \
        "es-max-excursion-down-lightgbm"
    assert spec_from_dict({**base, "label": "rest_of_day"}).to_dict()["label"] == {"kind": "rest_of_day"}
    bad = [({"kind": "tradeable", "k": 0}, "spec field label.k: 0 is not a barrier distance in ATR: use a number "
                                           "with 0 < k <= 10, e.g. k: 1.0"),
           ({"kind": "tradeable", "k": "big"}, "spec field label.k: 'big' is not a barrier distance"),
           ({"kind": "tradeable", "k": float("nan")}, "spec field label.k: nan is not a barrier distance"),
           ({"kind": "tradeable", "k": 11}, "spec field label.k: 11 is not a barrier distance"),
           ({"kind": "rest_of_day", "k": 1}, "spec field label.k: k applies to tradeable and first_touch and "
                                             "time_to_touch; rest_of_day takes no parameters: remove k"),
           ({"kind": "tradeable", "side": "up"}, "spec field label.side: side applies to max_excursion; tradeable "
                                                 "takes only k: remove side"),
           ({"kind": "max_excursion", "k": 1}, "spec field label.k: k applies to"),
           ({"kind": "first_touch", "classes": "three"}, "spec field label.classes: 'three' is not one of "
                                                         "multiclass, binary")]
    for label, msg in bad:
        with pytest.raises(SpecError) as e:
            spec_from_dict({**base, "label": label})
        assert str(e.value).startswith(msg) and "\n" not in str(e.value), (label, str(e.value))


def test_labeler_refuses_parameters_directly():
    with pytest.raises(SpecError, match="label direction takes no parameters: remove k"):
        label_spec("direction", {"k": 1})
    with pytest.raises(SpecError, match="k=-1"):
        labels("tradeable", k=-1)
    t = session_table(bars(), NY, CUT).reset_index()
    assert make_label("direction", t).notna().all()  # the bar labels are unchanged


# ---------------------------------------------------------------- runs and the command line

RUN_SPEC = {"data": {"symbol": "ES"}, "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
            "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
            "validation": {"n_splits": 3, "gap": 1, "min_train": 150}, "backtest": {"threshold": 0.52}}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from almanac.store import Store
    from bench.synthetic import futures_minutes

    store = Store(tmp_path_factory.mktemp("home"))
    store.write("ES", "1min", futures_minutes("2018-07-02", days=330, seed=3, step=5, overnight=False), source="test")
    store.write("NQ", "1d", pd.DataFrame({"date": pd.bdate_range("2018-01-02", periods=400), "open": 100.0,
                                          "high": 101.0, "low": 99.0, "close": 100.0}), source="test")
    return store


def _independent_labels(store, kind, params):
    """The label from the stored bars through paths_from_bars (not the runner's batched reader)."""
    from almanac.sessions import symbol_session

    b = store.read_bars("ES", "1min")
    s = symbol_session(store, "ES")
    return make_label_frame(kind, session_table(b, s, "10:15").reset_index(), params, paths_from_bars(b, s, "10:15"))


@pytest.fixture(scope="module")
def runs(market):
    """Three runs on the market: time_to_touch, first_touch (binary) and tradeable, k = 0.5."""
    from ml.runner import run_experiment

    from ml import baselines

    labels_ = {"ttt": {"kind": "time_to_touch", "k": 0.5},
               "first": {"kind": "first_touch", "k": 0.5, "classes": "binary"},
               "tradeable": {"kind": "tradeable", "k": 0.5}}
    out, drawn, current = {}, [], [None]
    draw = baselines.bootstrap_days

    def spy(*args, **kwargs):
        drawn.append(current[0])
        return draw(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:  # which runs draw the lift's bootstrap days
        mp.setattr(baselines, "bootstrap_days", spy)
        for name, lab in labels_.items():
            current[0] = name
            out[name] = run_experiment({**RUN_SPEC, "label": lab}, store=market)
    out["_drawn"] = drawn
    return out


def test_time_to_touch_run_records_params_and_censoring_and_is_not_backtested(market, runs):
    run = runs["ttt"]
    expect = _independent_labels(market, "time_to_touch", {"k": 0.5}).dropna(subset=["time_to_touch"])
    ds = pd.read_parquet(f"{run['path']}/dataset.parquet")
    oof = pd.read_parquet(f"{run['path']}/oof.parquet")
    pd.testing.assert_series_equal(ds["y"], expect["time_to_touch"].reindex(ds.index), check_names=False)
    assert run["task"] == "regression" and run["spec"]["label"] == {"kind": "time_to_touch", "k": 0.5}
    assert run["name"] == "es-time-to-touch-k0.5-lightgbm"
    assert run["label"]["params"] == {"k": 0.5}
    censored = run["label"]["flags"]["censored"]
    assert censored["days"] == int(expect["censored"].sum()) > 0
    assert censored["oof_days"] == int(oof["censored"].sum()) == int(expect["censored"].reindex(oof["date"]).sum())
    assert (oof.loc[oof["censored"], "y"] == 390 - 45).all()  # censored at the 16:00 close, 345 min after 10:15
    assert run["backtest"] is None and "time_to_touch is a number of minutes" in run["backtest_note"]
    # no backtest and no AUC: the lift has nothing to resample, so no bootstrap days are drawn
    assert run["baselines"]["lift"] == {"bootstrap": {"method": "stationary", "block_days": 20, "resamples": 1000,
                                                      "seed": 0}}
    assert runs["_drawn"] == ["first", "tradeable"]  # the classifiers' AUC lift
    assert run["label"]["unit"] == "minutes"
    # the training-mean baseline: each out-of-fold day predicted by its fold's training mean, by hand
    folds = pd.read_parquet(f"{run['path']}/folds.parquet")
    pred = np.concatenate([np.full(int(f.n_test), ds["y"][(ds.index >= f.train_start) & (ds.index <= f.train_end)]
                                   .mean()) for f in folds.itertuples()])
    mean = run["baselines"]["train_mean"]["metrics"]
    assert mean["mae"] == pytest.approx(np.abs(pred - oof["y"].to_numpy()).mean(), rel=1e-12)
    y = oof["y"].to_numpy()
    assert mean["r2"] == pytest.approx(1 - ((y - pred) ** 2).sum() / ((y - y.mean()) ** 2).sum(), rel=1e-9)


def test_first_touch_binary_run_is_backtested_on_p_up_first_and_tradeable_is_not(market, runs):
    run = runs["first"]
    expect = _independent_labels(market, "first_touch", {"k": 0.5, "classes": "binary"})["first_touch"].dropna()
    ds = pd.read_parquet(f"{run['path']}/dataset.parquet")
    assert list(ds.index) == list(expect.index.intersection(ds.index)) and len(ds) == len(expect)
    np.testing.assert_array_equal(ds["y"].to_numpy(), expect.to_numpy())
    assert run["task"] == "binary" and run["classes"] == ["down", "up"]
    assert run["backtest"] is not None and "majority" in run["baselines"]
    neither = int(_independent_labels(market, "first_touch", {"k": 0.5, "classes": "binary"})["neither"].sum())
    assert f"first_touch: {neither} day(s) touched neither barrier by the close: dropped (classes: binary)" \
        in run["notes"] and neither > 0 and "flags" not in run["label"]

    run = runs["tradeable"]
    expect = _independent_labels(market, "tradeable", {"k": 0.5})["tradeable"].dropna()
    ds = pd.read_parquet(f"{run['path']}/dataset.parquet")
    np.testing.assert_array_equal(ds["y"].to_numpy(), expect.reindex(ds.index).to_numpy())
    assert run["classes"] == ["quiet", "tradeable"] and run["backtest"] is None
    assert "not which way" in run["backtest_note"] and run["metrics"]["roc_auc"] == run["metrics"]["roc_auc"]


def test_untraded_runs_show_no_backtest_and_their_bundles_no_signal(market, runs, page_module, monkeypatch,
                                                                    tmp_path):
    from ml.export import export_run, load_bundle, predictions
    from ml.runinfo import untraded

    monkeypatch.setenv("ALMANAC_HOME", str(market.home))
    bt = page_module("backtest")
    for name in ("tradeable", "ttt"):
        rid = runs[name]["run_id"]
        assert untraded(runs[name]) == runs[name]["backtest_note"]
        setup = bt.setup_run(rid)
        assert setup[7] == {"display": "none"} and setup[8] == {"display": "none"} and setup[10:] == (True,) * 3
        out = bt.render_backtest(rid, 0.55, False, 1.0)
        assert out[:7] == (None, None, *bt.BLANKS, []) and "No backtest for this label" in str(out[7])
        assert bt.render_grid(rid, False) is None
    assert untraded(runs["first"]) is None and bt.render_grid(runs["first"]["run_id"], False) is not None
    rows = pd.read_parquet(f"{runs['tradeable']['path']}/dataset.parquet").reset_index().head(3)
    for name, has_signal in (("tradeable", False), ("first", True)):
        bundle = load_bundle(export_run(runs[name]["run_id"], tmp_path / f"{name}.zip"))
        assert ("signal" in predictions(bundle, rows).columns) is has_signal
    assert load_bundle(tmp_path / "tradeable.zip").metadata["label"]["params"] == {"k": 0.5}


def test_evaluate_shows_minutes_as_minutes_and_says_why_there_is_no_rolling_auc(market, runs, page_module,
                                                                                 monkeypatch):
    from viz import evaluation as ve

    monkeypatch.setenv("ALMANAC_HOME", str(market.home))
    ev = page_module("evaluate")
    rid = runs["ttt"]["run_id"]
    assert "this run predicts minutes" in ev.not_applicable(runs["ttt"])[0]
    scatter = ev.render_curves(rid, "all")[0].figure
    assert scatter["layout"]["xaxis"]["title"]["text"] == "Out-of-fold prediction (minutes)"
    assert scatter["layout"]["xaxis"]["tickformat"] is None and max(scatter["data"][2]["y"]) == 345
    oof = pd.read_parquet(f"{runs['ttt']['path']}/oof.parquet")
    assert [(t["name"], len(t["y"])) for t in scatter["data"][1:]] == [
        ("touched", int((~oof["censored"]).sum())), ("censored at the close", int(oof["censored"].sum()))]
    assert set(scatter["data"][2]["y"]) == {345.0} and max(scatter["data"][1]["y"]) < 345
    drift = ev.render_drift(rid, "all")[0]
    assert "predicts minutes, not a direction" in str(drift)
    fig = ve.prediction_scatter_figure([10.0, 20.0], [30.0, 345.0], unit="minutes")
    assert list(fig.data[0].x) == [10.0, 345.0] and fig.layout.yaxis.tickformat is None
    assert ve.prediction_scatter_figure([0.01], [-0.02]).layout.xaxis.tickformat == ".1%"  # returns as before
    t = ve.baseline_table({"mae": 80.0, "rmse": 99.5, "r2": 0.2318, "ic": 0.47},
                          {"train_mean": {"metrics": {"n": 9, "mae": 100.0, "rmse": 113.6, "r2": -0.0012}}})
    assert t.to_dict("records") == [{"Score": "MAE", "Model": "80.000", "Training mean": "100.000"},
                                    {"Score": "RMSE", "Model": "99.500", "Training mean": "113.600"},
                                    {"Score": "R²", "Model": "0.232", "Training mean": "-0.001"}]


def _home_state(home) -> dict:
    import hashlib
    from pathlib import Path

    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(home).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("label,message", [
    ("{kind: tradeable, k: -1}", "error: spec field label.k: -1 is not a barrier distance in ATR: use a number "
                                 "with 0 < k <= 10, e.g. k: 1.0\n"),
    ("{kind: direction, k: 1}", "error: spec field label.k: k applies to tradeable and first_touch and "
                                "time_to_touch; direction takes no parameters: remove k\n"),
    ("{kind: first_touch, k: 3, classes: binary}\nvalidation: {n_splits: 3, min_train: 150}",
     "error: spec field label.kind: first-touch-k3-binary labels 0 of ES's 330 trading days, fewer than the 211 the "
     "splits need: lower k, use classes: multiclass (binary drops the days that touch neither barrier), widen the "
     "date range or lower min_train or n_splits\n"),
])
def test_cli_refuses_bad_label_parameters_with_one_line(market, tmp_path, label, message):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import time as clock

    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"data: {{symbol: ES}}\nlabel: {label}\n")
    before = _home_state(market.home)
    rss = tmp_path / "rss"  # the child's own peak: RUSAGE_CHILDREN is the largest of every child so far
    t = clock.perf_counter()
    out = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(rss), sys.executable, "-m", "almanac", "train",
                          "--config", str(cfg)],
                         cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ALMANAC_HOME": str(market.home)})
    spent, peak_mb = clock.perf_counter() - t, int(rss.read_text().split()[-1]) / 1024
    assert (out.returncode, out.stderr, out.stdout) == (2, message, "")
    assert _home_state(market.home) == before  # no feature cache, no run folder
    assert spent < 30 and peak_mb < 600  # generous sanity bounds (measured: about 3 s and 250 MB)


def test_a_path_label_on_a_daily_only_symbol_is_refused_before_any_work(market):
    from almanac.spec import spec_from_dict, validate_against_store

    before = _home_state(market.home)
    with pytest.raises(SpecError) as e:
        validate_against_store(spec_from_dict({"data": {"symbol": "NQ"}, "features": {"sets": ["regime"]},
                                               "label": "first_touch"}), market)
    assert str(e.value) == ("spec field label.kind: first_touch follows the minute bars after the cutoff 10:15, "
                            "which needs 1-minute bars; NQ has only 1d bars: import NQ 1-minute bars or use label "
                            "direction or archetype")
    assert _home_state(market.home) == before


# ---------------------------------------------------------------- the /train form and the /backtest page


def test_train_form_offers_the_path_labels_with_their_parameters(page_module):
    train = page_module("train")
    fields = {**train.DEFAULTS, "label": "first_touch", "label_k": 0.5, "label_classes": "binary"}
    d = train.form_to_dict(fields, {})
    assert d["label"] == {"kind": "first_touch", "k": 0.5, "classes": "binary"}
    assert train.build_spec(fields, {}).task == "binary"
    assert train.form_to_dict({**fields, "label": "rest_of_day"}, {})["label"] == {"kind": "rest_of_day"}
    assert train.form_to_dict({**fields, "label": "max_excursion"}, {})["label"] == {"kind": "max_excursion",
                                                                                     "side": "up"}
    assert train.form_to_dict({**fields, "label": "tradeable", "label_k": ""}, {})["label"] == {"kind": "tradeable"}
    ids = [{"type": "train-label-param", "name": n} for n in ("k", "classes", "side")]
    shown = lambda label: [s["display"] for s in train.show_params("lightgbm", "expanding", label, [], ids)[3]]  # noqa
    assert shown("first_touch") == ["block", "block", "none"]
    assert shown("max_excursion") == ["none", "none", "block"]
    assert shown("rest_of_day") == ["none", "none", "none"]
    assert train.show_params("lightgbm", "expanding", "tradeable", [], ids)[2].startswith("1 if the price moves at "
                                                                                         "least k x ATR")
    text, problem = train.check_form({**fields, "label_k": -1}, {})
    assert text is None and problem == ("spec field label.k: -1.0 is not a barrier distance in ATR: use a number "
                                        "with 0 < k <= 10, e.g. k: 1.0")



def test_a_run_notes_the_ambiguous_days_it_could_not_label():
    from ml.path_labels import drop_notes

    f = labels("first_touch", k=1.0)
    assert drop_notes("first_touch", {"ambiguous": f["ambiguous"].to_numpy()}) == [
        "first_touch: 1 day(s) touched both barriers within one bar (which came first is unknown): not labelled"]
    assert drop_notes("first_touch", {"ambiguous": np.zeros(3, bool)}) == []
