"""Experiment commands: ``train``, ``runs list|show|activate|delete|importance|factors|heads``, ``export``,
``predict``, ``report``.

``train --config SPEC.yaml`` validates the spec (one-line error, exit 2, before any work:
the YAML and its fields, the data it needs, then the model parameters by the runner),
runs it with a progress bar on stderr and prints the run id (``--json``: the same JSON as
``runs show --json``). A spec with ``heads:`` is a multi-head run (:mod:`cli.heads`).
The heavy layers (ml, features) are imported inside the handlers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import loaded, print_json, progress_printer

_METRICS = {"binary": ("roc_auc", "accuracy", "balanced_accuracy", "log_loss", "brier"),
            "multiclass": ("roc_auc", "accuracy", "balanced_accuracy", "log_loss", "brier"),
            "regression": ("mae", "rmse", "r2", "ic")}
_STATS = ("sharpe", "sortino", "max_drawdown", "cagr", "calmar", "win_rate", "trades", "total_return",
          "psr", "dsr", "n_trials")


def register(sub) -> None:
    t = sub.add_parser("train", help="run an experiment spec (walk-forward, SHAP, backtest, final model)",
                       description="Validate the YAML spec, build features and labels, fit the walk-forward "
                                   "folds, explain, backtest and refit the final model; the run is registered "
                                   "under ALMANAC_HOME/runs only when complete. Prints the run id.")
    t.add_argument("--config", required=True, help="experiment spec (YAML), e.g. configs/es-rest-of-day-lgbm.yaml")
    t.add_argument("--json", action="store_true", help="print the run record (as `runs show --json`)")
    t.add_argument("--queue", action="store_true",
                   help="run it on a Celery worker (needs ALMANAC_REDIS_URL and `celery -A worker worker`)")
    t.set_defaults(handler=cmd_train, loads=True)  # calls loaded() itself, after its imports

    r = sub.add_parser("runs", help="the registered runs: list, show, activate, delete",
                       description="Complete experiment runs under ALMANAC_HOME/runs.")
    cmds = r.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True
    ls = cmds.add_parser("list", help="list runs, newest first", description="List complete runs, newest first.")
    ls.add_argument("--json", action="store_true", help="print a JSON list of run summaries")
    ls.set_defaults(handler=cmd_list)
    show = cmds.add_parser("show", help="show one run", description="Spec, metrics, folds and backtest of a run.")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true", help="print the whole run record (run.json + path)")
    show.set_defaults(handler=cmd_show)
    act = cmds.add_parser("activate", help="make a run the active model of its symbol and label",
                          description="Record the run in runs/active.json as the active model of its symbol and "
                                      "label (a running `serve` follows it without a restart).")
    act.add_argument("run_id")
    act.set_defaults(handler=cmd_activate)
    rm = cmds.add_parser("delete", help="delete a run", description="Delete a run folder (atomically unlisted).")
    rm.add_argument("run_id")
    rm.set_defaults(handler=cmd_delete)
    pi = cmds.add_parser("importance", help="permutation importance of a run (computed once, then kept)",
                         description="Permutation importance of the run's last-fold model on that fold's test "
                                     "rows (the shuffles and seed the run recorded), computed on first request "
                                     "and cached in the run folder; the same numbers /evaluate shows.")
    pi.add_argument("run_id")
    pi.add_argument("--json", action="store_true", help="print a JSON list of {feature, mean, std}")
    pi.set_defaults(handler=cmd_importance)
    fx = cmds.add_parser("factors", help="a run's backtest regressed on the Fama–French three factors",
                         description="Monthly returns of the run's backtest (replayed from its out-of-fold "
                                     "predictions, nothing refitted) and of always long on the same days, "
                                     "regressed on Mkt-RF, SMB and HML (Jul 1926 – Nov 2018, shipped with arch): "
                                     "alpha, betas, Newey–West t-statistics, R², months left out.")
    fx.add_argument("run_id")
    fx.add_argument("--threshold", type=float, help="trading threshold (default: the run's recorded one)")
    fx.add_argument("--cost-bps", type=float, help="cost in bp per side (default: the run's recorded one)")
    fx.add_argument("--long-only", action=argparse.BooleanOptionalAction, default=None,
                    help="long only, or long and short (default: the run's recorded choice)")
    fx.add_argument("--json", action="store_true", help="print {run_id, settings, model, always_long}")
    fx.set_defaults(handler=cmd_factors)

    from cli.heads import register_runs

    register_runs(cmds)  # runs heads [ID]: multi-head runs

    e = sub.add_parser("export", help="export a run's final model as a verified bundle (.zip)",
                       description="Write the run's final model, metadata, model card and SHA-256 manifest "
                                   "into one zip bundle.")
    e.add_argument("run_id")
    e.add_argument("--out", required=True, help="bundle file (.zip) or an existing folder")
    e.set_defaults(handler=cmd_export)

    p = sub.add_parser("predict", help="predict feature rows with an exported bundle",
                       description="Verify a bundle (limits, hashes, metadata schema), check the rows of a "
                                   "features Parquet file (e.g. from `features build`), predict them with the "
                                   "model in a memory-limited child process and write the predictions.")
    p.add_argument("--bundle", required=True, help="bundle written by `export`")
    p.add_argument("--input", required=True, help="Parquet file with the model's feature columns")
    p.add_argument("--out", required=True, help="output file (.parquet or .csv)")
    p.set_defaults(handler=cmd_predict)

    rep = sub.add_parser("report", help="write a run's self-contained HTML report",
                         description="Metrics, folds, SHAP, backtest and reproducibility details of a run "
                                     "in one HTML file.")
    rep.add_argument("run_id")
    rep.add_argument("--out", required=True, help="report file (.html) or an existing folder")
    rep.set_defaults(handler=cmd_report)


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def cmd_train(args) -> int:
    from almanac.multihead import MultiHeadSpec, load_experiment
    from almanac.registry import get_run
    from almanac.spec import validate_against_store

    spec = load_experiment(args.config)  # a bad spec fails here, before anything is imported or read
    if isinstance(spec, MultiHeadSpec):  # heads: one run per head, one feature table, one fold split
        from cli.heads import train_multihead

        loaded()
        return train_multihead(spec, args)
    # The runner's own checks, in its order, before its heavy imports (scipy, SHAP: ~1-2 s),
    # so a refusal comes fast; nothing is written. The runner repeats the first two (milliseconds),
    # not the store's check (store_checked).
    from ml.models import check_params

    check_params(spec.model.kind, spec.task, spec.model.params, seed=spec.seed)
    validate_against_store(spec)
    if args.queue:  # on a worker; its data home is this one, by path
        from almanac.settings import get_settings
        from ml.scale import train_queued

        loaded()
        out = train_queued(spec.to_dict(), get_settings().home, progress_printer("train "))
        record = get_run(out["run_id"])
    else:
        from ml.runner import run_experiment

        loaded()
        record = run_experiment(spec, progress=progress_printer("train "), store_checked=True)
    for w in record.get("warnings") or []:
        print(f"warning: {w['message']}", file=sys.stderr)
    if args.json:
        print_json(shown_run(get_run(record["run_id"])))
    else:
        print(record["run_id"])
    return 0


def shown_run(run: dict, trials: list[float] | None = None) -> dict:
    """The record ``runs show --json`` (and ``train --json``) prints: ``run.json`` + path, with
    ``backtest.n_trials`` / ``backtest.dsr`` as they are NOW (:func:`ml.trials.deflated`: every
    complete run on the symbol and label in the registry; the values frozen at training stay
    in ``n_trials_at_training`` / ``dsr_at_training``) and folds numbered from 1 (``fold``;
    run.json, oof.parquet and drift.json keep the 0-based index)."""
    from ml.trials import current_backtest

    out = {**run, "backtest": current_backtest(run, trials=trials)}
    if isinstance(run.get("folds"), list):
        out["folds"] = [{**f, "fold": i + 1} if isinstance(f, dict) else f for i, f in enumerate(run["folds"])]
    return out


def cmd_list(args) -> int:
    from almanac.registry import list_runs

    cache: dict = {}
    runs = [_now(r, cache) for r in list_runs()]
    if args.json:
        print_json(runs)
        return 0
    if not runs:
        print("no runs yet: train one with `python -m almanac train --config configs/es-rest-of-day-lgbm.yaml`")
        return 0
    print(f"{'run id':<52}{'label':<16}{'model':<15}{'score':>9}{'sharpe':>9}{'dsr':>7}")
    for r in runs:
        m = r["metrics"] or {}
        score = m.get("roc_auc") if r["task"] != "regression" else m.get("ic")
        flag = " *" if r.get("active") else ""
        print(f"{r['run_id']:<52}{str(r['label']):<16}{str(r['model']):<15}{_fmt(score):>9}"
              f"{_fmt(r['sharpe']):>9}{_fmt(r['dsr']):>7}{flag}")
    print("score: ROC AUC (classification) or IC (regression), pooled out-of-fold; * = active model")
    return 0


def _now(summary: dict, cache: dict) -> dict:
    """A ``list_runs`` summary with ``dsr`` / ``n_trials`` as they are now (ml.trials); the
    trials of each (symbol, label) are read once into ``cache``."""
    from almanac.errors import AlmanacError
    from almanac.registry import get_run
    from ml.trials import trial_sharpes

    if summary.get("n_trials") is None:  # no backtest: not a trial
        return summary
    key = (summary.get("symbol"), summary.get("label"))
    try:
        if key not in cache:
            cache[key] = trial_sharpes(*key) if all(key) else []
        bt = shown_run(get_run(summary["run_id"]), trials=cache[key])["backtest"] or {}
    except AlmanacError:  # deleted meanwhile
        return summary
    return {**summary, "dsr": bt.get("dsr"), "n_trials": bt.get("n_trials")}


def cmd_show(args) -> int:
    from almanac.registry import get_run

    run = shown_run(get_run(args.run_id))
    if args.json:
        print_json(run)
        return 0
    spec = run.get("spec") or {}
    print(f"run      {run['run_id']}  ({run.get('name')})")
    print(f"path     {run['path']}")
    print(f"created  {run.get('created_at')}   code {run.get('code_revision')}")
    d, f = spec.get("data", {}), spec.get("features", {})
    print(f"data     {d.get('symbol')} {run.get('date_range', {}).get('start')} .. "
          f"{run.get('date_range', {}).get('end')} ({run.get('n_rows')} days), cutoff {f.get('cutoff')}, "
          f"sets {', '.join(f.get('sets', []))}" + (f", cross {', '.join(f['cross_assets'])}"
                                                     if f.get("cross_assets") else ""))
    print(f"label    {spec.get('label', {}).get('kind')} ({run.get('task')});  model {spec.get('model', {}).get('kind')}")
    if isinstance(run.get("ensemble"), dict):  # ml.ensemble: its method and parts
        ens = run["ensemble"]
        print(f"ensemble {ens.get('method')} of " + ", ".join(p.get("run_id", "?") for p in ens.get("parts") or []))
    task = run.get("task", "binary")
    keys = _METRICS.get(task, ())
    m = run.get("metrics") or {}
    print("metrics  " + "  ".join(f"{k} {_fmt(m.get(k))}" for k in keys))
    print("folds")
    for fold in run.get("folds") or []:
        print(f"  {fold['fold']}: train {fold['train_start']} .. {fold['train_end']} ({fold['n_train']}), "
              f"test {fold['test_start']} .. {fold['test_end']} ({fold['n_test']})  "
              + "  ".join(f"{k} {_fmt(fold.get(k))}" for k in keys[:3]))
    bt = run.get("backtest")
    if bt:
        print("backtest " + "  ".join(f"{k} {_fmt(bt.get(k))}" for k in _STATS))
    if run.get("backtest_note"):
        print(f"         {run['backtest_note']}")
    base = run.get("baselines") or {}
    for name in ("always_long", "prior_day"):
        if isinstance((base.get(name) or {}).get("stats"), dict):
            st = base[name]["stats"]
            print(f"{name:<17}" + "  ".join(f"{k} {_fmt(st.get(k))}" for k in _STATS if k in st))
    if isinstance((base.get("majority") or {}).get("metrics"), dict):
        mm = base["majority"]["metrics"]
        print("majority         " + "  ".join(f"{k} {_fmt(mm.get(k))}" for k in ("accuracy", "brier", "log_loss",
                                                                                     "roc_auc", "base_rate")))
    if isinstance((base.get("train_mean") or {}).get("metrics"), dict):
        mm = base["train_mean"]["metrics"]
        print("train_mean       " + "  ".join(f"{k} {_fmt(mm.get(k))}" for k in ("mae", "rmse", "r2")))
    for key, what in (("sharpe", "Sharpe minus always_long"), ("roc_auc", "ROC AUC minus 0.5")):
        li = (base.get("lift") or {}).get(key)
        if isinstance(li, dict):
            print(f"lift     {what}: {_fmt(li.get('value'))} ({li.get('level', 0.95):.0%} interval "
                  f"{_fmt(li.get('lo'))} .. {_fmt(li.get('hi'))})")
    for w in run.get("warnings") or []:
        print(f"warning  {w.get('message')}")
    for note in run.get("notes") or []:
        print(f"note     {note}")
    return 0


def cmd_activate(args) -> int:
    from almanac.registry import set_active

    entry = set_active(args.run_id)
    print(f"{entry['run_id']} is now the active model for {entry['symbol']} / {entry['label']}")
    return 0


def cmd_delete(args) -> int:
    from almanac.registry import delete_run

    delete_run(args.run_id)
    print(f"deleted {args.run_id}")
    return 0


def cmd_importance(args) -> int:
    from almanac.registry import check_run_id
    from ml.explain import run_permutation_importance

    imp = run_permutation_importance(check_run_id(args.run_id))
    def num(x):
        return None if x != x else float(x)  # NaN (score undefined on those rows) -> null

    rows = [{"feature": r.feature, "mean": num(r.perm_importance_mean), "std": num(r.perm_importance_std)}
            for r in imp.itertuples()]
    if args.json:
        print_json(rows)
    else:
        print(f"{'feature':<28}{'mean drop':>12}{'std':>10}")
        for r in rows:
            print(f"{r['feature']:<28}{r['mean'] if r['mean'] is not None else float('nan'):>12.5f}"
                  f"{r['std'] if r['std'] is not None else float('nan'):>10.5f}")
    return 0


def cmd_factors(args) -> int:
    from almanac.registry import get_run
    from ml.factors import display_table, run_exposure

    out = run_exposure(get_run(args.run_id), args.threshold, args.cost_bps, args.long_only)
    if args.json:
        print_json(out)
        return 0
    header, rows, notes = display_table([("model", out["model"]), ("always long", out["always_long"])])
    s = out["settings"]
    print(f"{out['run_id']}: threshold {s['threshold']:.2f}, {'long only' if s['long_only'] else 'long and short'}, "
          f"{s['cost_bps']:g} bp per side")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for line in notes:
        print(line)
    return 0


def cmd_export(args) -> int:
    from ml.export import export_run

    path = export_run(args.run_id, args.out)
    print(path)
    return 0


def cmd_predict(args) -> int:
    from ml.export import predict_bundle

    path = predict_bundle(args.bundle, args.input, args.out,
                          warn=lambda w: print(f"warning: {w}", file=sys.stderr))
    print(path)
    return 0


def write_report(run_id: str, out: Path | str) -> Path:
    """Write the HTML report of run ``run_id`` to ``out`` (an .html path, or a folder to
    hold ``<run_id>.html``) and return its path: the data gathered by ml, the page
    rendered by viz (ml never imports viz, docs/design.md §2), written atomically."""
    from almanac import registry
    from almanac.atomic import atomic_write_bytes
    from ml.export import check_output_path
    from ml.report import report_data
    from viz.report import render_report

    run = registry.get_run(run_id)
    path = check_output_path(out, f"{run_id}.html", (".html", ".htm"))
    atomic_write_bytes(path, render_report(report_data(run)).encode())
    return path


def cmd_report(args) -> int:
    path = write_report(args.run_id, args.out)
    print(path)
    return 0
