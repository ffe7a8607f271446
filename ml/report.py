"""The run report (one self-contained HTML file) and the model card (Markdown).

:func:`write_report` renders a finished run as a single HTML file that opens offline:
plotly.js is inlined once (in the first figure), there is no CDN, font or script link,
and all CSS is inline. Sections: summary, spec (YAML), walk-forward folds, metrics,
confusion matrix at the spec's threshold, ROC, calibration, SHAP summary, equity curve
with drawdown, monthly returns, backtest statistics (PSR/DSR with the number of trials),
data hashes and versions.

The evaluation figures are recomputed from the run's out-of-fold predictions
(``oof.parquet``) with :mod:`ml.evaluation`, the same functions the runner uses, so they
hold exactly the run's numbers at the spec's threshold.

:func:`model_card` is the README.md of a model bundle (see :mod:`ml.export`).

The figure builders live in :mod:`viz`; this module imports them inside
:func:`write_report` only, so importing ``ml`` never loads ``viz`` (DESIGN.md §2).
"""

from __future__ import annotations

import html
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from almanac import registry
from almanac.atomic import atomic_write_bytes
from ml import evaluation
from ml.export import check_output_path, label_kind, spec_value, trading_rules

#: Backtest statistics in display order: key -> (label, kind) with kind pct / num / int.
STAT_ROWS = (
    ("sharpe", "Sharpe ratio (annualized)", "num"), ("sortino", "Sortino ratio", "num"),
    ("psr", "PSR: P(true Sharpe > 0)", "pct"),
    ("dsr", "DSR: PSR against the best of n trials", "pct"),
    ("n_trials", "Trials counted for DSR", "int"),
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"),
    ("max_drawdown", "Max drawdown", "pct"), ("calmar", "Calmar ratio", "num"),
    ("win_rate", "Win rate (trades)", "pct"), ("trades", "Trades", "int"),
    ("exposure", "Exposure (days in a position)", "pct"), ("days", "Days", "int"),
    ("skew", "Skew of daily returns", "num"), ("kurtosis", "Kurtosis (non-excess)", "num"),
)
METRIC_NAMES = {
    "roc_auc": "ROC AUC", "accuracy": "Accuracy", "balanced_accuracy": "Balanced accuracy",
    "log_loss": "Log loss", "brier": "Brier score", "ece": "Expected calibration error",
    "base_rate": "Base rate (share of up days)", "mean_predicted": "Mean predicted P(up)",
    "n": "Rows", "mae": "MAE", "rmse": "RMSE", "r2": "R²", "ic": "IC (Spearman)",
    "hit_rate": "Hit rate (sign)",
}
_PCT_METRICS = {"accuracy", "balanced_accuracy", "base_rate", "mean_predicted", "hit_rate"}


# ---------------------------------------------------------------- formatting

def fmt(value, kind: str = "num") -> str:
    """A number for a table: pct (12.3 %), int (1,234), num (4 significant digits);
    None / NaN as an en dash."""
    if value is None or isinstance(value, str):
        return "–" if value is None else value
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "–"
    if kind == "pct":
        return f"{x:.1%}"
    if kind == "int":
        return f"{int(round(x)):,}"
    return f"{x:.4g}" if abs(x) < 1e5 else f"{x:,.0f}"


def _stats(run: dict) -> dict:
    bt = run.get("backtest") or {}
    return bt.get("stats", bt) if isinstance(bt.get("stats"), dict) else bt


def _metric_rows(metrics: dict) -> list[tuple[str, str]]:
    return [(METRIC_NAMES.get(k, k), fmt(v, "pct" if k in _PCT_METRICS else
                                          "int" if k == "n" else "num"))
            for k, v in (metrics or {}).items() if not isinstance(v, (dict, list))]


