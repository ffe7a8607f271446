"""The run report as one self-contained HTML page: report data in, HTML string out.

:func:`render_report` lays out what :func:`ml.report.report_data` gathered from a run
folder as a single page that opens offline: plotly.js is inlined once (in the first
figure), there is no CDN, font or script link, and all CSS is inline. Sections: the run's
warnings, the trading rules of the report, summary cards, walk-forward folds, metrics, confusion matrix at the spec's threshold, ROC,
calibration, SHAP summary, equity curve with drawdown, monthly returns, backtest
statistics (PSR/DSR with the number of trials), factor exposure (Fama–French), spec (YAML), data hashes and versions.

Like every module of :mod:`viz` it is pure: it reads no files and imports plotly, pandas,
numpy and the other figure builders only (docs/design.md §2). The numbers arrive formatted
(the tables' cells, cards and notes are strings) and the figures' data as arrays and
frames; the caller writes or serves the string.
"""

from __future__ import annotations

import html

import plotly.io as pio

from viz import backtest as vb
from viz import evaluation as ve
from viz.factors import factor_figure

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
.warn { background: #FEF5E7; border: 1px solid #F8D7A0; color: #7D5A1E; border-radius: 8px;
  padding: 10px 14px; margin: 14px 0 4px; font-size: 14px; }
.warn ul { margin: 4px 0 0; padding-left: 20px; }
.settings { background: #fff; border: 1px solid var(--line); border-left: 4px solid var(--accent);
  border-radius: 8px; padding: 8px 14px; margin: 12px 0; font-size: 14px; }
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


def _table(header: list[str], rows: list[list], numeric: set[int] = frozenset()) -> str:
    th = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
                 for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="n">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _kv_tables(header: list[str], rows: list[list]) -> str:
    """Label/value rows as two side-by-side tables (first half left)."""
    half = (len(rows) + 1) // 2
    return ('<div class="tables">' + _table(header, rows[:half], {1})
            + _table(header, rows[half:], {1}) + "</div>")


class _Figures:
    """Turns figures into HTML divs; plotly.js is inlined with the first one only."""

    def __init__(self):
        self.ids: list[str] = []

    def div(self, fig, name: str) -> str:
        div_id = f"fig-{name}"
        self.ids.append(div_id)
        body = pio.to_html(fig, full_html=False, include_plotlyjs=len(self.ids) == 1,
                           div_id=div_id, config=_PLOT_CONFIG, include_mathjax=False)
        return f'<div class="panel">{body}</div>'


