"""Multi-head runs: several labels ("heads") on ONE feature table and ONE fold split.

A multi-head spec (:mod:`almanac.multihead`) becomes:

* one ordinary run per head (:func:`ml.runner.run_experiment` of the head's single-head
  spec), so /evaluate, /backtest, export, the report and the trial count work unchanged for
  each head; each head's ``run.json["multihead"]`` = ``{"id", "name", "head"}`` points back;
* one shared feature build (the first head builds the feature table, the others read the
  same table from the feature cache: the heads share data, features and cutoff);
* one fold split: the walk-forward folds are cut on the *shared days* (every day on which
  at least one head has a label; :func:`shared_days`) and each head's rows keep the fold of
  their date (:func:`ml.splits.split_on_days`), so every head has the same fold boundaries
  and a head whose label is missing on a day simply has no row there, inside the same folds;
* the parent record ``$ALMANAC_HOME/multihead/<id>/multihead.json`` (and its normalized
  ``spec.yaml``, which ``train --config`` reruns): the heads side by side
  (:func:`heads_table`), the shared folds and, when the spec has ``backtest.signal`` and
  ``backtest.gate``, the gated backtest (``gated_backtest.parquet``, ``gated_trades.parquet``).

The gated signal (:func:`gated_signal`): on each out-of-fold day, the signal head's signal
(binary: P(up), traded with the spec's threshold; regression: the sign of the predicted
return) when the gate head's out-of-fold P(class 1) >= ``gate.min_proba``, else no signal
(flat). A day the gate head did not predict (its label was missing) is flat. The gated
signal is backtested by :func:`ml.backtester.backtest` with the spec's threshold, costs and
long_only, from the cutoff to the close like any run's.

Trials: each head is a trial of its own symbol and label (an ordinary registered run). The
gated strategy is one more strategy on the signal head's symbol and label: its DSR counts
every trial on them plus itself, and :func:`ml.trials.trial_sharpes` counts it into every
later DSR on that symbol and label (:func:`ml.trials.gated_trials`).

A refusal (bad spec, data the heads need) happens before any head runs; if a head fails
later (timeout, cancel, error), the heads already registered are deleted, so a multi-head
run is registered whole or not at all.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from almanac import registry
from almanac.errors import AlmanacError, NotFoundError
from almanac.multihead import MultiHeadSpec, experiment_from_dict, load_experiment
from almanac.settings import get_settings
from almanac.spec import validate_against_store
from almanac.store import Store
from ml.trials import MULTIHEAD_DIR, MULTIHEAD_RECORD as RECORD

Progress = Callable[[float, str], None]
#: The headline score of a head, per task: (run.json metrics key, label).
HEADLINE = {"binary": ("roc_auc", "ROC AUC"), "multiclass": ("roc_auc", "ROC AUC (macro)"),
            "regression": ("ic", "IC (Spearman)")}


def multihead_dir(home: Path | str | None = None) -> Path:
    return (Path(home).resolve() if home is not None else get_settings().home) / MULTIHEAD_DIR


def _as_multihead(spec) -> MultiHeadSpec:
    if isinstance(spec, (str, Path)):
        spec = load_experiment(spec)
    spec = experiment_from_dict(spec)
    if not isinstance(spec, MultiHeadSpec):
        raise AlmanacError("this spec has one label: train it with run_experiment (a multi-head spec lists heads:)")
    return spec


def shared_days(spec: MultiHeadSpec, store: Store, progress: Progress | None = None) -> pd.DatetimeIndex:
    """Every day of the feature table on which at least one head has a label (sorted): the days
    the heads' walk-forward folds are cut on. Builds the features once (they are cached)."""
    from features import build_features
    from ml.labelers import section_label

    f = spec.features
    ft = build_features(spec.data.symbol, cutoff=f.cutoff, sets=f.sets, cross_assets=f.cross_assets,
                        start=spec.data.start, end=spec.data.end, store=store,
                        progress=(lambda x, s: progress(x, f"features: {s}")) if progress else None)
    sessions = ft.sessions.reset_index()
    labelled = np.zeros(len(ft.frame), dtype=bool)
    for head in spec.heads.values():
        y = section_label(head.label, spec.data.symbol, f.cutoff, spec.data.end, sessions, store)[head.label.kind]
        labelled |= y.reindex(ft.frame.index).notna().to_numpy()
    return pd.DatetimeIndex(ft.frame.index[labelled]).rename("date")


