"""ml.factors: monthly strategy returns regressed on the real Fama–French three factors, with
Newey–West t-statistics; statsmodels' OLS with HAC errors is the reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from almanac.errors import DataError
from ml import factors
from tests.conftest import load_test_module


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


def test_a_part_first_or_last_month_is_left_out_and_named():
    # Jan 2015 from the 29th (19 weekdays before), Apr 2015 to the 1st (21 weekdays after): partial
    daily = _daily(["2015-01-29", "2015-02-02", "2015-04-01"], [0.01, 0.02, 0.03])
    assert [str(p) for p in factors.partial_edge_months(daily)] == ["2015-01", "2015-04"]
    # New Year's Day (Fri 2016-01-01) and a last day 2 weekdays before the month's end are whole
    daily = _daily(["2016-01-04", "2016-03-29"], [0.01, 0.02])
    assert factors.partial_edge_months(daily) == []
    daily = _daily(["2016-01-05", "2016-03-28"], [0.01, 0.02])  # 2 weekdays missed at the start: whole
    assert factors.partial_edge_months(daily) == [pd.Period("2016-03", "M")]  # 3 after Mar 28: partial
    daily = _daily(["2010-12-31"], [0.01])  # one day: the only month, partial
    assert factors.partial_edge_months(daily) == [pd.Period("2010-12", "M")]
    dates = pd.bdate_range("2010-12-31", "2012-02-29")
    got = factors.daily_exposure(_daily(dates, np.linspace(-0.01, 0.01, len(dates))))
    assert got["partial"] == ["2010-12"] and got["months"] == 15 and got["n_months"] == 14
    assert got["first_month"] == "2011-01" and got["last_month"] == "2012-02"
    assert got["partial_note"] == ("Dec 2010 (1 day) is only partly covered by the backtest: left out "
                                   "(a part month against a whole month of factors).")


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
    assert got["partial"] == ["2005-03"]  # from the 15th
    assert got["outside"] == ["2018-12"] and got["n_months"] == 164
    assert got["first_month"] == "2005-04" and got["last_month"] == "2018-11"
    assert got["outside_note"] == ("Dec 2018 is outside the factor data (Jul 1926 – Nov 2018): "
                                   "1 of 166 months left out.")
    inside = monthly.loc[pd.Period("2005-04", "M"):pd.Period("2018-11", "M")]
    ref = _reference(inside.to_numpy(), data.loc[inside.index, ["Mkt-RF", "SMB", "HML"]].to_numpy(),
                     factors.newey_west_lags(164))
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


# ---------------------------------------------------------------- a run: `runs factors`, the report

_te = load_test_module(Path(__file__).with_name("test_export.py"), "_almanac_test_export_factors")  # its run builder
PAST = "20260101-000000-es-rest-of-day-lightgbm-past01"
RECENT = "20260101-000000-es-rest-of-day-lightgbm-now001"
MULTI = "20260101-000000-es-archetype-lightgbm-multi1"


def _move_back(run: dict) -> None:
    """Move a built run's 420 business days (2019-01 .. 2020-08, after the factor data) to every
    other business day from 2008-01-02 (its out-of-fold days then span 21 months inside)."""
    from pathlib import Path

    folder = Path(run["path"])
    data = pd.read_parquet(folder / "dataset.parquet")
    new = dict(zip(data.index, pd.bdate_range("2008-01-02", periods=len(data), freq="2B")))
    data.index = pd.DatetimeIndex([new[d] for d in data.index], name=data.index.name)
    data.to_parquet(folder / "dataset.parquet")
    oof = pd.read_parquet(folder / "oof.parquet")
    oof["date"] = [new[d] for d in pd.to_datetime(oof["date"])]
    oof.to_parquet(folder / "oof.parquet", index=False)


@pytest.fixture(scope="module")
def run_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("factors") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALMANAC_HOME", str(home))
        _move_back(_te.build_run(home, "lightgbm", "binary", run_id=PAST))
        _te.build_run(home, "lightgbm", "binary", run_id=RECENT)
        _te.build_run(home, "lightgbm", "multiclass", run_id=MULTI)
        yield home


def home_state(home) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def _cli(capsys, *argv):
    from cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_runs_factors_json_matches_statsmodels_on_the_replayed_backtest(run_home, capsys):
    import json

    from almanac import registry
    from ml import replay

    code, out, err = _cli(capsys, "runs", "factors", PAST, "--json")
    assert code == 0 and err == ""
    got = json.loads(out)
    assert got["run_id"] == PAST and got["settings"] == {"threshold": 0.55, "cost_bps": 0.5, "long_only": False}
    run = registry.get_run(PAST)
    data = factors.factor_data()
    for key, daily in (("model", replay.replay(run).daily),
                       ("always_long", replay.always_long(replay.backtest_frame(run), 0.5).daily)):
        r = daily.set_index(pd.to_datetime(daily["date"]))["strategy_return"]
        monthly = (1 + r).resample("ME").prod() - 1
        monthly.index = monthly.index.to_period("M")
        partial = [p for p in (monthly.index[0], monthly.index[-1]) if str(p) in got[key]["partial"]]
        assert got[key]["partial"] == [str(p) for p in factors.partial_edge_months(daily)]
        monthly = monthly.drop(partial)
        assert got[key]["months"] == len(monthly) + len(partial) and got[key]["outside"] == []
        assert got[key]["partial"] == ["2009-07", "2011-03"]  # out-of-fold days 2009-07-15 .. 2011-03-21
        assert got[key]["n_months"] == len(monthly) == 19
        ref = _reference(monthly.to_numpy(), data.loc[monthly.index, ["Mkt-RF", "SMB", "HML"]].to_numpy(),
                         factors.newey_west_lags(len(monthly)))
        terms = ["alpha", "Mkt-RF", "SMB", "HML"]
        np.testing.assert_allclose([got[key]["coef"][k] for k in terms], ref.params, rtol=0, atol=1e-10)
        np.testing.assert_allclose([got[key]["t"][k] for k in terms], ref.tvalues, rtol=0, atol=1e-8)


def test_runs_factors_at_other_rules_and_as_text(run_home, capsys):
    import json

    code, out, _ = _cli(capsys, "runs", "factors", PAST, "--threshold", "0.6", "--cost-bps", "0", "--long-only",
                        "--json")
    assert code == 0
    assert json.loads(out)["settings"] == {"threshold": 0.6, "cost_bps": 0.0, "long_only": True}
    code, out, _ = _cli(capsys, "runs", "factors", PAST)
    lines = out.splitlines()
    assert code == 0 and lines[0] == f"{PAST}: threshold 0.55, long and short, 0.5 bp per side"
    assert lines[1].split() == ["model", "t", "(model)", "always", "long", "t", "(always", "long)"]
    assert lines[2].startswith("Alpha (monthly)") and lines[-1].startswith("Monthly compounded strategy returns")


def test_a_run_after_the_factor_data_says_so_and_gives_no_numbers(run_home, capsys):
    import json

    code, out, _ = _cli(capsys, "runs", "factors", RECENT, "--json")
    got = json.loads(out)["model"]
    assert code == 0 and got["n_months"] == 0 and got["coef"]["alpha"] is None
    assert got["partial"] == ["2019-10", "2020-08"]  # out-of-fold days 2019-10-10 .. 2020-08-11
    assert got["outside_note"] == ("Nov 2019 … Jul 2020 (9 months) are outside the factor data "
                                   "(Jul 1926 – Nov 2018): 9 of 11 months left out.")


@pytest.mark.parametrize("argv, message", [
    (("runs", "factors", MULTI), f"error: run {MULTI} has no backtest (a multiclass run or a table dataset), "
                                 "so no strategy returns to regress on the factors: pick a binary or regression run"),
    (("runs", "factors", PAST, "--threshold", "0.3"), "error: backtest threshold must be between 0.5 and 1, got 0.3; "),
    (("runs", "factors", PAST, "--cost-bps", "-1"), "error: backtest cost_bps must be a number >= 0"),
    (("runs", "factors", "20200101-000000-nothing-abcdef"), "error: no run 20200101-000000-nothing-abcdef in "),
])
def test_refusals_exit_2_with_one_line_and_change_nothing(run_home, argv, message):
    """In a subprocess, measured: exit 2, one line on stderr, the data home byte-identical."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    before = home_state(run_home)
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "p = subprocess.run([sys.executable, '-m', 'almanac', *sys.argv[1:]], capture_output=True, text=True); "
             "print(p.returncode, time.perf_counter() - t, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, sep='\\t'); sys.stderr.write(p.stderr)")
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "ALMANAC_HOME": str(run_home)})
    code, seconds, rss_kb = done.stdout.split("\t")
    assert int(code) == 2 and len(done.stderr.splitlines()) == 1 and done.stderr.startswith(message), done.stderr
    assert float(seconds) < 30 and int(rss_kb) < 600 * 1024  # generous sanity bounds
    assert home_state(run_home) == before


