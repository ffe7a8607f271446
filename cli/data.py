"""``data`` commands: import, list, show."""

from __future__ import annotations

import sys

from cli import print_json

FREQ_CHOICES = ("1min", "5min", "15min", "30min", "1h", "1d")  # almanac.store.FREQS (not imported at start)


def register(sub) -> None:
    p = sub.add_parser("data", help="the market data on disk: import, list, show",
                       description="Market data in the store under ALMANAC_HOME.")
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True

    imp = cmds.add_parser(
        "import", help="validate a CSV or Parquet file and store it as a symbol",
        description="Validate a CSV or Parquet file of bars and store it. Importing a symbol that "
                    "already has data at that frequency REPLACES it atomically (no append). Unsorted rows "
                    "are sorted and exact duplicate rows dropped, with a warning; any other problem refuses "
                    "the file and leaves the store unchanged. Prices must be above 0 (see --allow-nonpositive), times "
                    "within the years 1900-2100, text free of control characters. What a file may cost is bounded "
                    "before it is parsed: ALMANAC_MAX_IMPORT_MB, ALMANAC_MAX_COLUMNS, ALMANAC_MAX_LINE_KB, "
                    "ALMANAC_MAX_ROWS, and for Parquet ALMANAC_MAX_PARQUET_FOOTER_MB and ALMANAC_MAX_EXPANSION.")
    imp.add_argument("path", help="CSV (comma, semicolon or tab; .gz or .zip too) or Parquet file; columns such as "
                                  "Date/Time/Timestamp/Datetime/Gmt time, Open, High, Low, Close/Last/Price (or Adj "
                                  "Close, daily only), Volume/Vol; any case")
    imp.add_argument("--symbol", required=True, help="symbol to store it under, e.g. ES")
    imp.add_argument("--freq", choices=list(FREQ_CHOICES),
                     help="bar size (default: detected from the timestamps)")
    imp.add_argument("--tz", help="time zone of naive timestamps (default: the zone of the symbol's calendar, "
                                  "America/New_York for the sample symbols); aware and epoch times keep theirs")
    imp.add_argument("--calendar", help="exchange calendar (an exchange_calendars name such as XNYS, CMES, XLON): "
                                        "holidays and early closes (default: XNYS for the sample symbols, none for "
                                        "others; 'none' for none); bars outside its sessions are dropped with a "
                                        "warning")
    imp.add_argument("--stamp", choices=["start", "end"], default="start",
                     help="intraday bars stamped at their start (default) or end (moved to their start)")
    imp.add_argument("--delimiter", choices=[",", ";", "tab"], help="CSV field separator (default: detected)")
    imp.add_argument("--decimal", choices=[".", ","], help="decimal mark of prices (default: '.'; a ',' in a "
                                                           "semicolon or tab file must be named)")
    imp.add_argument("--epoch", choices=["s", "ms"], help="numeric times are epoch seconds or milliseconds "
                                                          "(default: detected from their size)")
    imp.add_argument("--date-order", choices=["dmy", "mdy"], help="order of dates such as 03/04/2024 "
                                                                 "(day-month-year or month-day-year)")
    imp.add_argument("--allow-nonpositive", action="store_true",
                     help="accept prices of 0 or below (a spread); by default they are refused as errors")
    imp.add_argument("--json", action="store_true", help="print the catalog entry as JSON")
    imp.set_defaults(handler=cmd_import)

    feats = cmds.add_parser(
        "import-features", help="import a feature table (date- or timestamp-keyed numeric columns) with its known-at time",
        description="Store a table keyed by date or timestamp with one or more numeric columns (a macro release, a "
                    "sentiment score, an implied volatility) under ALMANAC_HOME/tables/. Each row is known at "
                    "--known-at HH:MM of its date (exchange time of the symbol it joins), at its own known_at "
                    "column, or (timestamp-keyed) at its timestamp. A build with --sets ...,tables gives day D the "
                    "last value known at or before D's cutoff: a daily value known at 16:00 reaches D+1. Missing or "
                    "non-numeric values refuse the file; the import limits of `data import` apply.")
    feats.add_argument("path", help="CSV or Parquet file")
    feats.add_argument("--name", required=True, help="table name (lower-case letters, digits, _), e.g. macro")
    feats.add_argument("--known-at", dest="known_at", help="local time HH:MM at which each date's row was known, "
                                                           "e.g. 16:00 (a date-keyed table needs it or a known_at column)")
    feats.add_argument("--key", help="the date or timestamp column (default: Date, Timestamp, Datetime, time or ts)")
    feats.add_argument("--json", action="store_true", help="print the table's entry as JSON")
    feats.set_defaults(handler=cmd_import_features)

    tab = cmds.add_parser(
        "import-table", help="import any table with a time column as a dataset for experiments",
        description="Store any CSV or Parquet table with a time column (e.g. option quotes) under "
                    "ALMANAC_HOME/tables/, validated like bars: every value present, numbers where numbers are "
                    "written, rows sorted by time (with a warning). An experiment names it with "
                    "data: {table: NAME, target: COLUMN} and label: {kind: column}.")
    tab.add_argument("path", help="CSV or Parquet file")
    tab.add_argument("--name", required=True, help="table name, e.g. spx_options")
    tab.add_argument("--time", required=True, help="the time column (rows of one time never straddle a fold)")
    tab.add_argument("--group", help="an optional group column (e.g. the contract), kept as text")
    tab.add_argument("--json", action="store_true", help="print the table's entry as JSON")
    tab.set_defaults(handler=cmd_import_table)

    tl = cmds.add_parser("tables", help="list the feature and dataset tables",
                         description="The user tables under ALMANAC_HOME/tables/.")
    tl.add_argument("--json", action="store_true", help="print a JSON list of table entries")
    tl.set_defaults(handler=cmd_tables)

    ls = cmds.add_parser("list", help="list the catalog", description="List the datasets in the catalog.")
    ls.add_argument("--json", action="store_true", help="print a JSON list of catalog entries")
    ls.set_defaults(handler=cmd_list)

    show = cmds.add_parser("show", help="show one catalog entry", description="Show one dataset's catalog entry.")
    show.add_argument("symbol")
    show.add_argument("--freq", choices=list(FREQ_CHOICES),
                      help="which bar size (default: the finest present)")
    show.add_argument("--json", action="store_true", help="print the entry as JSON")
    show.set_defaults(handler=cmd_show)


