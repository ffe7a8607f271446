"""``features`` commands: build (to a Parquet file), list (sets, features, definitions)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from cli import print_json, progress_printer
from almanac.errors import SpecError
from almanac.settings import REPO_ROOT


def register(sub) -> None:
    p = sub.add_parser("features", help="build and list features (early session, cross-asset, regime)",
                       description="Features known at a cutoff of the trading day, with lineage.")
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True

    b = cmds.add_parser(
        "build", help="build the feature table of a symbol into a Parquet file",
        description="Build one row per trading day of SYMBOL as of the cutoff and write a `date` column plus "
                    "the feature columns to --out. Notes (e.g. why early-session features are absent) go to "
                    "stderr. Results are cached under ALMANAC_HOME/cache/features.")
    b.add_argument("--symbol", required=True, help="target symbol, e.g. ES")
    b.add_argument("--cutoff", default="10:15", help="local wall-clock cutoff inside the regular session "
                                                     "(default 10:15)")
    b.add_argument("--sets", default="early_session,cross_asset,regime",
                   help="comma-separated feature sets (default: all of early_session,cross_asset,regime)")
    b.add_argument("--cross", default="", help="comma-separated cross-asset symbols, e.g. VIX,CL")
    b.add_argument("--start", help="first date (YYYY-MM-DD) of the rows written")
    b.add_argument("--end", help="last date (YYYY-MM-DD) of the rows written")
    b.add_argument("--out", required=True, help="output Parquet file (not inside assets/)")
    b.add_argument("--no-cache", action="store_true", help="ignore and do not write the feature cache")
    b.add_argument("--json", action="store_true", help="print a JSON summary (rows, columns, lineage, notes)")
    b.set_defaults(handler=cmd_build)

    ls = cmds.add_parser("list", help="list feature sets, features and their definitions",
                         description="Every feature with its set and exact definition.")
    ls.add_argument("--json", action="store_true", help="print a JSON list of {set, name, definition}")
    ls.set_defaults(handler=cmd_list)


def check_out(path: str) -> Path:
    """Refuse an output path inside assets/ (Dash serves that folder publicly)."""
    out = Path(path).expanduser().resolve()
    assets = (REPO_ROOT / "assets").resolve()
    if out == assets or assets in out.parents:
        raise SpecError(f"--out {path} is inside {assets}, which the web app serves publicly: "
                        "write the file somewhere else")
    if out.suffix.lower() != ".parquet":
        raise SpecError(f"--out {path} must end in .parquet")
    if not out.parent.is_dir():
        raise SpecError(f"--out {path}: folder {out.parent} does not exist; create it first")
    return out


def cmd_build(args) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from almanac.atomic import atomic_write
    from features import build_features

    out = check_out(args.out)
    ft = build_features(args.symbol, cutoff=args.cutoff, sets=args.sets, cross_assets=args.cross,
                        start=args.start, end=args.end, use_cache=not args.no_cache,
                        progress=progress_printer("features "))
    for note in ft.notes:
        print(f"note: {note}", file=sys.stderr)
    table = pa.Table.from_pandas(ft.table(), preserve_index=False)
    atomic_write(out, lambda tmp: pq.write_table(table, tmp, compression="zstd"))
    if args.json:
        print_json({"out": str(out), "rows": len(ft.frame), "columns": list(ft.frame.columns),
                    "config": ft.config, "data_hashes": ft.data_hashes, "notes": ft.notes,
                    "lineage": ft.lineage, "from_cache": ft.from_cache})
    else:
        first, last = ft.frame.index[0], ft.frame.index[-1]
        print(f"wrote {len(ft.frame)} rows x {ft.frame.shape[1]} features ({first:%Y-%m-%d} .. {last:%Y-%m-%d}) "
              f"to {out}{' (from cache)' if ft.from_cache else ''}")
    return 0


def cmd_list(args) -> int:
    from features import describe_features

    rows = describe_features()
    if args.json:
        print_json(rows)
        return 0
    current = None
    for r in rows:
        if r["set"] != current:
            current = r["set"]
            print(f"\n{current}" if current != rows[0]["set"] else current)
        body = textwrap.fill(r["definition"], width=100, initial_indent=" " * 24, subsequent_indent=" " * 24)
        print(f"  {r['name']:<21} {body.strip()}" if len(r["name"]) < 22 else f"  {r['name']}\n{body}")
    print("\n{SYM} = each cross-asset symbol (--cross). Values are fractions (0.01 = 1 %).")
    return 0
