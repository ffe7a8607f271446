"""``train --config SPEC.yaml`` for a multi-head spec (one with ``heads:``, :mod:`almanac.multihead`).

Each head's checks run before any work (one-line error, exit 2); then :func:`ml.heads.run_multihead`
trains one run per head on the shared feature table and fold split and backtests the gated
signal. Prints the multi-head id (``--json``: the parent record, with ``heads {name: {run_id,
label, task, metrics, baselines, backtest, summary}}`` and ``gated_backtest``).
"""

from __future__ import annotations

import sys

from cli import print_json, progress_printer


def train_multihead(spec, args) -> int:
    from almanac.errors import SpecError

    if args.queue:
        raise SpecError("a multi-head spec runs here, not on a queue worker: drop --queue (or train each head's "
                        "spec on its own with --queue)")
    from ml.heads import check_heads, run_multihead

    check_heads(spec)  # the runner's checks, per head, before any write (it repeats them: milliseconds)

    record = run_multihead(spec, progress=progress_printer("train "))
    if args.json:
        print_json(shown_multihead(record))
    else:
        print(record["multihead_id"])
        for name, h in record["heads"].items():
            print(f"  head {name}: {h['run_id']}", file=sys.stderr)
    return 0


def shown_multihead(record: dict) -> dict:
    """The parent record as ``train --json`` prints it: each head's ``backtest`` with
    ``n_trials`` / ``dsr`` as they are now (:func:`ml.trials.current_backtest`)."""
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
    return {**record, "heads": heads}
