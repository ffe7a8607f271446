"""The similar-days panel: the pure figure, and the /features callbacks (the /evaluate ones
are in tests/test_knn.py, on its run)."""

from __future__ import annotations

import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
import pytest
from dash import dcc

from tests.test_features_page import built, lab, page, texts  # noqa: F401 - fixtures
from viz.similar import mean_path, similar_days_figure


def path(end: float, n: int = 5) -> pd.DataFrame:
    return pd.DataFrame({"minutes": np.arange(n, dtype=float) * 10, "pct": np.linspace(0, end, n)})


RESULT = {"symbol": "ES", "date": "2018-03-01", "cutoff": "10:15", "share_up": 2 / 3, "mean_return": 0.001,
          "query_rest_of_day_return": -0.004, "features": ["a"], "candidates": 9,
          "neighbors": [{"date": "2018-02-01", "distance": 0.5, "rest_of_day_return": 0.003},
                        {"date": "2018-01-15", "distance": 0.7, "rest_of_day_return": -0.002},
                        {"date": "2017-12-20", "distance": 0.9, "rest_of_day_return": 0.002}]}


def test_figure_draws_the_query_over_its_neighbours():
    paths = {pd.Timestamp(n["date"]): path(100 * n["rest_of_day_return"]) for n in RESULT["neighbors"]}
    paths[pd.Timestamp("2018-03-01")] = path(-0.4)
    fig = similar_days_figure(RESULT, paths)
    lines = [t for t in fig.data if t.type == "scatter"]
    assert [t.name for t in lines] == ["neighbour, rest of day up", "neighbour, rest of day down", "2017-12-20",
                                       "mean of 3 neighbours", "2018-03-01 (query)"]
    assert [t.showlegend for t in lines[:3]] == [True, True, False]
    assert "2018-02-01 (#1, distance 0.50)" in lines[0].hovertemplate
    assert lines[0].line.color.startswith("rgba(24, 188, 156") and lines[1].line.color.startswith("rgba(231, 76, 60")
    np.testing.assert_allclose(lines[3].y, np.linspace(0, 0.1, 5))  # (0.3 - 0.2 + 0.2) / 3 at the end
    bar = next(t for t in fig.data if t.type == "bar")
    np.testing.assert_allclose(bar.x, [0.3, -0.2, 0.2])
    assert list(bar.y) == ["2018-02-01", "2018-01-15", "2017-12-20"]
    assert fig.layout.title.text == ("ES 2018-03-01: 3 most similar earlier days · 67% up · mean +0.10 % · "
                                     "this day -0.40 %")


def test_figure_today_without_its_rest_and_empty():
    paths = {pd.Timestamp(n["date"]): path(1) for n in RESULT["neighbors"]}
    fig = similar_days_figure({**RESULT, "query_rest_of_day_return": None}, paths)
    assert fig.layout.title.text.endswith("this day's rest is not known yet")
    assert not any("(query)" in (t.name or "") for t in fig.data)
    assert "no earlier day" in similar_days_figure({**RESULT, "neighbors": []}, {}).layout.annotations[0].text


def test_mean_path_carries_forward_on_the_union_of_minutes():
    a = pd.DataFrame({"minutes": [0.0, 1, 2], "pct": [0.0, 1, 2]})
    b = pd.DataFrame({"minutes": [0.0, 2], "pct": [0.0, 4]})
    m = mean_path([a, b])
    assert m["minutes"].tolist() == [0, 1, 2] and m["pct"].tolist() == [0, 0.5, 3]


def test_features_panel(page, lab):  # noqa: F811 - fixtures
    data, _, _ = built(page)
    first, last, value, month, panel = page.similar_days_of_table(data)
    days = [f"{d:%Y-%m-%d}" for d in page.load_table(data["config"]).frame.index]
    assert (first, last, value, month) == (days[0], days[-1], days[-1], days[-1])
    assert "press Find similar days" in texts(panel)  # nothing computed before "Find"
    view = page.similar_days(1, days[40], 5, data)
    graph = next(c for c in view if isinstance(c, dcc.Graph))
    bar = next(t for t in graph.figure.data if t.type == "bar")
    assert len(bar.y) == 5 and all(d < days[40] for d in bar.y)
    assert any((t.name or "").endswith("(query)") for t in graph.figure.data)
    alert = page.similar_days(2, days[40], 0, data)
    assert isinstance(alert, dbc.Alert) and "k 0 is outside 1..100" in texts(alert)