# ---------------------------------------------------------------- model card

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def model_card(meta: dict) -> str:
    """The bundle's README.md (Markdown) from its metadata (see ml.export)."""
    spec = meta.get("spec") or {}
    run = {"spec": spec, "backtest": meta.get("backtest")}
    label = meta.get("label") or {}
    train = meta.get("training") or {}
    model = meta.get("model") or {}
    symbol = spec_value(run, "data", "symbol", "?")
    cutoff = spec_value(run, "features", "cutoff", "?")
    stats = _stats(run)
    folds = meta.get("folds") or []
    metric_keys = [k for k in ("roc_auc", "accuracy", "log_loss", "brier", "r2", "ic")
                   if folds and k in folds[0]]
    out = [
        f"# Model card: {meta.get('name') or meta.get('run_id')}",
        "",
        f"Run `{meta.get('run_id')}`, exported {meta.get('exported_at')} by Almanac ML Lab "
        f"(bundle format {meta.get('format_version')}).",
        "",
        _md_table(["", ""], [
            ["Model", f"{model.get('kind')} ({model.get('format')}, `{model.get('file')}`)"],
            ["Task", f"{meta.get('task')}" + (f" — classes {', '.join(map(str, meta['classes']))}"
                                               if meta.get("classes") else "")],
            ["Label", f"{label.get('kind')} (horizon {label.get('horizon_days')} days)"],
            ["Symbol · cutoff", f"{symbol} · {cutoff} exchange time"],
            ["Trained on", f"{train.get('start')} to {train.get('end')} "
                           f"({fmt(train.get('n_rows'), 'int')} trading days)"],
            ["Features", f"{len(meta.get('feature_names') or [])}"],
            ["Signal threshold", f"{meta.get('threshold')} (long only: {meta.get('long_only')})"],
            ["Code revision", f"`{meta.get('code_revision')}`"],
        ]),
        "",
        "## Intended use",
        "",
        f"A research signal for {symbol}: at {cutoff} on each trading day the model reads the "
        "features below (all known at that time) and gives "
        + ("P(up) for the label; the signal is long when P(up) ≥ threshold, short when "
           "P(up) ≤ 1 − threshold (unless long only), flat otherwise."
           if meta.get("task") == "binary" else "its prediction of the label.")
        + " It is a research artefact, not investment advice; check it on new data before "
          "relying on it.",
        "",
        "## Data",
        "",
        _md_table(["Dataset", "SHA-256"], [[k, f"`{v}`"] for k, v in
                                           (meta.get("data_hashes") or {}).items()]),
        "",
        "## Features (in the model's order)",
        "",
        _md_table(["#", "Feature", "Known as of", "Definition"], [
            [str(i + 1), f"`{f['name']}`", (f.get("lineage") or {}).get("known_as_of", "–"),
             (f.get("lineage") or {}).get("definition", "–")]
            for i, f in enumerate(meta.get("features") or [])]),
        "",
        "## Label",
        "",
        f"`{label.get('kind')}` ({label.get('task')}): {label.get('description') or '–'}",
        "",
        "## Validation",
        "",
        "Walk-forward: scheme {s}, {n} folds, gap {g} trading days between training and test. "
        "Metrics and backtest below are out-of-fold (each day predicted by a model that never "
        "saw it); the bundled model is refitted on all training days.".format(
            s=spec_value(run, "validation", "scheme", "?"),
            n=spec_value(run, "validation", "n_splits", len(folds)),
            g=spec_value(run, "validation", "gap", "?")),
        "",
    ]
    if folds:
        out += [_md_table(["Fold", "Train", "Test", "Test days"] + metric_keys, [
            [str(f.get("fold")), f"{str(f.get('train_start'))[:10]} → {str(f.get('train_end'))[:10]}",
             f"{str(f.get('test_start'))[:10]} → {str(f.get('test_end'))[:10]}",
             fmt(f.get("n_test"), "int")] + [fmt(f.get(k)) for k in metric_keys] for f in folds]), ""]
    out += ["## Metrics (pooled out-of-fold)", "",
            _md_table(["Metric", "Value"], [list(r) for r in _metric_rows(meta.get("metrics"))]),
            "", "## Backtest (out-of-fold signals, cutoff to close)", "",
            _md_table(["Statistic", "Value"], [[label_, fmt(stats.get(k), kind)]
                                               for k, label_, kind in STAT_ROWS if k in stats]),
            "",
            f"Costs: {meta.get('cost_bps')} bp per side. PSR is the probability that the true "
            "Sharpe ratio is above 0 given the sample's length, skew and kurtosis; DSR deflates "
            f"it for the {fmt(stats.get('n_trials'), 'int')} trial(s) run on this symbol and label "
            "(Bailey & López de Prado).",
            "", "## Caveats", "",
            "- Out-of-fold results estimate the skill of the *procedure*; the bundled model is "
            "one refit and was never tested on unseen days.",
            "- Markets change: watch the feature drift (PSI) and rolling AUC of the run.",
            "- A DSR well below 0.95 means the Sharpe ratio may be luck given the number of trials.",
            "- Predictions need features built exactly as listed (same sets, cutoff and data).",
            "", "## Files", "",
            _md_table(["File", "SHA-256"], [[f"`{k}`", f"`{v}`"] for k, v in
                                            sorted((meta.get("files") or {}).items())]),
            "",
            f"`README.md` and `metadata.json` are covered by `MANIFEST.sha256` (check with "
            "`sha256sum -c MANIFEST.sha256`), whose own hash is in the zip comment. Load with "
            "`ml.export.load_bundle(path)`, which verifies every hash and never unpickles.",
            ""]
    return "\n".join(out)


