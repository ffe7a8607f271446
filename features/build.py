"""``build_features``: the one entry point that turns stored bars into a feature table.

It validates the request once (unknown set, unknown symbol, cutoff outside the session,
start after end -> :class:`~almanac.errors.SpecError` / :class:`~almanac.errors.NotFoundError`
with a message that says what to change), decides which datasets it needs, returns a
cached table when the same data, configuration and code were built before, and
otherwise computes:

* the session table of the target (from its minute bars; a daily-only symbol's from its
  daily bars, known at the open, so ``cutoff_price = open``);
* ``early_session`` features (minute bars only), ``cross_asset`` and ``regime`` features.

The catalog entries are resolved once; their content hashes key the cache and exactly
the files they name are read (files are content-addressed, see :mod:`almanac.store`), so
a cached table always belongs to the bytes it was computed from.

Rows are the trading days of the symbol (its minute bars' days when it has minute bars,
else its daily dates) between ``start`` and ``end``. Everything is computed on the data
from its first row up to ``end``, so a day's features never depend on ``start``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import time

import numpy as np
import pandas as pd
import pyarrow as pa

from almanac.errors import NotFoundError, SpecError
from almanac.sessions import Session, intraday_entry, parse_time, session_for, symbol_session
from almanac.store import CatalogEntry, Store, bar_minutes, normalize_symbol, time_bounds
from features import cache
from features.cross_asset import cross_features
from features.early import early_features
from features.lineage import ALL_SETS, FEATURE_SETS, MAX_STALE_DAYS, NEEDS_OHLC, definition, lineage_entry
from features.regime import align_prev, daily_atr, regime_daily
from features.sessions_table import (BAR_COLUMNS, DayBars, DaySplitter, daily_from_sessions, daily_session_table,
                                     split_bars, table_from_daybars)

Progress = Callable[[float, str], None]
OHLC = ("open", "high", "low")
#: What a cross-asset symbol's minute bars give: its daily closes (when it has no 1d file)
#: and its early move (session open to the close at the cutoff).
CROSS_COLUMNS = ("open", "close")
#: Rows read at a time from a minute-bar file (a few row groups: about 10 MB of columns).
BATCH_ROWS = 262_144


@dataclass
class FeatureTable:
    """Features of one symbol, one row per trading day, with their provenance."""

    frame: pd.DataFrame
    sessions: pd.DataFrame
    lineage: dict[str, dict]
    notes: list[str]
    data_hashes: dict[str, str]
    config: dict
    cache_key: str = ""
    from_cache: bool = False
    feature_sets: dict[str, str] = field(default_factory=dict)  # feature -> set

    def table(self) -> pd.DataFrame:
        """``date`` column + feature columns (what the command line writes)."""
        return self.frame.reset_index()


# ------------------------------------------------------------------ configuration


def _parse_date(value, what: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise SpecError(f"{what} {value!r} is not a date: use YYYY-MM-DD, e.g. 2015-01-02") from None
    if ts is pd.NaT:
        raise SpecError(f"{what} {value!r} is not a date: use YYYY-MM-DD")
    return ts.tz_localize(None).normalize().strftime("%Y-%m-%d") if ts.tzinfo else ts.normalize().strftime("%Y-%m-%d")


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def normalize_config(symbol: str, cutoff: str | time = "10:15", sets: Iterable[str] | str = FEATURE_SETS,
                     cross_assets: Iterable[str] | str = (), start=None, end=None,
                     session: Session | None = None, intraday: CatalogEntry | None = None) -> dict:
    """The validated, canonical configuration (JSON-able; sets in FEATURE_SETS order).

    ``session``: the symbol's recorded session (default: its known one); ``intraday``: its
    intraday dataset, whose bar size the cutoff must fall on (a bar may not straddle it)."""
    sym = normalize_symbol(symbol)
    session = session or session_for(sym)
    cut = session.check_cutoff(parse_time(cutoff), *_grid(intraday))
    chosen = _as_list(sets)
    unknown = [s for s in chosen if s not in ALL_SETS]
    if unknown:
        raise SpecError(f"unknown feature set(s) {', '.join(unknown)}: choose from {', '.join(ALL_SETS)}")
    if not chosen:
        raise SpecError(f"no feature set chosen: choose one or more of {', '.join(ALL_SETS)}")
    cross = []
    for c in _as_list(cross_assets):
        c = normalize_symbol(c)
        if c == sym:
            raise SpecError(f"cross-asset symbol {c} is the target symbol itself: choose other markets, e.g. VIX")
        if c not in cross:
            cross.append(c)
    s, e = _parse_date(start, "start"), _parse_date(end, "end")
    if s and e and s > e:
        raise SpecError(f"start {s} is after end {e}: choose a start on or before the end")
    return {"symbol": sym, "cutoff": f"{cut:%H:%M}", "sets": [x for x in ALL_SETS if x in chosen],
            "cross_assets": cross if "cross_asset" in chosen else [], "start": s, "end": e,
            "_cross_ignored": cross if "cross_asset" not in chosen else []}


# ------------------------------------------------------------------ plan


def _label(e: CatalogEntry) -> str:
    return f"{e.symbol} {e.freq} {e.sha256[:12]}"


def _entry(store: Store, sym: str, freq: str) -> CatalogEntry | None:
    return store.entry(sym, freq) if store.has(sym, freq) else None


def _grid(entry: CatalogEntry | None) -> tuple[int, str]:
    """``(bar minutes, "SYM size")`` of an intraday dataset, for the cutoff's grid check."""
    return (bar_minutes(entry.freq), f"{entry.symbol} {entry.freq}") if entry is not None else (1, "")


