"""ml.regimes: the HMM regimes' forward filter, their leakage rules, per-regime scores, and
the hmm_regime feature set through the runner and the command line.

The market: regular-session 5-minute bars whose volatility switches between calm and wild
blocks of days, so a 2-state HMM has regimes to find."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from almanac.sessions import Session
from almanac.store import Store
from features import build_features
from ml import regimes
from ml.runner import run_experiment

ROOT = Path(__file__).resolve().parent.parent
BLOCKS = [(60, 0.00012), (40, 0.0006), (70, 0.00012), (50, 0.0006), (80, 0.00015), (60, 0.0005)]  # (days, sigma)
SPEC = {"name": "hmm-tiny", "data": {"symbol": "ES"},
        "features": {"sets": ["early_session", "regime", "hmm_regime"], "cutoff": "10:15", "hmm_states": 2},
        "label": {"kind": "rest_of_day"}, "model": {"kind": "lightgbm", "params": {"n_estimators": 20}},
        "validation": {"n_splits": 3, "gap": 1, "min_train": 150},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0}}


def switching_minutes() -> pd.DataFrame:
    from bench.synthetic import futures_minutes

    parts, start, price = [], pd.Timestamp("2018-07-02"), 2500.0
    for i, (days, sigma) in enumerate(BLOCKS):
        bars = futures_minutes(f"{start:%Y-%m-%d}", days=days, seed=10 + i, step=5, overnight=False,
                               price=price, sigma=sigma)
        parts.append(bars)
        price = float(bars["close"].iloc[-1])
        start = pd.bdate_range(start, periods=days + 1)[-1]
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def bars():
    return switching_minutes()


@pytest.fixture(scope="module")
def market(tmp_path_factory, bars):
    home = tmp_path_factory.mktemp("hmm") / "home"
    Store(home).write("ES", "1min", bars, source="test")
    return home


@pytest.fixture(scope="module")
def sessions(market):
    return build_features("ES", sets=["regime"], store=Store(market), use_cache=False).sessions


# ----------------------------------------------------------------------------- the filter
PI = np.array([0.5, 0.5])
A = np.array([[0.9, 0.1], [0.2, 0.8]])
B = np.array([[0.8, 0.2], [0.6, 0.3], [0.1, 0.7]])  # p(o_t | state), three observations


def test_forward_filter_equals_the_hand_computed_two_state_filter():
    # a_1 ∝ pi * B_1 = (0.4, 0.1) -> (0.8, 0.2)
    # prediction (0.8*0.9 + 0.2*0.2, 0.8*0.1 + 0.2*0.8) = (0.76, 0.24); a_2 ∝ (0.456, 0.072)
    # a_2 = (0.456/0.528, 0.072/0.528); prediction (a_2 @ A); a_3 ∝ prediction * B_3
    a1 = [0.8, 0.2]
    p2 = [0.76, 0.24]
    a2 = [0.456 / 0.528, 0.072 / 0.528]
    p3 = [a2[0] * 0.9 + a2[1] * 0.2, a2[0] * 0.1 + a2[1] * 0.8]
    w3 = [p3[0] * 0.1, p3[1] * 0.7]
    a3 = [w3[0] / sum(w3), w3[1] / sum(w3)]
    p4 = [a3[0] * 0.9 + a3[1] * 0.2, a3[0] * 0.1 + a3[1] * 0.8]
    np.testing.assert_allclose(regimes.forward_filter(PI, A, np.log(B)), [a1, a2, a3], rtol=1e-12)
    # the state of day t from the days before it: row 0 = startprob, row t = a_(t-1) @ A
    np.testing.assert_allclose(regimes.predicted_probs(PI, A, np.log(B)), [[0.5, 0.5], p2, p3], rtol=1e-12)
    np.testing.assert_allclose(a3, [0.370293, 0.629707], atol=1e-6)
    # a day without an observation only predicts, and a missing last day changes nothing before it
    gap = np.log(B).copy()
    gap[1] = np.nan
    f = regimes.forward_filter(PI, A, gap)
    np.testing.assert_allclose(f[1], p2, rtol=1e-12)
    np.testing.assert_allclose(regimes.predicted_probs(PI, A, np.log(B[:2]))[1], p2, rtol=1e-12)
    assert p4  # (the prediction past the last observation is a_3 @ A, not needed as a row)


def test_filter_agrees_with_hmmlearn_forward_pass_and_differs_from_its_smoothed_predict_proba():
    from hmmlearn import _hmmc
    from hmmlearn.hmm import GaussianHMM
    from scipy.special import logsumexp

    m = GaussianHMM(n_components=2, covariance_type="diag", init_params="", params="")
    m.startprob_, m.transmat_ = PI, A
    m.means_, m.covars_ = np.array([[0.0], [0.0]]), np.array([[0.25], [4.0]])
    x = np.array([[0.1], [-0.3], [3.5], [0.2]])  # a calm day, a calm day, a wild day, a calm day
    L = m._compute_log_likelihood(x)
    ours = regimes.forward_filter(PI, A, L)
    _, fwd = _hmmc.forward_log(PI, A, L)
    np.testing.assert_allclose(ours, np.exp(fwd - logsumexp(fwd, axis=1, keepdims=True)), rtol=1e-10)
    smoothed = m.predict_proba(x)
    np.testing.assert_allclose(ours[-1], smoothed[-1], rtol=1e-10)  # at the last day both know the same
    assert abs(ours[1, 1] - smoothed[1, 1]) > 0.05  # day 2: the smoother already saw day 3's wild move


# ----------------------------------------------------------------------------- leakage
def cut_at(bars: pd.DataFrame, day: pd.Timestamp, cutoff: str = "10:15") -> pd.DataFrame:
    t = Session().at([day], cutoff)[0]
    return bars[bars["timestamp"] < t].reset_index(drop=True)


def test_cutting_the_data_at_a_days_cutoff_leaves_its_regime_unchanged(tmp_path, bars, sessions):
    days = sessions.index
    for d in (days[230], days[290], days[-1]):
        cut_home = tmp_path / f"cut-{d:%Y%m%d}"
        Store(cut_home).write("ES", "1min", cut_at(bars, d), source="test")
        cut = build_features("ES", sets=["regime"], store=Store(cut_home), use_cache=False).sessions
        assert cut.index[-1] == d and cut.loc[d, "close"] != sessions.loc[d, "close"]  # D's close is gone
        obs_full, obs_cut = regimes.observations(sessions), regimes.observations(cut)
        for k in (2, 3):
            _, full = regimes.regime_probs(obs_full, days[0], days[200], k, seed=0)
            _, short = regimes.regime_probs(obs_cut, days[0], days[200], k, seed=0)
            np.testing.assert_array_equal(short.loc[d].to_numpy(), full.loc[d].to_numpy())
        # what smoothing or the filtered posterior of D itself would give does depend on D's bars
        hmm, _ = regimes.regime_probs(obs_full, days[0], days[200], 2, seed=0)
        post_full = regimes.forward_filter(hmm.startprob, hmm.transmat, hmm.loglik(obs_full.loc[:d]))[-1]
        post_cut = regimes.forward_filter(hmm.startprob, hmm.transmat, hmm.loglik(obs_cut))[-1]
        assert not np.array_equal(post_full, post_cut)
        assert not np.allclose(hmm.loglik(obs_full.loc[[d]]), hmm.loglik(obs_cut.loc[[d]]))


def test_a_folds_hmm_is_fitted_on_its_training_days_only(sessions):
    days = sessions.index
    tr, te = np.arange(0, 150), np.arange(151, 220)

    def fold(sess):
        data = pd.DataFrame(index=days)
        reg = regimes.RunRegimes(2, 0, sess, data)
        X = data[reg.feature_names]
        X_tr, X_te = reg.fold(tr, te, X.iloc[tr], X.iloc[te])
        return reg, X_tr, X_te

    reg, X_tr, X_te = fold(sessions)
    wild = sessions.copy()
    wild.iloc[150:, wild.columns.get_indexer(["close", "high"])] *= 1.07  # the gap day and the test window
    wild.iloc[150:, wild.columns.get_indexer(["low"])] *= 0.9
    reg2, X_tr2, X_te2 = fold(wild)
    assert reg2.folds == reg.folds  # the same fitted parameters
    pd.testing.assert_frame_equal(X_tr2, X_tr)  # and the same training features
    # o_0 .. o_148 (the days before training days 1 .. 149); day 0, the data's first, has no previous close
    assert reg.folds[0]["n_obs"] == 148 and reg.folds[0]["obs_end"] == f"{days[148]:%Y-%m-%d}"
    # a training day's bar changes the fit
    tweak = sessions.copy()
    tweak.iloc[100, tweak.columns.get_indexer(["high"])] *= 1.05
    assert fold(tweak)[0].folds != reg.folds
    # states are ordered by mean range: calm first
    assert reg.folds[0]["mean_range"][0] < reg.folds[0]["mean_range"][1]


def test_the_regimes_follow_the_volatility_blocks(sessions):
    days = sessions.index
    hmm, probs = regimes.regime_probs(regimes.observations(sessions), days[0], days[-1], 2, seed=0)
    state = regimes.most_likely(probs.to_numpy())
    # the middle of each block (10 days in) is in the block's regime: calm blocks 0, wild blocks 1
    edges = np.cumsum([0] + [d for d, _ in BLOCKS])
    for (a, b), (_, sigma) in zip(zip(edges[:-1], edges[1:]), BLOCKS):
        share = (state[a + 10:b] == (1 if sigma > 0.0003 else 0)).mean()
        assert share > 0.8, (a, b, share)


# ----------------------------------------------------------------------------- slices
def test_regime_scores_equal_scikit_learn_on_each_subset():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, n), 0.01, 0.99)
    reg = rng.choice([-1, 0, 1, 2], size=n, p=[0.05, 0.5, 0.3, 0.15])
    t = regimes.regime_scores("binary", y, p, reg, ["calm", "normal", "volatile"])
    assert t["regime"].tolist() == ["calm", "normal", "volatile", "none"]
    for row in t.to_dict("records"):
        m = reg == row["state"]
        assert row["n"] == int(m.sum())
        assert row["roc_auc"] == pytest.approx(roc_auc_score(y[m], p[m]), abs=1e-12)
        assert row["accuracy"] == pytest.approx(accuracy_score(y[m], p[m] >= 0.5), abs=1e-12)
        assert row["brier"] == pytest.approx(brier_score_loss(y[m], p[m]), abs=1e-12)
        assert row["log_loss"] == pytest.approx(log_loss(y[m], p[m], labels=[0, 1]), abs=1e-12)
    assert t["n"].sum() == n


# ----------------------------------------------------------------------------- the runner
@pytest.fixture(scope="module")
def runs(market):
    store = Store(market)
    with_set = run_experiment(SPEC, store=store)
    plain = run_experiment({**SPEC, "name": "plain", "features": {**SPEC["features"],
                                                                   "sets": ["early_session", "regime"]}}, store=store)
    return with_set, plain


def test_a_run_with_hmm_regime_uses_each_folds_hmm(runs, sessions, market):
    run, plain = runs
    path = Path(run["path"])
    names = ["hmm_p_calm", "hmm_p_volatile", "hmm_state"]
    assert run["feature_names"][-3:] == names and not set(names) & set(plain["feature_names"])
    g = run["regimes"]
    assert (g["n_states"], g["names"], g["features"]) == (2, ["calm", "volatile"], True)
    assert g["final"] is not None and plain["regimes"] is None  # no HMM fitted while it trained
    oof = pd.read_parquet(path / "oof.parquet")
    ds = pd.read_parquet(path / "dataset.parquet")
    obs = regimes.observations(sessions)
    for f, rec in zip(run["folds"], g["folds"], strict=True):
        assert rec["obs_end"] < f["train_end"] < f["test_start"]  # the HMM saw training days only
        _, probs = regimes.regime_probs(obs, f["train_start"], f["train_end"], 2, seed=0)
        rows = oof[oof["fold"] == f["fold"]]
        want = probs.loc[pd.DatetimeIndex(rows["date"])]
        np.testing.assert_allclose(ds.loc[rows["date"], names[:2]].to_numpy(), want.to_numpy(), rtol=1e-12)
        np.testing.assert_array_equal(rows["regime"].to_numpy(), regimes.most_likely(want.to_numpy()))
        # the recorded parameters rebuild the fold's HMM
        again = regimes.from_record(rec).probs(obs.loc[:f["test_end"]])
        np.testing.assert_allclose(again[obs.index.get_indexer(rows["date"])], want.to_numpy(), rtol=1e-9)
    # a run without the set gets the same regimes (same HMMs) on first view, kept with the run
    from ml import run_regimes

    assert "regime" not in pd.read_parquet(Path(plain["path"]) / "oof.parquet").columns
    before = set(os.listdir(plain["path"]))
    plain_run, plain_oof = run_regimes.ensure(plain["run_id"], market)
    assert set(os.listdir(plain["path"])) - before == {run_regimes.STATES_FILE, run_regimes.RECORD_FILE}
    np.testing.assert_array_equal(plain_oof["regime"].to_numpy(), oof["regime"].to_numpy())
    again_run, again_oof = run_regimes.ensure(plain["run_id"], market)  # read back, not refitted
    assert again_run["regimes"] == plain_run["regimes"] and again_oof.equals(plain_oof)
    assert plain_run["regimes"]["features"] is False and plain_run["regimes"]["final"] is None
    for a, b in zip(plain_run["regimes"]["folds"], g["folds"], strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], (list, float)):
                np.testing.assert_allclose(np.asarray(a[key], dtype="float64"), np.asarray(b[key], dtype="float64"),
                                           rtol=1e-9, atol=1e-12)
            else:
                assert a[key] == b[key], key
    assert set(oof["regime"].unique()) <= {-1, 0, 1} and (oof["regime"] >= 0).mean() > 0.95
    # run.json (and train --json) carries the scores and backtest of each regime, with counts
    assert sum(r["n"] for r in g["scores"]) == run["n_oof"] == len(oof)
    for r in g["scores"]:
        m = oof["regime"] == r["state"]
        assert r["roc_auc"] == pytest.approx(roc_auc_score(oof["y"][m], oof["prob"][m]), abs=1e-12)
    assert sum(r["trades"] for r in g["backtest"]) == run["backtest"]["trades"]
    assert [r["regime"] for r in g["backtest"]] == [r["regime"] for r in g["scores"]]


def test_hmm_runs_are_reproducible(runs, market):
    again = run_experiment(SPEC, store=Store(market))
    a = pd.read_parquet(Path(runs[0]["path"]) / "oof.parquet")
    b = pd.read_parquet(Path(again["path"]) / "oof.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert again["regimes"] == runs[0]["regimes"]


def tree(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("features, message", [
    ({"sets": ["hmm_regime"]}, "error: spec field features.sets: hmm_regime adds to the other sets: choose at least "
                               "one of early_session, cross_asset, regime, tables, plugins with it, e.g. "
                               "[regime, hmm_regime]"),
    ({"sets": ["regime", "hmm_regime"], "hmm_states": 6}, "error: spec field features.hmm_states:"),
])
def test_bad_hmm_specs_exit_2_one_line_home_unchanged(market, tmp_path, features, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump({**SPEC, "features": features}))
    before = tree(market)
    out = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(cfg)], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "ALMANAC_HOME": str(market)})
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith(message), out.stderr
    assert tree(market) == before


def test_train_json_reports_the_regimes(market, tmp_path):
    cfg = tmp_path / "ok.yaml"
    cfg.write_text(yaml.safe_dump(SPEC))
    out = subprocess.run([sys.executable, "-m", "almanac", "train", "--config", str(cfg), "--json"], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "ALMANAC_HOME": str(market)})
    assert out.returncode == 0, out.stderr
    rec = json.loads(out.stdout)
    assert rec["regimes"]["names"] == ["calm", "volatile"] and len(rec["regimes"]["folds"]) == 3


# ----------------------------------------------------------------------------- slices of a run
def test_backtest_by_regime_splits_the_days_and_trades_of_the_backtest(runs):
    from ml import replay, stats

    run = runs[0]
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    result = replay.replay(run)
    table, curves = regimes.backtest_by_regime(result.daily, regimes.oof_regime_series(oof), ["calm", "volatile"])
    assert table["days"].sum() == len(result.daily) and table["trades"].sum() == result.stats["trades"]
    d = result.daily.assign(state=oof.set_index("date")["regime"].reindex(pd.to_datetime(result.daily["date"]))
                            .to_numpy())
    for row in table.to_dict("records"):
        part = d[d["state"] == ["calm", "volatile"].index(row["regime"])]
        r = part["strategy_return"].reset_index(drop=True)
        assert row["days"] == len(part) and row["trades"] == int((part["position"] != 0).sum())
        assert row["total_return"] == pytest.approx(float(np.prod(1 + r) - 1), abs=1e-12)
        assert row["sharpe"] == pytest.approx(stats.sharpe(r), abs=1e-12)
        eq = curves[curves["regime"] == row["regime"]]["equity"].to_numpy()
        assert len(eq) == len(part) and eq[-1] == pytest.approx(1 + row["total_return"], abs=1e-12)


def test_evaluate_and_backtest_regime_cards(runs, market, page_module, monkeypatch):
    from pages._components import regimes as cards
    from sklearn.metrics import roc_auc_score as auc
    from viz.regimes import regime_scores_figure

    monkeypatch.setenv("ALMANAC_HOME", str(market))
    page_module("evaluate")
    run = runs[0]
    chart, table, note = cards.render_evaluate_regimes(run["run_id"], "all")
    bars = chart.figure["data"][0]
    oof = pd.read_parquet(Path(run["path"]) / "oof.parquet")
    names = [n for s, n in enumerate(["calm", "volatile"]) if (oof["regime"] == s).any()]
    assert list(bars["x"]) == names + (["none"] if (oof["regime"] < 0).any() else [])
    for name, value, text in zip(bars["x"], bars["y"], bars["text"]):
        m = oof["regime"] == (names.index(name) if name in names else -1)
        assert value == pytest.approx(auc(oof["y"][m], oof["prob"][m]), abs=1e-12)
        assert text.endswith(f"n={int(m.sum()):,}")
    assert "2 states (calm, volatile)" in note and "hmm_regime" in note
    chart, table, note = cards.render_backtest_regimes(run["run_id"], 0.52, False, 1.0)
    assert len(chart.figure["data"]) == len(bars["x"])
    # its switch off (the page's default): a hint, nothing computed (no HMM fitted for a plain run)
    with monkeypatch.context() as m:
        m.setattr(cards.run_regimes, "ensure", lambda *a, **k: pytest.fail("computed while switched off"))
        off = cards.render_backtest_regimes(runs[1]["run_id"], 0.52, False, 1.0, False)
    assert off[1:] == (None, None) and "turn the switch on" in off[0].children
    # a run without hmm_regime: the card fits its folds' HMMs on first view, the same bars
    plain = runs[1]
    chart2, _, note2 = cards.render_evaluate_regimes(plain["run_id"], "all")
    assert list(chart2.figure["data"][0]["x"]) == list(bars["x"]) and "no hmm_regime" in note2
    assert [n.split("=")[-1] for n in chart2.figure["data"][0]["text"]] == [n.split("=")[-1] for n in bars["text"]]
    # a run without regimes (trained before they were recorded) says so
    rec = json.loads((Path(run["path"]) / "run.json").read_text())
    empty = regime_scores_figure(None, "roc_auc", "ROC AUC")
    assert empty.layout.annotations[0].text == "No regimes recorded for this run"
    assert regimes.oof_scores({**rec, "regimes": None}, oof) is None
    assert regimes.oof_scores(rec, oof.drop(columns="regime")) is None
    # an undefined score (one class on those days) shows as a dash
    one = pd.DataFrame({"regime": ["calm"], "n": [3], "base_rate": [1.0], "roc_auc": [float("nan")]})
    assert cards.view(one, cards.SCORE_COLUMNS["binary"]).iloc[0].tolist()[:4] == ["calm", "3", "100.0%", "—"]


def test_the_live_signal_of_an_hmm_run_uses_its_final_hmm_up_to_the_day_before(runs, market, sessions):
    from almanac import registry
    from ml.day_signal import day_signal
    from ml.serving import ModelCache

    run = runs[0]
    registry.set_active(run["run_id"], market)
    ds = pd.read_parquet(Path(run["path"]) / "dataset.parquet")
    day = ds.index[-3]
    sig = day_signal(ModelCache(home=market), "ES", "rest_of_day", f"{day:%Y-%m-%d}")
    assert list(sig["features"]) == run["feature_names"]
    for c in run["feature_names"][:-3]:  # the bar features: as at training
        assert sig["features"][c] == pytest.approx(ds.loc[day, c], abs=1e-12, nan_ok=True) or \
            (sig["features"][c] is None and pd.isna(ds.loc[day, c])), c
    final = regimes.from_record(run["regimes"]["final"])
    want = final.probs(regimes.observations(sessions))[sessions.index.get_loc(day)]  # the full data, cut later
    got = [sig["features"]["hmm_p_calm"], sig["features"]["hmm_p_volatile"]]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert sig["features"]["hmm_state"] == float(np.argmax(want))
    with pytest.raises(Exception) as no_memo:  # the web service builds it off the event loop
        day_signal(ModelCache(home=market), "ES", "rest_of_day", f"{ds.index[-4]:%Y-%m-%d}", build=False)
    assert type(no_memo.value).__name__ == "NotBuilt"


def test_a_holdout_fits_the_hmm_on_the_days_before_it(market, sessions):
    from ml.runner import holdout_predictions

    start = sessions.index[300]
    out = holdout_predictions(SPEC, start, store=Store(market))
    assert out["train_end"] < f"{start:%Y-%m-%d}" and len(out["pred"]) == len(out["rows"])
    _, probs = regimes.regime_probs(regimes.observations(sessions), out["train_start"], out["train_end"], 2, seed=0)
    # the same model refitted by hand on the bar features + the HMM fitted on the training days
    from ml.labelers import make_label
    from ml.models import make_model
    from ml.runner import _drop_empty

    ft = build_features("ES", sets=["early_session", "regime"], store=Store(market))
    data = ft.frame.join(make_label("rest_of_day", ft.sessions.reset_index()).rename("y"))
    data = data[data["y"].notna()]
    names, _ = _drop_empty(data, list(ft.frame.columns))
    hmm_cols = pd.DataFrame({"hmm_p_calm": probs["calm"], "hmm_p_volatile": probs["volatile"],
                             "hmm_state": regimes.most_likely(probs.to_numpy()).astype("float64")})
    X = data[names].join(hmm_cols)
    train = X.loc[out["train_start"]:out["train_end"]]
    model = make_model("lightgbm", "binary", SPEC["model"]["params"], seed=0)
    model.fit(train, data.loc[train.index, "y"].astype("int64"))
    np.testing.assert_allclose(out["pred"], model.predict_proba(X.loc[out["rows"].index])[:, 1], rtol=1e-12)