def test_the_report_shows_the_factor_table_of_the_model_and_always_long(run_home, tmp_path):
    import html as html_lib
    import re

    from almanac import registry
    from cli.experiments import write_report

    text = write_report(PAST, tmp_path / "past.html").read_text()
    got = factors.run_exposure(registry.get_run(PAST))
    header, rows, notes = factors.display_table([("Model", got["model"]), ("Always long", got["always_long"])])
    section = text[text.index('<h2 id="factors">'):]
    section = section[:section.index("<h2>")]
    assert "Factor exposure (Fama–French three factors, monthly)" in section
    cells = [html_lib.unescape(c) for c in re.findall(r"<t[dh](?: [^>]*)?>(.*?)</t[dh]>", section)]
    assert cells == header + [c for r in rows for c in r]
    assert rows[0][1] == f"{got['model']['coef']['alpha']:.2%}"
    assert rows[2][4] == f"{got['always_long']['t']['Mkt-RF']:.2f}"
    assert html_lib.escape(notes[-1]) in section
    text = write_report(RECENT, tmp_path / "recent.html").read_text()
    assert "No factor regression: 0 month(s) of returns inside the factor data" in text
    assert "are outside the factor data (Jul 1926 – Nov 2018)" in text


# ---------------------------------------------------------------- the chart, /backtest