def shared_folds(spec: MultiHeadSpec, days: pd.DatetimeIndex) -> list[dict]:
    """The fold boundaries on the shared days (train/test first and last day, numbered from 0)."""
    from ml.splits import WalkForwardSplit, fold_table

    v = spec.validation
    splitter = WalkForwardSplit(n_splits=v.n_splits, scheme=v.scheme, gap=v.gap, min_train=v.min_train,
                                train_size=v.train_size)
    table = fold_table(days, splitter.split(np.arange(len(days))))
    out = []
    for row in table.to_dict("records"):
        out.append({**row, **{c: f"{row[c]:%Y-%m-%d}" for c in ("train_start", "train_end", "test_start",
                                                                   "test_end")}})
    return out


def gated_signal(signal_pred: np.ndarray, task: str, gate_prob: np.ndarray, min_proba: float) -> np.ndarray:
    """The backtest's ``prob`` of the gated signal: the signal head's (binary: P(up);
    regression: 1 for a positive, 0 for a negative predicted return, NaN for 0) where the gate
    head's P(class 1) >= ``min_proba``, NaN (no position) elsewhere, a NaN gate included."""
    pred = np.asarray(signal_pred, dtype="float64")
    base = pred if task == "binary" else np.where(pred > 0, 1.0, np.where(pred < 0, 0.0, np.nan))
    gate = np.asarray(gate_prob, dtype="float64")
    open_ = np.greater_equal(gate, float(min_proba) - 1e-12, where=~np.isnan(gate), out=np.zeros(len(gate), bool))
    return np.where(open_, base, np.nan)


def _oof(run_id: str, home) -> pd.DataFrame:
    return registry.read_artifact(run_id, "oof.parquet", home=home).set_index("date")


def gated_backtest(spec: MultiHeadSpec, runs: dict[str, dict], home, trials: list[float] | None = None):
    """(BacktestResult, record) of the gated signal over the signal head's out-of-fold days."""
    from ml.backtester import backtest
    from ml.runner import backtest_frame
    from ml.trials import trial_sharpes

    bt = spec.backtest
    sig_run, gate_run = runs[bt.signal], runs[bt.gate.head]
    task = sig_run["task"]
    sig = _oof(sig_run["run_id"], home)
    rows = registry.read_artifact(sig_run["run_id"], "dataset.parquet", home=home).loc[sig.index]
    pred = sig["prob" if task == "binary" else "pred"].to_numpy(dtype="float64")
    gate = _oof(gate_run["run_id"], home)["prob"].reindex(sig.index).to_numpy(dtype="float64")
    frame = backtest_frame(rows, pred, task)  # NaN prob where the day cannot be traded
    prob = gated_signal(pred, task, gate, bt.gate.min_proba)
    frame["prob"] = np.where(frame["prob"].notna().to_numpy(), prob, np.nan)
    kw = dict(threshold=bt.threshold, cost_bps=bt.cost_bps, long_only=bt.long_only)
    own = backtest(frame, **kw).stats["sharpe"]
    label = spec.heads[bt.signal].label.kind
    if trials is None:
        trials = trial_sharpes(spec.data.symbol, label, home=home)
    result = backtest(frame, trial_sharpes=[*trials, own], **kw)
    rule = ("the sign of the predicted return" if task == "regression" else
            f"long when P(up) >= {bt.threshold}" + ("" if bt.long_only else f", short when P(up) <= "
                                                                              f"{1 - bt.threshold:.2f}"))
    open_days = int(np.sum(~np.isnan(prob)))
    record = {**result.stats, "params": result.params, "signal": bt.signal, "gate": bt.gate.model_dump(),
              "label": label, "days_gate_open": open_days, "days": int(len(frame)),
              "note": (f"head {bt.signal}'s out-of-fold signal ({rule}) traded from the cutoff to the close only on "
                       f"days when head {bt.gate.head}'s P({spec.heads[bt.gate.head].label.kind}=1) >= "
                       f"{bt.gate.min_proba} ({open_days} of {len(frame)} days), flat otherwise; its DSR counts "
                       f"every trial on {spec.data.symbol} / {label} and itself ({len(trials) + 1})")}
    return result, record


