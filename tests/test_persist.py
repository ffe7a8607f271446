"""ml.persist: native save/load gives bit-identical predictions; unsafe files are refused."""

from __future__ import annotations

import importlib.util
import os
import pickle

import numpy as np
import pandas as pd
import pytest

from almanac.errors import AlmanacError
from almanac.store import file_sha256
from ml.models import MODEL_KINDS, make_model
from ml.persist import FILES, LightGBMModel, load_model, save_model

SMALL = {  # fewer trees: the tests check persistence, not skill
    "random_forest": {"n_estimators": 20}, "hist_gb": {"max_iter": 30},
    "lightgbm": {"n_estimators": 30}, "xgboost": {"n_estimators": 30}, "logistic": None, "knn": {"n_neighbors": 5},
    "minirocket": {"num_kernels": 168},
}
_NO_SKTIME = importlib.util.find_spec("sktime") is None and not os.environ.get("CI")  # CI must run it
KINDS = [pytest.param(k, marks=pytest.mark.skipif(_NO_SKTIME, reason="sktime (requirements.txt) not installed in this venv"))
         if k == "minirocket" else k for k in MODEL_KINDS]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(240, 4)), columns=["ret_open", "range", "vix", "gap"])
    X.iloc[::11, 1] = np.nan  # missing values go through the imputers / native NaN handling
    y_bin = (X["ret_open"] + 0.5 * rng.normal(size=240) > 0).astype("float64")
    y_reg = 0.01 * X["ret_open"] + 0.005 * rng.normal(size=240)
    y_multi = np.digitize(X["ret_open"], [-0.5, 0.5]).astype("float64")
    return X, {"binary": y_bin, "regression": y_reg, "multiclass": y_multi}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_round_trip_predictions_identical(kind, task, data, tmp_path):
    X, ys = data
    model = make_model(kind, task, SMALL[kind], seed=3).fit(X, ys[task])
    meta = save_model(model, kind, task, tmp_path)
    name, fmt = FILES[kind]
    assert (meta["file"], meta["format"]) == (name, fmt)
    assert meta["sha256"] == file_sha256(tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    # never a pickle: the first bytes are the native format's
    head = (tmp_path / name).read_bytes()[:4]
    assert head == {"lightgbm-text": b"tree", "xgboost-json": b'{"le', "skops": b"PK\x03\x04"}[fmt]

    loaded = load_model(tmp_path, meta)
    assert np.array_equal(loaded.predict(X), model.predict(X))
    if task != "regression":
        assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))
        assert meta["classes"] == list(model.classes_)
    else:
        assert meta["classes"] is None


def test_lightgbm_task_inferred_without_meta(data, tmp_path):
    X, ys = data
    model = make_model("lightgbm", "binary", SMALL["lightgbm"]).fit(X, ys["binary"])
    meta = save_model(model, "lightgbm", "binary", tmp_path)
    loaded = load_model(tmp_path, {"file": meta["file"], "format": meta["format"]})
    assert isinstance(loaded, LightGBMModel) and loaded.task == "binary"
    assert list(loaded.feature_names_in_) == list(X.columns)
    assert np.array_equal(loaded.predict_proba(X)[:, 1], model.predict_proba(X)[:, 1])
    # raw scores (log-odds) too, which SHAP explains
    assert np.array_equal(loaded.predict(X, raw_score=True), model.predict(X, raw_score=True))


def test_skops_refuses_types_off_the_allow_list(tmp_path):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=os.system), tmp_path / "model.skops")
    with pytest.raises(AlmanacError, match="posix.system"):
        load_model(tmp_path, {"file": "model.skops", "format": "skops"})


def test_pickle_disguised_as_skops_is_refused(tmp_path):
    (tmp_path / "model.skops").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(AlmanacError, match="not a readable skops file"):
        load_model(tmp_path, {"file": "model.skops", "format": "skops"})


def test_sha256_mismatch_and_bad_names_refused(data, tmp_path):
    X, ys = data
    model = make_model("xgboost", "regression", SMALL["xgboost"]).fit(X, ys["regression"])
    meta = save_model(model, "xgboost", "regression", tmp_path)
    path = tmp_path / meta["file"]
    path.write_bytes(path.read_bytes().replace(b"0", b"1", 1))
    with pytest.raises(AlmanacError, match="does not match its SHA-256"):
        load_model(tmp_path, meta)
    with pytest.raises(AlmanacError, match="not a plain file name"):
        load_model(tmp_path, {**meta, "file": "../model.json"})
    with pytest.raises(AlmanacError, match="missing"):
        load_model(tmp_path, {**meta, "file": "other.json"})
    with pytest.raises(AlmanacError, match="unknown model format"):
        load_model(tmp_path, {**meta, "format": "pickle", "sha256": None})


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_xgboost_task_inferred_without_meta(task, data, tmp_path):
    X, ys = data
    model = make_model("xgboost", task, SMALL["xgboost"]).fit(X, ys[task])
    meta = save_model(model, "xgboost", task, tmp_path)
    loaded = load_model(tmp_path, {"file": meta["file"], "format": meta["format"]})
    assert np.array_equal(loaded.predict(X), model.predict(X))
    with pytest.raises(AlmanacError, match="not a readable XGBoost"):
        load_model(tmp_path, {**meta, "task": "regression" if task != "regression" else "binary"})
