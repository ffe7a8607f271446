"""``similar`` command: the k most similar earlier days of a day, and what followed them."""

from __future__ import annotations

import sys

from cli import print_json


def register(sub) -> None:
    p = sub.add_parser(
        "similar", help="the k most similar earlier days of a day and their rest of the day",
        description="Standardize the features (scaler fitted on the days before DATE only), find the K nearest "
                    "earlier days and print their distance and rest-of-day return (close / price at the "
                    "cutoff - 1), the share of them that were up and their mean. Every neighbour is before DATE.")
    p.add_argument("--symbol", required=True, help="target symbol, e.g. ES")
    p.add_argument("--date", default=None, help="the query day (YYYY-MM-DD); default: the latest day (today at the "
                                                "cutoff when today's bars reach it)")
    p.add_argument("--k", default="10", help="number of neighbours (default 10; at most ALMANAC_MAX_SIMILAR_K, 100)")
    p.add_argument("--cutoff", default="10:15", help="local wall-clock cutoff (default 10:15)")
    p.add_argument("--sets", default="early_session,cross_asset,regime",
                   help="comma-separated feature sets (default: the default experiment's)")
    p.add_argument("--cross", default=None, help="comma-separated cross-asset symbols (default: VIX,CL, those "
                                                 "in the store)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_similar)


def cmd_similar(args) -> int:
    from ml.similar import check_k, similar_days

    out = similar_days(args.symbol, args.date, check_k(args.k), cutoff=args.cutoff, sets=args.sets,
                       cross_assets=args.cross)
    for note in out["notes"]:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print_json(out)
        return 0
    print(f"{out['symbol']} {out['date']} at {out['cutoff']}: {out['k']} most similar earlier days "
          f"(of {out['candidates']}, {len(out['features'])} features)")
    for n in out["neighbors"]:
        print(f"  {n['date']}  distance {n['distance']:7.3f}  rest of day {100 * n['rest_of_day_return']:+.2f} %")
    print(f"up: {out['share_up']:.0%}   mean rest of day: {100 * out['mean_return']:+.3f} %")
    return 0
