"""Similar days: for a day D, the k most similar EARLIER days and what followed them.

Similarity is Euclidean distance in the standardized feature space. The scaler is fitted
on the days strictly before D only (mean and population standard deviation per feature,
what ``sklearn.preprocessing.StandardScaler`` computes), so nothing on or after D shapes
the distances; D's own features are known at its cutoff (docs/design.md §4). Per query:

* features used: those D has a value for and whose earlier values vary (at least two
  values, standard deviation > 0); the others cannot be compared and are left out;
* candidates: the earlier days whose rest of the day is known (a price at the cutoff and
  a close); a candidate's missing feature value is imputed with the earlier days' mean
  (0 after standardizing), so it neither pulls it closer nor pushes it away;
* ties in distance go to the earlier day (a stable sort on the date order).

A neighbour's rest of the day (``close / cutoff_price - 1``) ended before D began, so it
is known at D's cutoff. :func:`rest_of_day_paths` reads the minute bars from the cutoff to
the close of chosen days (for drawing); :func:`similar_days` joins the feature build, the
query and the summary (what ``python -m almanac similar`` prints). No scikit-learn: the
web pages import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from almanac.errors import NotFoundError, SpecError
from almanac.settings import Limits, get_limits

#: The default experiment's feature sets and cross-asset symbols (configs/es-rest-of-day-lgbm.yaml).
DEFAULT_SETS = ("early_session", "cross_asset", "regime")
DEFAULT_CROSS = ("VIX", "CL")
DEFAULT_CUTOFF = "10:15"


@dataclass
class Neighbours:
    """The answer to one query: ``table`` has ``date``, ``distance``, ``rest_of_day_return``
    (nearest first); ``features`` the features compared; ``candidates`` how many earlier
    days were compared; ``scaler`` the earlier days' mean and standard deviation."""

    date: pd.Timestamp
    table: pd.DataFrame
    features: list[str]
    candidates: int
    scaler: pd.DataFrame
    query_return: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def share_up(self) -> float | None:
        r = self.table["rest_of_day_return"]
        return float((r > 0).mean()) if len(r) else None

    @property
    def mean_return(self) -> float | None:
        r = self.table["rest_of_day_return"]
        return float(r.mean()) if len(r) else None

    def summary(self) -> dict:
        """JSON-able: the query, its neighbours and what followed them."""
        return {"date": f"{self.date:%Y-%m-%d}", "k": int(len(self.table)),
                "neighbors": [{"date": f"{d:%Y-%m-%d}", "distance": float(x), "rest_of_day_return": float(r)}
                              for d, x, r in zip(self.table["date"], self.table["distance"],
                                                 self.table["rest_of_day_return"], strict=True)],
                "share_up": self.share_up, "mean_return": self.mean_return,
                "query_rest_of_day_return": self.query_return, "features": self.features,
                "candidates": self.candidates, "notes": self.notes}


def check_k(k) -> int:
    """``k`` as an int within 1 .. the ``similar_k`` limit, else a one-line SpecError."""
    limit = get_limits().similar_k
    try:
        whole = float(k)
        if isinstance(k, bool) or not whole.is_integer():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise SpecError(f"k {k!r} is not a whole number: give 1 to {limit}") from None
    k = int(whole)
    if not 1 <= k <= limit:
        raise SpecError(f"k {k} is outside 1..{limit}: choose k from 1 to {limit} (the limit is "
                        f"{Limits.var('similar_k')})")
    return k


def rest_of_day_returns(sessions: pd.DataFrame) -> pd.Series:
    """``close / cutoff_price - 1`` per day of a session table (NaN where either is missing)."""
    cut, close = sessions["cutoff_price"], sessions["close"]
    return (close / cut - 1.0).where((cut > 0) & (close > 0))


