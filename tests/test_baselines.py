"""ml.baselines: always_long by hand and against quantstats, majority against scikit-learn's
DummyClassifier, prior_day's signs, the seeded stationary bootstrap of the lift."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import accuracy_score, brier_score_loss, log_loss, roc_auc_score

from ml import baselines, evaluation, stats

with warnings.catch_warnings():  # urllib3/yfinance import-time deprecation noise
    warnings.simplefilter("ignore")
    import quantstats as qs


@pytest.fixture
def frame():
    """Five days; day 3 has no cutoff price (a data gap): it cannot be traded."""
    return pd.DataFrame({
        "date": pd.to_datetime(["2024-03-04", "2024-03-05", "2024-03-06", "2024-03-07", "2024-03-08"]),
        "cutoff_price": [100.0, 102.0, np.nan, 99.0, 100.0],
        "close": [101.0, 100.98, 98.0, 99.99, 100.5],
        "prev_close": [99.0, 101.0, 100.98, 98.0, 99.99],
        "prior_return": [np.nan, 101 / 99 - 1, 100.98 / 101 - 1, 0.0, 99.99 / 98 - 1],
    })


def test_always_long_by_hand(frame):
    res = baselines.always_long(frame, cost_bps=2.0)
    cost = 2 * 2.0 / 1e4  # a round trip each traded day
    want = [101 / 100 - 1 - cost, 100.98 / 102 - 1 - cost, 0.0, 99.99 / 99 - 1 - cost, 100.5 / 100 - 1 - cost]
    np.testing.assert_allclose(res.daily["strategy_return"], want, atol=1e-15)
    assert res.daily["position"].tolist() == [1, 1, 0, 1, 1]
    np.testing.assert_allclose(res.daily["equity"], np.cumprod(1 + np.array(want)), rtol=1e-15)
    st = baselines.baseline_stats(res)
    assert st["trades"] == 4 and st["days"] == 5 and st["exposure"] == pytest.approx(0.8)
    assert st["win_rate"] == pytest.approx(3 / 4)  # day 2 loses
    r = pd.Series(want)
    assert st["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252), rel=1e-12)
    assert st["total_return"] == pytest.approx(np.prod(1 + r) - 1, rel=1e-12)
    assert "dsr" not in st and "n_trials" not in st and "psr" in st
    assert res.params == {"threshold": 0.5, "cost_bps": 2.0, "long_only": True}


def test_always_long_statistics_equal_quantstats():
    rng = np.random.default_rng(11)
    n = 400
    dates = pd.bdate_range("2020-01-02", periods=n)
    cutoff = 3000 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close = cutoff * np.exp(rng.normal(0.0004, 0.008, n))
    cutoff[rng.random(n) < 0.05] = np.nan  # some untradeable days: flat, counted as 0 returns
    fr = pd.DataFrame({"date": dates, "cutoff_price": cutoff, "close": close, "prev_close": np.r_[np.nan, close[:-1]]})
    st = baselines.always_long(fr, cost_bps=1.5).stats
    r = pd.Series(np.where(np.isnan(cutoff), 0.0, close / cutoff - 1 - 3e-4), index=dates)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {"sharpe": qs.stats.sharpe(r, rf=0, periods=252), "sortino": qs.stats.sortino(r, rf=0, periods=252),
                "max_drawdown": qs.stats.max_drawdown(r), "cagr": qs.stats.cagr(r, rf=0, periods=252),
                "calmar": qs.stats.calmar(r, periods=252), "total_return": qs.stats.comp(r)}
    for name, value in want.items():
        assert st[name] == pytest.approx(float(value), rel=1e-9), name
    assert st["max_drawdown"] < 0  # a non-trivial case


def test_prior_day_signs_and_backtest(frame):
    np.testing.assert_array_equal(baselines.prior_day_prob([0.01, -0.02, 0.0, np.nan]), [1.0, 0.0, np.nan, np.nan])
    up = [1, 0, 0, 1, 1]
    out = baselines.prior_day(frame, up, cost_bps=0.0)
    # predictions: day 2 up (1), day 3 down (0: but untradeable), day 4 none (return 0), day 5 up
    m = out["metrics"]
    assert m["n"] == 3 and m["coverage"] == pytest.approx(3 / 5)
    assert m["accuracy"] == pytest.approx(accuracy_score([0, 0, 1], [1, 0, 1]))
    assert m["roc_auc"] == pytest.approx(roc_auc_score([0, 0, 1], [1, 0, 1]))
    assert out["stats"]["trades"] == 2  # day 2 long, day 5 long; day 3 has no cutoff price
    want = (1 + (100.98 / 102 - 1)) * (1 + (100.5 / 100 - 1)) - 1
    assert out["stats"]["total_return"] == pytest.approx(want, rel=1e-12)
    short = baselines.prior_day(frame.assign(prior_return=[-0.01] * 5), [0] * 5, cost_bps=0.0)
    assert short["stats"]["trades"] == 4  # short every tradeable day when not long-only
    assert baselines.prior_day(frame.assign(prior_return=[-0.01] * 5), [0] * 5, 0.0, long_only=True)["stats"][
        "trades"] == 0


def _folds(n, k_folds, rng):
    bounds = np.linspace(n // 3, n, k_folds + 1).astype(int)
    return [(np.arange(0, bounds[i] - 2), np.arange(bounds[i], bounds[i + 1])) for i in range(k_folds)]


def test_majority_equals_dummy_classifier_per_fold():
    rng = np.random.default_rng(5)
    n = 600
    y = (rng.random(n) < 0.56).astype(int)
    splits = _folds(n, 3, rng)
    probs, hats, ys = [], [], []
    for tr, te in splits:  # scikit-learn's own "predict the training prior"
        dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(tr), 1)), y[tr])
        probs.append(dummy.predict_proba(np.zeros((len(te), 1)))[:, 1])
        hats.append(dummy.predict(np.zeros((len(te), 1))))
        ys.append(y[te])
    p, hat, yy = np.concatenate(probs), np.concatenate(hats), np.concatenate(ys)
    shares = baselines.train_shares(y, splits, 2)[np.concatenate([te for _, te in splits])]
    got = baselines.majority(yy, shares)
    assert got["accuracy"] == pytest.approx(accuracy_score(yy, hat), abs=1e-12)
    assert got["brier"] == pytest.approx(brier_score_loss(yy, p), abs=1e-12)
    assert got["log_loss"] == pytest.approx(log_loss(yy, p, labels=[0, 1]), abs=1e-12)
    assert got["roc_auc"] == 0.5 and got["base_rate"] == pytest.approx(p.mean(), abs=1e-12)


def test_majority_multiclass_is_the_most_frequent_training_class():
    rng = np.random.default_rng(6)
    n = 500
    y = rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])
    splits = _folds(n, 2, rng)
    te = np.concatenate([t for _, t in splits])
    shares = baselines.train_shares(y, splits, 4)[te]
    got = baselines.majority(y[te], shares, classes=["A", "B", "C", "D"])
    hat = np.concatenate([np.full(len(t), np.bincount(y[tr], minlength=4).argmax()) for tr, t in splits])
    assert got["accuracy"] == pytest.approx(accuracy_score(y[te], hat))
    assert got["class"] == "A"
    assert got["log_loss"] == pytest.approx(log_loss(y[te], shares, labels=[0, 1, 2, 3]), abs=1e-12)
    assert got["brier"] == pytest.approx(evaluation.multiclass_scores(y[te], shares)["brier"], abs=1e-12)


def test_fast_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(7)
    y = (rng.random(300) < 0.4).astype(int)
    s = np.round(rng.random(300), 1)  # many ties
    assert baselines.fast_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(baselines.fast_auc(np.ones(5), np.arange(5)))


@pytest.fixture(scope="module")
def oof():
    """500 out-of-fold days of a model with a real but small edge."""
    rng = np.random.default_rng(8)
    n = 500
    move = rng.normal(0.0002, 0.01, n)
    y = (move > 0).astype(int)
    prob = 1 / (1 + np.exp(-(60 * move + rng.normal(0, 1.0, n))))
    model = np.where(prob >= 0.5, 1, -1) * move - 2e-4
    base = move - 2e-4
    return model, base, y, prob


def test_lift_point_values_and_intervals(oof):
    model, base, y, prob = oof
    out = baselines.lift(3, model, base, y, prob)
    assert out["sharpe"]["value"] == pytest.approx(stats.sharpe(pd.Series(model)) - stats.sharpe(pd.Series(base)),
                                                   rel=1e-12)
    assert out["roc_auc"]["value"] == pytest.approx(roc_auc_score(y, prob) - 0.5, abs=1e-12)
    for key in ("sharpe", "roc_auc"):
        iv = out[key]
        assert iv["level"] == 0.95 and iv["lo"] < iv["value"] < iv["hi"]  # the point inside its interval
    assert out["roc_auc"]["lo"] > 0  # the edge is real here
    assert out["bootstrap"] == {"method": "stationary", "block_days": 20, "resamples": 1000, "seed": 3}


def test_lift_bootstrap_is_determined_by_its_seed(oof):
    model, base, y, prob = oof
    a = baselines.lift(3, model, base, y, prob)
    b = baselines.lift(3, model, base, y, prob)
    c = baselines.lift(4, model, base, y, prob)
    assert a == b  # identical intervals, not just close
    assert (c["sharpe"]["lo"], c["sharpe"]["hi"]) != (a["sharpe"]["lo"], a["sharpe"]["hi"])
    assert (c["roc_auc"]["lo"], c["roc_auc"]["hi"]) != (a["roc_auc"]["lo"], a["roc_auc"]["hi"])
    assert c["sharpe"]["value"] == a["sharpe"]["value"]  # the point value does not depend on the seed


def test_lift_multiclass_auc_and_omitted_parts():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet([1, 1, 1], 300)
    out = baselines.lift(0, y=y, pred=proba)
    assert set(out) == {"roc_auc", "bootstrap"}
    assert out["roc_auc"]["value"] == pytest.approx(evaluation.multiclass_scores(y, proba)["roc_auc"] - 0.5,
                                                    abs=1e-12)
    only_sharpe = baselines.lift(0, rng.normal(0, .01, 300), rng.normal(0, .01, 300))
    assert set(only_sharpe) == {"sharpe", "bootstrap"}


@pytest.mark.parametrize("n,block,seed", [(500, 20, 3), (37, 2.5, 0), (1, 20, 7), (64, 1, 5)])
def test_stationary_indices_are_archs(n, block, seed):
    """The bootstrap draws the very day indices of arch's StationaryBootstrap (same seed),
    without importing arch in the run."""
    from arch.bootstrap import StationaryBootstrap

    want = np.stack([d[0][0] for d in StationaryBootstrap(block, np.arange(n), seed=seed).bootstrap(60)])
    np.testing.assert_array_equal(baselines.stationary_indices(n, block, 60, seed), want)


def test_stationary_blocks_carry_the_generator_across_chunks():
    """Drawn 100 resamples at a time, the days are still arch's (250 resamples: three chunks)."""
    from arch.bootstrap import StationaryBootstrap

    want = np.stack([d[0][0] for d in StationaryBootstrap(2.5, np.arange(37), seed=4).bootstrap(250)])
    blocks = list(baselines.stationary_blocks(37, 2.5, 250, 4))
    assert [b.shape for b in blocks] == [(100, 37), (100, 37), (50, 37)]
    np.testing.assert_array_equal(np.concatenate(blocks), want)