def current_gated(record: dict, home: Path | str | None = None) -> dict | None:
    """The parent's ``gated_backtest`` with ``n_trials`` / ``dsr`` as they are NOW (every trial on
    the symbol and the signal head's label, :func:`ml.trials.deflated`, as for a run) and the
    values frozen at training as ``n_trials_at_training`` / ``dsr_at_training``."""
    from ml.trials import deflated

    g = record.get("gated_backtest")
    if not isinstance(g, dict):
        return g
    as_run = {"spec": {"data": {"symbol": record.get("symbol")}, "label": {"kind": g.get("label")}}, "backtest": g}
    return {**g, "n_trials_at_training": g.get("n_trials_at_training", g.get("n_trials")),
            "dsr_at_training": g.get("dsr_at_training", g.get("dsr")), **deflated(as_run, home)}


def head_summary(run: dict) -> dict:
    """One row of the side-by-side table, from a head's run record."""
    task = run.get("task")
    key, name = HEADLINE.get(task, ("roc_auc", "ROC AUC"))
    m = run.get("metrics") or {}
    base = run.get("baselines") or {}
    bt = run.get("backtest") or {}
    maj = ((base.get("majority") or {}).get("metrics") or {})
    along = ((base.get("always_long") or {}).get("stats") or {})
    return {"run_id": run["run_id"], "label": (run.get("label") or {}).get("kind"), "task": task,
            "model": ((run.get("spec") or {}).get("model") or {}).get("kind"), "n_oof": run.get("n_oof"),
            "metric": key, "metric_name": name, "value": m.get(key),
            "no_skill": 0.5 if key == "roc_auc" else 0.0,
            "accuracy": m.get("accuracy"), "majority_accuracy": maj.get("accuracy"),
            "sharpe": bt.get("sharpe"), "always_long_sharpe": along.get("sharpe")}


def heads_table(record: dict) -> pd.DataFrame:
    """The heads side by side (one row per head, in the spec's order)."""
    rows = [{"head": name, **h["summary"]} for name, h in record["heads"].items()]
    return pd.DataFrame(rows)


