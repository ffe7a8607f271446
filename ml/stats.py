"""Performance statistics of a daily strategy and the (deflated) Sharpe ratio tests.

Conventions for every function taking ``returns``:

* ``returns`` is a pandas Series of DAILY simple returns (0.01 = +1 %), one per
  trading day, a flat day being 0.0. NaN values are dropped (a missing observation,
  not a flat day), as quantstats does.
* ``PERIODS = 252`` trading days per year; the risk-free rate is 0.
* An undefined statistic (no data, zero volatility, no drawdown) is NaN, never inf.

Definitions (``n`` = number of returns, ``r_t`` the returns):

* total_return = prod(1 + r_t) - 1
* cagr = (1 + total_return) ** (1 / years) - 1 with years = n / 252
* sharpe = mean(r) / std(r, ddof=1) * sqrt(252)
* sortino = mean(r) / D * sqrt(252) with downside D = sqrt(sum(min(r_t, 0)^2) / n)
  (quantstats' definition: all n observations in the denominator, target 0)
* max_drawdown = min_t(E_t / max(1, max_{s<=t} E_s) - 1), E_t = prod_{s<=t}(1 + r_s);
  the starting equity 1.0 counts as a peak. Negative (or 0 without a loss).
* calmar = cagr / |max_drawdown|
* volatility = std(r, ddof=1) * sqrt(252) (annualized, flat days included)
* rolling_sharpe = the sharpe of each trailing window of ``window`` days (126 = half a
  year), NaN until the window is full or where its std is 0
* skew = adjusted Fisher-Pearson sample skewness G1 (pandas ``Series.skew``).
* kurtosis = NON-EXCESS kurtosis: pandas' bias-corrected excess kurtosis G2 plus 3,
  so a normal sample gives about 3. This is the gamma_4 of Bailey & Lopez de Prado.

The PSR / DSR functions (Bailey & Lopez de Prado, "The Sharpe Ratio Efficient
Frontier", 2012; "The Deflated Sharpe Ratio", 2014) take PER-PERIOD Sharpe ratios
(not annualized): divide an annualized Sharpe by sqrt(periods per year) and an
annualized variance of Sharpe ratios by the periods per year.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd

PERIODS = 252
EULER_GAMMA = float(np.euler_gamma)
_STD_NORMAL = NormalDist()

__all__ = ["PERIODS", "total_return", "cagr", "sharpe", "sortino", "max_drawdown",
           "drawdown_series", "calmar", "volatility", "rolling_sharpe", "skew", "kurtosis",
           "probabilistic_sharpe_ratio", "expected_max_sharpe", "deflated_sharpe_ratio"]


def norm_cdf(z: float) -> float:
    """Standard normal CDF, as ``scipy.stats.norm.cdf`` computes it (``erfc``, exact in the tails).

    The standard library instead of scipy, whose import costs a second at start-up; equal
    to scipy's value within 1e-15 (tests/test_stats.py).
    """
    return 0.5 * math.erfc(-float(z) / math.sqrt(2.0))


def norm_ppf(p: float) -> float:
    """Standard normal quantile (``scipy.stats.norm.ppf``): -inf at 0, inf at 1, NaN outside."""
    p = float(p)
    if not 0.0 < p < 1.0:
        return -math.inf if p == 0.0 else math.inf if p == 1.0 else math.nan
    return _STD_NORMAL.inv_cdf(p)


def _clean(returns: pd.Series) -> pd.Series:
    return pd.Series(returns, dtype="float64").replace([np.inf, -np.inf], np.nan).dropna()


def _nan_if_not_finite(x: float) -> float:
    x = float(x)
    return x if np.isfinite(x) else float("nan")


def total_return(returns: pd.Series) -> float:
    """Compounded return over the whole series: prod(1 + r) - 1 (0.0 when empty)."""
    return float((1.0 + _clean(returns)).prod() - 1.0)


def cagr(returns: pd.Series, periods: int = PERIODS) -> float:
    """Compound annual growth rate, years = n / periods. NaN when empty or wiped out."""
    r = _clean(returns)
    if len(r) == 0:
        return float("nan")
    wealth = 1.0 + total_return(r)
    if wealth < 0:
        return float("nan")
    return _nan_if_not_finite(wealth ** (periods / len(r)) - 1.0)


def sharpe(returns: pd.Series, periods: int = PERIODS, annualize: bool = True) -> float:
    """mean / std(ddof=1), times sqrt(periods) when ``annualize``. NaN if std is 0."""
    r = _clean(returns)
    sd = r.std(ddof=1)
    if len(r) < 2 or not sd > 0:
        return float("nan")
    return _nan_if_not_finite(r.mean() / sd * (np.sqrt(periods) if annualize else 1.0))


def volatility(returns: pd.Series, periods: int = PERIODS) -> float:
    """Annualized volatility: std(ddof=1) * sqrt(periods); NaN below 2 returns."""
    r = _clean(returns)
    if len(r) < 2:
        return float("nan")
    return _nan_if_not_finite(r.std(ddof=1) * np.sqrt(periods))


def rolling_sharpe(returns: pd.Series, window: int = 126, periods: int = PERIODS) -> pd.Series:
    """Annualized Sharpe of each trailing ``window`` of returns (same index as the input;
    NaN until the window is full and where the window's std is 0). NaN returns count
    as flat days, as in :func:`drawdown_series`."""
    r = pd.Series(returns, dtype="float64").fillna(0.0)
    roll = r.rolling(int(window), min_periods=int(window))
    mean, sd = roll.mean(), roll.std(ddof=1)
    out = mean / sd.where(sd > 1e-15) * np.sqrt(periods)
    return out.replace([np.inf, -np.inf], np.nan)


def sortino(returns: pd.Series, periods: int = PERIODS, annualize: bool = True) -> float:
    """mean / sqrt(sum(min(r, 0)^2) / n), times sqrt(periods). NaN without losses."""
    r = _clean(returns)
    if len(r) == 0:
        return float("nan")
    downside = np.sqrt((np.minimum(r.to_numpy(), 0.0) ** 2).sum() / len(r))
    if not downside > 0:
        return float("nan")
    return _nan_if_not_finite(r.mean() / downside * (np.sqrt(periods) if annualize else 1.0))


def drawdown_series(returns: pd.Series) -> pd.Series:
    """Drawdown of the compounded equity from its running peak (start 1.0 is a peak).

    NaN returns count as flat days here, so the series keeps the input's index.
    """
    r = pd.Series(returns, dtype="float64").fillna(0.0)
    equity = (1.0 + r).cumprod()
    peak = equity.cummax().clip(lower=1.0)
    return equity / peak - 1.0


def max_drawdown(returns: pd.Series) -> float:
    """Worst drawdown of compounded equity (a negative number; 0.0 if never below peak)."""
    r = _clean(returns)
    if len(r) == 0:
        return float("nan")
    return float(drawdown_series(r).min())


def calmar(returns: pd.Series, periods: int = PERIODS) -> float:
    """cagr / |max_drawdown|; NaN when there is no drawdown."""
    dd = max_drawdown(returns)
    if not dd < 0:
        return float("nan")
    return _nan_if_not_finite(cagr(returns, periods) / abs(dd))


def skew(returns: pd.Series) -> float:
    """Adjusted Fisher-Pearson sample skewness (pandas); NaN below 3 observations."""
    return _nan_if_not_finite(_clean(returns).skew())


def kurtosis(returns: pd.Series) -> float:
    """NON-EXCESS kurtosis: pandas' bias-corrected excess kurtosis + 3 (normal ~ 3)."""
    return _nan_if_not_finite(_clean(returns).kurt() + 3.0)


def probabilistic_sharpe_ratio(sr: float, T: int, skew: float, kurt: float,
                               sr_benchmark: float = 0.0) -> float:
    """Probability that the true Sharpe exceeds ``sr_benchmark`` (Bailey & LdP 2012).

    PSR = Phi((SR - SR*) sqrt(T - 1) / sqrt(1 - g3 SR + (g4 - 1) / 4 SR^2)), with
    ``sr`` and ``sr_benchmark`` PER-PERIOD Sharpe ratios, ``T`` the number of
    returns, ``skew`` = g3 and ``kurt`` = g4 the NON-EXCESS kurtosis (3 if normal).
    NaN when an input is not finite, T < 2, or the variance term is not positive.
    """
    vals = np.array([sr, skew, kurt, sr_benchmark], dtype="float64")
    if not np.all(np.isfinite(vals)) or T < 2:
        return float("nan")
    var = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr ** 2
    if not var > 0:
        return float("nan")
    z = (sr - sr_benchmark) * np.sqrt(T - 1.0) / np.sqrt(var)
    return norm_cdf(z)


def expected_max_sharpe(n_trials: int, var_trials: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` unskilled trials (False Strategy Theorem).

    E[max SR] = sqrt(V) ((1 - g) Phi^-1(1 - 1/N) + g Phi^-1(1 - 1/(N e))), g the
    Euler-Mascheroni constant, V = ``var_trials`` the variance of the trials' Sharpe
    ratios (in the units of the result: per-period V gives a per-period Sharpe).
    0.0 when N <= 1 or V <= 0 (nothing to deflate).
    """
    n = int(n_trials)
    if n <= 1 or not var_trials > 0:
        return 0.0
    g = EULER_GAMMA
    return float(np.sqrt(var_trials) * ((1.0 - g) * norm_ppf(1.0 - 1.0 / n)
                                         + g * norm_ppf(1.0 - 1.0 / (n * np.e))))


def deflated_sharpe_ratio(sr: float, T: int, skew: float, kurt: float,
                          n_trials: int, var_trials: float) -> float:
    """PSR against SR* = expected_max_sharpe(n_trials, var_trials) (Bailey & LdP 2014).

    ``sr`` is the selected trial's PER-PERIOD Sharpe and ``var_trials`` the
    PER-PERIOD variance of all trials' Sharpe ratios; one trial (or zero variance)
    gives the plain PSR against 0.
    """
    sr_star = expected_max_sharpe(n_trials, var_trials)
    return probabilistic_sharpe_ratio(sr, T, skew, kurt, sr_benchmark=sr_star)
