"""Scores agree with scikit-learn/scipy on the same arrays; ECE and IC by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from almanac.errors import SpecError
from ml.evaluation import (
    THRESHOLDS,
    binary_scores,
    evaluate,
    expected_calibration_error,
    fold_scores,
    multiclass_scores,
    regression_scores,
    reliability_curve,
    roc_table,
    threshold_grid,
)


@pytest.fixture
def binary():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.5 + 0.25 * (y - 0.5) + 0.2 * rng.normal(size=500), 0.01, 0.99)
    return y, p


def test_binary_scores_match_sklearn(binary):
    y, p = binary
    s = binary_scores(y, p, threshold=0.55)
    hat = (p >= 0.55).astype(int)
    assert s["n"] == 500 and s["base_rate"] == pytest.approx(y.mean())
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, hat))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, hat))
    assert s["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert s["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert s["brier"] == pytest.approx(np.mean((p - y) ** 2))


def test_threshold_grid_matches_confusion_matrices(binary):
    y, p = binary
    grid = threshold_grid(y, p)
    assert len(grid) == 41
    assert (grid["threshold"].iloc[0], grid["threshold"].iloc[-1]) == (0.30, 0.70)
    np.testing.assert_array_equal(grid["threshold"], THRESHOLDS)
    for _, row in grid.iloc[::8].iterrows():
        hat = (p >= row["threshold"]).astype(int)
        tn, fp, fn, tp = skm.confusion_matrix(y, hat).ravel()
        assert (row["tn"], row["fp"], row["fn"], row["tp"]) == (tn, fp, fn, tp)
        assert row["precision"] == pytest.approx(skm.precision_score(y, hat))
        assert row["recall"] == pytest.approx(skm.recall_score(y, hat))
        assert row["accuracy"] == pytest.approx(skm.accuracy_score(y, hat))
    # nothing predicted up at a threshold above every probability: precision undefined
    assert np.isnan(threshold_grid([0, 1], [0.2, 0.3], [0.5])["precision"].iloc[0])


def test_roc_and_reliability_match_sklearn(binary):
    y, p = binary
    roc = roc_table(y, p)
    fpr, tpr, _ = skm.roc_curve(y, p)
    np.testing.assert_allclose(roc["fpr"], fpr)
    np.testing.assert_allclose(roc["tpr"], tpr)
    assert np.isnan(roc["threshold"].iloc[0])
    rc = reliability_curve(y, p)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    ne = rc[rc["count"] > 0]
    np.testing.assert_allclose(ne["observed"], prob_true)
    np.testing.assert_allclose(ne["mean_predicted"], prob_pred)
    assert rc["count"].sum() == 500 and len(rc) == 10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_table_is_sklearn_roc_curve_exactly(seed):
    """numpy's ROC (no scikit-learn in the web server) = scikit-learn's, ties and all."""
    rng = np.random.default_rng(seed)
    n = 400 + 300 * seed
    y = (rng.random(n) < 0.55).astype(int)
    p = np.round(rng.random(n), 2 if seed == 1 else 6)  # seed 1: many tied scores
    roc = roc_table(y, p)
    fpr, tpr, thr = skm.roc_curve(y, p)
    assert np.array_equal(roc["fpr"].to_numpy(), fpr) and np.array_equal(roc["tpr"].to_numpy(), tpr)
    assert np.array_equal(roc["threshold"].to_numpy()[1:], thr[1:]) and np.isinf(thr[0])
    assert roc_table([1, 1, 1], [0.2, 0.5, 0.9]).empty


def test_ece_by_hand():
    # bins: (0.1, 0.2] holds .12, .18 (mean .15, observed .5); (0.7, 0.8] holds .75
    # (observed 1); (0.9, 1] holds .95 (observed 0)
    y, p = [0, 1, 1, 0], [0.12, 0.18, 0.75, 0.95]
    expected = 0.5 * 0.35 + 0.25 * 0.25 + 0.25 * 0.95  # = 0.475
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    assert binary_scores(y, p)["ece"] == pytest.approx(0.475)


def test_multiclass_scores_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 400)
    logits = rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    s = multiclass_scores(y, proba)
    hat = proba.argmax(1)
    assert s["accuracy"] == pytest.approx(skm.accuracy_score(y, hat))
    assert s["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, hat))
    assert s["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    assert s["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert s["brier"] == pytest.approx(skm.brier_score_loss(y, proba, labels=[0, 1, 2, 3]))


def test_multiclass_auc_skips_absent_class():
    y = np.array([0, 0, 1, 1])
    proba = np.array([[.7, .2, .1], [.6, .3, .1], [.2, .7, .1], [.5, .4, .1]])
    # class 0 AUC: scores .7 .6 vs .2 .5 -> 1.0; class 1: .7 .4 vs .2 .3 -> 1.0; class 2 absent
    assert multiclass_scores(y, proba)["roc_auc"] == pytest.approx(1.0)


def test_regression_scores():
    s = regression_scores([10, 20, 40, 30], [1, 2, 3, 4])
    assert s["ic"] == pytest.approx(0.8)  # 1 - 6 * 2 / (4 * 15)
    rng = np.random.default_rng(3)
    y, pred = rng.normal(size=200), rng.normal(size=200)
    s = regression_scores(y, pred)
    assert s["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean((y - pred) ** 2)))
    assert s["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert s["ic"] == pytest.approx(spearmanr(pred, y).statistic)
    assert s["hit_rate"] == pytest.approx(np.mean(np.sign(y) == np.sign(pred)))


def test_evaluate_is_json_safe_and_per_fold(binary):
    y, p = binary
    folds = np.repeat([0, 1, 2, 3, 4], 100)
    y = y.copy()
    y[400:] = 1  # the last fold has one class: AUC undefined -> None
    out = evaluate("binary", y, p, folds, threshold=0.5, classes=["down", "up"])
    json.dumps(out, allow_nan=False)
    assert [f["fold"] for f in out["per_fold"]] == [0, 1, 2, 3, 4]
    assert out["per_fold"][0]["roc_auc"] == pytest.approx(skm.roc_auc_score(y[:100], p[:100]))
    assert out["per_fold"][4]["roc_auc"] is None
    assert out["pooled"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert out["confusion"]["matrix"] == skm.confusion_matrix(y, (p >= 0.5).astype(int)).tolist()
    assert out["confusion"]["labels"] == ["down", "up"]
    assert out["report"]["up"]["recall"] == pytest.approx(skm.recall_score(y, p >= 0.5))
    assert len(out["threshold_grid"]) == 41 and len(out["reliability"]) == 10
    fs = fold_scores("binary", y, p, folds)
    assert fs.loc[1, "accuracy"] == pytest.approx(skm.accuracy_score(y[100:200], p[100:200] >= .5))


def test_evaluate_multiclass_and_regression_json():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 60)
    proba = rng.dirichlet([1, 1, 1], 60)
    out = evaluate("multiclass", y, proba, np.repeat([0, 1], 30), classes=["a", "b", "c"])
    json.dumps(out, allow_nan=False)
    assert out["confusion"]["matrix"] == skm.confusion_matrix(y, proba.argmax(1)).tolist()
    reg = evaluate("regression", rng.normal(size=30), rng.normal(size=30))
    json.dumps(reg, allow_nan=False)
    assert reg["per_fold"] == [] and set(reg["pooled"]) >= {"mae", "rmse", "r2", "ic"}


def test_bad_inputs():
    with pytest.raises(SpecError, match="NaN"):
        binary_scores([0, 1], [0.2, np.nan])
    with pytest.raises(SpecError, match="do not match"):
        binary_scores([0, 1, 1], [0.2, 0.3])
    with pytest.raises(SpecError, match="binary, multiclass, regression"):
        evaluate("ranking", [0, 1], [0.1, 0.2])


@pytest.mark.parametrize("case", ["random", "ties", "one_class_up", "one_class_down", "extremes", "tiny"])
def test_binary_scores_equal_sklearn_to_1e12(case):
    """The numpy scores are scikit-learn's numbers, ties, one-class rows and 0/1 probabilities included."""
    import warnings

    rng = np.random.default_rng(7)
    n = 400
    y = rng.integers(0, 2, n)
    p = rng.uniform(0, 1, n)
    if case == "ties":
        p = np.round(p, 1)
    elif case == "one_class_up":
        y = np.ones(n, dtype=int)
    elif case == "one_class_down":
        y = np.zeros(n, dtype=int)
    elif case == "extremes":
        p = np.where(rng.uniform(size=n) < 0.2, y.astype(float), p)  # exact 0 and 1 where right
        p[:3] = 1.0 - y[:3]  # and three confidently wrong
    elif case == "tiny":
        y, p = np.array([1, 0]), np.array([0.5, 0.5])
    s = binary_scores(y, p, threshold=0.5)
    hat = (p >= 0.5).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = {"accuracy": skm.accuracy_score(y, hat), "balanced_accuracy": skm.balanced_accuracy_score(y, hat),
               "log_loss": skm.log_loss(y, p, labels=[0, 1]), "brier": skm.brier_score_loss(y, p, pos_label=1)}
        try:
            ref["roc_auc"] = skm.roc_auc_score(y, p)
        except ValueError:
            ref["roc_auc"] = float("nan")
    for k, v in ref.items():
        if np.isnan(v):
            assert np.isnan(s[k]), k
        else:
            assert s[k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
