"""ml.factors: monthly strategy returns regressed on the real Fama–French three factors, with
Newey–West t-statistics; statsmodels' OLS with HAC errors is the reference."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from almanac.errors import DataError
from ml import factors


def _daily(dates, returns) -> pd.DataFrame:
    return pd.DataFrame({"date": pd.to_datetime(list(dates)), "strategy_return": np.asarray(returns, float)})


# ---------------------------------------------------------------- the factor data

def test_factor_data_runs_jul_1926_to_nov_2018_in_fractions():
    data = factors.factor_data()
    assert list(data.columns) == ["Mkt-RF", "SMB", "HML", "RF"]
    assert data.index[0] == pd.Period("1926-07", "M") and data.index[-1] == pd.Period("2018-11", "M")
    assert len(data) == 1109 and data.index.is_monotonic_increasing
    assert (data.index[1:] - data.index[:-1] == pd.offsets.MonthEnd(1)).all()  # no month missing
    # first row of the file: 192607,2.96,-2.3,-2.87,0.22 (percent)
    assert data.iloc[0].tolist() == pytest.approx([0.0296, -0.023, -0.0287, 0.0022], abs=1e-15)
    assert data.loc[pd.Period("2018-11", "M")].tolist() == pytest.approx([0.0169, -0.0075, 0.0022, 0.0018],
                                                                         abs=1e-15)


def test_factor_data_equals_arch_load_and_its_misread_index_parses():
    from arch.data import frenchdata

    raw = frenchdata.load()  # pandas 3: 192607 read as 1970-01-01 00:00:00.000192607
    months = factors.parse_months(raw.index)
    assert months[0] == pd.Period("1926-07", "M") and months[-1] == pd.Period("2018-11", "M")
    data = factors.factor_data()
    assert (months == data.index).all()
    np.testing.assert_allclose(raw[["Mkt-RF", "SMB", "HML", "RF"]].to_numpy() / 100, data.to_numpy(), rtol=0,
                               atol=1e-15)


def test_parse_months_forms_and_refusals():
    want = pd.PeriodIndex(["1926-07", "2018-11"], freq="M")
    assert (factors.parse_months([192607, 201811]) == want).all()
    assert (factors.parse_months(["192607", "201811"]) == want).all()
    assert (factors.parse_months(pd.DatetimeIndex(["1926-07-31", "2018-11-30"])) == want).all()
    for bad, shown in (([192613], "192613"), ([1926], "1926"), (["July"], "July")):
        with pytest.raises(DataError) as err:
            factors.parse_months(bad)
        assert shown in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- monthly compounding

def test_monthly_returns_compound_by_hand():
    daily = _daily(["2015-01-29", "2015-01-30", "2015-02-02", "2015-02-03", "2015-04-01"],
                   [0.01, -0.02, 0.03, 0.0, -0.005])
    got = factors.monthly_strategy_returns(daily)
    assert [str(p) for p in got.index] == ["2015-01", "2015-02", "2015-04"]  # no March: no day in it
    assert got.iloc[0] == pytest.approx(1.01 * 0.98 - 1, abs=1e-15)  # -0.0102
    assert got.iloc[1] == pytest.approx(1.03 * 1.0 - 1, abs=1e-15)
    assert got.iloc[2] == pytest.approx(-0.005, abs=1e-15)


def test_newey_west_lag_rule():
    # floor(4 (T/100)^(2/9)): T=96 -> 3.96 -> 3; T=100 -> 4; T=227 -> 4.80 -> 4; T=12 -> 2.49 -> 2
    assert [factors.newey_west_lags(t) for t in (12, 96, 100, 227, 1109)] == [2, 3, 4, 4, 6]


# ---------------------------------------------------------------- the regression vs statsmodels

def _reference(y: np.ndarray, x: np.ndarray, lags: int):
    return sm.OLS(y, sm.add_constant(x, has_constant="add")).fit(cov_type="HAC", cov_kwds={"maxlags": lags})


def _synthetic_monthly(start="2000-01", end="2018-11", seed=3) -> pd.Series:
    data = factors.factor_data().loc[pd.Period(start, "M"):pd.Period(end, "M")]
    rng = np.random.default_rng(seed)
    e = rng.normal(0, 0.02, len(data))
    e[1:] += 0.4 * e[:-1]  # autocorrelated errors: HAC differs from OLS
    y = 0.002 + 0.5 * data["Mkt-RF"] - 0.2 * data["SMB"] + 0.1 * data["HML"] + e
    return pd.Series(y.to_numpy(), index=data.index)


def test_exposure_matches_statsmodels_ols_hac_on_the_real_factors():
    monthly = _synthetic_monthly()
    got = factors.exposure(monthly)
    n = len(monthly)
    assert got["n_months"] == n == 227 and got["lags"] == 4 and got["note"] is None and got["outside"] == []
    x = factors.factor_data().loc[monthly.index, ["Mkt-RF", "SMB", "HML"]].to_numpy()
    ref = _reference(monthly.to_numpy(), x, 4)
    assert ref.cov_kwds["maxlags"] == 4 and not ref.cov_kwds["use_correction"]
    terms = ["alpha", "Mkt-RF", "SMB", "HML"]
    np.testing.assert_allclose([got["coef"][k] for k in terms], ref.params, rtol=0, atol=1e-10)
    np.testing.assert_allclose([got["se"][k] for k in terms], ref.bse, rtol=1e-9, atol=0)
    np.testing.assert_allclose([got["t"][k] for k in terms], ref.tvalues, rtol=0, atol=1e-8)
    assert got["r2"] == pytest.approx(ref.rsquared, abs=1e-12)
    assert got["alpha_annual"] == pytest.approx(12 * ref.params[0], abs=1e-12)
    # the HAC errors differ from the plain OLS ones (the test would not see a wrong kernel otherwise)
    assert not np.allclose(ref.bse, sm.OLS(monthly.to_numpy(), sm.add_constant(x)).fit().bse, rtol=1e-3)


def test_daily_strategy_through_months_matches_statsmodels():
    """A synthetic daily strategy 2005-2018: compounded to months by an independent pandas
    resample, then statsmodels on the factor months; the lab's path gives the same numbers."""
    rng = np.random.default_rng(11)
    dates = pd.bdate_range("2005-03-15", "2018-12-31")
    data = factors.factor_data()
    mkt = data["Mkt-RF"].reindex(dates.to_period("M")).to_numpy()
    r = 0.0002 + 0.3 * mkt / 21 + rng.normal(0, 0.008, len(dates))
    r[rng.random(len(dates)) < 0.3] = 0.0  # flat days
    daily = _daily(dates, r)
    got = factors.daily_exposure(daily)
    monthly = (1 + pd.Series(r, index=dates)).resample("ME").prod() - 1
    monthly.index = monthly.index.to_period("M")
    assert len(monthly) == 166 and got["months"] == 166
    assert got["outside"] == ["2018-12"] and got["n_months"] == 165
    assert got["first_month"] == "2005-03" and got["last_month"] == "2018-11"
    assert got["outside_note"] == ("Dec 2018 is outside the factor data (Jul 1926 – Nov 2018): "
                                   "1 of 166 months left out.")
    inside = monthly.loc[:pd.Period("2018-11", "M")]
    ref = _reference(inside.to_numpy(), data.loc[inside.index, ["Mkt-RF", "SMB", "HML"]].to_numpy(),
                     factors.newey_west_lags(165))
    np.testing.assert_allclose([got["coef"][k] for k in ("alpha", "Mkt-RF", "SMB", "HML")], ref.params,
                               rtol=0, atol=1e-10)
    np.testing.assert_allclose([got["t"][k] for k in ("alpha", "Mkt-RF", "SMB", "HML")], ref.tvalues,
                               rtol=0, atol=1e-8)


