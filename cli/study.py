"""Study commands: ``study run|list|show|delete|promote`` (see :mod:`ml.study`).

``study run --config STUDY.yaml [--jobs N] [--json]`` validates the study (one line, exit 2,
nothing written), runs or resumes it with "trial 7/40 · best 0.561" on stderr and prints
the study (``--json``: the full JSON of ``study show --json``). Ctrl-C keeps the completed
trials; running the same file again resumes the study. With ``ALMANAC_REDIS_URL`` set the
trials run on the Celery workers (``celery -A worker worker``, :mod:`ml.scale`): Ctrl-C
revokes the queued ones and terminates the running ones; each trial's ``worker`` (host:pid)
is in the JSON.
"""

from __future__ import annotations

import sys

from cli import print_json, progress_printer


def register(sub) -> None:
    s = sub.add_parser("study", help="Optuna searches and feature-set ablations over an experiment spec",
                       description="Studies: many walk-forward runs of one base spec, searched with Optuna "
                                   "(TPE + median pruning) or ablated by feature set, with a holdout for the "
                                   "winner and every trial counted in the deflated Sharpe ratio.")
    cmds = s.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True
    run = cmds.add_parser("run", help="run or resume a study", description="Run (or resume) a study YAML.")
    run.add_argument("--config", required=True, help="study spec (YAML)")
    run.add_argument("--jobs", type=int, default=1,
                     help="worker processes on the same study (default 1); with ALMANAC_REDIS_URL set the trials "
                          "go to the Celery workers instead and --jobs is ignored")
    run.add_argument("--json", action="store_true", help="print the study as JSON")
    run.set_defaults(handler=cmd_run)
    ls = cmds.add_parser("list", help="list studies", description="List the studies, newest first.")
    ls.add_argument("--json", action="store_true", help="print a JSON list of study summaries")
    ls.set_defaults(handler=cmd_list)
    show = cmds.add_parser("show", help="show one study", description="Trials, best trial, holdout, ablation.")
    show.add_argument("study_id")
    show.add_argument("--json", action="store_true", help="print the study as JSON")
    show.set_defaults(handler=cmd_show)
    rm = cmds.add_parser("delete", help="delete a study and its trials' runs",
                         description="Delete a study folder and every run its trials registered.")
    rm.add_argument("study_id")
    rm.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    rm.set_defaults(handler=cmd_delete)
    pr = cmds.add_parser("promote", help="make the study's best trial the active model",
                         description="Mark the best trial's run active for its symbol and label.")
    pr.add_argument("study_id")
    pr.set_defaults(handler=cmd_promote)


def _fmt(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def _print(r: dict) -> None:
    print(f"study    {r['study_id']} ({r['kind']}, {r['symbol']} / {r['label']})")
    print(f"path     {r['path']}")
    print(f"trials   {r['n_trials']} of {r['budget']}: {r['n_complete']} complete, {r['n_pruned']} pruned, "
          f"{r['n_failed']} failed")
    b = r.get("best")
    if b:
        print(f"best     trial {b['trial']} {r['objective']['metric']} {_fmt(b['value'])} run {b['run_id']}")
    h = r.get("holdout")
    if h:
        print(f"holdout  best CV {_fmt(h['cv_value'])} → holdout {_fmt(h['value'])} ({h['start']} .. {h['end']}) · "
              f"DSR {_fmt(h['dsr'], 2)} over {h['n_trials']} trials")
    for a in r.get("ablation") or []:
        print(f"ablation {'+'.join(a['sets']):<40} {_fmt(a['value'])} [{_fmt(a['ci_low'])}, {_fmt(a['ci_high'])}] "
              f"Δ {_fmt(a['delta_vs_full'])}")


def cmd_run(args) -> int:
    from almanac.study_spec import load_study
    from ml.study import run_study

    study = load_study(args.config)
    try:
        report = run_study(study, jobs=args.jobs, progress=progress_printer("study "))
    except KeyboardInterrupt:
        print("study interrupted: completed trials are kept; run the same command again to resume",
              file=sys.stderr)
        raise
    if args.json:
        print_json(report)
    else:
        _print(report)
    return 0


def cmd_list(args) -> int:
    from ml.study import list_studies

    studies = list_studies()
    if args.json:
        print_json(studies)
        return 0
    if not studies:
        print("no studies yet: run one with `python -m almanac study run --config STUDY.yaml`")
    for r in studies:
        best = r.get("best") or {}
        print(f"{r['study_id']:<44} {r['kind']:<8} {r['n_trials']:>4}/{r['budget']:<4} "
              f"best {_fmt(best.get('value'))}")
    return 0


def cmd_show(args) -> int:
    from ml.study import study_report

    r = study_report(args.study_id)
    if args.json:
        print_json(r)
    else:
        _print(r)
    return 0


def cmd_delete(args) -> int:
    from almanac.errors import AlmanacError
    from ml.study import delete_study, study_report

    r = study_report(args.study_id)
    runs = sum(1 for t in r["trials"] if t.get("run_id"))
    if not args.yes:
        if not sys.stdin.isatty():
            raise AlmanacError(f"deleting study {args.study_id} also deletes its {runs} trial run(s): pass --yes "
                               "to confirm")
        answer = input(f"delete study {args.study_id} and its {runs} trial run(s)? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    gone = delete_study(args.study_id)
    print(f"deleted {args.study_id} and {len(gone)} run(s)")
    return 0


def cmd_promote(args) -> int:
    from ml.study import promote

    entry = promote(args.study_id)
    print(f"active {entry['symbol']} / {entry['label']}: {entry['run_id']}")
    return 0
