"""``bench`` commands: speed and memory figures (printed, never asserted in tests)."""

from __future__ import annotations

from pathlib import Path

from cli import print_json, progress_printer
from almanac.errors import SpecError


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: speed and memory of the lab's heavy paths",
                       description="Benchmarks that print measured figures and the targets they meet.")
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True
    f = cmds.add_parser(
        "features", help="feature build vs bare Parquet read, cache, naive per-day apply, memory",
        description="Generate (once, seeded, cached under ALMANAC_HOME/cache/bench) N years of 1-minute bars "
                    "of a 23-hour futures session and measure: bare pandas.read_parquet, cold and warm "
                    "feature builds, the naive per-day groupby().apply on the same early-session features "
                    "(checked to give the same numbers) and peak memory.")
    f.add_argument("--years", type=int, default=10, help="years of minute bars (252 days each; default 10)")
    f.add_argument("--repeat", type=int, default=5, help="runs per timing, best kept (default 5)")
    f.add_argument("--home", help="folder for the generated data (default ALMANAC_HOME/cache/bench)")
    f.add_argument("--json", action="store_true", help="print the figures as JSON")
    f.set_defaults(handler=cmd_features)

    pl = cmds.add_parser(
        "pipeline", help="every stage of the default experiment vs fitting its fold models alone",
        description="Write the sample data into a temporary ALMANAC_HOME, run a spec (default "
                    "configs/es-rest-of-day-lgbm.yaml: 5 folds, LightGBM, SHAP, backtest, writes) cold and warm, "
                    "then fit its five fold models alone; print each stage's time and the ratio to the fits "
                    "(target: a whole run <= 3x the fold fits).")
    pl.add_argument("--spec", help="experiment spec YAML to time (default: configs/es-rest-of-day-lgbm.yaml)")
    pl.add_argument("--json", action="store_true", help="print the figures as JSON")
    pl.set_defaults(handler=cmd_pipeline)

    d = cmds.add_parser(
        "data", help="sample-data generation, import of 1M minute bars (CSV, Parquet), pruned read",
        description="In a temporary data home: time writing the sample data as on first start, importing "
                    "N generated 1-minute bars from CSV and from Parquet (read, validate, atomic write, "
                    "catalog), and reading one day back.")
    d.add_argument("--rows", type=int, default=1_000_000, help="minute bars to import (default 1,000,000)")
    d.add_argument("--json", action="store_true", help="print the figures as JSON")
    d.set_defaults(handler=cmd_data)

    a = cmds.add_parser(
        "all", help="every row of the speed table that needs no browser: min and median of N repeats",
        description="App start to first HTTP 200 (and the heavy libraries `import app` loads), `almanac train` "
                    "vs a plain LightGBM script, the in-process pipeline vs its fits, features build time and "
                    "peak memory at 10 and 20 years, cross-asset file reads, and the import of N minute bars "
                    "(CSV, Parquet), each repeated; page timings need a browser and are not measured here.")
    a.add_argument("--repeat", type=int, default=3, help="repeats of every figure (default 3, at least 3)")
    a.add_argument("--rows", type=int, default=7_000_000, help="minute bars to import (default 7,000,000 = 20 years)")
    a.add_argument("--years", type=int, nargs="+", default=[10, 20], help="feature-build histories (default 10 20)")
    a.add_argument("--home", help="folder for the generated feature data (default ALMANAC_HOME/cache/bench)")
    a.add_argument("--json", action="store_true", help="print the figures as JSON")
    a.set_defaults(handler=cmd_all)

    st = cmds.add_parser(
        "study", help="a study's overhead per trial, --jobs 2 vs --jobs 1, fold fits saved by pruning",
        description="On the sample data in a temporary ALMANAC_HOME, run studies of N trials of the default spec "
                    "(learning rate, leaves, threshold): jobs 1 without pruning (overhead over run_experiment, "
                    "goal <= 1.1x), jobs 2 without pruning (goal >= 1.6x faster) and jobs 1 with the median pruner "
                    "(fold fits saved, best values); min and median over the repeats.")
    st.add_argument("--trials", type=int, default=20, help="trials per study (default 20)")
    st.add_argument("--repeat", type=int, default=3, help="repeats (default 3)")
    st.add_argument("--json", action="store_true", help="print the figures as JSON")
    st.set_defaults(handler=cmd_study)

    sc = cmds.add_parser(
        "scale", help="the same study on 1 and 2 Celery workers; queue overhead per trial vs --jobs",
        description="Start a redis-server and Celery workers in a temporary folder; run a 12-trial study of a "
                    "small spec locally (--jobs 1), on 1 worker and on 2 workers; print the walls, the speed-up "
                    "of 2 workers (goal >= 1.6x) and the queue's overhead per trial (goal <= 0.2 s); min and "
                    "median over the repeats. Needs redis-server on PATH.")
    sc.add_argument("--trials", type=int, default=12, help="trials per study (default 12)")
    sc.add_argument("--repeat", type=int, default=3, help="repeats (default 3)")
    sc.add_argument("--json", action="store_true", help="print the figures as JSON")
    sc.set_defaults(handler=cmd_scale)

    h = cmds.add_parser(
        "hostile", help="time and peak memory of refusing hostile or careless inputs",
        description="Build each hostile input (a one-line CSV of 1.1M columns, a 190 MB file, a YAML alias "
                    "bomb, a zip-bomb bundle, ...) in a temporary folder, run the real command in a fresh "
                    "process and print its exit code, time, peak memory and message. Goal: exit 2 with one "
                    "line, within 2 s and under 300 MB each.")
    h.add_argument("--case", action="append", help="run only this case (repeatable; default: all)")
    h.add_argument("--json", action="store_true", help="print the figures as JSON")
    h.set_defaults(handler=cmd_hostile)

    sv = cmds.add_parser(
        "serve", help="REST service: requests/s and p50/p95/p99 latency of /predict, /signal, /predict/batch",
        description="In a temporary data home (synthetic market, one active LightGBM run) start `serve` on a free "
                    "loopback port and send a bounded load from N client threads to /predict (one row), /signal "
                    "and /predict/batch (1,000 rows); no errors allowed. Goal: /predict p95 <= 15 ms and "
                    ">= 300 requests/s.")
    sv.add_argument("--requests", type=int, default=2000, help="requests per route and repeat (default 2,000)")
    sv.add_argument("--clients", type=int, default=8, help="client threads (default 8)")
    sv.add_argument("--repeat", type=int, default=3, help="repeats (default 3, at least 3)")
    sv.add_argument("--json", action="store_true", help="print the figures as JSON")
    sv.set_defaults(handler=cmd_serve)


