"""The minirocket model kind (ml.rocket): refusals without sktime or with the wrong input,
a deterministic transform equal to sktime's, fold predictions equal to a hand fit on the
fold's training rows, and per-minute SHAP values that add up."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.base import BaseEstimator, RegressorMixin

from almanac.store import Store
from bench.synthetic import futures_minutes
from ml.rocket import fill_paths, path_shap

ROOT = Path(__file__).resolve().parent.parent
HAVE_SKTIME = importlib.util.find_spec("sktime") is not None
# sktime is in requirements.txt: CI (CI=true) must run these; a developer's older venv may skip them
needs_sktime = pytest.mark.skipif(not HAVE_SKTIME and not os.environ.get("CI"),
                                  reason="sktime (requirements.txt) is not installed in this venv")
SPEC = {"name": "rocket", "data": {"symbol": "ES"}, "features": {"sets": ["minute_path"], "cutoff": "10:15"},
        "label": {"kind": "rest_of_day"}, "model": {"kind": "minirocket", "params": {"num_kernels": 168}},
        "validation": {"n_splits": 3, "gap": 1, "min_train": 120}, "backtest": {"threshold": 0.52, "cost_bps": 1.0},
        "seed": 4}


def snapshot(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(home.rglob("*"))}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    home = tmp_path_factory.mktemp("rocket") / "home"
    store = Store(home)
    store.write("ES", "1min", futures_minutes("2018-07-02", days=260, seed=9, step=1, overnight=False), source="test")
    daily = pd.DataFrame({"date": pd.bdate_range("2018-01-02", periods=300), "close": 2500.0, "open": 2500.0,
                          "high": 2510.0, "low": 2490.0, "volume": 1.0})
    store.write("SPX", "1d", daily, source="test")  # a daily-only symbol
    return home


def _cli(home: Path, spec: dict, tmp_path: Path, prelude: str = "") -> tuple[subprocess.CompletedProcess, float, float]:
    """``python -m almanac train --config`` in a child: (result, seconds, peak MB of the child).

    The peak is the child's own (/usr/bin/time -f %M), not RUSAGE_CHILDREN: that is the
    largest of every child this test process ever had."""
    cfg = tmp_path / "spec.yaml"
    cfg.write_text(yaml.safe_dump(spec))
    peak_file = tmp_path / "peak_kb"
    code = f"{prelude}import sys; from cli import main; sys.exit(main(['train', '--config', {str(cfg)!r}, '--json']))"
    t = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(peak_file), sys.executable, "-c", code], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env={**os.environ, "ALMANAC_HOME": str(home)})
    return res, time.perf_counter() - t, int(peak_file.read_text().split()[-1]) / 1024


@pytest.mark.parametrize("change, prelude, message", [
    ({}, "import sys; sys.modules['sktime'] = None; ",  # as if sktime were not installed
     "error: model minirocket needs the package sktime, which is not installed in this environment: run `pip "
     "install -r requirements.txt` or choose another model kind"),
    ({"features": {"sets": ["minute_path", "regime"], "cutoff": "10:15"}}, "",
     "error: spec field features.sets: model minirocket reads the raw minute_path set only, not regime: set "
     "features.sets: [minute_path] (compare it with the engineered sets in a run of another model kind)"),
    ({"data": {"symbol": "SPX"}, "model": {"kind": "logistic"}, "label": "direction"}, "",
     "error: spec field features.sets: minute_path is the path of intraday bars from the open to the cutoff; SPX "
     "has only 1d: import SPX 1-minute bars or choose another set"),
])
def test_refusals_are_one_line_exit_2_and_change_nothing(market, tmp_path, change, prelude, message):
    before = snapshot(market)
    res, seconds, peak_mb = _cli(market, {**SPEC, **change}, tmp_path, prelude)
    assert (res.returncode, res.stdout, res.stderr) == (2, "", message + "\n")
    assert snapshot(market) == before
    assert seconds < 10 and peak_mb < 600  # generous sanity bounds; measured ~1-2 s, ~180 MB


def test_fill_paths_by_hand():
    nan = np.nan
    X = np.array([[nan, nan, 0.1, nan, 0.3, 0.2, nan, nan, nan, 0.5],
                  [nan] * 10])
    np.testing.assert_array_equal(fill_paths(X), [[0, 0, .1, .1, .3, .2, .2, .2, .2, .5], [0] * 10])
    # shorter than MiniRocket's 9-point kernel: padded with the last value
    np.testing.assert_array_equal(fill_paths([[nan, 0.2, nan]]), [[0, .2, .2, .2, .2, .2, .2, .2, .2]])


class _Linear(RegressorMixin, BaseEstimator):
    """f(x) = x @ w on the filled path: its Shapley values are known in closed form."""

    def __init__(self, w=None):
        self.w = w

    def predict(self, X):
        return fill_paths(X)[:, :len(self.w)] @ self.w


def test_path_shap_of_a_linear_function_is_exact():
    rng = np.random.default_rng(0)
    w = rng.normal(size=12)
    X = pd.DataFrame(rng.normal(size=(5, 12)))
    X.iloc[0, 3] = np.nan  # filled from column 2 before the function sees it
    bg = pd.DataFrame(rng.normal(size=(40, 12)))
    values, base, raw, output = path_shap(_Linear(w), X, bg)
    filled = fill_paths(X)
    np.testing.assert_allclose(values, w * (filled - bg.to_numpy().mean(0)), atol=1e-12)
    assert base == pytest.approx(bg.to_numpy().mean(0) @ w) and output == "prediction"
    np.testing.assert_allclose(raw, filled @ w, atol=1e-12)


@needs_sktime
def test_transform_is_sktimes_and_deterministic_given_the_seed():
    from sktime.transformations.rocket import MiniRocket

    from ml.rocket import MiniRocketClassifier, _rocket_features

    rng = np.random.default_rng(1)
    X = pd.DataFrame(np.cumsum(rng.normal(size=(80, 45)), axis=1) * 1e-3)
    X.iloc[::5, :4] = np.nan
    y = (X.iloc[:, -1] > 0).astype(int).to_numpy()
    a = MiniRocketClassifier(num_kernels=168, random_state=7).fit(X, y)
    b = MiniRocketClassifier(num_kernels=168, random_state=7).fit(X, y)
    c = MiniRocketClassifier(num_kernels=168, random_state=8).fit(X, y)
    for pa, pb in zip(a.rocket_parameters_, b.rocket_parameters_, strict=True):
        np.testing.assert_array_equal(pa, pb)
    assert not np.array_equal(a.rocket_parameters_[-1], c.rocket_parameters_[-1])  # the biases follow the seed
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    # the direct kernel call gives what sktime's public transform gives
    paths = fill_paths(X)
    ref = MiniRocket(num_kernels=168, random_state=7).fit(paths[:, None, :].astype("float32"))
    np.testing.assert_array_equal(_rocket_features(a.rocket_parameters_, paths),
                                  ref.transform(paths[:, None, :].astype("float32")).to_numpy())


@needs_sktime
def test_fold_predictions_equal_a_hand_fit_on_the_folds_training_rows(market):
    from ml.rocket import MiniRocketClassifier
    from ml.runner import run_experiment

    run = run_experiment(SPEC, store=Store(market))
    path = Path(run["path"])
    data = pd.read_parquet(path / "dataset.parquet")
    oof = pd.read_parquet(path / "oof.parquet")
    fold = run["folds"][1]
    cols = [c for c in data.columns if c.startswith("mp_")]
    assert len(cols) == 45
    dates = pd.to_datetime(data["date"]) if "date" in data.columns else data.index
    data = data.set_index(dates) if "date" in data.columns else data
    train = data[(data.index >= fold["train_start"]) & (data.index <= fold["train_end"])]
    test = data[(data.index >= fold["test_start"]) & (data.index <= fold["test_end"])]
    hand = MiniRocketClassifier(num_kernels=168, random_state=4).fit(train[cols], train["y"].astype("int64"))
    mine = oof[oof["fold"] == 1].set_index("date")["prob"]
    np.testing.assert_array_equal(hand.predict_proba(test[cols])[:, 1], mine.loc[test.index].to_numpy())
    # SHAP of the run's fold models add up to their log-odds (checked by the runner) and
    # are spread over the minutes, not one column
    shap = pd.read_parquet(path / "shap.parquet")
    assert run["shap_output"] == "log_odds" and (shap[cols].abs().sum() > 0).sum() > 30


@needs_sktime
@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_path_shap_adds_up_for_every_task(task):
    from ml import explain
    from ml.models import make_model

    rng = np.random.default_rng(2)
    X = pd.DataFrame(np.cumsum(rng.normal(size=(90, 20)), axis=1) * 1e-3, columns=[f"mp_{j:03d}" for j in range(20)])
    last = X.iloc[:, -1].to_numpy()
    y = np.digitize(last, np.quantile(last, [1 / 3, 2 / 3])) if task == "multiclass" else last
    model = make_model("minirocket", task, {"num_kernels": 84}, seed=1).fit(X.iloc[:70], y[:70])
    results = explain.shap_values_by_class(model, X.iloc[70:], background=X.iloc[:70])
    assert len(results) == (3 if task == "multiclass" else 1)
    raw = model.decision_function(X.iloc[70:]) if task == "multiclass" else model.predict(X.iloc[70:])
    for k, r in enumerate(results):
        out = raw[:, k] if task == "multiclass" else raw
        np.testing.assert_allclose(r.values.sum(axis=1) + r.base_value, out, atol=1e-9)
        assert list(r.values.columns) == list(X.columns)


@needs_sktime  # without it check_params refuses the kind itself (test_refusals_...)
def test_parameter_check_is_quick_and_never_imports_sktime():
    """The runner's check_params runs before any work: it refuses bad minirocket parameters
    with one line, without sktime's import and numba kernels (seconds)."""
    code = ("import sys\nfrom almanac.errors import SpecError\nfrom ml.models import check_params\n"
            "check_params('minirocket', 'binary', {})\ncheck_params('minirocket', 'regression', {'alpha': 5.0})\n"
            "for task, bad in [('binary', {'C': -1.0}), ('binary', {'num_kernels': 100.5})]:\n"
            "    try:\n        check_params('minirocket', task, bad)\n    except SpecError as e:\n"
            "        print(e.message)\nprint('sktime' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = res.stdout.splitlines()
    assert lines[0].startswith("spec field model.params.C: -1.0 is refused by scikit-learn: The 'C' parameter")
    assert lines[1] == ("spec field model.params.num_kernels: 100.5 is refused by scikit-learn: num_kernels must be "
                        "a whole number of at least 1, not 100.5; change or remove it")
    assert lines[2] == "False" and res.returncode == 0


@needs_sktime
def test_parameters_that_do_not_fit_together_are_refused_before_the_kernel_reads_them():
    from ml.rocket import MiniRocketClassifier

    rng = np.random.default_rng(3)
    X = np.cumsum(rng.normal(size=(60, 30)), axis=1) * 1e-3
    m = MiniRocketClassifier(num_kernels=168).fit(X, (X[:, -1] > 0).astype(int))
    dil, per, biases = m.rocket_parameters_
    for bad in [(dil, per, biases[:-1]), (dil * 100, per, biases), (dil.astype("int64"), per, biases)]:
        m.rocket_parameters_ = bad
        with pytest.raises(ValueError, match="MiniRocket parameters do not fit together"):
            m.predict_proba(X)
    m.rocket_parameters_ = (dil, per, biases)
    with pytest.raises(ValueError, match="X has 29 path columns; the model was fitted on 30"):
        m.predict_proba(X[:, :29])