def _cards(items: list[tuple[str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{_e(v)}</div></div>'
        for k, v in items) + "</div>"


def _warnings(messages: list[str]) -> str:
    """The run's warnings as a light warning box, one line each ('' without any)."""
    if not messages:
        return ""
    return ('<div class="warn" id="warnings"><strong>Warnings of this run</strong><ul>'
            + "".join(f"<li>{_e(m)}</li>" for m in messages) + "</ul></div>")


def _folds_table(table: dict | None) -> str:
    if not table:
        return '<p class="note">No fold table in this run.</p>'
    return _table(table["header"], table["rows"], numeric=table["numeric"])


def _fold_scores(figs: _Figures, scores: dict | None) -> str:
    if not scores:
        return ""
    return figs.div(ve.cv_scores_figure(scores["folds"], scores["metric"], scores["baseline"],
                                        label=scores["label"], height=320), "folds")


def _evaluation_heading(task: str | None, threshold: float) -> str:
    return {"binary": f"<h2>Classification at threshold {threshold:.2f}</h2>",
            "multiclass": "<h2>Classification (most likely class)</h2>"}.get(
        task, "<h2>Predictions vs outcomes</h2>")


def _evaluation_section(figs: _Figures, ev: dict | None) -> str:
    if ev is None:
        return _note("No out-of-fold predictions in this run.")
    if ev["kind"] == "binary":
        return ('<div class="grid3">'
                + figs.div(ve.confusion_matrix_figure(ev["cm"], ev["classes"], ev["threshold"],
                                                      height=420), "confusion")
                + figs.div(ve.roc_figure(ev["fpr"], ev["tpr"], ev["roc_auc"], height=420), "roc")
                + figs.div(ve.calibration_figure(ev["reliability"], ev["brier"], ev["ece"],
                                                 height=420), "calibration")
                + "</div>")
    if ev["kind"] == "multiclass":
        return ('<div class="grid2">' + figs.div(ve.confusion_matrix_figure(ev["cm"], ev["classes"],
                                                                            height=460),
                                                 "confusion") + "</div>")
    return figs.div(ve.prediction_scatter_figure(ev["pred"], ev["y"], ev["ic"], ev["r2"],
                                                 unit=ev.get("unit", "return")), "prediction")


def _shap_section(figs: _Figures, shap: dict | None) -> str:
    """Beeswarm of the out-of-fold SHAP values, or the bars of a multiclass run."""
    if shap is None:
        return _note("No SHAP values in this run.")
    if shap["kind"] == "bar":
        return (figs.div(ve.shap_bar_figure(shap["mean_abs"]), "shap")
                + _note("Multiclass model: mean |SHAP| of each class's output, summed over "
                        "the classes."))
    return figs.div(ve.shap_summary_figure(shap["shap"], shap["values"]), "shap")


def _backtest_section(figs: _Figures, bt: dict) -> str:
    """Backtest figures and statistics, or the note of a run without a backtest."""
    if bt.get("daily") is None:
        return "<h2>Backtest</h2>" + _note(bt["note"])
    header = bt.get("stats_header") or ["Statistic", "Value"]
    return "".join([
        "<h2>Backtest</h2>",
        _note(bt["note"]),
        figs.div(vb.equity_with_drawdown_figure(bt["daily"], title=bt["title"], baseline=bt.get("baseline")),
                 "equity"),
        figs.div(vb.monthly_returns_figure(bt["monthly"]), "monthly"),
        "<h2>Statistics</h2>",
        (_kv_tables(header, bt["stats"]) if len(header) == 2
         else _table(header, bt["stats"], numeric=set(range(1, len(header))))),
        _note(bt["stats_note"]),
        _factors_section(figs, bt.get("factors")),
    ])


def _factors_section(figs: _Figures, table: dict | None) -> str:
    """The Fama–French factor table (estimates and t columns) beside the betas chart, and its
    notes ('' without it)."""
    if not table:
        return ""
    return ('<h2 id="factors">Factor exposure (Fama–French three factors, monthly)</h2><div class="grid2">'
            + _table(table["header"], table["rows"], numeric=set(range(1, len(table["header"]))))
            + figs.div(factor_figure(table["columns"]), "factors") + "</div>"
            + "".join(_note(n) for n in table["notes"]))


def _deciles_section(figs: _Figures, table) -> str:
    if table is None:
        return ""
    return figs.div(vb.decile_figure(table), "deciles")


def _spec_blocks(text: str) -> str:
    """The YAML spec as one <pre> per top-level key, flowing in two columns."""
    blocks: list[list[str]] = []
    for line in text.rstrip().splitlines():
        if not blocks or (line and not line[0].isspace() and not line.startswith("-")):
            blocks.append([])
        blocks[-1].append(line)
    return '<div class="spec">' + "".join(f"<pre>{_e(chr(10).join(b))}</pre>" for b in blocks) + "</div>"


def render_report(data: dict) -> str:
    """The report page of one run as an HTML string.

    ``data`` is :func:`ml.report.report_data`'s dict: ``run_id``, ``title``, ``symbol``,
    ``label``, ``model``, ``created_at``, ``task``, ``threshold`` (float), ``cards``
    ((label, value) strings), ``folds_table`` (header / rows / numeric column indexes, or
    None), ``fold_scores`` (folds frame, metric, baseline, label for
    :func:`viz.evaluation.cv_scores_figure`, or None), ``metrics`` ([name, value] rows),
    ``metrics_note``, ``evaluation`` (by ``kind``: binary ``cm`` / ``classes`` /
    ``threshold`` / ``fpr`` / ``tpr`` / ``roc_auc`` / ``reliability`` / ``brier`` / ``ece``;
    multiclass ``cm`` / ``classes``; regression ``pred`` / ``y`` / ``ic`` / ``r2``; or
    None), ``shap`` (``summary``: ``shap`` and ``values`` frames; ``bar``: ``mean_abs``; or
    None), ``backtest`` (``daily``, ``baseline`` (always long's daily frame or None),
    ``monthly``, ``title``, ``note``, ``stats_header`` and ``stats`` rows (one column per
    strategy), ``stats_note``, ``factors`` (``header``, ``rows``, ``notes`` of the factor
    table and the exposures ``columns`` [(name, :func:`ml.factors.exposure` dict)], or
    None); ``daily`` None with only a ``note`` when there is none),
    ``warnings`` (one line each), ``settings`` (``text``: the trading rules of the report),
    ``deciles`` (a regression run's decile table or None), ``spec_yaml``,
    ``data_hashes`` and ``versions`` ([name, value] rows), ``folder`` and ``generated_at``
    (a UTC datetime)."""
    figs = _Figures()
    parts = [
        f"<header><h1>{_e(data['title'])}</h1>"
        f'<div class="sub">Run <code>{_e(data["run_id"])}</code> · {_e(data["symbol"])} · label '
        f"{_e(data['label'])} · model {_e(data['model'])} · created {_e(data['created_at'])}"
        f"</div></header>",
        _warnings(data.get("warnings") or []),
        (f'<div class="settings" id="settings">{_e(data["settings"]["text"])}</div>'
         if data.get("settings") else ""),
        _cards(data["cards"]),
        "<h2>Walk-forward folds</h2>", _folds_table(data["folds_table"]),
        _fold_scores(figs, data["fold_scores"]),
        "<h2>Metrics (pooled out-of-fold)</h2>",
        _kv_tables(["Metric", "Value"], data["metrics"]),
        _note(data["metrics_note"]) if data["metrics_note"] else "",
        _evaluation_heading(data["task"], data["threshold"]),
        _evaluation_section(figs, data["evaluation"]),
        _deciles_section(figs, data.get("deciles")),
        "<h2>What drives the model (SHAP, out-of-fold)</h2>",
        _shap_section(figs, data["shap"]),
        _note(data["shap_note"]) if data.get("shap_note") and data["shap"] is not None else "",
        _backtest_section(figs, data["backtest"]),
        "<h2>Specification</h2>", _spec_blocks(data["spec_yaml"]),
        "<h2>Reproducibility</h2>",
        '<div class="tables">',
        _table(["Dataset", "SHA-256"], data["data_hashes"]),
        _table(["Library", "Version"], data["versions"]),
        "</div>",
        f"<footer>Generated by Almanac ML Lab on "
        f"{data['generated_at']:%Y-%m-%d %H:%M} UTC from run folder {_e(data['folder'])}.</footer>",
    ]
    title = _e(f"{data['title']} · Almanac report")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{title}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(parts) + "</main></body></html>\n")


__all__ = ["CSS", "render_report"]