@dataclass
class _Source:
    """Where one symbol's data comes from."""

    sym: str
    minute: CatalogEntry | None
    daily: CatalogEntry | None  # the 1d file used for daily bars, or None (derived from minutes)

    @property
    def daily_labels(self) -> list[str]:
        return [_label(self.daily)] if self.daily else [_label(self.minute)]


def _source(store: Store, sym: str, role: str) -> _Source:
    minute, daily = intraday_entry(store, sym), _entry(store, sym, "1d")
    if minute is None and daily is None:
        have = ", ".join(store.symbols()) or "nothing yet"
        raise NotFoundError(f"{role} {sym} has no data in the store (it holds {have}): "
                            f"import {sym} first or choose another symbol")
    if daily is not None and minute is not None and not all(c in daily.columns for c in OHLC):
        daily = None  # a close-only 1d file: derive full daily bars from the minute bars
    return _Source(sym, minute, daily)


# ------------------------------------------------------------------ build


def build_features(symbol: str, cutoff: str | time = "10:15", sets: Iterable[str] | str = FEATURE_SETS,
                   cross_assets: Iterable[str] | str = (), start=None, end=None, store: Store | None = None,
                   use_cache: bool = True, progress: Progress | None = None, run_plugins: bool = True) -> FeatureTable:
    """Build (or load from the cache) the feature table of ``symbol``; see the module doc.

    ``run_plugins=False`` (the web server's own process): a build with the ``plugins`` set is
    only loaded from the cache; one that would execute a plugin (its audit, or a cache miss)
    is refused, since plugins run in background jobs and on the command line only."""
    step = progress or (lambda f, s: None)
    store = store if store is not None else Store()
    sym = normalize_symbol(symbol)
    session = symbol_session(store, sym)
    cfg = normalize_config(symbol, cutoff, sets, cross_assets, start, end, session, intraday_entry(store, sym))
    ignored = cfg.pop("_cross_ignored")
    target = _source(store, sym, "symbol")
    crosses = [_source(store, c, "cross-asset symbol") for c in cfg["cross_assets"]]
    hashes = _data_hashes(target, crosses, cfg)
    user = _user_inputs(store, cfg, target, session, hashes, step, run_plugins)

    key = cache.cache_key(hashes, {**cfg, "session": session.description})  # a re-import may change the calendar
    folder = cache.cache_dir(store.home)
    if use_cache:
        hit = cache.load(folder, key)
        if hit is not None:
            frame, sessions, meta = hit
            step(1.0, "loaded from cache")
            return FeatureTable(frame, sessions, meta["lineage"], meta["notes"], meta["data_hashes"],
                                meta["config"], key, True, meta.get("feature_sets", {}))

    if user["plugins"] and not run_plugins:
        raise SpecError("these plugin features are not in the feature cache, and plugins run only in a build job: "
                        "press Build features again")
    step(0.05, f"reading {sym} bars")
    notes = [f"cross-asset symbols {', '.join(ignored)} ignored: the cross_asset set is not selected"] if ignored else []
    frame, sessions, lineage, fsets = _compute(store, target, crosses, cfg, session, notes, step, user)
    s, e = cfg["start"], cfg["end"]
    keep = np.ones(len(frame), dtype=bool)
    if s:
        keep &= frame.index >= pd.Timestamp(s)
    if e:
        keep &= frame.index <= pd.Timestamp(e)
    if not keep.any():
        raise NotFoundError(f"{sym} has no trading day between {s or 'the start'} and {e or 'the end'}: "
                            f"its data covers {_span(target)}; choose dates inside it")
    frame, sessions = frame[keep], sessions[keep]
    ft = FeatureTable(frame, sessions, lineage, notes, hashes, cfg, key, False, fsets)
    if use_cache:
        step(0.95, "writing cache")
        cache.save(folder, key, frame, sessions, {"lineage": lineage, "notes": notes, "data_hashes": hashes,
                                                  "config": cfg, "feature_sets": fsets})
    step(1.0, "features ready")
    return ft


