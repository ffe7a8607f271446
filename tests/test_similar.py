"""Similar days (ml.similar, ``python -m almanac similar``): neighbours by hand and by
scikit-learn, the scaler fitted before the query day, no neighbour on or after it, the
rest-of-day paths from the bars, the command's JSON and its refusals."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from almanac.errors import NotFoundError, SpecError
from cli import main
from ml.similar import nearest_days, rest_of_day_paths, rest_of_day_returns, similar_days

ROOT = Path(__file__).resolve().parent.parent
DAYS = pd.bdate_range("2020-01-01", periods=6, name="date")


def tiny():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0, 10.0, 2.5], "b": [0.0, 0.0, 1.0, 1.0, 5.0, 0.5]}, index=DAYS)
    outcome = pd.Series([0.01, -0.02, 0.03, np.nan, 0.05, -0.01], index=DAYS)
    return frame, outcome


def test_neighbours_by_hand():
    frame, outcome = tiny()
    nb = nearest_days(frame, outcome, DAYS[5], k=3)
    # scaler on days 0-4: a mean 4, std sqrt(50/5)=sqrt(10); b mean 1.4, std sqrt(17.2/5)
    sa, sb = np.sqrt(10.0), np.sqrt(3.44)
    za = (np.array([1, 2, 3, 10]) - 4) / sa  # day 3 has no outcome: not a candidate
    zb = (np.array([0, 0, 1, 5]) - 1.4) / sb
    qa, qb = (2.5 - 4) / sa, (0.5 - 1.4) / sb
    d = np.sqrt((za - qa) ** 2 + (zb - qb) ** 2)
    order = np.argsort(d)[:3]
    assert list(nb.table["date"]) == list(DAYS[[0, 1, 2, 4]][order])
    np.testing.assert_allclose(nb.table["distance"], d[order], rtol=1e-12)
    assert list(nb.table["date"]) == list(DAYS[[1, 2, 0]])
    np.testing.assert_allclose(nb.table["rest_of_day_return"], [-0.02, 0.03, 0.01])
    assert nb.share_up == pytest.approx(2 / 3) and nb.mean_return == pytest.approx(0.02 / 3)
    assert nb.query_return == pytest.approx(-0.01) and nb.candidates == 4


def test_neighbours_agree_with_sklearn():
    from sklearn.neighbors import NearestNeighbors
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(3)
    days = pd.bdate_range("2019-01-01", periods=200, name="date")
    frame = pd.DataFrame(rng.normal(size=(200, 5)) * [1, 10, 0.01, 3, 100], index=days, columns=list("vwxyz"))
    outcome = pd.Series(rng.normal(0, 0.01, 200), index=days)
    day = days[150]
    nb = nearest_days(frame, outcome, day, k=10)
    before = frame[frame.index < day]
    scaler = StandardScaler().fit(before)
    nn = NearestNeighbors(n_neighbors=10).fit(scaler.transform(before))
    dist, idx = nn.kneighbors(scaler.transform(frame.loc[[day]]))
    assert list(nb.table["date"]) == list(before.index[idx[0]])
    np.testing.assert_allclose(nb.table["distance"], dist[0], rtol=1e-10)
    np.testing.assert_allclose(nb.scaler["mean"], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(nb.scaler["std"], scaler.scale_, rtol=1e-12)


def test_scaler_before_the_day_and_no_later_neighbour():
    rng = np.random.default_rng(5)
    days = pd.bdate_range("2019-01-01", periods=120, name="date")
    frame = pd.DataFrame(rng.normal(size=(120, 4)), index=days, columns=list("abcd"))
    frame.iloc[::9, 1] = np.nan  # gaps: imputed with the earlier days' mean
    outcome = pd.Series(rng.normal(0, 0.01, 120), index=days)
    for day in days[2::13]:
        nb = nearest_days(frame, outcome, day, k=100)
        assert (nb.table["date"] < day).all() and len(nb.table) == min(100, (days < day).sum())
        # every day on/after the query altered (features and outcomes) or removed: same answer
        later = frame.index > day
        changed = frame.copy()
        changed.loc[later] = changed.loc[later] * 1000 + 7
        out2 = outcome.copy()
        out2[frame.index >= day] = 0.5
        for f, o in ((changed, out2), (frame[~later], outcome[~later])):
            other = nearest_days(f, o, day, k=100)
            pd.testing.assert_frame_equal(other.table, nb.table)
            pd.testing.assert_frame_equal(other.scaler, nb.scaler)


def test_query_refusals():
    frame, outcome = tiny()
    with pytest.raises(NotFoundError, match="2020-01-01 has no feature to compare"):
        nearest_days(frame, outcome, DAYS[0], k=3)
    with pytest.raises(NotFoundError, match="2021-01-01 is not a day of the feature table"):
        nearest_days(frame, outcome, "2021-01-01", k=3)
    with pytest.raises(SpecError, match=r"k 0 is outside 1\.\.100"):
        nearest_days(frame, outcome, DAYS[5], k=0)


# ---------------------------------------------------------------- on a store


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from almanac.store import Store
    from bench.synthetic import synthetic_store

    home = tmp_path_factory.mktemp("similar") / "home"
    store = Store(home)
    synthetic_store(store, minute_start="2017-11-01", days=300)
    return home


def home_state(home: Path) -> dict[str, str]:
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file()}


def test_paths_end_at_the_rest_of_day_return(market, monkeypatch):
    from almanac.store import Store

    monkeypatch.setenv("ALMANAC_HOME", str(market))
    store = Store(market)
    out = similar_days("ES", "2018-01-10", k=5, sets="early_session,regime", store=store, paths=True)
    assert [n["date"] < "2018-01-10" for n in out["neighbors"]] == [True] * 5
    paths = out["paths"]
    assert len(paths) == 6
    returns = {n["date"]: n["rest_of_day_return"] for n in out["neighbors"]}
    returns["2018-01-10"] = out["query_rest_of_day_return"]
    # by hand from the bars: the close of the last bar before 10:15 and of the last before 16:00
    bars = store.read_bars("ES", "1min", start="2018-01-10", end="2018-01-10")
    local = pd.DatetimeIndex(bars["timestamp"]).tz_convert("America/New_York")
    cut = bars["close"][(local.time < pd.Timestamp("10:15").time()) & (local.hour >= 9)].iloc[-1]
    close = bars["close"][local.time < pd.Timestamp("16:00").time()].iloc[-1]
    assert returns["2018-01-10"] == pytest.approx(close / cut - 1, rel=1e-12)
    for day, p in paths.items():
        assert p["minutes"].iloc[0] == 0 and p["pct"].iloc[0] == 0
        assert p["minutes"].iloc[-1] == 341  # the 15:55 bar (a bar every 5 min, stored as 1min) ends at 15:56
        assert p["pct"].iloc[-1] == pytest.approx(100 * returns[f"{day:%Y-%m-%d}"], rel=1e-9)
    assert rest_of_day_paths(store, "VIX", "10:15", [pd.Timestamp("2018-01-10")]) == {}


def test_rest_of_day_returns():
    s = pd.DataFrame({"cutoff_price": [100.0, np.nan, 0.0], "close": [101.0, 5.0, 3.0]})
    r = rest_of_day_returns(s)
    assert r.iloc[0] == pytest.approx(0.01) and r.iloc[1:].isna().all()


def test_cli_json(market, monkeypatch, capsys):
    monkeypatch.setenv("ALMANAC_HOME", str(market))
    assert main(["similar", "--symbol", "es", "--date", "2018-02-01", "--k", "10", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["symbol"] == "ES" and out["date"] == "2018-02-01" and out["cutoff"] == "10:15"
    assert len(out["neighbors"]) == 10 and all(n["date"] < "2018-02-01" for n in out["neighbors"])
    assert set(out["neighbors"][0]) == {"date", "distance", "rest_of_day_return"}
    d = [n["distance"] for n in out["neighbors"]]
    assert d == sorted(d)
    r = np.array([n["rest_of_day_return"] for n in out["neighbors"]])
    assert out["share_up"] == pytest.approx((r > 0).mean()) and out["mean_return"] == pytest.approx(r.mean())
    assert out["sets"] == ["early_session", "cross_asset", "regime"] and out["cross_assets"] == ["VIX"]
    # default date: the latest day
    assert main(["similar", "--symbol", "ES", "--k", "3", "--json"]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert latest["date"] == "2018-02-23" and len(latest["neighbors"]) == 3


REFUSED = {
    "unknown-symbol": (["--symbol", "XX"], "error: symbol XX has no data in the store (it holds ES, NQ, VIX): "
                                           "import it or choose another"),
    "before-data": (["--symbol", "ES", "--date", "2016-05-02"],
                    "error: ES has no trading day 2016-05-02 (its 1min bars cover 2017-11-01 .. 2018-02-23): "
                    "choose a trading day inside them"),
    "weekend": (["--symbol", "ES", "--date", "2018-01-13"],
                "error: ES has no trading day 2018-01-13 (its 1min bars cover 2017-11-01 .. 2018-02-23): "
                "choose a trading day inside them"),
    "not-a-date": (["--symbol", "ES", "--date", "2018-02-30"],
                   "error: date '2018-02-30' is not a date: use YYYY-MM-DD, e.g. 2018-06-01"),
    "k-zero": (["--symbol", "ES", "--k", "0"],
               "error: k 0 is outside 1..100: choose k from 1 to 100 (the limit is ALMANAC_MAX_SIMILAR_K)"),
    "k-over-limit": (["--symbol", "ES", "--k", "101"],
                     "error: k 101 is outside 1..100: choose k from 1 to 100 (the limit is ALMANAC_MAX_SIMILAR_K)"),
    "k-text": (["--symbol", "ES", "--k", "ten"], "error: k 'ten' is not a whole number: give 1 to 100"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_cli_refusals(market, case, tmp_path):
    args, message = REFUSED[case]
    before = home_state(market)
    cmd = [sys.executable, "-m", "almanac", "similar", *args, "--json"]
    rss = tmp_path / "rss.txt"
    if Path("/usr/bin/time").exists():
        cmd = ["/usr/bin/time", "-f", "%M", "-o", str(rss), *cmd]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "ALMANAC_HOME": str(market)})
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == message + "\n"
    assert home_state(market) == before
    if rss.exists():
        assert int(rss.read_text().split()[-1]) / 1024 < 600  # MB; measured about 150


def test_k_limit_from_environment(monkeypatch):
    frame, outcome = tiny()
    monkeypatch.setenv("ALMANAC_MAX_SIMILAR_K", "2")
    with pytest.raises(SpecError, match=r"k 3 is outside 1\.\.2: choose k from 1 to 2 \(the limit is "
                                        r"ALMANAC_MAX_SIMILAR_K\)"):
        nearest_days(frame, outcome, DAYS[5], k=3)


def test_today_at_the_cutoff_equals_the_same_day_in_full(tmp_path, monkeypatch):
    """A store whose last day ends at its 10:15 cutoff (today, at the cutoff): the query of that
    day (the default) finds exactly the neighbours and distances the full history finds for it,
    and its rest of the day is unknown (None), not 0."""
    from almanac.store import Store
    from bench.synthetic import synthetic_store

    full = Store(tmp_path / "full")
    frames = synthetic_store(full, minute_start="2017-11-01", days=300)
    day = "2018-02-14"
    bars = frames[("ES", "1min")]
    local = bars["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    cut = Store(tmp_path / "cut")
    keep = local < pd.Timestamp(f"{day} 10:15")
    cut.write("ES", "1min", bars[keep.to_numpy()].reset_index(drop=True), source="test: up to the cutoff")
    daily = frames[("ES", "1d")]
    cut.write("ES", "1d", daily[daily["date"] < day], source="test")
    cut.write("VIX", "1d", frames[("VIX", "1d")].query("date < @day"), source="test")
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "cut"))
    today = similar_days("ES", None, k=8, store=cut, paths=True)
    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "full"))
    whole = similar_days("ES", day, k=8, store=full)
    assert today["date"] == day and today["query_rest_of_day_return"] is None
    assert whole["query_rest_of_day_return"] is not None
    assert today["neighbors"] == whole["neighbors"] and today["features"] == whole["features"]
    assert pd.Timestamp(day) not in today["paths"] and len(today["paths"]) == 8
    assert f"{day} has no bar after the cutoff: its rest of the day is not known yet" in today["notes"]


def test_k_must_be_whole():
    from ml.similar import check_k

    assert check_k("7") == 7 and check_k(7.0) == 7
    for bad in (2.5, "2.5", None, True, "nan", float("inf")):
        with pytest.raises(SpecError, match="is not a whole number: give 1 to 100"):
            check_k(bad)
