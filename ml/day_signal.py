"""Today's signal at the cutoff: the active model's prediction for one trading day, from the
stored bars up to that day's cutoff (``GET /api/v1/signal``).

:func:`day_features` builds day D's features with :func:`features.build_features`, the code
training used, with the run's cutoff, feature sets and cross-assets and ``start = end = D``:
only bars before D's cutoff enter D's features (docs/design.md §4), so the row equals the
run's own dataset row of D. A day without bars up to the cutoff is a
:class:`~almanac.errors.NotFoundError` (HTTP 404) saying why. Rows are memoized per catalog
state (the catalog's ``os.stat``: an import changes it), :data:`MAX_DAYS` at most.
:func:`day_signal` predicts the row through :func:`ml.serving.predict_frame`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from almanac.errors import NotFoundError
from ml import regimes
from ml.serving import ModelCache, RequestError, json_value, file_signature, describe_run, features_config, predict_frame

#: Day-feature rows kept in memory (least recently used dropped first).
MAX_DAYS = 256


class NotBuilt(Exception):
    """:func:`day_features` with ``build=False``: the day's features are not memoized yet."""


_day_memo: OrderedDict = OrderedDict()
_day_lock = threading.Lock()


def _today(symbol: str):
    import pandas as pd

    from almanac.sessions import session_for

    return pd.Timestamp.now(tz=session_for(symbol).tz).normalize().tz_localize(None)


def parse_day(text: str | None, symbol: str):
    import pandas as pd

    if text is None or not str(text).strip():
        return _today(symbol)
    try:
        day = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError):
        raise RequestError(f"date {str(text)[:40]!r} is not a date: use YYYY-MM-DD, e.g. 2018-03-01") from None
    if day.tzinfo is not None or day != day.normalize():
        raise RequestError(f"date {str(text)[:40]!r} is not a calendar day: use YYYY-MM-DD")
    return day


def day_features(cfg: dict, day, home=None, build: bool = True) -> tuple[dict, list[str]]:
    """``({feature: value}, notes)`` of trading day ``day`` at the cutoff, built by
    :func:`features.build_features` with the run's configuration ``cfg``; NotFoundError if
    the store has no bars of that day up to the cutoff. Memoized per catalog state
    (``build=False``: :class:`NotBuilt` instead of building)."""
    import numpy as np
    import pandas as pd

    from almanac.sessions import session_for
    from almanac.store import Store
    from features import build_features

    store = Store(home)
    key = (file_signature(store.home / "catalog.json"), json.dumps(cfg, sort_keys=True), str(day.date()))
    with _day_lock:
        if key in _day_memo:
            _day_memo.move_to_end(key)
            return _day_memo[key]
    if not build:
        raise NotBuilt(key)
    sym, cutoff = cfg["symbol"], cfg["cutoff"]
    ft = build_features(sym, cutoff=cutoff, sets=regimes.bar_sets(cfg["sets"]), cross_assets=cfg["cross_assets"],
                        start=day, end=day, store=store, use_cache=False)
    if day not in ft.frame.index:
        raise NotFoundError(f"{sym} has no bars on {day:%Y-%m-%d}: choose a trading day with stored bars")
    price = ft.sessions.loc[day].get("cutoff_price", np.nan)
    if not np.isfinite(price):
        raise NotFoundError(f"{sym} has no bars before the cutoff {cutoff} on {day:%Y-%m-%d}: the signal "
                            "needs the bars from the open to the cutoff; import them or choose another day")
    if store.has(sym, "1min"):
        end = pd.Timestamp(store.entry(sym, "1min").end)
        end = end.tz_localize("UTC") if end.tzinfo is None else end
        cut = session_for(sym).at([day], cutoff)[0]
        if end < cut - pd.Timedelta(minutes=1):
            raise NotFoundError(f"{sym} bars reach only {end.tz_convert(session_for(sym).tz):%H:%M} on "
                                f"{day:%Y-%m-%d}, before the cutoff {cutoff}: ask again once the bars up to "
                                "the cutoff are imported")
    row = {c: json_value(float(v)) for c, v in ft.frame.loc[day].items()}
    result = (row, list(ft.notes))
    with _day_lock:
        _day_memo[key] = result
        while len(_day_memo) > MAX_DAYS:
            _day_memo.popitem(last=False)
    return result


def day_signal(cache: ModelCache, symbol: str, label: str | None = None, date: str | None = None,
               build: bool = True) -> dict:
    """The active model's prediction for ``symbol`` / ``label`` on day ``date`` (default:
    today in the symbol's exchange time zone) from the stored bars up to the cutoff
    (``build=False``: :class:`NotBuilt` if the day's features are not memoized yet)."""
    import pandas as pd

    from almanac.store import normalize_symbol

    sym = normalize_symbol(symbol)
    served = cache.get(cache.active_run_id(sym, label))
    cfg = features_config(served.run)
    day = parse_day(date, sym)
    row, notes = day_features(cfg, day, cache.home, build)
    if regimes.HMM_SET in cfg["sets"]:  # the final HMM's regime of the day (reads the days before it)
        if not build:
            raise NotBuilt(day)
        row = {**row, **regimes.live_features(served.run, day, cache.home)}
    missing = [c for c in served.feature_names if c not in row]
    if missing:
        raise RequestError(f"day {day:%Y-%m-%d}'s features lack {', '.join(missing)} that run {served.run_id} "
                           "was trained on: the stored data changed since; train the run again")
    used = {c: row[c] for c in served.feature_names}
    frame = pd.DataFrame([[float("nan") if v is None else v for v in used.values()]],
                         columns=served.feature_names, dtype="float64")
    pred = predict_frame(served, frame)[0]
    trained = served.run.get("date_range") or {}
    start, end = (pd.Timestamp(str(trained[k])[:10]) if trained.get(k) else None for k in ("start", "end"))
    inside = bool(start is not None and end is not None and start <= day <= end)
    return {"run_id": served.run_id, "sha256": served.sha256, "symbol": sym,
            "label": describe_run(served.run)["label"], "date": f"{day:%Y-%m-%d}", "cutoff": cfg["cutoff"],
            "task": served.task, **pred, "threshold": served.bundle.metadata["threshold"],
            "long_only": served.bundle.metadata["long_only"], "features": used,
            "in_training_period": inside,
            "trained": {"start": trained.get("start"), "end": trained.get("end")}, "notes": notes}


__all__ = ["MAX_DAYS", "NotBuilt", "day_features", "day_signal", "parse_day"]
