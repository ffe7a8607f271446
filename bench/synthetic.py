"""Seeded synthetic futures minute bars for tests and the benchmark (not sample data).

:func:`futures_minutes` makes bars of a 23-hour futures session (18:00 local on the
previous calendar day to 17:00 local on day D, like CME Globex equity futures without
the 16:15 halt) or of the regular session only, for Monday-Friday days. Prices are a
geometric random walk (quieter overnight), volumes lognormal with a regular-session
U shape. All days are generated at once (days x minutes matrices).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from almanac.sessions import Session

MINUTES_23H = 23 * 60


def futures_minutes(start: str = "2017-01-02", days: int = 300, seed: int = 0, session: Session | None = None,
                    step: int = 1, overnight: bool = True, price: float = 2500.0,
                    sigma: float = 0.00025) -> pd.DataFrame:
    """Canonical minute bars (``timestamp`` UTC bar start, OHLCV) for ``days`` weekdays.

    ``step``: minutes between bars. ``overnight=False`` keeps only 09:30-16:00 (the
    session's regular hours). ``sigma``: per-minute log-return standard deviation in the
    regular session (half of it overnight).
    """
    session = session or Session()
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range(start, periods=days)
    if overnight:
        first = session.at(dates - pd.Timedelta(days=1), "18:00")
        span = MINUTES_23H
    else:
        first = session.opens(dates)
        o, c = session.open, session.close
        span = (c.hour * 60 + c.minute) - (o.hour * 60 + o.minute)
    offs = np.arange(0, span, step, dtype=np.int64)
    stamps = first.as_unit("us").asi8[:, None] + offs[None, :] * 60_000_000
    n = stamps.size
    ts = pd.DatetimeIndex(stamps.ravel().astype("datetime64[us]")).tz_localize("UTC")

    opens_utc = session.opens(dates).as_unit("us").asi8[:, None]
    closes_utc = session.closes(dates).as_unit("us").asi8[:, None]
    regular = ((stamps >= opens_utc) & (stamps < closes_utc)).ravel()
    frac = np.clip((stamps - opens_utc) / np.maximum(closes_utc - opens_utc, 1), 0, 1).ravel()
    scale = np.where(regular, 1.0, 0.5) * np.sqrt(step)

    r = rng.standard_normal(n) * sigma * scale
    close = price * np.exp(np.cumsum(r))
    open_ = np.r_[price, close[:-1]]
    wick = np.abs(rng.standard_normal((2, n))) * sigma * 0.5 * scale
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    u = np.where(regular, 1.0 + 2.0 * np.exp(-frac / 0.08) + 1.5 * np.exp(-(1 - frac) / 0.06), 0.15)
    volume = np.round(rng.lognormal(np.log(50.0), 0.6, n) * u * step) + 1.0
    # quarter-point ticks, like ES
    q = lambda x: np.round(x * 4.0) / 4.0  # noqa: E731
    o4, c4 = q(open_), q(close)
    h4 = np.maximum(q(high), np.maximum(o4, c4))
    l4 = np.minimum(q(low), np.minimum(o4, c4))
    return pd.DataFrame({"timestamp": ts, "open": o4, "high": h4, "low": l4, "close": c4, "volume": volume})


def synthetic_store(store, minute_start: str = "2018-02-15", daily_start: str = "2017-01-02", days: int = 500,
                    step: int = 5, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Write a small synthetic market into ``store`` and return the frames written.

    ``ES``: 23-hour minute bars every ``step`` minutes from ``minute_start`` and a 1d
    file (the regular-session days of the whole generated span, from ``daily_start``);
    ``NQ``: regular-session minute bars only (no 1d file); ``VIX``: daily closes only.
    """
    from features.sessions_table import daily_from_sessions, session_table

    es_all = futures_minutes(daily_start, days=days, seed=seed, step=step, overnight=True)
    es_1d = daily_from_sessions(session_table(es_all, Session(), "16:00"))
    cut = Session().at([pd.Timestamp(minute_start)], "00:00")[0]
    es_1min = es_all[es_all["timestamp"] >= cut].reset_index(drop=True)
    nq = futures_minutes(daily_start, days=days, seed=seed + 1, step=step, overnight=False, price=6000.0)
    nq = nq[nq["timestamp"] >= cut].reset_index(drop=True)
    rng = np.random.default_rng(seed + 2)
    vix_dates = pd.bdate_range(daily_start, periods=days)
    vix = pd.DataFrame({"date": vix_dates, "close": 15 * np.exp(np.cumsum(rng.normal(0, 0.05, days)))})
    frames = {("ES", "1min"): es_1min, ("ES", "1d"): es_1d, ("NQ", "1min"): nq, ("VIX", "1d"): vix}
    for (sym, freq), df in frames.items():
        store.write(sym, freq, df, source="synthetic test data")
    return frames
