"""``plugins`` commands: add (audited for look-ahead), list, remove.

A plugin is Python code the user chose to run: ``plugins add`` executes the file to audit
it, and every build with the ``plugins`` set executes it again (in the command line or a
background job, never in the web server's process).
"""

from __future__ import annotations

from cli import print_json


def register(sub) -> None:
    p = sub.add_parser("plugins", help="feature plugins: your own @feature functions, audited for look-ahead",
                       description="Feature plugins are Python files with @feature functions (from almanac.plugins). "
                                   "A plugin is code you chose to run: the lab runs it with your rights.")
    cmds = p.add_subparsers(dest="command", metavar="COMMAND")
    cmds.required = True
    add = cmds.add_parser(
        "add", help="audit a plugin file for look-ahead and accept it",
        description="Run the file's @feature functions on SYMBOL's data, then again for a few days D on the data cut "
                    "at D's cutoff (nothing at or after it exists), and compare D's values. Any difference, an "
                    "exception, a wrong index or a non-numeric result refuses the plugin (exit 2). An accepted file is "
                    "copied with its SHA-256 into ALMANAC_HOME/plugins/. Builds use it with --sets ...,plugins and "
                    "audit it again when the file or the data changes. THE FILE IS EXECUTED: add only code you trust.")
    add.add_argument("path", help="the plugin's .py file (its name, e.g. or_skew.py, names the plugin)")
    add.add_argument("--symbol", help="symbol whose 1-minute bars the audit uses (default: the first with 1-minute bars)")
    add.add_argument("--cutoff", default="10:15", help="cutoff of the audit (default 10:15)")
    add.add_argument("--json", action="store_true", help="print the plugin's record as JSON")
    add.set_defaults(handler=cmd_add)
    ls = cmds.add_parser("list", help="list accepted plugins", description="Accepted plugins, their features and audits.")
    ls.add_argument("--json", action="store_true", help="print a JSON list of plugin records")
    ls.set_defaults(handler=cmd_list)
    rm = cmds.add_parser("remove", help="remove a plugin", description="Remove a plugin (by plugin or feature name).")
    rm.add_argument("name")
    rm.set_defaults(handler=cmd_remove)


def cmd_add(args) -> int:
    from features.plugins import add_plugin

    rec = add_plugin(args.path, symbol=args.symbol, cutoff=args.cutoff)
    if args.json:
        print_json(rec.to_dict())
    else:
        audit = next(iter(rec.audits.values()))
        print(f"accepted plugin {rec.name} ({', '.join(f['name'] for f in rec.features)}), sha256 {rec.sha256[:12]}: "
              f"no look-ahead on {audit['symbol']} at {audit['cutoff']} on {', '.join(audit['days'])}")
    return 0


def cmd_list(args) -> int:
    from almanac.plugins import Plugins

    recs = Plugins().list()
    if args.json:
        print_json([r.to_dict() for r in recs])
        return 0
    if not recs:
        print("no plugins: add one with `python -m almanac plugins add FILE.py`")
    for r in recs:
        print(f"{r.name:<20} {r.sha256[:12]}  {', '.join(f['name'] for f in r.features)}  ({len(r.audits)} audit(s))")
    return 0


def cmd_remove(args) -> int:
    from almanac.plugins import Plugins

    rec = Plugins().remove(args.name)
    print(f"removed plugin {rec.name}")
    return 0