def cmd_features(args) -> int:
    from bench.features import format_report, run_bench

    if not 1 <= args.years <= 30:
        raise SpecError(f"--years {args.years} is out of range: use 1 to 30")
    if not 1 <= args.repeat <= 50:
        raise SpecError(f"--repeat {args.repeat} is out of range: use 1 to 50")
    result = run_bench(years=args.years, repeat=args.repeat, home=Path(args.home) if args.home else None,
                       progress=progress_printer("bench "))
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 0


def cmd_pipeline(args) -> int:
    from bench.pipeline import main

    if args.spec and not Path(args.spec).is_file():
        raise SpecError(f"--spec {args.spec} is not a file: pass a spec YAML such as configs/es-rest-of-day-lgbm.yaml")
    return main(args)


def cmd_data(args) -> int:
    from bench.data import main

    if not 1_000 <= args.rows <= 20_000_000:
        raise SpecError(f"--rows {args.rows} is out of range: use 1,000 to 20,000,000")
    return main(args)


def cmd_all(args) -> int:
    from bench.all import main

    if not 3 <= args.repeat <= 20:
        raise SpecError(f"--repeat {args.repeat} is out of range: use 3 to 20 (min and median need 3)")
    if not 1_000 <= args.rows <= 20_000_000:
        raise SpecError(f"--rows {args.rows} is out of range: use 1,000 to 20,000,000")
    bad = [y for y in args.years if not 1 <= y <= 30]
    if bad:
        raise SpecError(f"--years {bad[0]} is out of range: use 1 to 30")
    return main(args)


def cmd_hostile(args) -> int:
    from bench.hostile import CASES, format_report, run

    known = [c.name for c in CASES]
    unknown = [c for c in args.case or [] if c not in known]
    if unknown:
        raise SpecError(f"unknown case(s) {', '.join(unknown)}: choose from {', '.join(known)}")
    rows = run(args.case, progress=progress_printer("hostile "))
    if args.json:
        print_json(rows)
    else:
        print(format_report(rows))
    return 0


def cmd_serve(args) -> int:
    from bench.serve import errors_of, format_report, run

    if not 100 <= args.requests <= 100_000:
        raise SpecError(f"--requests {args.requests} is out of range: use 100 to 100,000")
    if not 1 <= args.clients <= 64:
        raise SpecError(f"--clients {args.clients} is out of range: use 1 to 64")
    if not 3 <= args.repeat <= 20:
        raise SpecError(f"--repeat {args.repeat} is out of range: use 3 to 20 (min and median need 3)")
    result = run(args.requests, args.clients, args.repeat, progress=progress_printer("bench "))
    if args.json:
        print_json(result)
    else:
        print(format_report(result))
    return 1 if errors_of(result) else 0


def cmd_scale(args) -> int:
    from bench.scale import main

    if not 2 <= args.trials <= 200:
        raise SpecError(f"--trials {args.trials} is out of range: use 2 to 200")
    if not 1 <= args.repeat <= 20:
        raise SpecError(f"--repeat {args.repeat} is out of range: use 1 to 20")
    return main(args)


def cmd_study(args) -> int:
    from bench.study import main

    if not 2 <= args.trials <= 200:
        raise SpecError(f"--trials {args.trials} is out of range: use 2 to 200")
    if not 1 <= args.repeat <= 20:
        raise SpecError(f"--repeat {args.repeat} is out of range: use 1 to 20")
    return main(args)
