"""``ensemble --runs A,B[,C] --method mean|stack [--name N] [--json]``: combine runs into a new run.

The runs must share symbol, label, cutoff and fold dates (:mod:`ml.ensemble`); a refusal is
one line naming the first difference, and nothing is written. Prints the new run id
(``--json``: the same JSON as ``train --json`` / ``runs show --json``).
"""

from __future__ import annotations

from cli import print_json, progress_printer


def register(sub) -> None:
    e = sub.add_parser("ensemble", help="average or stack runs with the same symbol, label and folds into a new run",
                       description="Combine complete runs with the same symbol, label, cutoff and fold dates: "
                                   "'mean' averages their out-of-fold predictions, 'stack' fits a logistic model "
                                   "on them inside each fold (binary labels). The result is a new run, evaluated, "
                                   "backtested and counted as a trial like any other; `export` bundles its parts.")
    e.add_argument("--runs", required=True, help="comma-separated run ids, e.g. A,B (from `runs list`)")
    e.add_argument("--method", choices=("mean", "stack"), default="mean", help="mean (default) or stack")
    e.add_argument("--name", default=None, help="a name for the new run (default: ensemble-<method> of the parts)")
    e.add_argument("--json", action="store_true", help="print the run record (as `train --json`)")
    e.set_defaults(handler=cmd_ensemble)


def cmd_ensemble(args) -> int:
    from almanac.registry import check_labels, get_run
    from ml.ensemble_parts import check_request

    runs = [r.strip() for r in args.runs.split(",")]
    if args.name is not None:
        check_labels(name=args.name)
    check_request(runs, args.method)  # refusals before the heavy imports below; make_ensemble repeats it
    from cli.experiments import shown_run
    from ml.ensemble import make_ensemble

    record = make_ensemble(runs, method=args.method, name=args.name,
                           progress=progress_printer("ensemble "))
    if args.json:
        print_json(shown_run(get_run(record["run_id"])))
    else:
        print(record["run_id"])
    return 0
