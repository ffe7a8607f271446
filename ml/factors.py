"""Factor exposure of a backtest: its monthly returns regressed on the Fama–French three factors.

Does the signal earn something of its own, or is it the market (or size, or value) in
disguise? The backtest's daily strategy returns are compounded to calendar months and
regressed on the monthly Fama–French factors; the intercept is the alpha.

Factor data. The real monthly Mkt-RF, SMB, HML and RF of Ken French's data library,
Jul 1926 – Nov 2018, as shipped inside the ``arch`` package (the file behind
``arch.data.frenchdata.load()``). The file is read directly, not through ``load()``:
importing ``arch`` costs 1.6 s here (it imports scipy), too slow for the web server, and
``load()`` under pandas 3 reads the ``YYYYMM`` integers as nanoseconds since 1970
(``1970-01-01 00:00:00.000192607``). :func:`parse_months` turns ``YYYYMM`` (integers,
strings, or such a mis-read index) into monthly periods. The factors are in percent in
the file; :func:`factor_data` returns fractions.

Monthly returns. ``prod(1 + r) - 1`` over the days of each calendar month
(:func:`ml.backtester.monthly_returns`, the report's monthly table). Every backtest day
counts, flat days as 0; a month without any day is not a month of the strategy. The first
and the last month are left out, and named, when the backtest covers only part of them
(:func:`partial_edge_months`: more than :data:`EDGE_SLACK` weekdays of the month before the
first day or after the last; the slack lets a holiday at the month's edge pass): a month
that starts on Dec 31 would put one day's return against a whole month of factors.

Excess return, no RF subtracted. The strategy holds a future from the cutoff to the close
and is flat otherwise. A futures position needs no capital: its return is already an
excess return (the collateral earns RF on its own). It is regressed as it is on Mkt-RF,
SMB and HML; subtracting RF would put a spurious -RF into the alpha.

Regression. ``r_m = alpha + b_mkt Mkt-RF_m + b_smb SMB_m + b_hml HML_m + e_m`` by OLS
(numpy least squares) over the months inside the factor data, in time order.
Standard errors are Newey–West (HAC): Bartlett kernel with
``L = floor(4 (T / 100) ^ (2/9))`` lags (Newey & West 1994; statsmodels' default rule),
no small-sample correction, i.e. exactly statsmodels'
``OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": L})``, the tests' reference.
t = coefficient / standard error; R² is the centred R². The annualized alpha is
``12 × alpha`` (arithmetic, like the monthly regression).

Months outside the factor data are left out and named
("Dec 2018 is outside the factor data (Jul 1926 – Nov 2018): 1 of 108 months left out").
With fewer than :data:`MIN_MONTHS` months inside there is no regression: ``note`` says
why and the numbers are None.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd

from almanac.errors import AlmanacError, DataError
from ml.backtester import REQUIRED_COLUMNS, _validate, backtest, monthly_returns

FACTORS = ("Mkt-RF", "SMB", "HML")
TERMS = ("alpha",) + FACTORS
#: Fewest months inside the factor data for a regression (4 coefficients are estimated).
MIN_MONTHS = 12
#: Weekdays of an edge month the backtest may miss and the month still count as whole (holidays).
EDGE_SLACK = 2
SOURCE = ("Fama–French three factors, monthly (Kenneth R. French data library, shipped with "
          "arch: arch.data.frenchdata)")


def parse_months(values) -> pd.PeriodIndex:
    """``YYYYMM`` values as monthly periods: integers or strings (192607 -> 1926-07), or a
    DatetimeIndex that holds them as nanoseconds since 1970 (how ``arch.data.frenchdata.load()``
    comes out under pandas 3). DataError on anything else."""
    if isinstance(values, pd.DatetimeIndex) or pd.api.types.is_datetime64_any_dtype(values):
        stamps = pd.DatetimeIndex(values)
        if len(stamps) and stamps.max() < pd.Timestamp("1970-01-02"):  # YYYYMM read as ns
            values = stamps.as_unit("ns").asi8
        else:
            return stamps.to_period("M")
    raw = np.asarray(values, dtype=object)
    codes = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype="float64")
    year, month = np.divmod(codes, 100)
    ok = (np.isfinite(codes) & (codes == np.round(codes)) & (month >= 1) & (month <= 12)
          & (year >= 1800) & (year <= 2999))
    if not ok.all():
        bad = raw[~ok][0]
        raise DataError(f"factor month {bad!r} is not YYYYMM (e.g. 192607 for Jul 1926); fix the factor file")
    return pd.PeriodIndex.from_fields(year=year.astype(int), month=month.astype(int), freq="M")


def _factor_file() -> Path:
    spec = importlib.util.find_spec("arch")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the Fama–French factor data ships with the arch package, which is not installed: "
                        "pip install -r requirements.txt")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "frenchdata" / "frenchdata.csv.gz"
    if not path.is_file():
        raise DataError(f"the Fama–French factor file {path} is missing from the arch package: reinstall arch")
    return path


@functools.lru_cache(maxsize=1)
def _factor_table() -> pd.DataFrame:
    raw = pd.read_csv(_factor_file(), dtype={"Date": "string"})
    table = raw[list(FACTORS) + ["RF"]].astype("float64") / 100.0
    table.index = parse_months(raw["Date"])
    table.index.name = "month"
    if not table.index.is_monotonic_increasing or table.index.has_duplicates:
        raise DataError("the Fama–French factor file has unordered or repeated months: reinstall arch")
    return table


def factor_data() -> pd.DataFrame:
    """Monthly Mkt-RF, SMB, HML, RF as fractions (0.0296 = 2.96 %), indexed by month
    (PeriodIndex, freq M), Jul 1926 – Nov 2018. Read once per process; a copy each call."""
    return _factor_table().copy()


def monthly_strategy_returns(daily: pd.DataFrame) -> pd.Series:
    """Compounded return of each calendar month with at least one day, ``prod(1 + r) - 1``
    of ``daily["strategy_return"]`` (a backtest's daily frame), indexed by month."""
    table = monthly_returns(daily).stack().dropna()
    if table.empty:
        return pd.Series([], index=pd.PeriodIndex([], freq="M", name="month"), dtype="float64",
                         name="strategy_return")
    years, months = table.index.get_level_values(0), table.index.get_level_values(1)
    index = pd.PeriodIndex.from_fields(year=np.asarray(years, int), month=np.asarray(months, int), freq="M")
    return pd.Series(table.to_numpy(dtype="float64"), index=index.rename("month"), name="strategy_return")


def partial_edge_months(daily: pd.DataFrame) -> list[pd.Period]:
    """The first and / or last month of ``daily["date"]`` when the days cover only part of it:
    more than :data:`EDGE_SLACK` weekdays of that month lie before the first day (first
    month) or after the last day (last month). Interior months are whole by construction."""
    dates = pd.to_datetime(daily["date"]).dropna()
    if dates.empty:
        return []
    first, last = dates.min().normalize(), dates.max().normalize()
    out = []
    start = first.to_period("M").start_time
    if len(pd.bdate_range(start, first - pd.Timedelta(days=1))) > EDGE_SLACK:
        out.append(first.to_period("M"))
    end = last.to_period("M").end_time.normalize()
    if len(pd.bdate_range(last + pd.Timedelta(days=1), end)) > EDGE_SLACK and last.to_period("M") not in out:
        out.append(last.to_period("M"))
    return out


def newey_west_lags(n: int) -> int:
    """``floor(4 (n / 100) ^ (2/9))``: the Newey–West (1994) lag rule (statsmodels' default)."""
    return int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))) if n > 0 else 0


