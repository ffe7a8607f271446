"""Number formatting for reports and the bundle's model card (its README.md).

The export writes the card into every bundle and the HTML report uses the same
formatting, so both live here rather than in either of them (the two used to import
each other).
"""

from __future__ import annotations

import math

from ml.runinfo import spec_value

#: Backtest statistics in display order: key -> (label, kind) with kind pct / num / int.
STAT_ROWS = (
    ("sharpe", "Sharpe ratio (annualized)", "num"), ("sortino", "Sortino ratio", "num"),
    ("psr", "PSR: P(true Sharpe > 0)", "pct"),
    ("dsr", "DSR: PSR against the best of n trials", "pct"),
    ("n_trials", "Trials counted for DSR", "int"),
    ("total_return", "Total return", "pct"), ("cagr", "CAGR", "pct"),
    ("max_drawdown", "Max drawdown", "pct"), ("calmar", "Calmar ratio", "num"),
    ("win_rate", "Win rate (trades)", "pct"), ("trades", "Trades", "int"),
    ("exposure", "Exposure (days in a position)", "pct"),
    ("volatility", "Volatility (annualized)", "pct"),
    ("turnover", "Turnover (× capital per year)", "num"),
    ("cost_drag", "Cost drag (return per year)", "pct"),
    ("days", "Days", "int"),
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

#: Rows that describe the model's selection among trials: not shown for a baseline.
MODEL_ONLY = ("dsr", "n_trials")


def stat_columns(columns: list[tuple[str, dict | None]],
                 lift: str | None = None) -> tuple[list[str], list[list[str]]]:
    """A statistics table with one column per strategy: ``columns`` is [(name, stats)]
    (the model first, then the baselines; None stats = a blank column). Returns (header,
    rows) of display strings in :data:`STAT_ROWS` order; rows that no column has are left
    out, and the DSR / trial rows are blank for the baselines (they are not trials).
    ``lift`` (text, e.g. :func:`lift_text`) is a row "Lift over always long (Sharpe)" under
    the model's Sharpe."""
    header = ["Statistic"] + [name for name, _ in columns]
    rows = []
    for key, label, kind in STAT_ROWS:
        if not any(isinstance(s, dict) and key in s for _, s in columns):
            continue
        cells = []
        for i, (_, s) in enumerate(columns):
            blank = not isinstance(s, dict) or key not in s or (i > 0 and key in MODEL_ONLY)
            cells.append("" if blank else fmt(s.get(key), kind))
        rows.append([label] + cells)
    if lift is not None:
        at = next((i + 1 for i, r in enumerate(rows) if r[0].startswith("Sharpe")), 0)
        rows.insert(at, ["Lift over always long (Sharpe)", lift] + [""] * (len(header) - 2))
    return header, rows


def signed(value, digits: int = 2) -> str:
    """+0.42 / −0.10 (a real minus sign); an en dash for None / NaN."""
    text = fmt(value)
    if text == "–":
        return text
    x = float(value)
    return f"{'+' if x >= 0 else '−'}{abs(x):.{digits}f}"


def lift_text(lift: dict | None, key: str = "sharpe") -> str | None:
    """"+0.42 (95 % CI −0.10 to +0.91)" of ``run["baselines"]["lift"][key]``; None without it."""
    item = (lift or {}).get(key)
    if not isinstance(item, dict) or item.get("value") is None:
        return None
    level = item.get("level") or 0.95
    ci = (f" ({level:.0%} CI {signed(item.get('lo'))} to {signed(item.get('hi'))})"
          if item.get("lo") is not None and item.get("hi") is not None else "")
    return f"{signed(item['value'])}{ci}".replace("%", " %")


def _stats(run: dict) -> dict:
    bt = run.get("backtest") or {}
    return bt.get("stats", bt) if isinstance(bt.get("stats"), dict) else bt

def _metric_rows(metrics: dict) -> list[tuple[str, str]]:
    return [(METRIC_NAMES.get(k, k), fmt(v, "pct" if k in _PCT_METRICS else
                                          "int" if k == "n" else "num"))
            for k, v in (metrics or {}).items() if not isinstance(v, (dict, list))]

def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def clean(c) -> str:
        return str(c).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(clean(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)

def _parts_section(meta: dict) -> list[str]:
    """An ensemble bundle's parts and how they are combined (nothing for one model)."""
    parts, ens = meta.get("parts"), meta.get("ensemble") or {}
    if not parts:
        return []
    st = ens.get("stacker")
    if ens.get("method") == "stack" and st and not isinstance(st["intercept"], list):
        rule = "P(up) = 1 / (1 + exp(-(b + Σ c_i · logit(p_i)))), b = {:.4g}, c = {}".format(
            st["intercept"], ", ".join(f"{c:.4g}" for c in st["coef"]))
    elif ens.get("method") == "stack" and st:
        rule = ("P(class) = softmax(W · [log p_part,class] + b), a multinomial logistic stacker "
                f"({len(st['coef'])} classes × {len(st['coef'][0])} inputs; W and b in metadata.json)")
    else:
        rule = "the mean of the parts' predictions (equal weights)"
    return ["## Parts (an ensemble)", "", f"Combined by {ens.get('method')}: {rule}. Each part reads its own "
            "features; every part's model file is in this bundle.", "",
            _md_table(["#", "Run", "Model", "File", "Features"],
                      [[str(i + 1), f"`{p.get('run_id')}`", str(p.get("kind")), f"`{p.get('file')}`",
                        str(len(p.get("feature_names") or []))] for i, p in enumerate(parts)]), ""]


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
        *_parts_section(meta),
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