def nearest_days(frame: pd.DataFrame, outcome: pd.Series, date, k: int) -> Neighbours:
    """The ``k`` days before ``date`` nearest to it in ``frame``'s standardized feature space.

    ``frame``: features, one row per day (date index); ``outcome``: each day's rest-of-day
    return (same index; NaN = unknown). See the module doc for the rules."""
    k = check_k(k)
    day = pd.Timestamp(date).normalize()
    frame = frame.sort_index()
    if day not in frame.index:
        raise NotFoundError(f"{day:%Y-%m-%d} is not a day of the feature table "
                            f"({frame.index[0]:%Y-%m-%d} .. {frame.index[-1]:%Y-%m-%d}): choose a trading day in it")
    before = frame[frame.index < day]
    q = frame.loc[day]
    if isinstance(q, pd.DataFrame):  # a repeated date: the last row
        q = q.iloc[-1]
    values = before.to_numpy(dtype="float64")
    ok = np.isfinite(values)
    count = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(ok, values, 0.0).sum(axis=0) / np.maximum(count, 1), np.nan)
        var = np.where(ok, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
    std = np.sqrt(var)
    qv = q.to_numpy(dtype="float64")
    use = np.isfinite(qv) & (count >= 2) & (std > 0)
    names = [c for c, u in zip(frame.columns, use, strict=True) if u]
    scaler = pd.DataFrame({"mean": mean, "std": std}, index=frame.columns)
    known = outcome.reindex(before.index).to_numpy(dtype="float64")
    cand = np.isfinite(known)
    if not names:
        raise NotFoundError(f"{day:%Y-%m-%d} has no feature to compare (no value on the day, or fewer than two "
                            "earlier values): choose a later day or other feature sets")
    if not cand.any():
        raise NotFoundError(f"no day before {day:%Y-%m-%d} has a known rest of the day: choose a later day")
    z = (values[cand][:, use] - mean[use]) / std[use]
    z = np.where(np.isfinite(z), z, 0.0)  # the earlier days' mean
    zq = (qv[use] - mean[use]) / std[use]
    dist = np.sqrt(((z - zq) ** 2).sum(axis=1))
    order = np.argsort(dist, kind="stable")[:k]
    dates = before.index[cand][order]
    table = pd.DataFrame({"date": dates, "distance": dist[order], "rest_of_day_return": known[cand][order]})
    notes = []
    if len(table) < k:
        notes.append(f"only {len(table)} earlier day(s) with a known rest of the day: fewer than k={k}")
    dropped = [c for c, u in zip(frame.columns, use, strict=True) if not u]
    if dropped:
        notes.append(f"{len(dropped)} feature(s) not compared (no value on {day:%Y-%m-%d} or no spread before it): "
                     + ", ".join(dropped[:8]) + (" ..." if len(dropped) > 8 else ""))
    own = outcome.get(day, np.nan)
    own = float(own.iloc[-1] if isinstance(own, pd.Series) else own)
    return Neighbours(day, table, names, int(cand.sum()), scaler, own if np.isfinite(own) else None, notes)


def rest_of_day_paths(store, symbol: str, cutoff: str, dates) -> dict[pd.Timestamp, pd.DataFrame]:
    """Each day's path from the cutoff to the close from its intraday bars: ``minutes``
    (after the cutoff, at each bar's end; 0 = the cutoff) and ``pct`` = 100 x (close /
    cutoff price - 1), the cutoff price being the close of the last bar before the cutoff.
    A day without bars before and after the cutoff is left out (e.g. today at the cutoff)."""
    from almanac.sessions import intraday_entry, symbol_session
    from almanac.store import bar_minutes

    entry = intraday_entry(store, symbol)
    if entry is None:
        return {}
    session, step = symbol_session(store, symbol), bar_minutes(entry.freq)
    out = {}
    for d in pd.DatetimeIndex(dates):
        day = pd.Timestamp(d).normalize()
        bars = store.read_bars(symbol, entry.freq, start=day, end=day, columns=["close"], entry=entry)
        if bars.empty:
            continue
        t = pd.DatetimeIndex(bars["timestamp"]).tz_convert("UTC").as_unit("us").asi8
        opens, cut, close = (x.as_unit("us").asi8[0] for x in
                             (session.opens([day]), session.at([day], cutoff), session.closes([day])))
        win = (t >= opens) & (t < cut)
        rest = (t >= cut) & (t < close)
        if not win.any() or not rest.any() or close <= cut:
            continue
        c = bars["close"].to_numpy(dtype="float64")
        base = c[np.flatnonzero(win)[-1]]
        minutes = (t[rest] - cut) / 60e6 + step
        out[day] = pd.DataFrame({"minutes": np.r_[0.0, minutes], "pct": np.r_[0.0, 100.0 * (c[rest] / base - 1.0)]})
    return out


def with_paths(frame: pd.DataFrame, outcome: pd.Series, date, k: int, store, symbol: str, cutoff: str,
               extra: dict | None = None) -> tuple[dict, dict]:
    """(:func:`nearest_days` summary with ``symbol``, ``cutoff`` and ``extra``, the rest-of-day
    paths of the query day and its neighbours): what the pages draw."""
    nb = nearest_days(frame, outcome, date, k)
    paths = rest_of_day_paths(store, symbol, cutoff, [nb.date, *nb.table["date"]])
    _unknown_rest(nb, paths)
    return {**nb.summary(), "symbol": symbol, "cutoff": cutoff, **(extra or {})}, paths


def _unknown_rest(nb: Neighbours, paths: dict) -> None:
    """Today at the cutoff (no bar after the cutoff yet): its rest of the day is unknown, not 0."""
    if nb.date not in paths:
        nb.query_return = None
        nb.notes.append(f"{nb.date:%Y-%m-%d} has no bar after the cutoff: its rest of the day is not known yet")


def run_days(run_id: str, home=None) -> list[str]:
    """The out-of-fold days of a run (YYYY-MM-DD), the days /evaluate can query."""
    from almanac import registry

    oof = registry.read_artifact(run_id, "oof.parquet", home, columns=["date"])
    return [f"{d:%Y-%m-%d}" for d in pd.DatetimeIndex(oof["date"]).sort_values()]


def similar_in_run(run_id: str, date, k: int, store=None) -> tuple[dict, dict]:
    """Similar days of an out-of-fold ``date`` of a run, with that run's features (its
    ``dataset.parquet``: every labelled day, training days included) and neighbours before
    ``date`` only; paths from the run's symbol's bars in ``store``."""
    from almanac import registry
    from almanac.store import Store

    store = store if store is not None else Store()
    k = check_k(k)
    run = registry.get_run(run_id, store.home)
    spec = run.get("spec") or {}
    if (spec.get("data") or {}).get("table"):
        raise SpecError("similar days need a symbol's trading days: this run is trained on a table")
    day = _day(date)
    if f"{day:%Y-%m-%d}" not in set(run_days(run_id, store.home)):
        raise NotFoundError(f"{day:%Y-%m-%d} is not an out-of-fold day of run {run_id}: choose one of its test days")
    data = registry.read_artifact(run_id, "dataset.parquet", store.home)
    if "date" in data.columns:
        data = data.set_index("date")
    data.index = pd.DatetimeIndex(data.index).normalize()
    sym, cutoff = spec["data"]["symbol"], (spec.get("features") or {}).get("cutoff", DEFAULT_CUTOFF)
    return with_paths(data[run["feature_names"]], rest_of_day_returns(data), day, k, store, sym, cutoff,
                      {"run_id": run_id, "sets": (spec.get("features") or {}).get("sets", [])})


def _cross_default(store, symbol: str) -> tuple[list[str], list[str]]:
    """The default experiment's cross-asset symbols the store holds (others noted)."""
    have = set(store.symbols())
    use = [c for c in DEFAULT_CROSS if c in have and c != symbol]
    notes = [f"cross-asset symbol {c} is not in the store: left out of the default features"
             for c in DEFAULT_CROSS if c not in have]
    return use, notes


def similar_days(symbol: str, date=None, k: int = 10, cutoff: str = DEFAULT_CUTOFF, sets=DEFAULT_SETS,
                 cross_assets=None, store=None, paths: bool = False, run_plugins: bool = True) -> dict:
    """The query of ``python -m almanac similar``: features built as the experiments build them
    (cached, the whole history: a day's features never depend on later days), ``date``
    (default: the latest day, today at the cutoff when today's bars reach it) against every
    earlier day. ``cross_assets`` None: the default experiment's that the store has.
    ``paths``: also the rest-of-day paths (query day and neighbours). The symbol, k and the
    date are checked before anything is built or written."""
    from almanac.store import Store, normalize_symbol
    from features import build_features

    k = check_k(k)
    store = store if store is not None else Store()
    sym = normalize_symbol(symbol)
    day = None if date in (None, "") else _day(date)
    _check_day(store, sym, day)
    notes: list[str] = []
    sets = [s.strip() for s in (sets.split(",") if isinstance(sets, str) else sets) if s.strip()]
    if cross_assets is None:
        cross_assets, notes = _cross_default(store, sym)
        if "cross_asset" in sets and not cross_assets:
            sets.remove("cross_asset")
            notes.append("no default cross-asset symbol in the store: the cross_asset set is left out")
    ft = build_features(sym, cutoff=cutoff, sets=sets, cross_assets=cross_assets, run_plugins=run_plugins)
    day = ft.frame.index[-1] if day is None else day
    if day not in ft.frame.index:
        raise NotFoundError(f"{sym} has no trading day {day:%Y-%m-%d}: choose a day between "
                            f"{ft.frame.index[0]:%Y-%m-%d} and {ft.frame.index[-1]:%Y-%m-%d}")
    nb = nearest_days(ft.frame, rest_of_day_returns(ft.sessions), day, k)
    nb.notes[:0] = notes + ft.notes
    drawn = rest_of_day_paths(store, sym, ft.config["cutoff"], [day, *(nb.table["date"] if paths else [])])
    _unknown_rest(nb, drawn)
    out = {**nb.summary(), "symbol": sym, "cutoff": ft.config["cutoff"], "sets": ft.config["sets"],
           "cross_assets": ft.config["cross_assets"]}
    if paths:
        out["paths"] = drawn
    return out


def similar_in_table(ft, date, k: int, store=None) -> tuple[dict, dict]:
    """Similar days of ``date`` (None: the table's latest day) in a built feature table
    (``features.FeatureTable``: /features), neighbours from its earlier days."""
    from almanac.store import Store

    store = store if store is not None else Store()
    day = ft.frame.index[-1] if date in (None, "") else _day(date)
    return with_paths(ft.frame, rest_of_day_returns(ft.sessions), day, k, store, ft.config["symbol"],
                      ft.config["cutoff"], {"sets": ft.config["sets"]})


def _check_day(store, sym: str, day: pd.Timestamp | None) -> None:
    """Refuse an unknown symbol or a ``day`` (None: no day to check) without a session bar of
    ``sym``, from the catalog and that one day's bars (nothing is built or written before)."""
    from almanac.sessions import intraday_entry, symbol_session

    entry = intraday_entry(store, sym)
    if entry is None and store.has(sym, "1d"):
        entry = store.entry(sym, "1d")
    if entry is None:
        have = ", ".join(store.symbols()) or "nothing yet"
        raise NotFoundError(f"symbol {sym} has no data in the store (it holds {have}): import it or choose another")
    if day is None:
        return
    bars = store.read_bars(sym, entry.freq, start=day, end=day, columns=["close"], entry=entry)
    if entry.freq != "1d" and not bars.empty:
        session = symbol_session(store, sym)
        t = pd.DatetimeIndex(bars["timestamp"]).tz_convert("UTC")
        bars = bars[(t >= session.opens([day])[0]) & (t < session.closes([day])[0])]
    if bars.empty:
        first, last = (pd.Timestamp(v) for v in (entry.start, entry.end))
        if first.tzinfo is not None:
            first, last = first.tz_convert(entry.tz), last.tz_convert(entry.tz)
        raise NotFoundError(f"{sym} has no trading day {day:%Y-%m-%d} (its {entry.freq} bars cover "
                            f"{first:%Y-%m-%d} .. {last:%Y-%m-%d}): choose a trading day inside them")


def _day(value) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise SpecError(f"date {value!r} is not a date: use YYYY-MM-DD, e.g. 2018-06-01")
    return ts.tz_localize(None).normalize() if ts.tzinfo else ts.normalize()


__all__ = ["Neighbours", "nearest_days", "rest_of_day_paths", "rest_of_day_returns", "similar_days", "check_k",
           "similar_in_run", "similar_in_table", "run_days", "with_paths",
           "DEFAULT_SETS", "DEFAULT_CROSS", "DEFAULT_CUTOFF"]