# ---------------------------------------------------------------- outside months, too few months

def test_a_strategy_spanning_dec_2018_jan_2019_has_2_months_outside_and_no_regression():
    dates = pd.bdate_range("2018-12-03", "2019-01-31")
    daily = _daily(dates, np.full(len(dates), 0.001))
    got = factors.daily_exposure(daily)
    assert got["outside"] == ["2018-12", "2019-01"] and got["months"] == 2 and got["n_months"] == 0
    assert got["outside_note"] == ("Dec 2018, Jan 2019 are outside the factor data (Jul 1926 – Nov 2018): "
                                   "2 of 2 months left out.")
    assert got["note"] == ("No factor regression: 0 month(s) of returns inside the factor data "
                           "(Jul 1926 – Nov 2018), at least 12 needed; backtest a longer span.")
    assert all(v is None for part in ("coef", "se", "t") for v in got[part].values())
    assert got["r2"] is None and got["alpha_annual"] is None and got["lags"] is None


def test_eleven_months_inside_give_no_numbers_twelve_do():
    eleven = _synthetic_monthly("2018-01", "2018-11")
    assert len(eleven) == 11
    got = factors.exposure(eleven)
    assert got["n_months"] == 11 and got["coef"]["alpha"] is None
    assert got["note"].startswith("No factor regression: 11 month(s) of returns inside the factor data")
    twelve = _synthetic_monthly("2017-12", "2018-11")
    got = factors.exposure(twelve)
    assert got["note"] is None and got["lags"] == 2 and math.isfinite(got["t"]["alpha"])


def test_many_outside_months_are_summarized_on_one_line():
    monthly = pd.Series(0.01, index=pd.period_range("2018-01", "2019-06", freq="M"))
    got = factors.exposure(monthly)
    assert got["outside_note"] == ("Dec 2018 … Jun 2019 (7 months) are outside the factor data "
                                   "(Jul 1926 – Nov 2018): 7 of 18 months left out.")


def test_display_table_rows_and_notes():
    model = factors.exposure(_synthetic_monthly())
    empty = factors.exposure(_synthetic_monthly("2018-06", "2018-11"))
    header, rows, notes = factors.display_table([("Model", model), ("Always long", empty)])
    assert header == ["", "Model", "t (Model)", "Always long", "t (Always long)"]
    assert [r[0] for r in rows] == ["Alpha (monthly)", "Alpha (annualized, ×12)", "β Mkt-RF", "β SMB", "β HML",
                                    "R²", "Months", "Newey–West lags"]
    assert rows[0][1] == f"{model['coef']['alpha']:.2%}" and rows[0][2] == f"{model['t']['alpha']:.2f}"
    assert rows[2][1] == f"{model['coef']['Mkt-RF']:.3f}" and rows[2][3] == "–"
    assert rows[6][1:] == ["227", "", "6", ""]
    assert notes[0].startswith("No factor regression: 6 month(s)") and "Newey–West" in notes[-1]
