"""The command line: ``python -m almanac <group> <command> ...``.

Each command group lives in its own module with a ``register(subparsers)`` function;
commands import heavy layers (features, ml) lazily inside their handlers. A user's
mistake (an :class:`~almanac.errors.AlmanacError` or bad usage) prints one line on
stderr and exits with 2; success exits with 0.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import logging
import signal
import sys

from almanac.errors import AlmanacError

#: Modules under cli that register command groups, in help order.
GROUPS = ("data", "features", "plugins", "experiments", "ensemble", "similar", "study", "serve", "bench")


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line and exit code 2."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> Parser:
    parser = Parser(prog="python -m almanac",
                    description="Almanac ML Lab: market data, features, experiments and reports from the command line.")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for name in GROUPS:
        try:
            module = importlib.import_module(f"cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cli.{name}":
                continue  # a group not built yet
            raise
        module.register(sub)
    return parser


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def progress_printer(label: str = ""):
    """A ``progress(fraction, stage)`` callable that draws a bar on stderr."""
    tty = sys.stderr.isatty()
    last = {"stage": None}

    def progress(fraction: float, stage: str = "") -> None:
        pct = max(0.0, min(1.0, float(fraction)))
        if tty:
            bar = "#" * int(pct * 30)
            sys.stderr.write(f"\r{label}[{bar:<30}] {pct:4.0%} {stage[:50]:<50}")
            if pct >= 1.0:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif stage != last["stage"]:
            sys.stderr.write(f"{label}{pct:4.0%} {stage}\n")
            last["stage"] = stage

    return progress


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so that it cleans up exactly like Ctrl-C."""


def _terminate(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated()


def sweep_home() -> None:
    """Remove what interrupted operations left in the data home, and say so on stderr."""
    from almanac.recovery import describe, sweep
    from almanac.settings import get_settings

    removed = sweep(get_settings().home)
    if removed:
        print(f"note: {describe(removed)}", file=sys.stderr)


_loading = False


def entry() -> int:
    """The program (``python -m almanac`` and the ``almanac`` command): :func:`main` with the
    garbage collector off while the command loads its modules, until :func:`loaded`.

    Importing pandas, scikit-learn, SciPy and LightGBM creates about a million objects that
    live until exit, and every full collection walks all of them again: measured on
    ``almanac train``, 0.3-0.5 s of collections during the imports, the run and the exit.
    :func:`loaded` moves them out of the collector's sight (``gc.freeze``) and turns it back
    on, so the command's own garbage is still collected. :func:`main` called in-process (the
    tests, the app) leaves the collector alone."""
    global _loading
    gc.disable()
    _loading = True
    try:
        return main()
    finally:
        loaded()


def loaded() -> None:
    """The command's modules are imported: freeze what is alive and turn the collector back
    on (see :func:`entry`; nothing to do when :func:`main` runs in-process). A command whose
    parser sets ``loads=True`` calls this itself once its heavy imports are done; every other
    command gets it before its handler runs."""
    global _loading
    if _loading:
        _loading = False
        gc.freeze()
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    previous = _install(signal.SIGTERM, _terminate)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "loads", False):
            loaded()
        sweep_home()
        return int(args.handler(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except AlmanacError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    finally:
        loaded()
        if previous is not None:
            _install(signal.SIGTERM, previous)


def _install(signum, handler):
    """``signal.signal`` where allowed (the main thread); the previous handler or None."""
    try:
        return signal.signal(signum, handler)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        return None