# ---------------------------------------------------------------- HTML report

CSS = """
:root { --ink:#2C3E50; --muted:#7B8A8B; --line:#E5E8EC; --bg:#F7F9FA; --accent:#3498DB; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 15px/1.5 Lato, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 32px 28px 64px; }
header { border-bottom: 3px solid var(--ink); padding-bottom: 14px; margin-bottom: 22px; }
h1 { font-size: 28px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 19px; margin: 34px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
.sub { color: var(--muted); font-size: 14px; }
.sub code { color: var(--ink); }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(128px, 1fr)); gap: 12px; margin: 18px 0 6px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 24px; font-weight: 700; margin-top: 2px; font-variant-numeric: tabular-nums; }
.panel { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; margin: 12px 0; }
.grid2, .grid3 { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; margin: 12px 0; }
.grid3 { grid-template-columns: 1fr 1fr 1fr; }
.grid2 > .panel, .grid3 > .panel { margin: 0; min-width: 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; font-variant-numeric: tabular-nums; background: #fff; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
td.n, th.n { text-align: right; }
.tables { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; align-items: start; }
pre { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  font: 13px/1.45 "DejaVu Sans Mono", Menlo, Consolas, monospace; overflow-x: auto; margin: 0; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
.note { color: var(--muted); font-size: 13.5px; margin: 6px 0 0; }
.hash { font-size: 12px; word-break: break-all; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; }
.spec { column-count: 2; column-gap: 28px; column-rule: 1px solid var(--line); background: #fff;
  border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.spec pre { break-inside: avoid; margin: 0 0 8px; border: 0; padding: 0; border-radius: 0;
  white-space: pre-wrap; overflow-wrap: anywhere; }
@media (max-width: 860px) { .grid2, .grid3, .tables { grid-template-columns: 1fr; } .spec { column-count: 1; } }
"""
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "displayModeBar": False}


def _e(x) -> str:
    return html.escape(str(x))


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _kv_tables(header: list[str], rows: list[list]) -> str:
    """Label/value rows as two side-by-side tables (first half left)."""
    half = (len(rows) + 1) // 2
    return ('<div class="tables">' + _table(header, rows[:half], {1})
            + _table(header, rows[half:], {1}) + "</div>")


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    th = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                 for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


class _Figures:
    """Turns figures into HTML divs; plotly.js is inlined with the first one only."""

    def __init__(self):
        self.ids: list[str] = []

    def div(self, fig, name: str) -> str:
        import plotly.io as pio

        div_id = f"fig-{name}"
        self.ids.append(div_id)
        body = pio.to_html(fig, full_html=False, include_plotlyjs=len(self.ids) == 1,
                           div_id=div_id, config=_PLOT_CONFIG, include_mathjax=False)
        return f'<div class="panel">{body}</div>'


def _read_parquet(run_dir: Path, name: str) -> pd.DataFrame | None:
    path = run_dir / name
    return pd.read_parquet(path) if path.is_file() else None


def _evaluation_section(figs: _Figures, run: dict, oof: pd.DataFrame | None,
                        threshold: float) -> str:
    from viz import evaluation as ve

    task = run.get("task")
    metrics = run.get("metrics") or {}
    if oof is None or oof.empty:
        return _note("No out-of-fold predictions in this run.")
    classes = [str(c) for c in (run.get("classes") or [])]
    y = oof["y"].to_numpy(dtype="float64")
    if task == "binary":
        p = oof["prob"].to_numpy(dtype="float64")
        ok = np.isfinite(y) & np.isfinite(p)
        y, p = y[ok], p[ok]
        grid = evaluation.threshold_grid(y, p, [threshold]).iloc[0]
        cm = [[int(grid.tn), int(grid.fp)], [int(grid.fn), int(grid.tp)]]
        roc = evaluation.roc_table(y, p)
        rel = evaluation.reliability_curve(y, p)
        return ('<div class="grid3">'
                + figs.div(ve.confusion_matrix_figure(cm, classes or ["0", "1"], threshold,
                                                      height=420), "confusion")
                + figs.div(ve.roc_figure(roc["fpr"], roc["tpr"], metrics.get("roc_auc"),
                                         height=420), "roc")
                + figs.div(ve.calibration_figure(rel, metrics.get("brier"), metrics.get("ece"),
                                                 height=420), "calibration")
                + "</div>")
    if task == "multiclass":
        cols = [c for c in oof.columns if c.startswith("prob_")]
        proba = oof[cols].to_numpy(dtype="float64")
        ok = np.isfinite(y) & np.isfinite(proba).all(axis=1)
        from sklearn.metrics import confusion_matrix

        cm = confusion_matrix(y[ok].astype(int), proba[ok].argmax(axis=1), labels=range(len(cols)))
        names = classes if len(classes) == len(cols) else [c[5:] for c in cols]
        return ('<div class="grid2">' + figs.div(ve.confusion_matrix_figure(cm, names, height=460),
                                                 "confusion") + "</div>")
    pred = oof["pred"].to_numpy(dtype="float64")
    return figs.div(ve.prediction_scatter_figure(pred, y, metrics.get("ic"), metrics.get("r2")),
                    "prediction")


