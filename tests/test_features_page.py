"""The /features page's callbacks, called as plain functions on a small synthetic store."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from dash import dcc, no_update

from features import build_features
from bench.synthetic import synthetic_store
from tests.conftest import texts


@pytest.fixture(scope="module")
def page(page_module):
    return page_module("features")


@pytest.fixture
def lab(store):
    synthetic_store(store, days=330, minute_start="2017-09-01")
    return store


def built(page, **over):
    args = dict(symbol="ES", start="2017-09-01", end=None, cutoff="10:15",
                sets=["early_session", "cross_asset", "regime"], cross=["VIX"], token="t")
    args.update(over)
    calls = []
    data, msg = page.run_build(lambda v: calls.append(v), 1, args["symbol"], args["start"], args["end"],
                               args["cutoff"], args["sets"], args["cross"], args["token"])
    return data, msg, calls


def test_layout_defaults_follow_the_catalog(page, lab):
    lay = page.layout()
    flat = {}  # components by id

    def walk(n):
        if hasattr(n, "id") and isinstance(getattr(n, "id", None), str):
            flat[n.id] = n
        for c in (n.children if isinstance(getattr(n, "children", None), list) else
                  [getattr(n, "children", None)]):
            if c is not None and not isinstance(c, str):
                walk(c)
    walk(lay)
    assert flat["features-symbol"].value == "ES"  # the first symbol with minute bars
    assert flat["features-cross"].value == ["VIX"] and "NQ" in flat["features-cross"].options
    assert (flat["features-range"].start_date, flat["features-range"].end_date) == ("2017-09-01", "2018-04-06")
    assert flat["features-sets"].value == ["early_session", "cross_asset", "regime"]


def test_symbol_change_bounds_dates_and_cross_options(page, lab):
    out = page.symbol_changed("VIX", ["VIX", "NQ"])
    assert out[:4] == ("2017-01-02", "2018-04-06", "2017-01-02", "2018-04-06")
    assert out[4] == ["ES", "NQ"] and out[5] == ["NQ"]
    assert "daily bars only: early-session features will be absent" in out[6]


def test_build_job_returns_the_config_and_reports_progress(page, lab):
    data, msg, calls = built(page)
    assert msg is None
    ft = build_features("ES", cross_assets=("VIX",), start="2017-09-01")
    assert data == {"config": ft.config, "key": ft.cache_key} and ft.from_cache
    assert calls[-1] == (100, "features ready") and all(0 <= v[0] <= 100 for v in calls)


def test_bad_choices_become_visible_alerts(page, lab):
    data, msg, _ = built(page, cutoff="9:00")
    assert data is no_update and msg.color == "danger"
    assert "cutoff 09:00 is outside the regular session" in texts(msg)
    data, msg, _ = built(page, sets=[])
    assert "no feature set chosen" in texts(msg)
    data, msg, _ = built(page, start="2018-03-01", end="2018-01-01")
    assert "start 2018-03-01 is after end 2018-01-01" in texts(msg)


def test_results_table_lineage_and_correlation(page, lab):
    data, _, _ = built(page)
    summary, grid, lineage, corr, options, pick, no_csv, no_pq = page.show_results(data, None)
    ft = page.load_table(data["config"])
    assert len(grid.rowData) == len(ft.frame) and grid.rowData[0]["date"] == "2017-09-01"
    assert grid.dashGridOptions["pagination"] is True
    heads = {c["field"]: c for c in grid.columnDefs}
    assert list(heads) == ["date", *ft.frame.columns]
    tip = heads["or_range_atr"]["headerTooltip"]
    assert "Known as of: 10:15 America/New_York on day D" in tip and "ES 1d " in tip and "ES 1min " in tip
    assert "VIX 1d" in heads["VIX_z20"]["headerTooltip"]
    row = next(r for r in lineage.rowData if r["feature"] == "adx14")
    assert row["known as of"] == "session open of day D" and row["set"] == "regime"
    z = np.asarray(corr.figure.data[0].z)
    assert z.shape == (ft.frame.shape[1],) * 2 and np.nanmax(np.abs(z)) <= 1.0
    assert options == list(ft.frame.columns) and pick == "gap_pct" and (no_csv, no_pq) == (False, False)
    assert "ES: " in texts(summary) and "VIX_early_ret absent" in texts(summary)
    # grid values: 6 significant digits, NaN as null
    first = grid.rowData[0]
    assert first["gap_pct"] is None  # first day: no previous close
    v = ft.frame["or_return_pct"].iloc[0]
    assert first["or_return_pct"] == pytest.approx(v, rel=1e-5)


def test_explore_graphs_and_hit_rates(page, lab):
    data, _, _ = built(page)
    hist, hits, time = page.explore("or_return_pct", "rest_of_day", "5", data)
    ft = page.load_table(data["config"])
    x = ft.frame["or_return_pct"]
    y = (ft.sessions["close"] > ft.sessions["cutoff_price"]).astype(float)
    assert isinstance(hist, dcc.Graph) and len(hist.figure.data[0].x) == x.notna().sum()
    bars = hits.figure.data[0]
    counts = [int(t[2:].replace(",", "")) for t in bars.text]
    assert len(bars.y) == 5 and sum(counts) == x.notna().sum()
    q1 = x <= x.quantile(0.2)
    assert bars.y[0] == pytest.approx(y[q1].mean())
    assert list(time.figure.data[0].y) == pytest.approx(list(x.to_numpy()), nan_ok=True)


def test_importance_uses_the_earlier_days(page, lab):
    data, _, _ = built(page)
    graph, note = page.importance(data, "direction")
    ft = page.load_table(data["config"])
    n = int(np.floor(0.7 * len(ft.frame)))
    assert f"first {n:,} days" in texts(note)
    assert set(graph.figure.data[0].y) <= set(ft.frame.columns) and len(graph.figure.data[0].y) >= 10


def test_downloads_round_trip(page, lab):
    data, _, _ = built(page)
    ft = page.load_table(data["config"])
    import base64

    import dash
    for trigger, suffix in (("features-dl-parquet", ".parquet"), ("features-dl-csv", ".csv")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(dash, "ctx", type("C", (), {"triggered_id": trigger})())
            sent = page.download(1, 1, data)
        assert sent["filename"] == f"features_ES_1015{suffix}"
        raw = base64.b64decode(sent["content"])
        df = pd.read_parquet(io.BytesIO(raw)) if suffix == ".parquet" else pd.read_csv(io.BytesIO(raw),
                                                                                      parse_dates=["date"])
        assert list(df.columns) == ["date", *ft.frame.columns] and len(df) == len(ft.frame)
        np.testing.assert_allclose(df.drop(columns="date").to_numpy(), ft.frame.to_numpy(), rtol=1e-12)
