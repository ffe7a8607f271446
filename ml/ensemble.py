"""Ensembles: runs with the same symbol, label and fold dates combined into a new run.

``make_ensemble(["A", "B"], method="mean"|"stack")`` reads the parts' out-of-fold
predictions (``oof.parquet``) and writes a NEW run (its own run id, ``run.json["kind"] ==
"ensemble"``) that is evaluated, backtested and registered like any run, so it is a trial
of the deflated Sharpe ratio on its symbol and label (:mod:`ml.trials`).

**Compatible parts** (:func:`check_compatible`, checked before anything is written, the
first difference refused in one line): not an ensemble themselves; the same symbol (or
table), label (kind and every label parameter), cutoff, task and fold dates (each fold's
train and test first / last day), and the same out-of-fold days and outcomes.

**mean**: the parts' out-of-fold P(up) (binary), class probabilities (multiclass) or
predicted returns (regression) averaged per day with equal weights. An ensemble of one run
is that run: the same predictions and metrics, bit for bit.

**stack** (binary and multiclass labels): for fold k a logistic regression (scikit-learn,
``C=1``, lbfgs with at most 1000 iterations; multinomial for classes) of y on the logit of each part's P(up) (or the log of each
part's class probabilities, :func:`stack_inputs`), fitted ONLY on out-of-fold rows that lie in fold k's
training window (``train_start_k .. train_end_k``; ``train_end_k`` is already ``gap`` days
before fold k's test start), i.e. earlier folds' test days. The first fold has no such
rows; a fold with fewer than :data:`MIN_STACK_ROWS` of them or missing a class falls
back to the mean; ``run.json["ensemble"]["folds"]`` says which fold used what.

**Final model** (the deployable one, ``model/ensemble.json`` + a copy of each part's final
model in ``model/part-<i>/``): the mean of the parts' final models, or the stacker fitted
on every out-of-fold row applied to them. :class:`EnsembleModel` loads it;
:func:`combine` is the one combination rule used for the out-of-fold predictions, the
final model and the exported bundle (:mod:`ml.ensemble_bundle`).

The backtest uses the first part's trading rules (threshold, costs, long-only); the naive
baselines are the first part's (the same days, outcomes and costs), the lift is
recomputed. There are no SHAP values of an ensemble (``shap.parquet`` is empty);
permutation importance uses the last fold's ensemble (each part's last-fold model, combined
as in that fold).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError
from almanac.spec import spec_from_dict
from almanac.store import Store
from ml import baselines, drift, evaluation, persist
from ml.ensemble_parts import DATES, METHODS, _differ, check_compatible, check_request, load_parts

#: Fewest out-of-fold rows (with every class) a fold's stacker is fitted on; fewer: the mean.
MIN_STACK_ROWS = 50
#: Probabilities are clipped to [EPS, 1 - EPS] before the logit the stacker reads.
EPS = 1e-6
STACKER_C = 1.0
#: lbfgs iterations of the stacker (scikit-learn's 100 do not always converge for several classes).
STACKER_MAX_ITER = 1000
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "almanac-ensemble"


# ---------------------------------------------------------------- combination rule

def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype="float64"), EPS, 1.0 - EPS)
    return np.log(q / (1.0 - q))


def stack_inputs(preds: list[np.ndarray]) -> np.ndarray:
    """What the stacker reads, one row per day: the logit of each part's P(up) (binary:
    ``preds`` are 1-D), or the log of each part's clipped class probabilities, part after
    part (multiclass: ``preds`` are (n, k))."""
    if np.ndim(preds[0]) == 1:
        return np.column_stack([logit(p) for p in preds])
    return np.hstack([np.log(np.clip(np.asarray(p, dtype="float64"), EPS, 1.0)) for p in preds])


def combine(preds: list[np.ndarray], method: str, stacker: dict | None = None) -> np.ndarray:
    """The ensemble's prediction from its parts' ``preds`` (one array per part, same rows):
    their mean, or with ``stacker`` the logistic model on :func:`stack_inputs` -- binary
    (``{"coef": [c_i], "intercept": b}``): ``1 / (1 + exp(-(b + sum c_i * logit(p_i))))``;
    multiclass (``coef`` one row per class, ``intercept`` one per class): the softmax of
    ``coef @ inputs + intercept``."""
    if method == "stack" and stacker is not None:
        if np.ndim(stacker["intercept"]) == 0:
            z = float(stacker["intercept"]) + sum(float(c) * logit(p) for c, p in zip(stacker["coef"], preds,
                                                                                      strict=True))
            return 1.0 / (1.0 + np.exp(-z))
        z = stack_inputs(preds) @ np.asarray(stacker["coef"], dtype="float64").T + np.asarray(stacker["intercept"])
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)
    return np.mean(np.stack([np.asarray(p, dtype="float64") for p in preds]), axis=0)


def fit_stacker(preds: list[np.ndarray], y: np.ndarray, seed: int = 0) -> dict:
    """A logistic regression (multinomial for more than two classes) of ``y`` on
    :func:`stack_inputs` of the parts' predictions ``preds`` (the same rows)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=STACKER_C, max_iter=STACKER_MAX_ITER, random_state=seed).fit(
        stack_inputs(preds), y.astype("int64"))
    if np.ndim(preds[0]) == 1:
        return {"coef": [float(c) for c in lr.coef_[0]], "intercept": float(lr.intercept_[0])}
    return {"coef": [[float(c) for c in row] for row in lr.coef_], "intercept": [float(b) for b in lr.intercept_]}


