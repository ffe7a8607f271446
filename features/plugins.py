"""The ``plugins`` feature set: run users' ``@feature`` functions, and audit them for look-ahead.

A plugin is code the user chose to run (see :mod:`almanac.plugins`); it runs here, in the
process that builds features -- the command line or a background job, never the web
server's process (the pages only read the registry).

**The audit** (:func:`audit`). For a few days D spread over the data
(:data:`AUDIT_DAYS`), the plugin's features are rebuilt on the data *cut at D's cutoff*:
the windows of the days up to D (every window ends before its day's cutoff, so nothing
at or after D's cutoff exists) and the daily bars up to D, day D's row with every value
unknown (NaN: its bar closes after the cutoff; the row is kept so that ``shift(1)`` on
the daily bars still lands on D). D's value must equal the value of the full build (NaN equals NaN;
numbers within ``rtol`` :data:`RTOL`). Any difference refuses the plugin with a
message containing "look-ahead", the feature and the day; so do an exception, a result
that is not a Series, an index that is not trading days of the data, and a non-numeric
result. The audit runs at ``plugins add`` and again before a build whenever the
plugin's file or the data (its hashes, the cutoff) changed since its last audit.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import signal
import threading
import traceback
from datetime import date, time
from pathlib import Path

import numpy as np
import pandas as pd

from almanac.errors import DataError, NotFoundError, SpecError
from almanac.plugins import MARK, PluginRecord, Plugins, check_name, now
from almanac.sessions import Session, parse_time, session_for
from almanac.settings import Limits, get_limits
from almanac.store import CatalogEntry, Store
from features.lineage import DEFINITIONS
from features.sessions_table import _gather, _layout, daily_from_sessions, session_table, utc_micros

SET = "plugins"
#: Days D at which the audit compares the cut build with the full one (fractions of the days).
AUDIT_FRACTIONS = (0.2, 0.35, 0.5, 0.65, 0.8, 0.95)
AUDIT_DAYS = len(AUDIT_FRACTIONS)
RTOL = 1e-9
BAR_COLUMNS = ("open", "high", "low", "close", "volume")


# ---------------------------------------------------------------------- loading


def _read_code(path: Path, limits: Limits | None = None) -> bytes:
    limits = limits or get_limits()
    if path.suffix != ".py" or not path.is_file():
        raise NotFoundError(f"plugin file {path} does not exist or is not a .py file: pass the path of a Python file")
    size = path.stat().st_size
    if size > limits.plugin_bytes:
        raise DataError(f"plugin file {path.name} is {size // 1024} KB, over the {limits.plugin_bytes // 1024} KB "
                        f"limit ({Limits.var('plugin_bytes')}): a plugin is a short function; raise the limit if not")
    return path.read_bytes()


class _TooLong(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise :class:`_TooLong` in the plugin's code after ``seconds`` (SIGALRM; only in a
    process's main thread, where the command line and the background jobs run a build)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):  # noqa: ARG001 - signal handler signature
        raise _TooLong

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _too_long(head: str) -> DataError:
    limit = get_limits().plugin_seconds
    return DataError(f"{head} ran longer than {limit:g} s ({Limits.var('plugin_seconds')}): make it faster, or raise "
                     "the limit")


def load(code: bytes, display: str) -> list[tuple[str, str, object]]:
    """Execute a plugin's code (the user's choice) and return its ``(name, description, fn)``."""
    digest = hashlib.sha256(code).hexdigest()
    module_name = f"almanac_plugin_{digest[:16]}"
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = display
    try:
        with _time_limit(get_limits().plugin_seconds):
            exec(compile(code, display, "exec"), module.__dict__)  # noqa: S102 - the user chose to run this code
    except _TooLong:
        raise _too_long(f"plugin {Path(display).name}'s file") from None
    except BaseException as exc:  # noqa: BLE001 - the user's code: any failure is theirs
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DataError(f"plugin {Path(display).name} could not be loaded: {_what(exc, display)}; fix the file") from None
    found, seen = [], set()
    for obj in list(module.__dict__.values()):
        meta = getattr(obj, MARK, None) if callable(obj) else None
        if meta and id(obj) not in seen:
            seen.add(id(obj))
            found.append((meta["name"], meta["description"], obj))
    if not found:
        raise DataError(f"plugin {Path(display).name} defines no @feature function: decorate one with "
                        "@feature(name=..., description=...) from almanac.plugins")
    names = [n for n, _, _ in found]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"plugin {Path(display).name} defines feature {dup[0]} twice: give each a distinct name")
    builtin = {d.name for d in DEFINITIONS}
    clash = [n for n in names if n in builtin]
    if clash:
        raise DataError(f"plugin {Path(display).name}: feature name {clash[0]} is a built-in feature: rename it")
    return found


def _what(exc: BaseException, filename: str | None = None) -> str:
    """``ZeroDivisionError: division by zero (line 7)``: the line is the deepest in the plugin's file."""
    text = " ".join(str(exc).split())[:120]
    tb = traceback.extract_tb(exc.__traceback__)
    lines = [f.lineno for f in tb if filename is not None and f.filename == filename]
    if isinstance(exc, SyntaxError) and exc.lineno:
        lines.append(exc.lineno)
    where = f" (line {lines[-1]})" if lines else ""
    return f"{type(exc).__name__}{': ' + text if text else ''}{where}"


