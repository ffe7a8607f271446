"""Backtest of out-of-fold model signals, traded from the cutoff to the session close.

Leakage rule (docs/design.md §4): a position decided on day D, at the cutoff, earns only day
D's move AFTER the cutoff. So the position is opened at ``cutoff_price`` and closed at
the session ``close`` of the same day, flat overnight; the open-to-close move is never
used.

Definitions, per trading day D:

* signal = +1 if prob >= threshold, -1 if prob <= 1 - threshold (0 when
  ``long_only``), else 0; a NaN prob (no prediction) gives 0. position = signal.
  Comparisons allow 1e-12 of float error (prob 0.45 is short at threshold 0.55);
  at threshold 0.5 a prob of exactly 0.5 is long.
* gross_return = position * (close / cutoff_price - 1); ``close`` is the session close
  of the symbol's exchange calendar, so on a half day the exit is at the early close
* strategy_return = gross_return - |position| * 2 * cost_bps / 1e4 (entry and exit)
* equity = cumprod(1 + strategy_return), starting from 1.0 before the first day;
  drawdown = equity / max(1, running max of equity) - 1.
* benchmark = buy and hold, close to close: cumprod(1 + close / prev_close - 1),
  a missing prev_close counting as a 0 return.

Statistics come from :mod:`ml.stats` on the daily strategy returns (every row, flat
days included), plus three about trading:

* volatility = annualized std of the daily strategy returns (:func:`ml.stats.volatility`);
* turnover = traded notional PER YEAR in multiples of the capital: 252 * mean over days
  of |position change|, where a traded day changes the position twice (0 -> p at the
  cutoff, p -> 0 at the close), i.e. 252 * mean(2 |position|). Trading every day gives 504;
* cost_drag = return lost to costs PER YEAR (arithmetic): 252 * mean over days of
  |position| * 2 * cost_bps / 1e4, e.g. 0.05 = 5 % a year. 0 without costs. PSR tests the Sharpe against 0; DSR against the expected maximum
Sharpe of ``n_trials = len(trial_sharpes)`` trials whose annualized Sharpe ratios
have the sample variance (ddof=1, finite values only) of ``trial_sharpes``; both
are de-annualized with 252 days.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from almanac.errors import DataError, SpecError
from ml import stats

REQUIRED_COLUMNS = ("date", "prob", "cutoff_price", "close", "prev_close")
DAILY_COLUMNS = ["date", "prob", "signal", "position", "strategy_return", "equity",
                 "benchmark_equity", "drawdown"]
_EPS = 1e-12  # boundary tolerance: 1 - 0.55 is 0.44999999999999996 in floats
TRADE_COLUMNS = ["date", "side", "entry", "exit", "gross_return", "net_return"]

__all__ = ["BacktestResult", "backtest", "deflate", "dsr_trials", "monthly_returns", "sharpe_grid", "trading_columns"]


@dataclass
class BacktestResult:
    """Outcome of :func:`backtest`: daily series, one trade per traded day, statistics."""

    daily: pd.DataFrame
    trades: pd.DataFrame
    stats: dict
    params: dict = field(default_factory=dict)

    def to_json_dict(self) -> dict:
        """``{"params": ..., "stats": ...}`` with plain Python numbers and NaN as None."""
        return {"params": _json_safe(self.params), "stats": _json_safe(self.stats)}


def _json_safe(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, (bool, np.bool_)):
            out[k] = bool(v)
        elif isinstance(v, (int, np.integer)):
            out[k] = int(v)
        elif isinstance(v, (float, np.floating)):
            out[k] = float(v) if math.isfinite(v) else None
        else:
            out[k] = v
    return out


def _validate(frame: pd.DataFrame, threshold: float, cost_bps: float) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        raise SpecError("backtest input must be a DataFrame with columns "
                        f"{', '.join(REQUIRED_COLUMNS)}.")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SpecError(f"backtest input lacks column(s) {', '.join(missing)}; provide "
                        f"one row per trading day with {', '.join(REQUIRED_COLUMNS)}.")
    if not (isinstance(threshold, (int, float)) and 0.5 <= threshold <= 1.0):
        raise SpecError(f"backtest threshold must be between 0.5 and 1, got {threshold!r}; "
                        "use e.g. 0.55 (trade when P(up) >= 0.55 or <= 0.45).")
    if not (isinstance(cost_bps, (int, float)) and math.isfinite(cost_bps) and cost_bps >= 0):
        raise SpecError(f"backtest cost_bps must be a number >= 0 (basis points per side), "
                        f"got {cost_bps!r}; use 0 for no costs.")
    df = frame.loc[:, list(REQUIRED_COLUMNS)].copy()
    df["date"] = pd.to_datetime(df["date"])
    if df["date"].isna().any() or df["date"].duplicated().any():
        raise SpecError("backtest input needs one row per trading day: drop the rows "
                        "with a missing or repeated date.")
    for col in REQUIRED_COLUMNS[1:]:
        try:
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
        except (ValueError, TypeError):
            raise SpecError(f"backtest column {col} must be numeric (NaN for missing); "
                            "convert it with pd.to_numeric before the backtest.") from None
    if df["prob"].lt(0).any() or df["prob"].gt(1).any():
        raise SpecError("backtest column prob must hold probabilities in [0, 1] "
                        "(or NaN for no prediction); pass P(up), not a score.")
    return df.sort_values("date", ignore_index=True)


def _signals(prob: pd.Series, threshold: float, long_only: bool) -> np.ndarray:
    p = prob.to_numpy()
    long_ = p >= threshold - _EPS
    short = (p <= 1.0 - threshold + _EPS) & ~long_ & (not long_only)
    return long_.astype(np.int8) - short.astype(np.int8)


def _trial_stats(trial_sharpes: Sequence[float] | None, own: float) -> tuple[int, float]:
    """(n_trials, PER-DAY variance of the trials' Sharpe ratios)."""
    values = np.asarray([own] if trial_sharpes is None else list(trial_sharpes), float)
    if values.size == 0:
        raise SpecError("trial_sharpes is empty; pass the annualized Sharpe of every "
                        "trial on this symbol and label, this run included, or None.")
    finite = values[np.isfinite(values)]
    var = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
    return int(values.size), var / stats.PERIODS


def dsr_trials(trials: list[float], recorded: float | None, current: float) -> list[float]:
    """``trials`` with this run's ``recorded`` Sharpe swapped for ``current`` (the Sharpe at
    other settings, e.g. a threshold moved on /backtest), so the count stays the number of
    runs. The first entry equal to ``recorded`` (NaN matching None or NaN) is removed; when
    none matches (the run is not registered yet), ``current`` is just appended."""
    out = list(trials)
    missing = recorded is None or (isinstance(recorded, float) and math.isnan(recorded))
    for i, s in enumerate(out):
        if (missing and math.isnan(s)) or (not missing and math.isclose(s, recorded, rel_tol=1e-12, abs_tol=1e-12)):
            del out[i]
            break
    return out + [current]


def deflate(sharpe: float, days: int, skew: float, kurt: float,
            trial_sharpes: Sequence[float] | None = None) -> tuple[int, float]:
    """``(n_trials, DSR)`` of an annualized ``sharpe`` over ``days`` daily returns against
    the annualized Sharpe ratios of ``trial_sharpes`` (this run included; None: this run
    alone, so DSR = PSR). The one DSR computation of the backtest, the grid, the replay
    on /backtest and :func:`ml.trials.deflated`."""
    n_trials, var = _trial_stats(trial_sharpes, sharpe)
    return n_trials, stats.deflated_sharpe_ratio(sharpe / math.sqrt(stats.PERIODS), int(days), skew, kurt,
                                                 n_trials, var)


def backtest(frame: pd.DataFrame, threshold: float = 0.55, cost_bps: float = 0.0,
             long_only: bool = False,
             trial_sharpes: Sequence[float] | None = None) -> BacktestResult:
    """Trade ``frame``'s out-of-fold probabilities from cutoff to close (see module doc).

    ``frame`` has one row per trading day with columns date, prob (P(up), NaN = no
    prediction), cutoff_price, close and prev_close. ``trial_sharpes`` are the
    annualized Sharpe ratios of all trials on the same symbol and label, this run
    included (default: this run's own Sharpe only, so DSR = PSR).
    """
    df = _validate(frame, threshold, cost_bps)
    position = _signals(df["prob"], float(threshold), bool(long_only))
    traded = position != 0
    bad = traded & ~((df["cutoff_price"] > 0) & (df["close"] > 0)).to_numpy()
    if bad.any():
        day = df["date"][bad].iloc[0].date()
        raise DataError(f"backtest: {int(bad.sum())} traded day(s) lack a positive "
                        f"cutoff_price or close (first {day}); fill the prices or drop "
                        "those days' predictions.")
    move = (df["close"] / df["cutoff_price"] - 1.0).to_numpy()
    gross = np.where(traded, position * move, 0.0)
    net = gross - np.abs(position) * 2.0 * float(cost_bps) / 1e4
    returns = pd.Series(net, index=df.index)
    bench = (df["close"] / df["prev_close"] - 1.0).replace([np.inf, -np.inf], np.nan)

    daily = pd.DataFrame({
        "date": df["date"], "prob": df["prob"], "signal": position.astype("int64"),
        "position": position.astype("float64"), "strategy_return": net,
        "equity": (1.0 + returns).cumprod(),
        "benchmark_equity": (1.0 + bench.fillna(0.0)).cumprod(),
        "drawdown": stats.drawdown_series(returns),
    }, columns=DAILY_COLUMNS)

    trades = pd.DataFrame({
        "date": df["date"][traded], "side": np.where(position[traded] > 0, "long", "short"),
        "entry": df["cutoff_price"][traded], "exit": df["close"][traded],
        "gross_return": gross[traded], "net_return": net[traded],
    }, columns=TRADE_COLUMNS).reset_index(drop=True)

    sr = stats.sharpe(returns)
    sr_day = sr / math.sqrt(stats.PERIODS)
    sk, ku, days = stats.skew(returns), stats.kurtosis(returns), len(returns)
    n_trials, dsr = deflate(sr, days, sk, ku, trial_sharpes)
    result_stats = {
        "total_return": stats.total_return(returns), "cagr": stats.cagr(returns),
        "sharpe": sr, "sortino": stats.sortino(returns),
        "max_drawdown": stats.max_drawdown(returns), "calmar": stats.calmar(returns),
        "win_rate": float((trades["net_return"] > 0).mean()) if len(trades) else float("nan"),
        "trades": int(len(trades)), "exposure": float(traded.mean()) if days else float("nan"),
        "psr": stats.probabilistic_sharpe_ratio(sr_day, days, sk, ku),
        "dsr": dsr,
        "n_trials": n_trials, "skew": sk, "kurtosis": ku, "days": int(days),
        "volatility": stats.volatility(returns),
        "turnover": float(stats.PERIODS * np.mean(2.0 * np.abs(position))) if days else float("nan"),
        "cost_drag": (float(stats.PERIODS * np.mean(np.abs(position) * 2.0 * float(cost_bps) / 1e4))
                      if days else float("nan")),
    }
    params = {"threshold": float(threshold), "cost_bps": float(cost_bps),
              "long_only": bool(long_only)}
    return BacktestResult(daily=daily, trades=trades, stats=result_stats, params=params)


def monthly_returns(daily: pd.DataFrame) -> pd.DataFrame:
    """Year x month table of compounded strategy returns, prod(1 + r) - 1 per month.

    Index: year (int), columns 1..12; a month without any day is NaN.
    """
    if not {"date", "strategy_return"} <= set(daily.columns):
        raise SpecError("monthly_returns needs a backtest daily frame with columns "
                        "date and strategy_return; pass BacktestResult.daily.")
    dates = pd.to_datetime(daily["date"])
    growth = (1.0 + daily["strategy_return"].astype("float64")).groupby(
        [dates.dt.year.rename("year"), dates.dt.month.rename("month")]).prod() - 1.0
    table = growth.unstack("month").reindex(columns=range(1, 13))
    table.columns.name = "month"
    return table


def trading_columns(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """(validated frame sorted by date, cutoff-to-close move, tradeable mask) of a backtest
    input: the pieces :func:`sharpe_grid` and the always-long baseline share."""
    df = _validate(frame, 0.5, 0.0)
    tradeable = ((df["cutoff_price"] > 0) & (df["close"] > 0)).to_numpy()
    move = np.where(tradeable, (df["close"] / df["cutoff_price"] - 1.0).to_numpy(), 0.0)
    return df, move, tradeable


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, std ddof=1, skew G1, non-excess kurtosis G2 + 3) along the last axis, with
    pandas' bias corrections (NaN where the std is 0), so the values equal ml.stats'."""
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    d = x - mean[..., None]
    m2 = (d ** 2).sum(axis=-1)
    m3 = (d ** 3).sum(axis=-1)
    m4 = (d ** 4).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        flat = m2 <= 1e-14 * np.maximum(1.0, (x ** 2).sum(axis=-1))
        sd = np.where(flat, np.nan, np.sqrt(m2 / (n - 1)))
        sk = np.where(flat, np.nan, np.sqrt(n * (n - 1)) / (n - 2) * (m3 / n) / (m2 / n) ** 1.5)
        ku = np.where(flat, np.nan, (n + 1) * n * (n - 1) / ((n - 2) * (n - 3)) * m4 / m2 ** 2
                      - 3.0 * (n - 1) ** 2 / ((n - 2) * (n - 3)) + 3.0)
    return mean, sd, sk, ku


def sharpe_grid(frame: pd.DataFrame, thresholds: Sequence[float], costs: Sequence[float],
                long_only: bool = False, trial_sharpes: Sequence[float] | None = None,
                recorded_sharpe: float | None = None) -> dict:
    """Sharpe and DSR of :func:`backtest` at every threshold x cost, in one vectorized pass.

    Each cell equals ``backtest(frame, threshold, cost, long_only, trial_sharpes=T)``
    where T is ``trial_sharpes`` with ``recorded_sharpe`` swapped for the cell's own
    Sharpe (:func:`dsr_trials`; without ``trial_sharpes``: the cell alone, DSR =
    PSR). Nothing is refitted: ``frame`` holds the stored out-of-fold P(up). Returns
    ``{"thresholds", "costs", "sharpe", "dsr", "trades"}`` with arrays of shape
    (len(thresholds), len(costs)) (trades: (len(thresholds),)).
    """

    th = np.asarray(list(thresholds), dtype="float64")
    cs = np.asarray(list(costs), dtype="float64")
    for t in th:
        _validate(frame.iloc[:0], float(t), 0.0)
    for c in cs:
        _validate(frame.iloc[:0], 0.5, float(c))
    df, move, _ = trading_columns(frame)
    pos = np.stack([_signals(df["prob"], float(t), bool(long_only)) for t in th]).astype("float64")
    bad = (pos != 0).any(axis=0) & ~((df["cutoff_price"] > 0) & (df["close"] > 0)).to_numpy()
    if bad.any():
        raise DataError(f"backtest: {int(bad.sum())} traded day(s) lack a positive cutoff_price or close; "
                        "fill the prices or drop those days' predictions.")
    gross = pos * move  # (T, days)
    net = gross[:, None, :] - np.abs(pos)[:, None, :] * 2.0 * cs[None, :, None] / 1e4  # (T, C, days)
    days = net.shape[-1]
    mean, sd, sk, ku = _moments(net)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / sd * math.sqrt(stats.PERIODS)
    sharpe = np.where(np.isfinite(sharpe), sharpe, np.nan)
    dsr = np.full(sharpe.shape, np.nan)
    for idx in np.ndindex(sharpe.shape):
        sr = float(sharpe[idx])
        trials = [sr] if trial_sharpes is None else dsr_trials(list(trial_sharpes), recorded_sharpe, sr)
        dsr[idx] = deflate(sr, days, float(sk[idx]), float(ku[idx]), trials)[1]
    return {"thresholds": th, "costs": cs, "sharpe": sharpe, "dsr": dsr,
            "trades": (pos != 0).sum(axis=1).astype("int64"), "long_only": bool(long_only)}
