"""Multi-head runs on the command line: ``train --config SPEC.yaml`` for a spec with ``heads:``
(:mod:`almanac.multihead`) and ``runs heads [ID] [--json]`` to list them or show one.

Each head's checks run before any work (one-line error, exit 2); then :func:`ml.heads.run_multihead`
trains one run per head on the shared feature table and fold split and backtests the gated
signal. Prints the multi-head id (``--json``: the parent record, with ``heads {name: {run_id,
label, task, metrics, baselines, backtest, summary}}`` and ``gated_backtest``).
"""

from __future__ import annotations

import sys

from cli import print_json, progress_printer


def register_runs(cmds) -> None:
    """``runs heads [ID] [--json]`` (``cmds``: the ``runs`` group's subparsers)."""
    h = cmds.add_parser("heads", help="multi-head runs: list them, or show one's heads side by side",
                        description="Without an id: the multi-head runs, newest first (id, name, heads). With an "
                                    "id: its heads side by side and the gated backtest (--json: the record "
                                    "`train --json` printed, with each head's DSR as it is now).")
    h.add_argument("multihead_id", nargs="?")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(handler=cmd_heads)


def cmd_heads(args) -> int:
    from ml.heads import get_multihead, list_multiheads

    if not args.multihead_id:
        rows = list_multiheads()
        if args.json:
            print_json(rows)
        elif not rows:
            print("no multi-head run yet: train a spec with heads: (e.g. configs/es-multihead.yaml)")
        for r in [] if args.json else rows:
            print(f"{r['multihead_id']}  {r['name']}  heads {', '.join(r['heads'])}")
        return 0
    record = shown_multihead(get_multihead(args.multihead_id))
    if args.json:
        print_json(record)
        return 0
    from viz.heads import gated_text, heads_frame

    print(heads_frame(record).to_string(index=False))
    line = gated_text(record)
    if line:
        print(line)
    return 0


def train_multihead(spec, args) -> int:
    from almanac.errors import SpecError

    if args.queue:
        raise SpecError("a multi-head spec runs here, not on a queue worker: drop --queue (or train each head's "
                        "spec on its own with --queue)")
    from ml.heads import check_heads, run_multihead

    heads = check_heads(spec)  # the runner's checks, per head, before any write (not repeated)

    record = run_multihead(spec, progress=progress_printer("train "), heads=heads)
    if args.json:
        print_json(shown_multihead(record))
    else:
        print(record["multihead_id"])
        for name, h in record["heads"].items():
            print(f"  head {name}: {h['run_id']}", file=sys.stderr)
    return 0


def shown_multihead(record: dict) -> dict:
    """The parent record as ``train --json`` prints it: each head's ``backtest`` and the
    ``gated_backtest`` with ``n_trials`` / ``dsr`` as they are now (:func:`ml.trials.current_backtest`,
    :func:`ml.heads.current_gated`; the values at training stay as ``*_at_training``)."""
    from almanac import registry
    from almanac.errors import AlmanacError
    from ml.trials import current_backtest

    heads = {}
    for name, h in record["heads"].items():
        try:
            run = registry.get_run(h["run_id"])
            heads[name] = {**h, "backtest": current_backtest(run)}
        except AlmanacError:  # a deleted head keeps what was recorded
            heads[name] = {**h, "deleted": True}
    from ml.heads import current_gated

    return {**record, "heads": heads, "gated_backtest": current_gated(record)}