def _shap_section(figs: _Figures, run_dir: Path, names: list[str]) -> str:
    """Beeswarm of the out-of-fold SHAP values (binary / regression); for multiclass runs
    (one block of rows per class) the bars of mean |SHAP| summed over the classes."""
    from viz import evaluation as ve

    shap = _read_parquet(run_dir, "shap.parquet")
    data = _read_parquet(run_dir, "dataset.parquet")
    if shap is None or data is None or shap.empty:
        return _note("No SHAP values in this run.")
    feats = [c for c in names if c in shap.columns]
    if "class" in shap.columns:
        mean_abs = shap[feats].abs().groupby(shap["class"]).mean().sum()
        return (figs.div(ve.shap_bar_figure(mean_abs), "shap")
                + _note("Multiclass model: mean |SHAP| of each class's output, summed over "
                        "the classes."))
    if "date" not in data.columns:
        data = data.reset_index()
    feats = [c for c in feats if c in data.columns]
    values = data.drop_duplicates("date").set_index("date")
    rows = pd.to_datetime(shap["date"]) if "date" in shap.columns else shap.index
    fv = values.reindex(pd.DatetimeIndex(rows))[feats].reset_index(drop=True)
    return figs.div(ve.shap_summary_figure(shap[feats].reset_index(drop=True), fv), "shap")


def _backtest_section(figs: _Figures, run_dir: Path, run: dict, stats: dict, rules: dict) -> str:
    """Backtest figures and statistics, or a note when the run has no backtest."""
    from ml.backtester import monthly_returns
    from viz import backtest as vb

    daily = _read_parquet(run_dir, "backtest.parquet")
    if daily is None or daily.empty:
        return "<h2>Backtest</h2>" + _note("No backtest in this run"
                                           + (f": {run['backtest_note']}." if run.get("backtest_note")
                                              else "."))
    title = (f"Equity curve and drawdown · Sharpe {fmt(stats.get('sharpe'))} · "
             f"DSR {fmt(stats.get('dsr'), 'pct')}")
    return "".join([
        "<h2>Backtest</h2>",
        _note((run.get("backtest_note") or "out-of-fold signals traded from the cutoff to the "
               f"close at threshold {float(rules['threshold']):.2f}, long only: "
               f"{rules['long_only']}") + f"; costs {rules['cost_bps']} bp per side."),
        figs.div(vb.equity_with_drawdown_figure(daily, title=title), "equity"),
        figs.div(vb.monthly_returns_figure(monthly_returns(daily)), "monthly"),
        "<h2>Statistics</h2>",
        _kv_tables(["Statistic", "Value"], [[lab, fmt(stats.get(k), kind)]
                                            for k, lab, kind in STAT_ROWS if k in stats]),
        _note("PSR: probability that the true Sharpe ratio exceeds 0, given the sample length, "
              "skew and kurtosis. DSR: the same test against the Sharpe ratio the best of "
              f"{fmt(stats.get('n_trials'), 'int')} trial(s) would reach by luck "
              "(Bailey & López de Prado, 2014)."),
    ])


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
    return _note(f"Accuracy counts a day as called up when P(up) ≥ {float(used):.2f}; the "
                 "confusion matrix below uses the backtest threshold.") if used is not None else ""


def _cards(run: dict, stats: dict) -> str:
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
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
        for k, v in items) + "</div>"


