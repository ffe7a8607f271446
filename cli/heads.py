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
    from almanac.spec import validate_against_store
    from ml.models import check_params

    if args.queue:
        raise SpecError("a multi-head spec runs here, not on a queue worker: drop --queue (or train each head's "
                        "spec on its own with --queue)")
    for name in spec.heads:  # the runner's checks, per head, before any heavy import or write
        s = spec.head_spec(name)
        check_params(s.model.kind, s.task, s.model.params, seed=s.seed)
        validate_against_store(s)
    from ml.heads import run_multihead

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