def test_factor_figure_draws_each_strategys_betas_with_95_intervals():
    from viz.factors import factor_figure

    model = factors.exposure(_synthetic_monthly())
    empty = factors.exposure(_synthetic_monthly("2018-06", "2018-11"))
    fig = factor_figure([("Model", model), ("Always long", empty)])
    assert [t.name for t in fig.data] == ["Model"]  # no regression: no points
    trace = fig.data[0]
    np.testing.assert_allclose(trace.x, [model["coef"][f] for f in factors.FACTORS], rtol=0, atol=1e-15)
    np.testing.assert_allclose(trace.error_x.array, [1.959963984540054 * model["se"][f] for f in factors.FACTORS],
                               rtol=1e-12)
    assert list(fig.layout.yaxis.ticktext) == ["Mkt-RF", "SMB", "HML"]
    fig = factor_figure([("Model", empty)])
    assert not fig.data and "No factor regression" in fig.layout.annotations[0].text


def _texts(component) -> list[str]:
    """Every string in a Dash component tree."""
    if isinstance(component, str):
        return [component]
    children = getattr(component, "children", None)
    if children is None:
        return []
    if not isinstance(children, (list, tuple)):
        children = [children]
    return [t for c in children for t in _texts(c)]


def test_backtest_page_panel_follows_the_controls_and_alerts_on_bad_input(run_home, page_module):
    import dash_bootstrap_components as dbc
    from dash import dcc

    from almanac import registry

    render = page_module("backtest").render_factors
    before = home_state(run_home)
    panel = render(PAST, 0.55, False, 0.5)
    texts = _texts(panel)
    want = factors.run_exposure(registry.get_run(PAST), 0.55, 0.5, False)
    assert f"{want['model']['coef']['alpha']:.2%}" in texts and f"{want['always_long']['t']['Mkt-RF']:.2f}" in texts
    graphs = [c for c in _walk(panel) if isinstance(c, dcc.Graph)]
    assert len(graphs) == 1 and [t.name for t in graphs[0].figure.data] == ["Model", "Always long"]
    other = factors.run_exposure(registry.get_run(PAST), 0.6, 2.0, True)["model"]
    assert f"{other['coef']['alpha']:.2%}" in _texts(render(PAST, 0.6, True, 2.0))
    recent = _texts(render(RECENT, 0.55, False, 0.5))
    assert any(t.startswith("No factor regression: 0 month(s)") for t in recent)
    assert render(MULTI, 0.55, False, 0.5) is None  # no backtest cards for a multiclass run
    assert render(MULTI, 0.55, False, 0.5, False) is None
    off = render(PAST, 0.55, False, 0.5, False)  # the switch off (the page's default): nothing regressed
    assert _texts(off) == ["Off: turn the switch on to compute it at the settings on screen."]
    alert = render(PAST, 0.55, False, None)  # an emptied cost box
    assert isinstance(alert, dbc.Alert) and alert.color == "danger"
    assert any("backtest cost_bps must be a number >= 0" in t for t in _texts(alert))
    assert home_state(run_home) == before


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    if children is None or isinstance(children, str):
        return
    for c in children if isinstance(children, (list, tuple)) else [children]:
        yield from _walk(c)
