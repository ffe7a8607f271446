"""What the run report says (its numbers, tables and notes) and the model card (Markdown).

:func:`report_data` gathers everything the HTML run report shows from a finished run's
folder: the record's metrics, folds and backtest statistics formatted for display (with
:func:`fmt` and the labels of :data:`STAT_ROWS` / :data:`METRIC_NAMES`, the same as the
model card's and the backtest page's), and the plain data behind each figure. The
evaluation figures are recomputed from the run's out-of-fold predictions
(``oof.parquet``) with :mod:`ml.evaluation`, the same functions the runner uses, so they
hold exactly the run's numbers at the report's threshold; monthly returns come from
:func:`ml.backtester.monthly_returns`.

The report shows the backtest at the trading rules it is asked for (threshold, long only,
cost in bp per side: the settings on /backtest), by default the run's recorded ones, and
says which (``settings``). The backtest is replayed from the stored out-of-fold
predictions (:mod:`ml.replay`, nothing refitted); its DSR and trial count are those of
:mod:`ml.trials`, so at the recorded settings they are ``ml.trials.deflated(run)``, the
numbers of ``runs show --json`` and /models. Beside the model: the run's warnings, the
always-long baseline on the same days at the same cost, the prior-day baseline and the
lift recorded at training (``run["baselines"]``, absent from older runs); the factor
exposure of the model and of always long (:mod:`ml.factors`: Fama–French alpha, betas and
Newey–West t-statistics of the monthly returns, the months outside the factor data named).

The HTML itself (layout, CSS, figures, plotly.js inlined once) is :func:`viz.report.render_report`,
which takes that data; whoever writes or serves the report composes the two
(``almanac report`` in :mod:`cli.experiments`, the download on ``/backtest``).
This module never imports :mod:`viz` (docs/design.md §2: ``ml → features, almanac``).

:func:`model_card` is the README.md of a model bundle (see :mod:`ml.export`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from ml import evaluation, factors, replay
from ml.backtester import monthly_returns
from ml.modelcard import METRIC_NAMES, STAT_ROWS, _metric_rows, _stats, fmt, stat_columns
from ml.runinfo import label_kind, label_unit, spec_value, trading_rules, untraded
from ml.trials import deflated



# ---------------------------------------------------------------- formatting







# ---------------------------------------------------------------- model card





# ---------------------------------------------------------------- report data

def _read_parquet(run_dir: Path, name: str) -> pd.DataFrame | None:
    path = run_dir / name
    return pd.read_parquet(path) if path.is_file() else None


def _evaluation_data(run: dict, oof: pd.DataFrame | None, threshold: float) -> dict | None:
    """What the classification / prediction figures show, by ``kind`` (the task); None
    without out-of-fold predictions."""
    task = run.get("task")
    metrics = run.get("metrics") or {}
    if oof is None or oof.empty:
        return None
    classes = [str(c) for c in (run.get("classes") or [])]
    y = oof["y"].to_numpy(dtype="float64")
    if task == "binary":
        p = oof["prob"].to_numpy(dtype="float64")
        ok = np.isfinite(y) & np.isfinite(p)
        y, p = y[ok], p[ok]
        grid = evaluation.threshold_grid(y, p, [threshold]).iloc[0]
        roc = evaluation.roc_table(y, p)
        return {"kind": "binary", "classes": classes or ["0", "1"], "threshold": threshold,
                "cm": [[int(grid.tn), int(grid.fp)], [int(grid.fn), int(grid.tp)]],
                "fpr": roc["fpr"], "tpr": roc["tpr"], "roc_auc": metrics.get("roc_auc"),
                "reliability": evaluation.reliability_curve(y, p),
                "brier": metrics.get("brier"), "ece": metrics.get("ece")}
    if task == "multiclass":
        cols = [c for c in oof.columns if c.startswith("prob_")]
        proba = oof[cols].to_numpy(dtype="float64")
        ok = np.isfinite(y) & np.isfinite(proba).all(axis=1)
        from sklearn.metrics import confusion_matrix

        cm = confusion_matrix(y[ok].astype(int), proba[ok].argmax(axis=1), labels=range(len(cols)))
        names = classes if len(classes) == len(cols) else [c[5:] for c in cols]
        return {"kind": "multiclass", "classes": names, "cm": cm}
    return {"kind": "regression", "pred": oof["pred"].to_numpy(dtype="float64"), "y": y,
            "ic": metrics.get("ic"), "r2": metrics.get("r2"), "unit": label_unit(run)}


def shap_sample_note(run: dict) -> str | None:
    """"SHAP on at most N sampled days per fold (M days, seed S)" for a run whose SHAP values
    cover a seeded sample of each fold's test days (``run.json["shap"]["rows_per_fold"]``
    set; :mod:`ml.runner`), else None (all out-of-fold days, as in runs before the sample)."""
    info = run.get("shap") or {}
    if info.get("rows_per_fold") is None:
        return None
    return (f"SHAP on at most {info['rows_per_fold']} sampled days per fold ({info.get('rows')} days, "
            f"seed {info.get('seed')}); mean |SHAP| over those days.")


def _shap_data(run_dir: Path, names: list[str]) -> dict | None:
    """The out-of-fold SHAP values: ``summary`` (SHAP frame and the days' feature values,
    row for row: binary / regression) or, for multiclass runs (one block of rows per
    class), ``bar`` with mean |SHAP| summed over the classes; None without them."""
    shap = _read_parquet(run_dir, "shap.parquet")
    data = _read_parquet(run_dir, "dataset.parquet")
    if shap is None or data is None or shap.empty:
        return None
    feats = [c for c in names if c in shap.columns]
    if "class" in shap.columns:
        return {"kind": "bar", "mean_abs": shap[feats].abs().groupby(shap["class"]).mean().sum()}
    if "date" not in data.columns:
        data = data.reset_index()
    feats = [c for c in feats if c in data.columns]
    values = data.drop_duplicates("date").set_index("date")
    rows = pd.to_datetime(shap["date"]) if "date" in shap.columns else shap.index
    fv = values.reindex(pd.DatetimeIndex(rows))[feats].reset_index(drop=True)
    return {"kind": "summary", "shap": shap[feats].reset_index(drop=True), "values": fv}


def _replayed(run_dir: Path, run: dict, rules: dict):
    """(model result, always-long result) at ``rules``, or (None, None) when the run's
    folder lacks what a replay needs (then the stored ``backtest.parquet`` is shown)."""
    if not ((run_dir / "oof.parquet").is_file() and (run_dir / "dataset.parquet").is_file()):
        return None, None
    frame = replay.backtest_frame({**run, "path": str(run_dir)})
    result = replay.replay(run, rules["threshold"], rules["cost_bps"], rules["long_only"], frame=frame)
    return result, replay.always_long(frame, result.params["cost_bps"])


def _factor_data(daily: pd.DataFrame, long_daily: pd.DataFrame | None) -> dict:
    """The factor table (:func:`ml.factors.display_table`: header, rows, notes) of the model's
    monthly returns and always long's, and their exposures ([(name, exposure)]) for the chart."""
    columns = [("Model", factors.daily_exposure(daily))]
    if long_daily is not None:
        columns.append(("Always long", factors.daily_exposure(long_daily)))
    header, rows, notes = factors.display_table(columns)
    return {"header": header, "rows": rows, "notes": notes, "columns": columns}


