"""The option-delta sample table: a European option chain priced with Black-Scholes on the real
S&P 500 closes, with VIX as the volatility (a sample, flagged as such).

For every date on which both the real S&P 500 close (``arch.data.sp500``, the ES 1d sample)
and the real VIX close (``arch.data.vix``) exist -- 2014-01-03 .. 2018-12-31 --, the chain
holds calls and puts at :data:`MONEYNESS` x spot (strikes rounded to 5 index points) and
:data:`EXPIRY_DAYS` calendar days to expiry, priced with Black-Scholes (no dividends):
``sigma`` = VIX / 100 (one volatility for every strike: no smile), ``r`` = the year's
:data:`RATES` entry (approximate annual averages of the 3-month US Treasury bill rate: a
stand-in, not daily data). Columns:

``date`` (the time column), ``contract`` (group: e.g. ``C 1.05 30d``), ``spot``, ``strike``,
``moneyness`` (strike / spot), ``tte`` (years), ``vol``, ``rate``, ``is_call`` (1 / 0),
``price`` (per unit of the index) and the target ``delta`` = ``N(d1)`` for a call,
``N(d1) - 1`` for a put, ``d1 = (ln(S/K) + (r + sigma^2/2) T) / (sigma sqrt T)``.

It is written under the name :data:`SAMPLE_TABLE` the first time a spec names it
(:func:`ensure_option_sample`), and ``configs/spx-option-delta-histgb.yaml`` trains on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from almanac.atomic import file_lock

SAMPLE_TABLE = "spx_option_delta"
MONEYNESS = (0.90, 0.95, 1.00, 1.05, 1.10)
EXPIRY_DAYS = (7, 30, 60, 91, 182)
RATES = {2014: 0.0003, 2015: 0.0005, 2016: 0.0032, 2017: 0.0093, 2018: 0.0194, 2019: 0.0206}
SOURCE = ("sample: European S&P 500 options priced with Black-Scholes on the real S&P 500 closes and VIX "
          "(arch package data); rates are approximate annual T-bill averages; not market quotes")


def black_scholes(spot, strike, tte, vol, rate, is_call) -> tuple[np.ndarray, np.ndarray]:
    """(price, delta) of European options without dividends (vectorized)."""
    from scipy.special import ndtr

    s, k, t, v, r = (np.asarray(x, dtype="float64") for x in (spot, strike, tte, vol, rate))
    call = np.asarray(is_call, dtype=bool)
    sq = v * np.sqrt(t)
    d1 = (np.log(s / k) + (r + 0.5 * v * v) * t) / sq
    d2 = d1 - sq
    disc = k * np.exp(-r * t)
    price = np.where(call, s * ndtr(d1) - disc * ndtr(d2), disc * ndtr(-d2) - s * ndtr(-d1))
    delta = np.where(call, ndtr(d1), ndtr(d1) - 1.0)
    return price, delta


def option_chain() -> pd.DataFrame:
    """The sample chain (see the module doc); deterministic."""
    from almanac.sample import daily_frames

    frames = daily_frames()
    spx = frames[("ES", "1d")][["date", "close"]].rename(columns={"close": "spot"})
    vix = frames[("VIX", "1d")].rename(columns={"close": "vix"})
    days = spx.merge(vix, on="date", how="inner").sort_values("date").reset_index(drop=True)
    grid = pd.MultiIndex.from_product([range(len(days)), EXPIRY_DAYS, MONEYNESS, (1, 0)],
                                      names=["row", "days", "m", "is_call"]).to_frame(index=False)
    d = days.iloc[grid["row"].to_numpy()].reset_index(drop=True)
    spot = d["spot"].to_numpy()
    strike = np.round(spot * grid["m"].to_numpy() / 5.0) * 5.0
    tte = grid["days"].to_numpy() / 365.0
    vol = d["vix"].to_numpy() / 100.0
    rate = d["date"].dt.year.map(RATES).to_numpy(dtype="float64")
    is_call = grid["is_call"].to_numpy()
    price, delta = black_scholes(spot, strike, tte, vol, rate, is_call)
    contract = (np.where(is_call == 1, "C", "P").astype(object) + " " + grid["m"].map("{:.2f}".format).to_numpy()
                + " " + grid["days"].astype(str).to_numpy() + "d")
    return pd.DataFrame({"date": d["date"].to_numpy(), "contract": contract, "spot": spot, "strike": strike,
                         "moneyness": strike / spot, "tte": tte, "vol": vol, "rate": rate,
                         "is_call": is_call.astype("float64"), "price": price, "delta": delta})


def ensure_option_sample(home: Path | str | None = None):
    """Write the sample table if it is absent; returns its entry."""
    from almanac.tables import Tables, import_dataset_table

    tables = Tables(home)
    with file_lock(tables.home / ".sample-options.lock"):
        if tables.has(SAMPLE_TABLE, "dataset"):
            return tables.entry(SAMPLE_TABLE)
        entry, _ = import_dataset_table(option_chain(), SAMPLE_TABLE, time="date", group="contract",
                                        home=tables.home, display="sample option chain", sample=True,
                                        notes=[SOURCE])
        return entry


__all__ = ["EXPIRY_DAYS", "MONEYNESS", "RATES", "SAMPLE_TABLE", "black_scholes", "ensure_option_sample", "option_chain"]