def _span(src: _Source) -> str:
    """``"first .. last"`` local dates of the rows a build of ``src`` can have."""
    e = src.minute or src.daily
    tz = (src.minute or src.daily).tz
    first, last = (pd.Timestamp(v) for v in (e.start, e.end))
    if first.tzinfo is not None:
        first, last = first.tz_convert(tz), last.tz_convert(tz)
    return f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}"


def _uses_target_daily(target: _Source, cfg: dict) -> bool:
    return target.minute is None or "regime" in cfg["sets"] or "early_session" in cfg["sets"]


def _data_hashes(target: _Source, crosses: list[_Source], cfg: dict) -> dict[str, str]:
    used: list[CatalogEntry] = []
    if target.minute is not None:
        used.append(target.minute)
    if target.daily is not None and _uses_target_daily(target, cfg):
        used.append(target.daily)
    for c in crosses:
        used.append(c.daily or c.minute)
        if c.minute is not None and target.minute is not None:
            used.append(c.minute)
    return {f"{e.symbol} {e.freq}": e.sha256 for e in used}


def _split_minutes(store: Store, entry: CatalogEntry, session: Session, cutoff: time, end,
                   columns=BAR_COLUMNS, post_columns: tuple[str, ...] = ()) -> DayBars:
    """The stored minute bars of ``entry`` (exactly its file, rows up to ``end``) split into
    trading days, read a part at a time: the timestamps whole, then only ``columns``, a batch
    of :data:`BATCH_ROWS` rows at a time (:class:`~features.sessions_table.DaySplitter`), so
    memory holds the timestamps and one batch instead of every bar as a DataFrame. The same
    numbers as :func:`split_bars` of :meth:`Store.read_bars`, which a file this cannot read
    that way (unsorted, null or naive timestamps) still goes through."""
    _, hi = time_bounds(entry.symbol, entry.freq, None, end, entry.tz)
    with store.open_parquet(entry) as pf:
        t = _sorted_micros(pf)
        if t is not None:
            # rows before hi (a sorted prefix), as read_bars' filter: t_us * 1000 < hi_ns
            rows = t.size if hi is None else int(np.searchsorted(t, -(-hi.value // 1000), side="left"))
            splitter = DaySplitter(t[:rows], session, cutoff, columns, post_columns)
            for part in _row_group_batches(pf, splitter.columns, rows):
                n = part.num_rows
                splitter.feed(n, {c: np.asarray(part.column(c).to_numpy(), dtype="float64")
                                  for c in splitter.columns})
            return splitter.finish()
    bars = store.read_bars(entry.symbol, entry.freq, end=end, columns=list(dict.fromkeys((*columns, *post_columns))),
                           entry=entry)
    return split_bars(bars, session, cutoff, columns, post_columns)


def _row_group_batches(pf, columns, rows: int):
    """The file's first ``rows`` rows of ``columns``, a few row groups (about
    :data:`BATCH_ROWS` rows) at a time. Whole row groups, read one after the other, leave
    nothing behind in Arrow's memory pool (``iter_batches`` keeps its read-ahead)."""
    meta, first, done = pf.metadata, 0, 0
    while first < meta.num_row_groups and done < rows:
        last, size = first, 0
        while last < meta.num_row_groups and (size == 0 or size + meta.row_group(last).num_rows <= BATCH_ROWS):
            size += meta.row_group(last).num_rows
            last += 1
        part = pf.read_row_groups(list(range(first, last)), columns=list(columns), use_threads=False)
        if done + part.num_rows > rows:
            part = part.slice(0, rows - done)
        done += part.num_rows
        first = last
        yield part


def _sorted_micros(pf) -> np.ndarray | None:
    """The file's timestamps as UTC microseconds, or None unless they are timezone-aware
    microseconds without nulls in non-decreasing order (what the store writes)."""
    kind = pf.schema_arrow.field("timestamp").type
    if not (pa.types.is_timestamp(kind) and kind.unit == "us" and kind.tz is not None):
        return None
    t = np.empty(pf.metadata.num_rows, dtype=np.int64)
    k = 0
    for part in _row_group_batches(pf, ["timestamp"], t.size):
        col = part.column(0)
        if col.null_count:
            return None
        for chunk in col.chunks:
            t[k:k + len(chunk)] = chunk.cast(pa.int64()).to_numpy()
            k += len(chunk)
    if k != t.size or (t.size > 1 and not (t[1:] >= t[:-1]).all()):
        return None
    return t


def user_sets(home=None) -> list[str]:
    """The user's feature sets that have something in them (``tables``: a feature table imported;
    ``plugins``: a plugin accepted), read from their registries: no plugin runs."""
    from almanac.errors import AlmanacError
    from almanac.plugins import Plugins
    from almanac.tables import Tables

    out = []
    try:
        if Tables(home).list("features"):
            out.append("tables")
        if Plugins(home).list():
            out.append("plugins")
    except AlmanacError:
        pass
    return out


def _user_inputs(store: Store, cfg: dict, target: _Source, session: Session, hashes: dict, step,
                 run_plugins: bool = True) -> dict:
    """The feature tables and plugins a build with ``tables`` / ``plugins`` uses; their hashes
    join ``hashes`` (so the cache key changes with them). Plugins are audited here when their
    file or the data changed since their last audit (:mod:`features.plugins`)."""
    user: dict = {"tables": [], "plugins": []}
    if "tables" in cfg["sets"]:
        from almanac.tables import Tables

        user["tables"] = Tables(store.home).list("features")
        if not user["tables"]:
            raise NotFoundError("no feature table imported yet: import one with `python -m almanac data "
                                "import-features FILE --name NAME --known-at HH:MM`, or remove the tables set")
        hashes.update({f"table {e.name}": e.sha256 for e in user["tables"]})
    if "plugins" in cfg["sets"]:
        from features.plugins import plugins_for_build

        user["plugins"] = plugins_for_build(store, cfg, target.minute, target.daily, session, step, run_plugins)
        hashes.update({f"plugin {p['name']}": p["sha256"] for p in user["plugins"]})
    return user


def _compute(store, target: _Source, crosses, cfg, session, notes, step, user=None):
    sym, cutoff, end = cfg["symbol"], parse_time(cfg["cutoff"]), cfg["end"]
    opts = {"open_": f"{session.open:%H:%M}", "cutoff": cfg["cutoff"], "tz": session.tz,
            "daily_only": target.minute is None}
    parts: list[pd.DataFrame] = []
    lineage: dict[str, dict] = {}
    fsets: dict[str, str] = {}

    def add(df: pd.DataFrame, labels_of: Callable[[str], list[str]], sym_of=None):
        for col in df.columns:
            d = definition(col, sym_of(col) if sym_of else None)
            lineage[col] = lineage_entry(d, labels_of(col), **opts)
            fsets[col] = d.set
        parts.append(df)

    db = None
    if target.minute is not None:
        db = _split_minutes(store, target.minute, session, cutoff, end)
        step(0.3, "session table")
        sessions = table_from_daybars(db)
        needs_daily = "early_session" in cfg["sets"] or "regime" in cfg["sets"]
        daily = None
        if needs_daily:
            daily = (store.read_bars(sym, "1d", end=end, entry=target.daily) if target.daily is not None
                     else daily_from_sessions(sessions))
        _gap_notes(db, sessions, session, cutoff, notes, _in_range(sessions.index, cfg))
    else:
        daily = store.read_bars(sym, "1d", end=end, entry=target.daily)
        sessions = daily_session_table(daily)
        if "early_session" in cfg["sets"]:
            notes.append(f"early_session features absent: {sym} has no 1min bars (daily-only symbol); "
                         "features are known at the session open")
    if sessions.empty:
        raise NotFoundError(f"{sym} has no trading day up to {end}: its data covers {_span(target)}; "
                            "choose a later end")
    days = sessions.index
    shown = _in_range(days, cfg)  # the notes describe the requested days only
    daily_label = target.daily_labels
    minute_label = [_label(target.minute)] if target.minute is not None else []

    if "early_session" in cfg["sets"] and db is not None:
        step(0.5, "early-session features")
        atr = daily_atr(daily)
        atr_prev = (align_prev(atr, days).iloc[:, 0].to_numpy() if atr is not None
                    else np.full(len(days), np.nan))
        early = early_features(db, sessions, atr_prev)
        atr_cols = {"or_range_atr", "overnight_range_atr"}
        add(early, lambda c: minute_label + (daily_label if c in atr_cols and daily_label != minute_label else []))
        if not db.has_overnight:
            notes.append(f"overnight_range_atr absent: {sym} {target.minute.freq} has no bars outside the regular "
                         "session")
        _stale_note(daily, days, f"{sym} daily bars (ATR)", notes, shown)

    if "minute_path" in cfg["sets"]:
        if db is not None:
            from features.minute_path import minute_path

            step(0.6, "minute path")
            add(minute_path(db, sessions, session, cfg["cutoff"], bar_minutes(target.minute.freq)),
                lambda c: minute_label)
        else:
            notes.append(f"minute_path absent: {sym} has no intraday bars (daily-only symbol)")

    if "cross_asset" in cfg["sets"]:
        step(0.65, "cross-asset features")
        for src in crosses:
            cs = symbol_session(store, src.sym)
            early_ok = src.minute is not None and target.minute is not None and cs.tz == session.tz
            if early_ok:
                cs.check_cutoff(cutoff, *_grid(src.minute))
            ctable = None
            if src.minute is not None and (early_ok or src.daily is None):  # each file read once
                ctable = table_from_daybars(_split_minutes(store, src.minute, cs, cutoff, end, CROSS_COLUMNS))
            cdaily = (store.read_bars(src.sym, "1d", end=end, entry=src.daily) if src.daily is not None
                      else daily_from_sessions(ctable))
            csess = ctable if early_ok else None
            if target.minute is None and src.minute is not None:
                notes.append(f"{src.sym}_early_ret absent: {sym} is daily-only, so its features are known "
                             "at the session open, before any early move")
            elif src.minute is None and target.minute is not None:
                notes.append(f"{src.sym}_early_ret absent: {src.sym} has no 1min bars (only its daily closes "
                             "up to D-1 are used)")
            cf = cross_features(cdaily, src.sym, days, csess)
            labels = src.daily_labels
            add(cf, lambda c, s=src, lb=labels: [_label(s.minute)] if c.endswith("_early_ret") else lb,
                sym_of=lambda c, s=src.sym: s)
            _stale_note(cdaily, days, f"{src.sym} daily closes", notes, shown)

    if "regime" in cfg["sets"]:
        step(0.8, "regime features")
        reg = regime_daily(daily)
        missing = [c for c in NEEDS_OHLC if c not in reg.columns]
        if missing:
            notes.append(f"{', '.join(missing)} absent: {sym}'s daily bars have no open/high/low "
                         "(close-only series)")
        add(align_prev(reg, days), lambda c: daily_label)
        if target.minute is not None and target.daily is None:
            notes.append(f"regime daily bars derived from {sym} {target.minute.freq} (regular session): {sym} has no "
                         "usable 1d file")

    if user and (user["tables"] or user["plugins"]):
        _add_user_features(store, user, target, session, cutoff, end, days, shown, parts, lineage, fsets, notes, step)

    if not parts:
        raise SpecError(f"no features to build for {sym} with sets {', '.join(cfg['sets'])}: "
                        + (notes[-1] if notes else "choose other sets") + "; add regime or cross_asset")
    frame = pd.concat(parts, axis=1).astype("float64")
    frame.index = pd.DatetimeIndex(days, name="date")
    sessions = sessions.astype("float64")
    sessions.index.name = "date"
    return frame, sessions, lineage, fsets


def _add_user_features(store, user, target: _Source, session: Session, cutoff: time, end, days, shown, parts,
                       lineage, fsets, notes, step) -> None:
    """The ``tables`` and ``plugins`` sets (:mod:`features.tables`, :mod:`features.plugins`). A
    daily-only symbol's features are known at the session open, so its table values join as of
    the open. A user feature named like another feature is refused (it would be two columns)."""
    from almanac.tables import Tables

    taken = {c for p in parts for c in p.columns}

    def add(frame: pd.DataFrame, lin: dict, set_name: str) -> None:
        clash = [c for c in frame.columns if c in taken]
        if clash:
            raise SpecError(f"{set_name} feature {clash[0]} has the name of another feature of this build: rename "
                            "the table or column (tables give <table>_<column>) or the plugin's feature")
        taken.update(frame.columns)
        parts.append(frame)
        lineage.update(lin)
        fsets.update({c: set_name for c in frame.columns})

    if user["tables"]:
        from features.tables import table_features

        step(0.85, "feature tables")
        at = cutoff if target.minute is not None else session.open
        tf, tl, tn = table_features(Tables(store.home), user["tables"], days, session, at, shown)
        add(tf, tl, "tables")
        notes.extend(tn)
    if user["plugins"]:
        from features.plugins import plugin_features

        step(0.88, "plugins")
        pf, pl = plugin_features(store, user["plugins"], target.minute, target.daily, session, cutoff, end, days)
        add(pf, pl, "plugins")


def _in_range(days: pd.DatetimeIndex, cfg: dict) -> np.ndarray:
    """Mask of the ``days`` between the build's start and end (the rows it returns)."""
    keep = np.ones(len(days), dtype=bool)
    if cfg.get("start"):
        keep &= days >= pd.Timestamp(cfg["start"])
    if cfg.get("end"):
        keep &= days <= pd.Timestamp(cfg["end"])
    return keep


def _gap_notes(db, sessions, session: Session, cutoff: time, notes: list[str], shown: np.ndarray) -> None:
    open_min = session.open.hour * 60 + session.open.minute
    cut_min = cutoff.hour * 60 + cutoff.minute
    no_window = int((sessions["cutoff_price"].isna().to_numpy() & shown).sum())
    first = np.asarray(db.first_minute)
    late = int(((first > open_min) & (first < cut_min) & shown).sum())
    if no_window:
        notes.append(f"{no_window} day(s) have no bar before the cutoff {cutoff:%H:%M} (data gap or late "
                     "start): their early-session features and cutoff price are NaN")
    if late:
        notes.append(f"{late} day(s) start after {session.open:%H:%M} (late first bar): their session open "
                     "is the first bar's open and their window holds the bars present")


def _stale_note(daily: pd.DataFrame, days: pd.DatetimeIndex, what: str, notes: list[str],
                shown: np.ndarray | None = None) -> None:
    """A note when some of the ``shown`` days (default: all; the build's requested range)
    have no daily value within MAX_STALE_DAYS before them. Counts only those days, so a
    date-limited build describes itself, not the history computed before its start."""
    shown = np.ones(len(days), dtype=bool) if shown is None else np.asarray(shown, dtype=bool)
    if daily.empty or not shown.any():
        return
    dates = pd.DatetimeIndex(daily["date"]).sort_values()
    prev = dates.searchsorted(days, side="left") - 1  # last daily date strictly before each day
    ok = prev >= 0
    age = np.full(len(days), np.inf)
    age[ok] = (days[ok] - dates[prev[ok]]).days
    n = int(((age > MAX_STALE_DAYS) & shown).sum())
    if n > int(shown[0]):  # the data's very first day never has a previous bar
        notes.append(f"{what} cover {dates[0]:%Y-%m-%d} .. {dates[-1]:%Y-%m-%d}: {n} of {int(shown.sum())} days "
                     f"have no value within {MAX_STALE_DAYS} days before them, so those features are NaN")