def _backtest_data(run_dir: Path, run: dict, rules: dict) -> dict:
    """The daily series (model and always long), monthly returns, statistics columns (model,
    always long, prior day), lift and notes at ``rules``; ``daily`` None (and the note
    saying why) when the run has no backtest."""
    if run.get("task") == "multiclass" or not isinstance(run.get("backtest"), dict):
        return {"daily": None, "note": "No backtest in this run"
                + (f": {run['backtest_note']}." if run.get("backtest_note") else ".")}
    result, long_run = _replayed(run_dir, run, rules)
    if result is not None:
        daily, stats, long_daily, long_stats = result.daily, result.stats, long_run.daily, long_run.stats
    else:
        daily = _read_parquet(run_dir, "backtest.parquet")
        if daily is None or daily.empty:
            return {"daily": None, "note": "No backtest in this run."}
        stats = {**_stats(run), **{k: v for k, v in deflated(run).items() if v is not None}}
        long_daily, long_stats = None, None
    baselines = replay.recorded_baselines(run)
    prior = (baselines.get("prior_day") or {}).get("stats")
    columns = [("Model", stats)] + ([("Always long", long_stats)] if long_stats is not None else []) \
        + ([("Prior day (at training)", prior)] if isinstance(prior, dict) else [])
    header, rows = stat_columns(columns, replay.lift(run, rules, stats, long_stats))
    recorded_lift = (baselines.get("lift") or {}).get("sharpe")
    t = float(rules["threshold"])
    rule = ("position = sign of the predicted return (threshold not used)" if run.get("task") == "regression"
            else f"threshold {t:.2f}, " + ("long only" if rules["long_only"] else "long and short"))
    return {
        "daily": daily, "baseline": long_daily, "monthly": monthly_returns(daily), "stats_obj": stats,
        "factors": _factor_data(daily, long_daily),
        "title": (f"Equity curve and drawdown · Sharpe {fmt(stats.get('sharpe'))} · "
                  f"DSR {fmt(stats.get('dsr'), 'pct')}"),
        "note": (f"Out-of-fold signals traded from the cutoff to the close: {rule}; costs "
                 f"{float(rules['cost_bps']):g} bp per side. Always long: long on every one of the same days "
                 "at the same cost."),
        "stats_header": header, "stats": rows,
        "stats_note": ("PSR: probability that the true Sharpe ratio exceeds 0, given the sample "
                       "length, skew and kurtosis. DSR: the same test against the Sharpe ratio the "
                       f"best of {fmt(stats.get('n_trials'), 'int')} trial(s) would reach by luck "
                       "(Bailey & López de Prado, 2014); the trials are every complete run on this symbol "
                       "and label in the registry when the report was written. Volatility: annualized std "
                       "of the daily returns; turnover: traded notional per year in multiples of the capital "
                       "(entry and exit each count); cost drag: return lost to costs per year."
                       + (" Lift: the model's Sharpe minus always long's, with a 95 % interval from a "
                          "stationary block bootstrap over days (recorded at training)."
                          if recorded_lift is not None else "")),
    }