def _folds_table(folds: list[dict]) -> str:
    if not folds:
        return '<p class="note">No fold table in this run.</p>'
    keys = [k for k in ("roc_auc", "accuracy", "log_loss", "brier", "r2", "ic", "rmse")
            if k in folds[0]]
    header = ["Fold", "Train", "Test", "Train days", "Test days"] + [METRIC_NAMES.get(k, k) for k in keys]
    rows = [[f.get("fold"), f"{str(f.get('train_start'))[:10]} → {str(f.get('train_end'))[:10]}",
             f"{str(f.get('test_start'))[:10]} → {str(f.get('test_end'))[:10]}",
             fmt(f.get("n_train"), "int"), fmt(f.get("n_test"), "int")]
            + [fmt(f.get(k), "pct" if k == "accuracy" else "num") for k in keys] for f in folds]
    return _table(header, rows, numeric=set(range(3, len(header))))


def _spec_blocks(text: str) -> str:
    """The YAML spec as one <pre> per top-level key, flowing in two columns."""
    blocks: list[list[str]] = []
    for line in text.rstrip().splitlines():
        if not blocks or (line and not line[0].isspace() and not line.startswith("-")):
            blocks.append([])
        blocks[-1].append(line)
    return '<div class="spec">' + "".join(f"<pre>{_e(chr(10).join(b))}</pre>" for b in blocks) + "</div>"


def _spec_yaml(run_dir: Path, run: dict) -> str:
    path = run_dir / "spec.yaml"
    if path.is_file():
        return path.read_text()
    import yaml

    return yaml.safe_dump(run.get("spec") or {}, sort_keys=False)


def render_report(run: dict) -> str:
    """The report of run record ``run`` (run.json plus ``path``) as one HTML string."""
    from viz import evaluation as ve

    run_dir = Path(run["path"])
    rules = trading_rules(run)
    threshold = float(rules["threshold"])
    stats = _stats(run)
    figs = _Figures()
    run_id = run.get("run_id", run_dir.name)
    folds = run.get("folds") or []
    metric = "roc_auc" if folds and "roc_auc" in folds[0] else "r2" if folds and "r2" in folds[0] else None
    oof = _read_parquet(run_dir, "oof.parquet")
    names = list(run.get("feature_names") or [])
    symbol = spec_value(run, "data", "symbol", "?")
    model_kind = spec_value(run, "model", "kind", (run.get("final_model") or {}).get("kind", "?"))

    parts = [
        f"<header><h1>{_e(run.get('name') or run_id)}</h1>"
        f'<div class="sub">Run <code>{_e(run_id)}</code> · {_e(symbol)} · label '
        f"{_e(label_kind(run))} · model {_e(model_kind)} · created {_e(run.get('created_at'))}"
        f"</div></header>",
        _cards(run, stats),
        "<h2>Walk-forward folds</h2>", _folds_table(folds),
        figs.div(ve.cv_scores_figure(pd.DataFrame(folds), metric,
                                     0.5 if metric == "roc_auc" else 0.0,
                                     label=METRIC_NAMES.get(metric), height=320), "folds")
        if metric else "",
        "<h2>Metrics (pooled out-of-fold)</h2>",
        _kv_tables(["Metric", "Value"], [list(r) for r in _metric_rows(run.get("metrics"))]),
        _metrics_note(run_dir, run),
        {"binary": f"<h2>Classification at threshold {threshold:.2f}</h2>",
         "multiclass": "<h2>Classification (most likely class)</h2>"}.get(
            run.get("task"), "<h2>Predictions vs outcomes</h2>"),
        _evaluation_section(figs, run, oof, threshold),
        "<h2>What drives the model (SHAP, out-of-fold)</h2>",
        _shap_section(figs, run_dir, names),
        _backtest_section(figs, run_dir, run, stats, rules),
        "<h2>Specification</h2>", _spec_blocks(_spec_yaml(run_dir, run)),
        "<h2>Reproducibility</h2>",
        '<div class="tables">',
        _table(["Dataset", "SHA-256"], [[k, v] for k, v in (run.get("data_hashes") or {}).items()]),
        _table(["Library", "Version"], [[k, v] for k, v in (run.get("versions") or {}).items()]
               + [["code revision", run.get("code_revision")]]),
        "</div>",
        f"<footer>Generated by Almanac ML Lab on "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC from run folder {_e(run_dir.name)}.</footer>",
    ]
    title = _e(f"{run.get('name') or run_id} · Almanac report")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(parts) + "</main></body></html>\n")


def write_report(run_id: str, out: Path | str) -> Path:
    """Write the HTML report of run ``run_id`` to ``out`` (an .html path, or a folder to
    hold ``<run_id>.html``); returns the path."""
    run = registry.get_run(run_id)
    path = check_output_path(out, f"{run_id}.html", (".html", ".htm"))
    atomic_write_bytes(path, render_report(run).encode())
    return path


__all__ = ["fmt", "model_card", "render_report", "write_report"]