def stacker_rows(dates: pd.DatetimeIndex, fold: dict) -> np.ndarray:
    """Mask of the out-of-fold ``dates`` a fold's stacker may learn from: inside the fold's
    training window (``train_end`` is ``gap`` days before its ``test_start``)."""
    return np.asarray((dates >= pd.Timestamp(fold["train_start"])) & (dates <= pd.Timestamp(fold["train_end"])))


def stacked_oof(preds: list[np.ndarray], y: np.ndarray, fid: np.ndarray, dates: pd.DatetimeIndex,
                folds: list[dict], seed: int = 0) -> tuple[np.ndarray, list[dict]]:
    """(out-of-fold stacked predictions, per-fold record) -- each fold's stacker fitted on the
    rows :func:`stacker_rows` allows, or the mean where those are too few or lack a class
    (see the module doc)."""
    multi = np.ndim(preds[0]) == 2
    k_classes = preds[0].shape[1] if multi else 2
    out = np.full(preds[0].shape, np.nan)
    ok = ~np.isnan(stack_inputs(preds)).any(axis=1)
    record = []
    for fold in folds:
        k = int(fold["fold"])
        test = fid == k
        train = stacker_rows(dates, fold) & ok
        n = int(train.sum())
        entry = {"fold": k, "n_rows": n, "last_day": f"{dates[train].max():%Y-%m-%d}" if n else None}
        if n < MIN_STACK_ROWS or len(np.unique(y[train])) < k_classes:
            out[test] = combine([p[test] for p in preds], "mean")
            why = "no earlier out-of-fold day" if n == 0 else f"{n} earlier out-of-fold days (< {MIN_STACK_ROWS})" \
                if n < MIN_STACK_ROWS else "a class missing from its earlier out-of-fold days"
            record.append({**entry, "method": "mean", "note": f"mean of the parts: {why}"})
            continue
        st = fit_stacker([p[train] for p in preds], y[train], seed)
        out[test] = combine([p[test] for p in preds], "stack", st)
        record.append({**entry, "method": "stack", **st})
    return out, record


# ---------------------------------------------------------------- parts

class _Regimes:
    """The first part's regimes on the ensemble's days (``state``: per dataset row, -1 none)
    and its ``run.json["regimes"]`` with the scores and backtest of the ENSEMBLE per regime."""

    def __init__(self, state: np.ndarray, record: dict):
        self.state, self.record = state, record