def _settings(run: dict, rules: dict) -> dict:
    """The trading rules of the report and whether they are the run's recorded ones."""
    trained = trading_rules(run)
    same = replay.at_recorded(run, rules)
    text = (f"threshold {float(rules['threshold']):.2f}, {'long only' if rules['long_only'] else 'long and short'}, "
            f"{float(rules['cost_bps']):g} bp per side")
    trained_text = (f"threshold {float(trained['threshold']):.2f}, "
                    f"{'long only' if trained['long_only'] else 'long and short'}, "
                    f"{float(trained['cost_bps']):g} bp per side")
    return {**rules, "trained": trained, "at_recorded": same,
            "text": f"Report settings: {text}" + (" (the run's recorded settings)." if same
                                                 else f" (set on /backtest; the run was trained with {trained_text}).")}


def _metrics_note(run_dir: Path, run: dict) -> str:
    """Where the pooled accuracy's threshold differs from the trading threshold, say so."""
    if run.get("task") != "binary":
        return ""
    path = run_dir / "threshold_grid.json"
    used = None
    if path.is_file():
        try:
            used = json.loads(path.read_text()).get("threshold_used_for_metrics")
        except (ValueError, AttributeError):
            used = None
    return (f"Accuracy counts a day as called up when P(up) ≥ {float(used):.2f}; the "
            "confusion matrix below uses the backtest threshold.") if used is not None else ""


def _cards(run: dict, stats: dict | None) -> list[tuple[str, str]]:
    """Key numbers on top: the task's main scores, then the backtest's (if any)."""
    m = run.get("metrics") or {}
    keys = (("roc_auc", "ROC AUC", "num"), ("accuracy", "Accuracy", "pct"),
            ("r2", "R²", "num"), ("ic", "IC", "num"), ("hit_rate", "Hit rate", "pct"))
    items = [(label, fmt(m.get(k), kind)) for k, label, kind in keys if k in m]
    if stats:
        items += [("Sharpe", fmt(stats.get("sharpe"))), ("DSR", fmt(stats.get("dsr"), "pct")),
                  ("Max drawdown", fmt(stats.get("max_drawdown"), "pct")),
                  ("Trades", fmt(stats.get("trades"), "int")),
                  ("Win rate", fmt(stats.get("win_rate"), "pct"))]
    return items


