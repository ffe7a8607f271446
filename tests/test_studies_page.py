"""/studies without a browser: the search-space editor, the form's checks, the study view."""

from __future__ import annotations

import pytest
import yaml
from dash import no_update
from test_study import BASE, SEARCH, write_market

from almanac.errors import SpecError


@pytest.fixture(scope="module")
def studies(page_module):
    return page_module("studies")


def rows_of(search: dict) -> list[dict]:
    out = []
    for path, dim in search.items():
        kind = next(k for k in ("choice", "int", "float", "subsets") if k in dim)
        out.append({"path": path, "type": kind, "values": ", ".join(str(v) for v in dim[kind]),
                    "log": "yes" if dim.get("log") else "no"})
    return out


def test_the_editor_rows_are_the_search_space(studies):
    rows = rows_of(SEARCH["search"]) + [{"path": "", "type": "float", "values": "", "log": "no"}]  # blank: skipped
    assert studies.space_to_search(rows) == SEARCH["search"]
    got = studies.space_to_search([{"path": "features.cutoff", "type": "choice", "values": "10:00, 10:15"},
                                   {"path": "backtest.long_only", "type": "choice", "values": "true, false"},
                                   {"path": "model.params.max_depth", "type": "choice", "values": "3, 5"}])
    assert got == {"features.cutoff": {"choice": ["10:00", "10:15"]}, "backtest.long_only": {"choice": [True, False]},
                   "model.params.max_depth": {"choice": [3, 5]}}
    with pytest.raises(SpecError, match=r"search row 1 \(model.params.num_leaves\): '4, x' is not two int numbers"):
        studies.space_to_search([{"path": "model.params.num_leaves", "type": "int", "values": "4, x"}])
    with pytest.raises(SpecError, match="search row 2: backtest.threshold is listed twice"):
        studies.space_to_search([{"path": "backtest.threshold", "type": "float", "values": "0.5, 0.6"}] * 2)


FIELDS = {"name": "tiny-search", "kind": "search", "metric": "roc_auc", "n_trials": 4, "holdout": "2019-08-01"}


def test_the_form_is_the_study_file(studies):
    base = yaml.safe_dump(BASE)
    study, text, problem = studies.check_study_form(FIELDS, rows_of(SEARCH["search"]), base)
    assert problem is None
    assert study == {k: v for k, v in SEARCH.items() if k != "pruner"} | {"objective": {"metric": "roc_auc"},
                                                                          "holdout": {"start": "2019-08-01"}}
    assert yaml.safe_load(text) == study
    abl, _, problem = studies.check_study_form({**FIELDS, "kind": "ablation", "holdout": ""}, [], base)
    assert problem is None and "search" not in abl and abl["kind"] == "ablation"


@pytest.mark.parametrize("fields,rows,message", [
    ({}, [{"path": "model.params.learning_rate", "type": "float", "values": "0.3, 0.1"}],
     "study field search.model.params.learning_rate: low 0.3 is above high 0.1"),
    ({"n_trials": 0}, None, "study field budget.n_trials: 0 is out of range: use at least 1"),
    ({"metric": "ic"}, None, "study field objective.metric: 'ic' is not produced by the rest_of_day label"),
    ({}, [{"path": "data.symbol", "type": "choice", "values": "NQ"}],
     "study field search.data.symbol: 'data.symbol' is not a path a search can vary"),
])
def test_bad_forms_give_one_line(studies, fields, rows, message):
    study, text, problem = studies.check_study_form({**FIELDS, **fields}, rows if rows is not None else
                                                    rows_of(SEARCH["search"]), yaml.safe_dump(BASE))
    assert study is None and problem.startswith(message) and "\n" not in problem
    alert, yaml_text, disabled = studies.validate(*{**FIELDS, **fields}.values(), rows if rows is not None else
                                                  rows_of(SEARCH["search"]), yaml.safe_dump(BASE), None)
    assert alert.color == "danger" and message in str(alert) and disabled is True and yaml_text == ""


def test_the_base_spec_comes_from_the_train_form(studies):
    assert studies.fill_base("name: x\n") == "name: x\n"
    default = yaml.safe_load(studies.fill_base(None))
    assert default["data"]["symbol"] == "ES" and default["model"]["kind"] == "lightgbm"


def test_the_study_view_shows_verdict_trials_and_links(studies, tmp_path, monkeypatch):
    from ml.study import run_study

    monkeypatch.setenv("ALMANAC_HOME", str(tmp_path / "home"))
    store = write_market(tmp_path / "home")
    report = run_study({**SEARCH, "budget": {"n_trials": 3}}, store)
    h = report["holdout"]
    text = studies.verdict_text(report)
    assert text == (f"best CV {h['cv_value']:.3f} → holdout {h['value']:.3f} · DSR {h['dsr']:.2f} over "
                    f"{h['n_trials']} trials")
    head, detail, charts, ablation, trials, no_promote = studies.show_study(report["study_id"], None)
    assert text in str(head) and detail == charts == {"display": "block"} and ablation is None
    assert no_promote is False
    view = str(trials)
    for t in report["trials"]:
        if t["run_id"]:
            assert f"/evaluate?run={t['run_id']}" in view
    graph = studies.show_chart("history", report["study_id"])
    values = [v for tr in graph.figure.data for v in (tr.y or []) if v is not None]
    assert max(values) == pytest.approx(report["best"]["value"])
    for tab in ("importance", "parallel", "slice"):
        assert studies.show_chart(tab, report["study_id"]).figure is not None
    options, value = studies.list_options(None, None)
    assert value == report["study_id"] and len(options) == 1
    ok = studies.promote(1, report["study_id"])
    assert ok.color == "success" and report["best"]["run_id"] in str(ok)
    assert studies.promote(None, report["study_id"]) is no_update