def _regimes(first: dict, oof: pd.DataFrame, n_rows: int, pos: np.ndarray, task, y_oof, pred, bt,
             home=None) -> _Regimes | None:
    """Every part has the same fold dates and seed, so the same fold HMMs (ml.regimes): the first
    part's regime of each out-of-fold day (recorded, or fitted on first view:
    :func:`ml.run_regimes.ensure`) is the ensemble's. None when the part can have none."""
    from ml import regimes, run_regimes

    run, part_oof = run_regimes.ensure(first["run_id"], home)
    rec = run.get("regimes")
    if not rec or "regime" not in part_oof.columns:
        return None
    by_date = pd.Series(part_oof["regime"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(part_oof["date"]))
    state = np.full(n_rows, -1, dtype="int64")
    state[pos] = by_date.reindex(pd.DatetimeIndex(oof["date"])).fillna(-1).to_numpy(dtype="int64")
    names = list(rec.get("names") or regimes.state_names(rec["n_states"]))
    out = {k: v for k, v in rec.items() if k not in ("scores", "backtest")}
    out["scores"] = regimes.regime_scores(task, y_oof, pred, state[pos], names).to_dict("records")
    if bt is not None:
        series = pd.Series(state[pos], index=pd.DatetimeIndex(oof["date"]))
        out["backtest"] = regimes.backtest_by_regime(bt.daily, series, names)[0].to_dict("records")
    return _Regimes(state, out)


def _oof(parts: list[dict], home) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """(first part's oof frame, each part's predictions on its rows); refused if the parts'
    out-of-fold days or outcomes differ."""
    frames = [registry.read_artifact(p["run_id"], "oof.parquet", home=home) for p in parts]
    base = frames[0]
    for p, f in zip(parts[1:], frames[1:], strict=True):
        same = len(f) == len(base) and (f["date"].to_numpy() == base["date"].to_numpy()).all()
        if not same:
            raise _differ(parts[0], p, "out-of-fold days", f"{len(base)} days", f"{len(f)} days")
        if not np.array_equal(f["y"].to_numpy(), base["y"].to_numpy(), equal_nan=True):
            raise _differ(parts[0], p, "out-of-fold outcomes", "y", "another y")
    task = parts[0]["task"]
    if task == "binary":
        preds = [f["prob"].to_numpy(dtype="float64") for f in frames]
    elif task == "regression":
        preds = [f["pred"].to_numpy(dtype="float64") for f in frames]
    else:
        cols = [f"prob_{c}" for c in parts[0]["classes"]]
        preds = [f[cols].to_numpy(dtype="float64") for f in frames]
    return base, preds


def _dataset(parts: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """The first part's dataset with the other parts' feature columns added (same days)."""
    from ml.runner import SESSION_COLUMNS

    data = pd.read_parquet(Path(parts[0]["path"]) / "dataset.parquet")
    names = list(parts[0]["feature_names"])
    for p in parts[1:]:
        more = [c for c in p["feature_names"] if c not in names]
        if more:
            other = pd.read_parquet(Path(p["path"]) / "dataset.parquet", columns=more)
            data = data.join(other.reindex(data.index))
            names += more
    return data[[*names, "y", *SESSION_COLUMNS]], names


# ---------------------------------------------------------------- the final model

class EnsembleModel:
    """The ensemble's final model: its parts' ``models`` (each predicting from its own
    feature columns, ``meta["parts"][i]["feature_names"]``) combined by :func:`combine`.
    ``predict_proba`` (classification) / ``predict`` (regression) take a frame holding
    every part's feature columns. :meth:`load` reads a run folder's ``model/`` (ml.persist,
    SHA-256 checked); a bundle builds it around sandboxed parts (:mod:`ml.ensemble_bundle`)."""

    def __init__(self, models: list, meta: dict):
        self.models, self.meta, self.task = list(models), meta, meta["task"]
        if self.task != "regression":  # class indices, as the parts were fitted on
            classes = (meta["parts"][0].get("classes") if meta.get("parts") else None) or [0, 1]
            self.classes_ = np.asarray(classes)

    @classmethod
    def load(cls, folder: Path | str) -> EnsembleModel:
        folder = Path(folder)
        meta = json.loads((folder / ENSEMBLE_FILE).read_text())
        return cls([persist.load_model(folder / p["folder"], p) for p in meta["parts"]], meta)

    def part_predictions(self, X: pd.DataFrame) -> list[np.ndarray]:
        out = []
        for model, p in zip(self.models, self.meta["parts"], strict=True):
            rows = X[p["feature_names"]]
            if self.task == "regression":
                out.append(np.asarray(model.predict(rows), dtype="float64"))
            else:
                proba = np.asarray(model.predict_proba(rows), dtype="float64")
                out.append(proba[:, 1] if self.task == "binary" else proba)
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = combine(self.part_predictions(X), self.meta["method"], self.meta.get("stacker"))
        return np.column_stack([1.0 - p, p]) if self.task == "binary" else p

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        if self.task == "regression":
            return combine(self.part_predictions(X), "mean")
        return self.predict_proba(X).argmax(axis=1)


def load_final(folder: Path | str, final: dict) -> EnsembleModel:
    """The final model of an ensemble run (``folder``: its ``model/``), its ``ensemble.json``
    checked against the SHA-256 ``final`` (run.json's ``final_model``) records."""
    path = Path(folder) / ENSEMBLE_FILE
    if not path.is_file():
        raise NotFoundError(f"the ensemble has no {path.parent.name}/{ENSEMBLE_FILE}; make the ensemble again")
    if final.get("sha256") and persist.file_sha256(path) != final["sha256"]:
        raise AlmanacError(f"{path.parent.name}/{ENSEMBLE_FILE} does not match the SHA-256 recorded in run.json "
                           "(altered or damaged); make the ensemble again")
    return EnsembleModel.load(folder)


def _save_combined(parts: list[dict], method: str, stacker, task: str, folder: Path, which: str = "model") -> dict:
    """Copy each part's final model (``which`` "model") or last-fold model ("last_fold_model",
    recorded in its ``run.json["permutation"]``) into ``folder/part-<i>/`` and write
    ``ensemble.json``; returns its meta (as ``run.json["final_model"]``)."""
    folder.mkdir(parents=True)
    entries = []
    for i, p in enumerate(parts, start=1):
        fm = p["final_model"] if which == "model" else p["permutation"]["model"]
        src = Path(p["path"]) / which / fm["file"]
        if not src.is_file() or (fm.get("sha256") and persist.file_sha256(src) != fm["sha256"]):
            raise AlmanacError(f"run {p['run_id']}: {which}/{fm['file']} is missing or does not match the SHA-256 in "
                               "its run.json (altered or damaged); train it again")
        (folder / f"part-{i}").mkdir()
        shutil.copyfile(src, folder / f"part-{i}" / fm["file"])
        entries.append({"run_id": p["run_id"], "folder": f"part-{i}", "feature_names": list(p["feature_names"]),
                        **{k: fm.get(k) for k in ("kind", "file", "format", "sha256", "task", "classes")}})
    meta = {"format": ENSEMBLE_FORMAT, "method": method, "task": task, "parts": entries, "stacker": stacker,
            "weights": None if stacker else [1.0 / len(parts)] * len(parts),
            "rule": (("P(up) = 1 / (1 + exp(-(intercept + sum coef_i * logit(clip(p_i, 1e-6, 1 - 1e-6)))))"
                      if task == "binary" else "P(class) = softmax(coef @ [log(clip(p_part_class, 1e-6, 1)) part "
                      "after part] + intercept)") if stacker else "the mean of the parts' predictions")}
    text = json.dumps(meta, indent=1) + "\n"
    (folder / ENSEMBLE_FILE).write_text(text)
    return {"kind": "ensemble", "file": ENSEMBLE_FILE, "format": ENSEMBLE_FORMAT,
            "sha256": hashlib.sha256(text.encode()).hexdigest(), "task": task,
            "classes": parts[0]["final_model"].get("classes")}


def _last_fold(parts: list[dict], method: str, stack_record, task: str, tmp: Path) -> dict | None:
    """The last fold's ensemble (each part's last-fold model, combined as in that fold) saved in
    ``last_fold_model/`` for permutation importance on demand (:mod:`ml.explain`); the
    ``run.json["permutation"]`` record, or None if a part recorded no last-fold model."""
    from ml import runner

    infos = [p.get("permutation") for p in parts]
    if not all(isinstance(i, dict) and i.get("model") for i in infos) or \
            len({(i["test_start"], i["test_end"]) for i in infos}) != 1:
        return None
    last = (stack_record or [{}])[-1]
    st = {"coef": last["coef"], "intercept": last["intercept"]} if last.get("method") == "stack" else None
    meta = _save_combined(parts, method if st else "mean", st, task, tmp / runner.LAST_FOLD_MODEL,
                          which=runner.LAST_FOLD_MODEL)
    return {**infos[0], "model": meta, "folder": runner.LAST_FOLD_MODEL}


# ---------------------------------------------------------------- the run

def make_ensemble(run_ids: list[str], method: str = "mean", store: Store | None = None, name: str | None = None,
                  progress=None) -> dict:
    """Combine runs ``run_ids`` into a new registered run (see the module doc); returns its
    record plus ``"path"``. Every refusal is one line, before anything is written."""
    from ml import runner

    t0 = time.perf_counter()
    report = progress or (lambda f, s: None)
    store = store if store is not None else Store()
    home = store.home
    parts = check_request(run_ids, method, home)
    task = parts[0]["task"]
    oof, preds = _oof(parts, home)
    data, names = _dataset(parts)
    dates = pd.DatetimeIndex(oof["date"])
    pos = data.index.get_indexer(dates)
    if (pos < 0).any() or (np.diff(pos) <= 0).any():  # oof.parquet holds the dataset's tested rows, in order
        raise AlmanacError(f"run {parts[0]['run_id']}'s out-of-fold days are not its dataset's rows in order: "
                           "train it again")
    folds0 = parts[0]["folds"]
    fid_oof = oof["fold"].to_numpy(dtype="int64")
    y_oof = oof["y"].to_numpy()
    report(0.1, "combining")
    stack_record, stacker = None, None
    if method == "mean":
        pred = combine(preds, "mean")
    else:
        seed = int(parts[0].get("seed") or 0)
        pred, stack_record = stacked_oof(preds, y_oof, fid_oof, dates, folds0, seed=seed)
        ok = ~np.isnan(stack_inputs(preds)).any(axis=1)
        stacker = fit_stacker([p[ok] for p in preds], y_oof[ok], seed=seed)
    spec = spec_from_dict(parts[0]["spec"])
    created = datetime.now(timezone.utc)
    symbol = spec.data.symbol or spec.data.table
    run_id = registry.new_run_id(symbol, spec.label.kind, f"ensemble-{method}", created)
    return runner.build_run(home, run_id, lambda tmp: _write_run(
        parts, method, task, spec, data, names, oof, dates, fid_oof, y_oof, pred, stacker, stack_record, store,
        run_id, created, tmp, name, report, t0), report)


def _write_run(parts, method, task, spec, data, names, oof, dates, fid_oof, y_oof, pred, stacker, stack_record,
               store, run_id, created, tmp, name, report, t0) -> dict:  # noqa: PLR0913
    from ml import runner

    classes = parts[0].get("classes")
    pos = data.index.get_indexer(dates)  # increasing (checked in make_ensemble)
    tested = np.zeros(len(data), dtype=bool)
    tested[pos] = True
    fid = np.full(len(data), -1, dtype="int64")
    fid[pos] = fid_oof
    report(0.3, "evaluation")
    ev = evaluation.evaluate(task, y_oof, pred, folds=fid_oof, threshold=0.5, classes=classes)
    if task == "multiclass":
        roll = pd.DataFrame({"date": [], "auc": []})
    else:
        up = y_oof if task == "binary" else (y_oof > 0).astype("float64")
        roll = drift.rolling_auc(dates, up, pred, window=runner.ROLLING_WINDOW)
    bt, bt_record, bt_note = None, None, parts[0].get("backtest_note")
    base = {k: v for k, v in (parts[0].get("baselines") or {}).items() if k != "lift"}
    model_ret = base_ret = None
    if parts[0].get("backtest") is not None:
        report(0.5, "backtest")
        rows = data.iloc[pos]
        bt, bt_note = runner._backtest(spec, store, rows, pred, task)
        bt_record = {**bt.stats, "n_trials_at_training": bt.stats["n_trials"], "dsr_at_training": bt.stats["dsr"],
                     "params": bt.params}
        frame = runner.backtest_frame(rows, np.ones(len(rows)), "binary").drop(columns="prob")
        along = baselines.always_long(frame, spec.backtest.cost_bps)
        model_ret, base_ret = bt.daily["strategy_return"].to_numpy(), along.daily["strategy_return"].to_numpy()
    auc_y, auc_pred = (y_oof, pred) if task != "regression" else (None, None)
    base["lift"] = baselines.lift(spec.seed, model_ret, base_ret, auc_y, auc_pred)
    report(0.7, "final model")
    final_meta = _save_combined(parts, method, stacker, task, tmp / "model")
    permutation = _last_fold(parts, method, stack_record, task, tmp)
    report(0.9, "writing")
    per_fold = {r["fold"]: r for r in ev["per_fold"]}
    folds = [{**{k: f[k] for k in ("fold", *DATES, "n_train", "n_test")},
              **{k: v for k, v in per_fold.get(f["fold"], {}).items() if k != "fold"}} for f in parts[0]["folds"]]
    empty = pd.DataFrame({"date": pd.DatetimeIndex([]), "fold": np.array([], dtype="int64"),
                          **{n: np.array([], dtype="float64") for n in names}})
    psi = {}
    for p in parts:
        try:
            for k, v in (registry.read_artifact(p["run_id"], "drift.json", home=store.home).get("psi") or {}).items():
                psi.setdefault(k, {}).update(v)
        except NotFoundError:
            pass
    regs = _regimes(parts[0], oof, len(data), pos, task, y_oof, pred, bt, store.home)
    f = {"shap": empty, "shap_base": empty[["date", "fold"]].assign(base_value=np.array([], dtype="float64")),
         "psi": psi, "regimes": regs}
    importance = pd.DataFrame({"feature": names, "mean_abs_shap": np.nan})
    runner._write_artifacts(tmp, spec, data, names, task, classes, fid, tested, pred, f, ev, roll, importance, bt,
                            folds)
    lineage, notes = {}, []
    for p in parts:
        lineage.update({k: v for k, v in (p.get("lineage") or {}).items() if k not in lineage})
        notes += [n for n in p.get("notes") or [] if n not in notes]
    first = ("" if method == "mean" else
             "; the first fold has no earlier out-of-fold day to fit a stacker on, so it (and any fold with fewer "
             f"than {MIN_STACK_ROWS} such days or missing a class) uses the mean of the parts")
    ens = {"method": method, "stacker": stacker, "folds": stack_record, "note": (
        "equal-weight mean of the parts' out-of-fold predictions" if method == "mean" else
        "logistic stacker on the logit of each part's P(up) (classes: multinomial, on the log of each part's "
        "class probabilities), fitted per fold on out-of-fold days inside that fold's training window only"
        + first + "; the final stacker is fitted on every out-of-fold day"),
        "parts": [{"run_id": p["run_id"], "name": p.get("name"), "model": (p["spec"].get("model") or {}).get("kind"),
                   "metrics": p.get("metrics"), "feature_names": p["feature_names"]} for p in parts]}
    spec_dict = spec.to_dict()
    sets, cross = [], []
    for p in parts:  # the features of every part: what /signal and serving build for a day
        feats = p["spec"].get("features") or {}
        sets += [x for x in feats.get("sets") or [] if x not in sets]
        cross += [x for x in feats.get("cross_assets") or [] if x not in cross]
    spec_dict["features"] = {**spec_dict["features"], "sets": sets, "cross_assets": cross}
    spec_dict["model"] = {"kind": "ensemble", "params": {"method": method, "parts": [p["run_id"] for p in parts]}}
    spec_dict["name"] = name or f"ensemble-{method} of {', '.join(p.get('name') or p['run_id'] for p in parts)}"[:100]
    record = {
        "run_id": run_id, "name": spec_dict["name"], "created_at": created.isoformat(timespec="milliseconds"),
        "status": "complete", "kind": "ensemble", "spec": spec_dict, "seed": spec.seed,
        "data_hashes": parts[0].get("data_hashes"), **runner._provenance(),  # versions, code revision
        "task": task, "classes": classes, "label": parts[0].get("label"),
        "feature_names": names, "dropped_features": [], "lineage": lineage, "notes": notes,
        "warnings": runner._warnings(data, task, classes, [], folds, bt),
        "n_rows": int(len(data)),
        "date_range": {"start": runner._iso(data.index[0]), "end": runner._iso(data.index[-1])},
        "n_oof": int(tested.sum()), "metrics": ev["pooled"], "folds": folds,
        "backtest": bt_record, "backtest_note": bt_note, "baselines": base,
        "shap_output": None, "shap": {"rows_per_fold": 0, "rows": 0, "seed": int(spec.seed)},
        "importance_note": (
            "no SHAP values for an ensemble (see its parts' runs); " + (
                f"permutation importance: the last fold's ensemble (each part's last-fold model, combined as in that "
                f"fold) on the last fold's {permutation['rows']} test rows ({permutation['test_start']} .. "
                f"{permutation['test_end']}), {permutation['repeats']} shuffles per feature, computed on demand"
                if permutation else "no permutation importance (a part recorded no last-fold model)")),
        "permutation": permutation, "rolling_auc_window": runner.ROLLING_WINDOW if task != "multiclass" else None,
        "timings": {"total": time.perf_counter() - t0}, "ensemble": ens,
        "regimes": regs.record if regs is not None else None,
        "final_model": {**final_meta, "n_rows": int(len(data))},
    }
    record = runner._json_safe(record)
    runner._write_json(tmp / "run.json", record)
    return record


__all__ = ["EnsembleModel", "METHODS", "MIN_STACK_ROWS", "check_compatible", "check_request", "combine",
           "fit_stacker", "load_final", "load_parts", "make_ensemble", "stack_inputs", "stacked_oof", "stacker_rows"]