def test_lift_with_days_drawn_ahead_is_the_same(oof):
    """The runner draws the bootstrap days on its worker thread: the intervals are identical,
    and days drawn for another number of days are not used."""
    model, base, y, prob = oof
    want = baselines.lift(3, model, base, y, prob)
    assert baselines.lift(3, model, base, y, prob, days=baselines.bootstrap_days(len(y), 3)) == want
    assert baselines.lift(3, model, base, y, prob, days=baselines.bootstrap_days(len(y) - 1, 3)) == want


def test_resampled_aucs_equal_ranking_every_resample_bit_for_bit():
    """AUCs from each resample's day counts equal rankdata on the resampled arrays exactly
    (ties included; binary and one-vs-rest multiclass)."""
    rng = np.random.default_rng(11)
    n = 300
    idx = baselines.stationary_indices(n, 20, 50, 2)
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n), 2)  # many ties
    np.testing.assert_array_equal(baselines._resampled_aucs(y, score, idx), baselines._aucs(y[idx], score[idx]))
    yk = rng.integers(0, 3, n)
    p = np.round(rng.dirichlet([1, 1, 1], n), 2)
    np.testing.assert_array_equal(baselines._resampled_auc_rows(yk, p, idx), baselines._auc_rows(yk[idx], p[idx]))
    idx[:, :] = 0  # one class only in every resample: NaN, as before
    assert np.isnan(baselines._resampled_aucs(y, score, idx)).all()


def test_lift_does_not_import_arch(oof):
    import subprocess
    import sys

    code = ("import sys, numpy as np\nfrom ml import baselines\n"
            "baselines.lift(1, np.ones(50) * 0.01, np.ones(50) * 0.02, np.arange(50) % 2, np.linspace(0, 1, 50))\n"
            "print('arch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    assert out.stdout.strip() == "False"