def _check_tz(tz: str | None) -> None:
    if tz is None:
        return
    from zoneinfo import ZoneInfo

    from almanac.errors import DataError
    try:
        ZoneInfo(tz)
    except Exception:
        raise DataError(f"--tz {tz!r} is not a time zone: use an IANA name such as America/New_York or UTC") from None


def cmd_import(args) -> int:
    from almanac.importer import Layout, import_file

    _check_tz(args.tz)
    layout = Layout(delimiter="\t" if args.delimiter == "tab" else args.delimiter, decimal=args.decimal,
                    epoch=args.epoch, date_order=args.date_order)
    result = import_file(args.path, args.symbol, freq=args.freq, tz=args.tz,
                         allow_nonpositive=args.allow_nonpositive, calendar=args.calendar, stamp=args.stamp,
                         layout=layout)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    e = result.entry
    if args.json:
        print_json(e.to_dict())
    else:
        cal = f"; calendar {e.calendar}" if e.calendar else "; no calendar"
        notes = "".join(f"; {n}" for n in result.notes)
        print(f"imported {e.symbol} {e.freq}: {e.rows} rows {e.start} .. {e.end} (sha256 {e.sha256[:12]}){cal}{notes}")
    return 0


def _print_table(e, warnings, as_json: bool) -> None:
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    if as_json:
        print_json(e.to_dict())
    else:
        rule = f", known at {e.rule}" if e.kind == "features" else ""
        print(f"imported {e.kind} table {e.name}: {e.rows} rows x {len(e.columns)} columns {e.start} .. {e.end}"
              f"{rule} (sha256 {e.sha256[:12]})")


def cmd_import_features(args) -> int:
    from almanac.tables import import_feature_table

    e, warnings = import_feature_table(args.path, args.name, known_at=args.known_at, key=args.key)
    _print_table(e, warnings, args.json)
    return 0


def cmd_import_table(args) -> int:
    from almanac.tables import import_dataset_table

    e, warnings = import_dataset_table(args.path, args.name, time=args.time, group=args.group)
    _print_table(e, warnings, args.json)
    return 0


def cmd_tables(args) -> int:
    from almanac.tables import Tables

    entries = Tables().list()
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    if not entries:
        print("no tables yet: `python -m almanac data import-features` or `data import-table`")
    for e in entries:
        extra = f"known at {e.rule}" if e.kind == "features" else f"time {e.key}" + (f", group {e.group}" if e.group else "")
        flag = " [sample]" if e.sample else ""
        print(f"{e.name:<16}{e.kind:<10}{e.rows:>9} rows  {', '.join(e.columns)[:50]:<50}  {extra}{flag}")
    return 0


def cmd_list(args) -> int:
    from almanac.store import Store

    entries = Store().catalog()
    if args.json:
        print_json([e.to_dict() for e in entries])
        return 0
    if not entries:
        print("the catalog is empty: start the app (it creates sample data) or run `python -m almanac data import`")
        return 0
    from almanac.sessions import session_of

    print(f"{'symbol':<8}{'freq':<6}{'calendar':<9}{'start':<27}{'end':<27}{'rows':>10}  source")
    for e in entries:
        flag = " [sample]" if e.sample else ""
        cal = session_of(e).calendar or "none"
        print(f"{e.symbol:<8}{e.freq:<6}{cal:<9}{e.start:<27}{e.end:<27}{e.rows:>10}  {e.source[:60]}{flag}")
    return 0


def cmd_show(args) -> int:
    from almanac.store import Store

    from almanac.sessions import session_of

    e = Store().entry(args.symbol, args.freq)
    entry = dict(e.to_dict(), calendar=session_of(e).calendar or None)  # the calendar the lab uses; null: none
    if args.json:
        print_json(entry)
    else:
        for k, v in entry.items():
            print(f"{k:>14}: {v}")
    return 0