def _write(folder: Path, record: dict, result) -> None:
    tmp = folder.with_name(f".tmp-{folder.name}")
    tmp.mkdir(parents=True)
    try:
        if result is not None:
            result.daily.to_parquet(tmp / "gated_backtest.parquet", index=False, compression="zstd")
            result.trades.to_parquet(tmp / "gated_trades.parquet", index=False, compression="zstd")
        from ml.runner import _json_safe

        (tmp / "spec.yaml").write_text(yaml.safe_dump(record["spec"], sort_keys=False, default_flow_style=None,
                                                       width=100))  # `train --config` reruns it
        (tmp / RECORD).write_text(json.dumps(_json_safe(record), indent=1, allow_nan=False) + "\n")
        for p in tmp.iterdir():
            fd = os.open(p, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
        os.rename(tmp, folder)  # the parent appears complete or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_heads(spec: MultiHeadSpec, store: Store | None = None) -> dict:
    """The runner's checks for every head, in its order (gap vs the label horizon, the model's
    parameters by the library's rules, the data the head needs), before any work; a refusal
    names the head's field (``spec field heads.up.label.kind: ...``). Returns {name: head spec}."""
    from ml.labelers import check_label_days, label_spec
    from ml.models import check_params
    from ml.splits import check_gap

    out = {}
    for name in spec.heads:
        s = out[name] = spec.head_spec(name)
        try:
            lab = label_spec(s.label.kind, s.label.params())  # binary first_touch: its task from classes
            check_gap(s.validation.gap, lab.horizon_days)
            check_params(s.model.kind, lab.task, s.model.params, seed=s.seed)
            validate_against_store(s, store)
            check_label_days(s, store)  # a path label's days, before any feature is built
        except AlmanacError as exc:
            own = ("label", "model") if spec.heads[name].model is not None else ("label",)
            msg = exc.message
            for section in own:
                msg = msg.replace(f"spec field {section}.", f"spec field heads.{name}.{section}.")
            if msg != exc.message:
                raise type(exc)(msg) from None
            raise
    return out


def run_multihead(spec, store: Store | None = None, progress: Progress | None = None,
                  heads: dict | None = None) -> dict:
    """Run a multi-head spec (a MultiHeadSpec, a dict or a YAML path); see the module doc.

    ``heads``: what :func:`check_heads` just returned for this spec and store (``almanac
    train`` checks before its heavy imports): not checked again. Each head's run skips the
    store check check_heads made (it reads every bar's time). Returns the parent record
    (``multihead.json``) plus ``"path"``."""
    from ml.runner import run_experiment
    from ml.threads import limit_threads

    t0 = time.perf_counter()
    spec = _as_multihead(spec)
    store = store if store is not None else Store()
    report: Progress = progress or (lambda f, s: None)
    limit_threads()
    if heads is None:
        heads = check_heads(spec, store)  # every head's checks before any work: a refusal writes nothing
    created = datetime.now(timezone.utc)
    mid = f"{created:%Y%m%d-%H%M%S}-{registry._slug(spec.name)}-{uuid.uuid4().hex[:6]}"
    report(0.0, f"started multi-head {mid}")
    days = shared_days(spec, store, lambda f, s: report(0.05 * f, s))
    n = len(heads)
    runs: dict[str, dict] = {}
    try:
        for i, (name, s) in enumerate(heads.items()):
            lo = 0.05 + 0.9 * i / n

            def prog(f, stage, lo=lo, name=name):
                report(lo + 0.9 * f / n, f"head {name}: {stage}")

            runs[name] = run_experiment(s, store=store, progress=prog, split_days=days, store_checked=True,
                                        extra={"multihead": {"id": mid, "name": spec.name, "head": name}})
        report(0.96, "gated backtest")
        result, gated = (gated_backtest(spec, runs, store.home) if spec.backtest.signal is not None
                         else (None, None))
        record = {
            "multihead_id": mid, "name": spec.name, "created_at": created.isoformat(timespec="milliseconds"),
            "status": "complete", "spec": spec.to_dict(), "symbol": spec.data.symbol,
            "shared_days": {"n": int(len(days)), "start": f"{days[0]:%Y-%m-%d}", "end": f"{days[-1]:%Y-%m-%d}"},
            "folds": shared_folds(spec, days),
            "heads": {name: {"run_id": r["run_id"], "label": r["label"]["kind"], "task": r["task"],
                             "metrics": r["metrics"], "baselines": r["baselines"], "backtest": r["backtest"],
                             "n_rows": r["n_rows"], "n_oof": r["n_oof"], "summary": head_summary(r)}
                      for name, r in runs.items()},
            "gated_backtest": gated,
            "trials_note": ("each head is a registered run and a trial of its own symbol and label; the gated "
                            "strategy is counted as one more trial of the signal head's label"),
            "timings": {"total": time.perf_counter() - t0},
        }
        root = multihead_dir(store.home)
        root.mkdir(parents=True, exist_ok=True)
        _write(root / mid, record, result)
    except BaseException:
        for r in runs.values():  # registered whole or not at all
            try:
                registry.delete_run(r["run_id"], home=store.home)
            except AlmanacError:
                pass
        raise
    report(1.0, "done")
    return {**record, "path": str(multihead_dir(store.home) / mid)}


def get_multihead(mid: str, home: Path | str | None = None) -> dict:
    """The parent record of multi-head run ``mid``; NotFoundError if there is none."""
    mid = registry.check_run_id(mid)
    path = multihead_dir(home) / mid / RECORD
    if not path.is_file():
        raise NotFoundError(f"no multi-head run {mid} in {multihead_dir(home)}: train one with `python -m almanac "
                            "train --config SPEC.yaml` (a spec with heads:)")
    try:
        return {**json.loads(path.read_text()), "path": str(path.parent)}
    except (OSError, ValueError) as exc:
        raise AlmanacError(f"multi-head run {mid} cannot be read ({type(exc).__name__}): delete its folder "
                           f"{path.parent}") from None


def list_multiheads(home: Path | str | None = None) -> list[dict]:
    """``[{multihead_id, name, created_at, heads: {name: run_id}}]`` of the complete multi-head
    runs, newest first (an unreadable record is skipped)."""
    root = multihead_dir(home)
    out = []
    for path in root.glob(f"[!.]*/{RECORD}") if root.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
            out.append({"multihead_id": rec["multihead_id"], "name": rec.get("name"),
                        "created_at": rec.get("created_at"),
                        "heads": {n: h.get("run_id") for n, h in rec["heads"].items()}})
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return sorted(out, key=lambda r: (str(r["created_at"]), r["multihead_id"]), reverse=True)


def read_gated_backtest(mid: str, home: Path | str | None = None) -> pd.DataFrame | None:
    path = multihead_dir(home) / registry.check_run_id(mid) / "gated_backtest.parquet"
    return pd.read_parquet(path) if path.is_file() else None


__all__ = ["run_multihead", "check_heads", "current_gated", "shared_days", "shared_folds", "gated_signal", "gated_backtest", "heads_table",
           "head_summary", "get_multihead", "list_multiheads", "read_gated_backtest", "multihead_dir", "HEADLINE"]