def _folds_table(folds: list[dict]) -> dict | None:
    """Header, rows and numeric columns of the walk-forward fold table (folds numbered from
    1, as in every chart); None without folds."""
    if not folds:
        return None
    keys = [k for k in ("roc_auc", "accuracy", "log_loss", "brier", "r2", "ic", "rmse")
            if k in folds[0]]
    header = ["Fold", "Train", "Test", "Train days", "Test days"] + [METRIC_NAMES.get(k, k) for k in keys]
    rows = [[int(f.get("fold")) + 1, f"{str(f.get('train_start'))[:10]} → {str(f.get('train_end'))[:10]}",
             f"{str(f.get('test_start'))[:10]} → {str(f.get('test_end'))[:10]}",
             fmt(f.get("n_train"), "int"), fmt(f.get("n_test"), "int")]
            + [fmt(f.get(k), "pct" if k == "accuracy" else "num") for k in keys] for f in folds]
    return {"header": header, "rows": rows, "numeric": set(range(3, len(header)))}


def _fold_scores(folds: list[dict]) -> dict | None:
    """The per-fold score to chart (ROC AUC, else R²) and its no-skill baseline."""
    metric = "roc_auc" if folds and "roc_auc" in folds[0] else "r2" if folds and "r2" in folds[0] else None
    if metric is None:
        return None
    return {"folds": pd.DataFrame(folds), "metric": metric,
            "baseline": 0.5 if metric == "roc_auc" else 0.0, "label": METRIC_NAMES.get(metric)}


def _spec_yaml(run_dir: Path, run: dict) -> str:
    path = run_dir / "spec.yaml"
    if path.is_file():
        return path.read_text()
    import yaml

    return yaml.safe_dump(run.get("spec") or {}, sort_keys=False)


def _deciles(run_dir: Path, run: dict) -> pd.DataFrame | None:
    """A regression run's mean realized return per predicted decile (None otherwise)."""
    oof = _read_parquet(run_dir, "oof.parquet")
    if run.get("task") != "regression" or untraded(run) or oof is None or "pred" not in oof.columns:
        return None  # a label that is not a return (time_to_touch, max_excursion) has no return deciles
    return replay.decile_returns(oof["pred"], oof["y"])


def report_data(run: dict, threshold: float | None = None, cost_bps: float | None = None,
                long_only: bool | None = None) -> dict:
    """Everything the report of run record ``run`` (run.json plus ``path``) shows, as plain
    data for :func:`viz.report.render_report`: display strings for the header, cards,
    tables and notes; arrays and frames for the figures (see that function for the keys).
    ``threshold`` / ``cost_bps`` (bp per side) / ``long_only``: the trading rules of the
    backtest and of the confusion matrix, each by default the run's recorded one; the
    report records them (``settings``)."""
    run_dir = Path(run["path"])
    rules = replay.settings(run, threshold, cost_bps, long_only)
    run_id = run.get("run_id", run_dir.name)
    folds = run.get("folds") or []
    bt = _backtest_data(run_dir, run, rules)
    stats = bt.pop("stats_obj", None)
    return {
        "run_id": run_id,
        "title": run.get("name") or run_id,
        "symbol": spec_value(run, "data", "symbol", "?"),
        "label": label_kind(run),
        "model": spec_value(run, "model", "kind", (run.get("final_model") or {}).get("kind", "?")),
        "created_at": run.get("created_at"),
        "task": run.get("task"),
        "threshold": float(rules["threshold"]),
        "settings": _settings(run, rules),
        "warnings": replay.warnings_of(run),
        "cards": _cards(run, stats),
        "folds_table": _folds_table(folds),
        "fold_scores": _fold_scores(folds),
        "metrics": [list(r) for r in _metric_rows(run.get("metrics"))],
        "metrics_note": _metrics_note(run_dir, run),
        "evaluation": _evaluation_data(run, _read_parquet(run_dir, "oof.parquet"),
                                       float(rules["threshold"])),
        "shap": _shap_data(run_dir, list(run.get("feature_names") or [])),
        "shap_note": shap_sample_note(run),
        "backtest": bt,
        "deciles": _deciles(run_dir, run),
        "spec_yaml": _spec_yaml(run_dir, run),
        "data_hashes": [[k, v] for k, v in (run.get("data_hashes") or {}).items()],
        "versions": ([[k, v] for k, v in (run.get("versions") or {}).items()]
                     + [["code revision", run.get("code_revision")]]),
        "folder": run_dir.name,
        "generated_at": datetime.now(timezone.utc),
    }


__all__ = ["METRIC_NAMES", "STAT_ROWS", "fmt", "model_card", "report_data"]