# ---------------------------------------------------------------------- inputs


def window_and_daily(store: Store, minute: CatalogEntry, daily: CatalogEntry | None, session: Session,
                     cutoff: time, end=None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DatetimeIndex]:
    """(window bars with ``date``, daily bars, trading days) of the stored data up to ``end``."""
    bars = store.read_bars(minute.symbol, "1min", end=end, columns=list(BAR_COLUMNS), entry=minute)
    t = utc_micros(bars["timestamp"])
    lay = _layout(t, session, cutoff)
    idx, pos = _gather(lay.reg_lo, lay.win_hi)
    window = bars.iloc[idx].reset_index(drop=True)
    window["date"] = lay.days[pos]
    if daily is not None and all(c in daily.columns for c in ("open", "high", "low")):
        d = store.read_bars(daily.symbol, "1d", end=end, entry=daily)
    else:
        d = daily_from_sessions(session_table(bars, session, cutoff))
    return window, d.reset_index(drop=True), pd.DatetimeIndex(lay.days, name="date")


def run_feature(name: str, fn, window: pd.DataFrame, daily: pd.DataFrame, days: pd.DatetimeIndex,
                plugin: str, where: str) -> np.ndarray:
    """The feature's values on ``days`` (validated), or a one-line DataError."""
    head = f"plugin {plugin}: feature {name}"
    try:
        with _time_limit(get_limits().plugin_seconds):
            out = fn(window.copy(), daily.copy())
    except _TooLong:
        raise _too_long(head) from None
    except BaseException as exc:  # noqa: BLE001 - the user's code
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise DataError(f"{head} raised {_what(exc, getattr(getattr(fn, '__code__', None), 'co_filename', None))} "
                        f"on {where}; fix the function") from None
    if not isinstance(out, pd.Series):
        raise DataError(f"{head} returned {type(out).__name__}, not a pandas Series indexed by trading day: "
                        "return e.g. window.groupby('date')['close'].last()")
    if not (pd.api.types.is_numeric_dtype(out.dtype) or pd.api.types.is_bool_dtype(out.dtype)):
        raise DataError(f"{head} returned {out.dtype} values, not numbers: return a numeric Series")
    idx = out.index
    dated = pd.api.types.is_datetime64_any_dtype(idx.dtype) or (
        idx.dtype == object and len(idx) > 0 and all(isinstance(v, (pd.Timestamp, date)) for v in idx[:1000]))
    if not dated and len(idx):
        raise DataError(f"{head} returned a Series indexed by {idx.dtype} values, not by trading day: index it by "
                        "the window's date column")
    index = pd.DatetimeIndex(idx) if len(idx) else pd.DatetimeIndex([], dtype="datetime64[us]")
    if index.tz is not None or (len(index) and not (index == index.normalize()).all()):
        raise DataError(f"{head} returned an index of times, not trading days (naive dates): index it by the "
                        "window's date column")
    if index.has_duplicates:
        raise DataError(f"{head} returned the day {index[index.duplicated()][0]:%Y-%m-%d} twice: one value per day")
    if len(index) and not index.isin(days).any():
        raise DataError(f"{head} returned values for no trading day of the data (first {index[0]:%Y-%m-%d}): index "
                        "it by the window's date column")
    values = pd.Series(out.to_numpy(dtype="float64", na_value=np.nan), index=index.as_unit("us"))
    x = values.reindex(pd.DatetimeIndex(days).as_unit("us")).to_numpy(dtype="float64")
    if np.isinf(x).any():
        raise DataError(f"{head} returned an infinite value on {days[np.isinf(x).argmax()]:%Y-%m-%d}: return NaN "
                        "for an unknown value")
    return x