def ols_hac(y: np.ndarray, x: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(coefficients, Newey–West standard errors, centred R²) of ``y`` on ``x`` (which holds
    the constant column): Bartlett weights ``1 - l / (lags + 1)``, no small-sample correction."""
    y = np.asarray(y, dtype="float64")
    x = np.asarray(x, dtype="float64")
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    resid = y - x @ coef
    bread = np.linalg.pinv(x.T @ x)
    scores = x * resid[:, None]
    meat = scores.T @ scores
    for lag in range(1, lags + 1):
        s = scores[lag:].T @ scores[:-lag]
        meat += (1.0 - lag / (lags + 1.0)) * (s + s.T)
    cov = bread @ meat @ bread
    sst = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(resid @ resid) / sst if sst > 0 else float("nan")
    return coef, np.sqrt(np.clip(np.diag(cov), 0.0, None)), r2


def _month_text(p: pd.Period) -> str:
    return p.strftime("%b %Y")


def _months_text(months: list[pd.Period]) -> str:
    if len(months) <= 3:
        return ", ".join(_month_text(m) for m in months)
    return f"{_month_text(months[0])} … {_month_text(months[-1])} ({len(months)} months)"


def _outside_note(outside: list[pd.Period], total: int, factors: pd.DataFrame) -> str | None:
    if not outside:
        return None
    verb = "is" if len(outside) == 1 else "are"
    return (f"{_months_text(outside)} {verb} outside the factor data ({_month_text(factors.index[0])} – "
            f"{_month_text(factors.index[-1])}): {len(outside)} of {total} months left out.")


def _partial_note(partial: list[pd.Period], days: dict) -> str | None:
    if not partial:
        return None
    what = ", ".join(f"{_month_text(p)} ({days.get(p, 0)} day{'s' if days.get(p, 0) != 1 else ''})"
                     for p in partial)
    verb = "is" if len(partial) == 1 else "are"
    return (f"{what} {verb} only partly covered by the backtest: left out (a part month against a whole "
            "month of factors).")


def _num(x) -> float | None:
    return float(x) if x is not None and math.isfinite(float(x)) else None


def exposure(monthly: pd.Series, factors: pd.DataFrame | None = None, min_months: int = MIN_MONTHS,
             partial: list[pd.Period] = (), partial_days: dict | None = None) -> dict:
    """The regression of ``monthly`` (strategy returns by month, fractions) on the three
    factors (default :func:`factor_data`); see the module doc. ``partial``: months left out
    as only partly covered (``partial_days``: their day counts, for the note). A JSON-ready
    dict: ``coef`` / ``se`` / ``t`` ({alpha, Mkt-RF, SMB, HML}), ``alpha_annual``, ``r2``,
    ``n_months`` (used), ``months`` (of the strategy, all), ``first_month`` / ``last_month``
    (used, YYYY-MM), ``lags``, ``outside`` (YYYY-MM list) and ``outside_note``, ``partial``
    and ``partial_note``, ``note`` (why there are no numbers, else None), ``factor_range``
    and ``source``."""
    factors = factor_data() if factors is None else factors
    monthly = monthly.dropna().sort_index()
    partial = [p for p in partial if p in monthly.index]
    whole = monthly[~monthly.index.isin(partial)]
    inside_mask = whole.index.isin(factors.index)
    inside, outside = whole[inside_mask], list(whole.index[~inside_mask])
    n = int(len(inside))
    empty = {k: None for k in TERMS}
    out = {
        "factors": list(FACTORS), "coef": dict(empty), "se": dict(empty), "t": dict(empty),
        "alpha_annual": None, "r2": None, "n_months": n, "months": int(len(monthly)),
        "first_month": str(inside.index[0]) if n else None, "last_month": str(inside.index[-1]) if n else None,
        "lags": None, "outside": [str(p) for p in outside],
        "outside_note": _outside_note(outside, len(monthly), factors), "partial": [str(p) for p in partial],
        "partial_note": _partial_note(partial, partial_days or {}), "note": None,
        "factor_range": [str(factors.index[0]), str(factors.index[-1])], "source": SOURCE,
        "excess_over_rf": False,
    }
    if n < min_months:
        out["note"] = (f"No factor regression: {n} month(s) of returns inside the factor data "
                       f"({_month_text(factors.index[0])} – {_month_text(factors.index[-1])}), "
                       f"at least {min_months} needed; backtest a longer span.")
        return out
    x = np.column_stack([np.ones(n), factors.loc[inside.index, list(FACTORS)].to_numpy(dtype="float64")])
    lags = newey_west_lags(n)
    coef, se, r2 = ols_hac(inside.to_numpy(dtype="float64"), x, lags)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = coef / se
    out.update(coef={k: _num(v) for k, v in zip(TERMS, coef)}, se={k: _num(v) for k, v in zip(TERMS, se)},
               t={k: _num(v) for k, v in zip(TERMS, t)}, alpha_annual=_num(12.0 * coef[0]), r2=_num(r2),
               lags=lags)
    return out


def daily_exposure(daily: pd.DataFrame, factors: pd.DataFrame | None = None) -> dict:
    """:func:`exposure` of a backtest's daily frame (compounded to months first, a part
    first or last month left out: :func:`partial_edge_months`)."""
    partial = partial_edge_months(daily)
    months = pd.to_datetime(daily["date"]).dt.to_period("M")
    days = {p: int((months == p).sum()) for p in partial}
    return exposure(monthly_strategy_returns(daily), factors, partial=partial, partial_days=days)


def run_exposure(run: dict, threshold=None, cost_bps=None, long_only=None) -> dict:
    """The factor exposure of run ``run``'s backtest (``run.json`` plus ``path``) at these
    trading rules (each by default the recorded one), and of always long on the same days
    at the same cost: ``{"run_id", "settings", "model", "always_long"}``. The backtest is
    replayed from the stored out-of-fold predictions (:mod:`ml.replay`), nothing refitted.
    AlmanacError for a run without a backtest (multiclass, a table dataset)."""
    from ml import replay

    run_id = run.get("run_id", "?")
    if run.get("task") == "multiclass" or not isinstance(run.get("backtest"), dict):
        raise AlmanacError(f"run {run_id} has no backtest (a multiclass run or a table dataset), so no "
                           "strategy returns to regress on the factors: pick a binary or regression run")
    rules = replay.settings(run, threshold, cost_bps, long_only)
    cost = float("nan") if rules["cost_bps"] is None else float(rules["cost_bps"])
    _validate(pd.DataFrame(columns=list(REQUIRED_COLUMNS)), rules["threshold"], cost)  # refuse before reading
    frame = replay.backtest_frame(run)
    result = backtest(frame, threshold=rules["threshold"], cost_bps=cost, long_only=rules["long_only"])
    base = replay.always_long(frame, result.params["cost_bps"])
    factors = factor_data()
    return {"run_id": run_id, "settings": result.params,
            "model": daily_exposure(result.daily, factors), "always_long": daily_exposure(base.daily, factors)}


def _pct(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}%}"


def _dec(x, digits: int) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def display_table(columns: list[tuple[str, dict]]) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, notes) of the factor table for the report and /backtest: one estimate
    and one Newey–West t column per strategy (``columns``: [(name, :func:`exposure` dict)],
    the model first). Notes: each strategy's outside-months line and no-regression note
    (once when they are the same), then the method."""
    header = [""] + [h for name, _ in columns for h in (name, f"t ({name})" if len(columns) > 1 else "t")]
    rows: list[list[str]] = []
    spec = [("Alpha (monthly)", "alpha", lambda e: _pct(e["coef"]["alpha"])),
            ("Alpha (annualized, ×12)", None, lambda e: _pct(e["alpha_annual"])),
            ("β Mkt-RF", "Mkt-RF", lambda e: _dec(e["coef"]["Mkt-RF"], 3)),
            ("β SMB", "SMB", lambda e: _dec(e["coef"]["SMB"], 3)),
            ("β HML", "HML", lambda e: _dec(e["coef"]["HML"], 3)),
            ("R²", None, lambda e: _dec(e["r2"], 3)),
            ("Months", None, lambda e: f"{e['n_months']:,}"),
            ("Newey–West lags", None, lambda e: "–" if e["lags"] is None else str(e["lags"]))]
    for label, term, value in spec:
        row = [label]
        for _, e in columns:
            row += [value(e), _dec(e["t"][term], 2) if term else ""]
        rows.append(row)
    notes: list[str] = []
    for name, e in columns:
        for line in (e.get("note"), e.get("partial_note"), e.get("outside_note")):
            if line and line not in notes:
                notes.append(line)
    notes.append("Monthly compounded strategy returns (a futures excess return: RF not subtracted) regressed on "
                 "the Fama–French factors Mkt-RF, SMB and HML; t-statistics with Newey–West standard errors "
                 "(Bartlett kernel, floor(4 (T/100)^(2/9)) lags).")
    return header, rows, notes


__all__ = ["EDGE_SLACK", "FACTORS", "MIN_MONTHS", "SOURCE", "daily_exposure", "display_table", "exposure",
           "factor_data", "monthly_strategy_returns", "newey_west_lags", "ols_hac", "parse_months", "partial_edge_months",
           "run_exposure"]
