"""ml.stats: hand-computed values, the Deflated Sharpe paper example, quantstats agreement."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest

from ml import stats

with warnings.catch_warnings():  # urllib3/yfinance import-time deprecation noise
    warnings.simplefilter("ignore")
    import quantstats as qs

PHI_1 = 0.8413447460685429  # standard normal CDF at 1


# --- hand-computed --------------------------------------------------------------
def test_total_return_cagr_drawdown_by_hand():
    r = pd.Series([0.10, -0.20, 0.05])  # equity 1.1, 0.88, 0.924
    assert stats.total_return(r) == pytest.approx(-0.076, abs=1e-15)
    assert stats.cagr(r) == pytest.approx(0.924 ** (252 / 3) - 1, rel=1e-12)
    assert stats.max_drawdown(r) == pytest.approx(0.88 / 1.1 - 1, abs=1e-15)  # -0.2
    assert stats.calmar(r) == pytest.approx((0.924 ** 84 - 1) / 0.2, rel=1e-12)
    # a loss on the very first day is a drawdown from the starting equity 1.0
    assert stats.max_drawdown(pd.Series([-0.10, 0.05])) == pytest.approx(-0.10)
    dd = stats.drawdown_series(pd.Series([0.10, -0.20, 0.05]))
    np.testing.assert_allclose(dd, [0.0, -0.2, 0.924 / 1.1 - 1], atol=1e-15)
    assert stats.max_drawdown(pd.Series([0.01, 0.02])) == 0.0
    assert math.isnan(stats.calmar(pd.Series([0.01, 0.02])))


def test_sharpe_sortino_by_hand():
    r = pd.Series([0.02, -0.01, 0.03, -0.02])
    mean = 0.005
    sd = math.sqrt(((0.015**2) + (0.015**2) + (0.025**2) + (0.025**2)) / 3)
    assert stats.sharpe(r) == pytest.approx(mean / sd * math.sqrt(252), rel=1e-12)
    assert stats.sharpe(r, annualize=False) == pytest.approx(mean / sd, rel=1e-12)
    downside = math.sqrt((0.01**2 + 0.02**2) / 4)  # all 4 observations in the denominator
    assert stats.sortino(r) == pytest.approx(mean / downside * math.sqrt(252), rel=1e-12)
    # NaN values are dropped, not treated as flat days
    r_nan = pd.Series([0.02, np.nan, -0.01, 0.03, -0.02])
    assert stats.sharpe(r_nan) == pytest.approx(stats.sharpe(r), rel=1e-15)
    assert math.isnan(stats.sharpe(pd.Series([0.0, 0.0, 0.0])))   # zero volatility
    assert math.isnan(stats.sortino(pd.Series([0.01, 0.02])))     # no losses


def test_kurtosis_is_non_excess():
    r = pd.Series(np.random.default_rng(3).normal(0, 0.01, 200_000))
    assert stats.kurtosis(r) == pytest.approx(3.0, abs=0.05)
    assert stats.skew(r) == pytest.approx(0.0, abs=0.02)


# --- PSR / DSR ------------------------------------------------------------------
def test_psr_hand_checked():
    # 1 - 0.05*0.1 + (3-1)/4*0.01 = 1 -> z = 0.1*sqrt(100) = 1
    assert stats.probabilistic_sharpe_ratio(0.1, 101, 0.05, 3.0) == pytest.approx(PHI_1, abs=1e-15)
    # against a benchmark: skew 0, kurt 1 -> 1 + 0 + 0 = 1; z = (0.2-0.1)*10 = 1
    assert stats.probabilistic_sharpe_ratio(0.2, 101, 0.0, 1.0, sr_benchmark=0.1) == \
        pytest.approx(PHI_1, abs=1e-12)
    # normal returns, sr 0.05, T 401: z = 0.05*20/sqrt(1 + 0.5*0.0025)
    z = 1.0 / math.sqrt(1.00125)
    expected = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    assert stats.probabilistic_sharpe_ratio(0.05, 401, 0.0, 3.0) == pytest.approx(expected, abs=1e-14)
    assert stats.probabilistic_sharpe_ratio(0.0, 100, -1.0, 5.0) == 0.5
    assert math.isnan(stats.probabilistic_sharpe_ratio(0.1, 1, 0.0, 3.0))
    assert math.isnan(stats.probabilistic_sharpe_ratio(1.0, 100, 5.0, 3.0))  # variance term < 0


def test_dsr_reproduces_bailey_lopez_de_prado_2014_example():
    """N=100 trials, V[annual SR]=0.5, SR=2.5 annual, T=1250, skew -3, kurt 10 -> 0.9004.

    The paper de-annualizes with 250 trading days: SR = 2.5/sqrt(250) and
    sqrt(V) = sqrt(0.5)/sqrt(250), i.e. V_daily = 0.5/250. (252 days would give 0.8997.)
    """
    days = 250
    sr_star_annual = stats.expected_max_sharpe(100, 0.5)
    assert sr_star_annual == pytest.approx(1.7894, abs=1e-4)
    assert sr_star_annual / math.sqrt(days) == pytest.approx(0.1132, abs=1e-4)  # paper's SR0
    dsr = stats.deflated_sharpe_ratio(2.5 / math.sqrt(days), 1250, -3.0, 10.0,
                                      n_trials=100, var_trials=0.5 / days)
    assert dsr == pytest.approx(0.9004, abs=1e-4)
    dsr_252 = stats.deflated_sharpe_ratio(2.5 / math.sqrt(252), 1250, -3.0, 10.0, 100, 0.5 / 252)
    assert dsr_252 == pytest.approx(0.8997, abs=1e-4)


def test_expected_max_sharpe_formula_and_single_trial():
    g = 0.5772156649015329
    from scipy.stats import norm
    n, v = 10, 0.04
    want = 0.2 * ((1 - g) * norm.ppf(0.9) + g * norm.ppf(1 - 1 / (10 * math.e)))
    assert stats.expected_max_sharpe(n, v) == pytest.approx(want, rel=1e-14)
    assert stats.expected_max_sharpe(1, 0.5) == 0.0
    assert stats.expected_max_sharpe(50, 0.0) == 0.0
    psr = stats.probabilistic_sharpe_ratio(0.08, 500, -0.5, 6.0)
    assert stats.deflated_sharpe_ratio(0.08, 500, -0.5, 6.0, 1, 0.3) == psr
    assert stats.deflated_sharpe_ratio(0.08, 500, -0.5, 6.0, 20, 0.0) == psr
    # more trials -> higher hurdle -> lower DSR
    assert stats.deflated_sharpe_ratio(0.08, 500, -0.5, 6.0, 20, 0.001) < psr


# --- agreement with quantstats --------------------------------------------------
@pytest.fixture(scope="module")
def daily_returns():
    rng = np.random.default_rng(20240607)
    idx = pd.bdate_range("2019-01-01", periods=750)
    r = rng.standard_t(4, size=750) * 0.008 + 0.0006
    r[rng.random(750) < 0.3] = 0.0  # flat days, as a thresholded strategy has
    return pd.Series(r, index=idx)


def test_agrees_with_quantstats(daily_returns):
    r = daily_returns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {
            "sharpe": qs.stats.sharpe(r, rf=0, periods=252),
            "sortino": qs.stats.sortino(r, rf=0, periods=252),
            "max_drawdown": qs.stats.max_drawdown(r),
            "cagr": qs.stats.cagr(r, rf=0, periods=252),
            "calmar": qs.stats.calmar(r, periods=252),
            "total_return": qs.stats.comp(r),
            "skew": qs.stats.skew(r),
            "kurtosis": qs.stats.kurtosis(r) + 3.0,  # quantstats reports excess kurtosis
        }
    for name, value in want.items():
        got = getattr(stats, name)(r)
        assert got == pytest.approx(float(value), rel=1e-9), name
    assert stats.max_drawdown(r) < 0 and stats.sharpe(r) > 0  # a non-trivial case


def test_drawdown_series_agrees_with_quantstats(daily_returns):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = qs.stats.to_drawdown_series(daily_returns)
    np.testing.assert_allclose(stats.drawdown_series(daily_returns).to_numpy(),
                               want.to_numpy(), rtol=1e-9, atol=1e-15)


def test_normal_cdf_and_quantile_equal_scipy_without_importing_it():
    """PSR/DSR use the standard library's normal distribution (scipy.stats costs a second at
    start-up): the same numbers as scipy.stats.norm to 1e-12, PSR and DSR included."""
    from scipy.stats import norm

    z = np.r_[np.linspace(-12, 12, 4001), np.random.default_rng(0).normal(0, 3, 2000), 0.0, -40.0, 40.0]
    assert np.max(np.abs([stats.norm_cdf(v) - norm.cdf(v) for v in z])) < 1e-15
    p = np.r_[np.linspace(1e-9, 1 - 1e-9, 4001), 1 - 1 / np.arange(2, 5000), 1 - 1 / (np.arange(2, 5000) * np.e)]
    np.testing.assert_allclose([stats.norm_ppf(v) for v in p], norm.ppf(p), rtol=1e-12, atol=1e-12)
    for v in (0.0, 1.0, -0.5, 1.5, float("nan")):
        assert stats.norm_ppf(v) == norm.ppf(v) or (math.isnan(stats.norm_ppf(v)) and math.isnan(norm.ppf(v)))
    rng = np.random.default_rng(1)
    for _ in range(200):
        sr, sk, ku = rng.normal(0, 0.1), rng.normal(0, 1), 3 + abs(rng.normal(0, 3))
        t, n, v = int(rng.integers(20, 3000)), int(rng.integers(2, 500)), abs(rng.normal(0, 0.01))
        star = math.sqrt(v) * ((1 - stats.EULER_GAMMA) * norm.ppf(1 - 1 / n)
                               + stats.EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e)))
        var = 1 - sk * sr + (ku - 1) / 4 * sr ** 2
        want = norm.cdf((sr - star) * math.sqrt(t - 1) / math.sqrt(var)) if var > 0 else float("nan")
        got = stats.deflated_sharpe_ratio(sr, t, sk, ku, n, v)
        assert got == pytest.approx(want, abs=1e-12, nan_ok=True)