# ---------------------------------------------------------------------- audit


def audit_days(days: pd.DatetimeIndex) -> list[pd.Timestamp]:
    if len(days) < 3:
        return list(days)
    picks = sorted({min(len(days) - 1, max(1, int(round(f * (len(days) - 1))))) for f in AUDIT_FRACTIONS})
    return [days[i] for i in picks]


def audit(functions, window: pd.DataFrame, daily: pd.DataFrame, days: pd.DatetimeIndex, plugin: str,
          cutoff: time) -> tuple[dict[str, np.ndarray], list[str]]:
    """Full values of every feature, and the days audited; raises DataError on look-ahead."""
    full = {name: run_feature(name, fn, window, daily, days, plugin, "the full data") for name, _, fn in functions}
    checked = audit_days(days)
    for d in checked:
        w = window[window["date"] <= d]
        dates = pd.DatetimeIndex(daily["date"])
        dd = daily[dates <= d].copy()
        dd.loc[pd.DatetimeIndex(dd["date"]) == d, [c for c in dd.columns if c != "date"]] = np.nan
        cut_days = days[days <= d]
        for name, _, fn in functions:
            cut = run_feature(name, fn, w, dd, cut_days, plugin, f"the data cut at {d:%Y-%m-%d} {cutoff:%H:%M}")
            a, b = full[name][len(cut_days) - 1], cut[-1]
            same = (np.isnan(a) and np.isnan(b)) or (not np.isnan(a) and not np.isnan(b)
                                                     and abs(a - b) <= RTOL * max(abs(a), abs(b), 1e-12))
            if not same:
                raise DataError(f"plugin {plugin}: look-ahead in feature {name} on {d:%Y-%m-%d}: {a:.6g} with all the "
                                f"data but {b:.6g} with the data cut at that day's cutoff {cutoff:%H:%M}; use only "
                                "the window and daily bars before the day")
    return full, [f"{d:%Y-%m-%d}" for d in checked]


def _audit_key(sha: str, minute: CatalogEntry, daily: CatalogEntry | None, cutoff: str) -> str:
    parts = [sha, minute.sha256, daily.sha256 if daily is not None else "-", cutoff]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _minute_of(store: Store, symbol: str | None) -> tuple[str, CatalogEntry, CatalogEntry | None]:
    if symbol is None:
        have = [e.symbol for e in store.catalog() if e.freq == "1min"]
        if not have:
            raise NotFoundError("a plugin is audited on 1-minute bars and the store has none: import a symbol's "
                                "1-minute bars first (python -m almanac data import)")
        symbol = have[0]
    from almanac.store import normalize_symbol

    sym = normalize_symbol(symbol)
    if not store.has(sym, "1min"):
        raise NotFoundError(f"plugins need 1-minute bars and {sym} has none: choose --symbol with 1-minute bars")
    daily = store.entry(sym, "1d") if store.has(sym, "1d") else None
    return sym, store.entry(sym, "1min"), daily


def add_plugin(path, symbol: str | None = None, cutoff: str = "10:15", store: Store | None = None) -> PluginRecord:
    """Audit the plugin file ``path`` on ``symbol``'s data; on success copy it into the registry."""
    store = store if store is not None else Store()
    path = Path(path).expanduser()
    code = _read_code(path)
    name = check_name(path.stem.lower(), "plugin file name")
    functions = load(code, path.name)
    registry = Plugins(store.home)
    others = {f["name"]: p.name for p in registry.list() if p.name != name for f in p.features}
    for fname, _, _ in functions:
        if fname in others:
            raise DataError(f"plugin {path.name}: feature {fname} is defined by plugin {others[fname]} already: rename "
                            f"it or remove that plugin (python -m almanac plugins remove {others[fname]})")
    sym, minute, daily = _minute_of(store, symbol)
    session = session_for(sym)
    cut = session.check_cutoff(parse_time(cutoff))
    window, d, days = window_and_daily(store, minute, daily, session, cut)
    _, checked = audit(functions, window, d, days, path.name, cut)
    sha = hashlib.sha256(code).hexdigest()
    rec = PluginRecord(name=name, file=f"plugins/{name}.{sha[:16]}.py", sha256=sha, source=str(path.resolve()),
                       added_at=now(), features=[{"name": n, "description": desc} for n, desc, _ in functions])
    rec.audits = {_audit_key(sha, minute, daily, f"{cut:%H:%M}"): _audit_info(sym, cut, checked, minute, daily)}
    return registry.save(rec, code)


def _audit_info(sym, cut, checked, minute, daily) -> dict:
    return {"symbol": sym, "cutoff": f"{cut:%H:%M}", "days": checked, "at": now(),
            "data": {"1min": minute.sha256, "1d": daily.sha256 if daily is not None else None}}


# ---------------------------------------------------------------------- builds


def plugins_for_build(store: Store, cfg: dict, minute: CatalogEntry | None, daily: CatalogEntry | None,
                      session: Session, step, run_code: bool = True) -> list[dict]:
    """Every accepted plugin, audited again for this data and cutoff if its file or the data changed
    (``run_code=False``: refused instead; the web server never executes a plugin)."""
    registry = Plugins(store.home)
    records = registry.list()
    if not records:
        raise NotFoundError("no plugin added yet: add one with `python -m almanac plugins add FILE.py`, or remove the "
                            "plugins set")
    if minute is None:
        raise SpecError(f"the plugins set needs 1-minute bars and {cfg['symbol']} has only daily bars: remove plugins "
                        "or choose a symbol with 1-minute bars")
    cut = parse_time(cfg["cutoff"])
    out, inputs = [], None
    for rec in records:
        path = registry.path(rec)
        try:
            code = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"plugin {rec.name}'s file {path} is missing: add it again with `python -m almanac "
                                "plugins add`") from None
        sha = hashlib.sha256(code).hexdigest()
        key = _audit_key(sha, minute, daily, cfg["cutoff"])
        if sha != rec.sha256 or key not in rec.audits:
            if not run_code:
                raise SpecError(f"plugin {rec.name} must be audited again (its file or the data changed), and "
                                "plugins run only in a build job: press Build features again")
            step(0.02, f"auditing plugin {rec.name}")
            functions = load(code, f"{rec.name}.py")
            if inputs is None:
                inputs = window_and_daily(store, minute, daily, session, cut)
            _, checked = audit(functions, *inputs, f"{rec.name}.py", cut)
            registry.record_audit(rec.name, key, _audit_info(cfg["symbol"], cut, checked, minute, daily), sha)
        out.append({"name": rec.name, "file": rec.file, "sha256": sha, "source": rec.source,
                    "features": rec.features})
    return out


def plugin_features(store: Store, plugins: list[dict], minute: CatalogEntry, daily: CatalogEntry | None,
                    session: Session, cutoff: time, end, build_days: pd.DatetimeIndex) -> tuple[pd.DataFrame, dict]:
    """Every plugin feature on the build's days (computed on the full data up to ``end``), and its lineage."""
    window, d, days = window_and_daily(store, minute, daily, session, cutoff, end)
    cols, lineage = {}, {}
    for p in plugins:
        code = (store.home / p["file"]).read_bytes()
        if hashlib.sha256(code).hexdigest() != p["sha256"]:
            raise DataError(f"plugin {p['name']}'s file changed during the build: build again (it is audited first)")
        for name, desc, fn in load(code, f"{p['name']}.py"):
            cols[name] = run_feature(name, fn, window, d, days, f"{p['name']}.py", "the full data")
            lineage[name] = {
                "datasets": [f"{minute.symbol} 1min {minute.sha256[:12]}"]
                + ([f"{daily.symbol} 1d {daily.sha256[:12]}"] if daily is not None else []),
                "set": SET, "window": f"the plugin's window (bars before {cutoff:%H:%M}) and daily bars",
                "known_as_of": f"{cutoff:%H:%M} {session.tz} on day D (audited for look-ahead)",
                "definition": desc or f"plugin feature {name}",
                "plugin": {"name": p["name"], "file": p["file"], "sha256": p["sha256"], "source": p["source"]},
            }
    frame = pd.DataFrame(cols, index=pd.DatetimeIndex(days, name="date").as_unit("us"))
    return frame.reindex(pd.DatetimeIndex(build_days, name="date").as_unit("us")), lineage


__all__ = ["AUDIT_DAYS", "SET", "add_plugin", "audit", "audit_days", "load", "plugin_features", "plugins_for_build",
           "run_feature", "window_and_daily"]
