"""Multi-head runs (ml.heads, almanac.multihead): spec refusals, one fold split shared by every
head, each head equal to training it alone, the gated signal and its backtest recomputed by
hand, the trial count, and ``train --json``.

One small synthetic market (tests/test_runner.write_market: 5-minute bars, three days without
a bar before the 10:15 cutoff, so rest_of_day and forward_return have no label there while
direction has one) and one multi-head run per module.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from almanac import registry
from almanac.errors import AlmanacError, SpecError
from almanac.multihead import load_experiment, multihead_from_dict
from ml.backtester import backtest
from ml.heads import gated_signal, get_multihead, read_gated_backtest, run_multihead, shared_days
from ml.runner import run_experiment
from ml.splits import WalkForwardSplit, split_on_days
from ml.trials import trial_sharpes
from tests.test_runner import NO_WINDOW, home_state, write_market

ROOT = Path(__file__).resolve().parent.parent
SPEC = {"name": "heads-tiny", "data": {"symbol": "ES"},
        "features": {"sets": ["early_session", "regime"], "cutoff": "10:15"},
        "model": {"kind": "lightgbm", "params": {"n_estimators": 25}},
        "heads": {"up": {"label": {"kind": "rest_of_day"}}, "day": {"label": "direction"},
                  "ret": {"label": "forward_return", "model": {"kind": "xgboost", "params": {"n_estimators": 20}}}},
        "validation": {"n_splits": 3, "gap": 2, "min_train": 150},
        "backtest": {"threshold": 0.52, "cost_bps": 1.0, "signal": "up", "gate": {"head": "day", "min_proba": 0.55}}}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    return write_market(tmp_path_factory.mktemp("heads") / "home")


@pytest.fixture(scope="module")
def multi(market):
    return run_multihead(SPEC, store=market)


def changed(edit) -> dict:
    d = copy.deepcopy(SPEC)
    edit(d)
    return d


# ---------------------------------------------------------------------- the spec


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["backtest"].update(signal="nope"),
     "spec field backtest.signal: 'nope' is not a head: choose one of up, day, ret"),
    (lambda d: d["backtest"]["gate"].update(head="nope"),
     "spec field backtest.gate.head: 'nope' is not a head: choose one of up, day, ret"),
    (lambda d: d["backtest"]["gate"].update(head="ret"),
     "spec field backtest.gate.head: head ret is regression (forward_return); a gate reads P(class 1) of a binary "
     "head: choose a binary head"),
    (lambda d: d["backtest"]["gate"].update(head="up"),
     "spec field backtest.gate.head: head up cannot gate itself (raise backtest.threshold for that): choose "
     "another head"),
    (lambda d: d["backtest"]["gate"].update(min_proba=1.0),
     "spec field backtest.gate.min_proba: 1.0 is out of range: use less than 1.0"),
    (lambda d: d["backtest"]["gate"].update(min_proba=0),
     "spec field backtest.gate.min_proba: 0 is out of range: use more than 0.0"),
    (lambda d: d["heads"].update(up={"label": "archetype"}),
     "spec field backtest.signal: head up is multiclass (archetype), not a direction to trade: choose a binary or "
     "regression head"),
    (lambda d: d["heads"].update(up={"label": {"kind": "tradeable", "k": 0.5}}),
     "spec field backtest.signal: head up (tradeable) is not a direction to trade: choose a head whose label is one "
     "(rest_of_day, forward_return, direction, binary first_touch) and gate it with up"),
    (lambda d: d["backtest"].pop("signal"),
     "spec field backtest.gate: a gate needs the head whose signal it gates: add backtest.signal"),
    (lambda d: d["heads"].update(x={"label": "bogus"}),
     "spec field heads.x.label.kind: 'bogus' is not one of direction, rest_of_day, archetype, forward_return"),
    (lambda d: d["heads"].update(Big="direction"), "spec field heads: 'Big' is not a head name"),
    (lambda d: d["heads"]["ret"]["model"]["params"].update(n_estimators=0),
     "spec field heads.ret.model.params.n_estimators: 0 is outside the lab's bounds for n_estimators (1..20000)"),
    (lambda d: d["validation"].update(gap=-1), "spec field validation.gap: -1 is out of range: use at least 0"),
    (lambda d: d.update(heads={"up": "rest_of_day"}, backtest={}),
     "spec field heads: list at least two heads (with one, write label: instead of heads:)"),
    (lambda d: d.update(label="direction"),
     "spec field label: a multi-head spec lists its labels under heads: move label into a head"),
])
def test_bad_multihead_specs_are_one_line(edit, message):
    with pytest.raises(SpecError) as exc:
        multihead_from_dict(changed(edit))
    assert exc.value.message.startswith(message)
    assert "\n" not in exc.value.message


def test_the_number_of_heads_is_a_limit(monkeypatch):
    monkeypatch.setenv("ALMANAC_MAX_HEADS", "2")
    with pytest.raises(SpecError) as exc:
        multihead_from_dict(SPEC)
    assert exc.value.message == ("spec field heads: 3 heads are more than the 2 a spec may list (ALMANAC_MAX_HEADS): "
                                 "each head is a whole run; drop heads or raise ALMANAC_MAX_HEADS")


def test_a_head_is_an_ordinary_spec_with_the_shared_sections(tmp_path):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    spec = load_experiment(cfg)
    ret = spec.head_spec("ret").to_dict()
    assert ret["label"] == {"kind": "forward_return"} and ret["model"]["kind"] == "xgboost"
    up = spec.head_spec("up").to_dict()
    assert up["model"] == SPEC["model"] and up["label"] == {"kind": "rest_of_day"}
    assert up["backtest"] == {"threshold": 0.52, "cost_bps": 1.0, "long_only": False}
    for key in ("data", "features", "validation", "seed"):
        assert up[key] == ret[key]
    assert up["name"] == "heads-tiny/up"
    # a file without heads: is an ordinary spec
    one = {k: v for k, v in SPEC.items() if k != "heads"} | {"label": "direction", "backtest": {"threshold": 0.52}}
    cfg.write_text(yaml.safe_dump(one))
    assert load_experiment(cfg).label.kind == "direction"


# ---------------------------------------------------------------------- splits


def test_split_on_days_keeps_each_rows_fold_by_date():
    days = pd.bdate_range("2020-01-01", periods=30)
    splitter = WalkForwardSplit(n_splits=2, gap=2, min_train=10)
    sub = days.delete([12, 20, 21])  # a head without a label on three days
    got = split_on_days(splitter, days, sub)
    # on the days: train 0..9 / test 12..20, train 0..18 / test 21..29 (by hand)
    want = [(days[0:10], days[12:21]), (days[0:19], days[21:30])]
    for (tr, te), (wtr, wte) in zip(got, want, strict=True):
        assert list(sub[tr]) == [d for d in wtr if d in sub]
        assert list(sub[te]) == [d for d in wte if d in sub]
    full = split_on_days(splitter, days, days)
    for (a, b), (c, d) in zip(full, splitter.split(np.arange(30)), strict=True):
        assert list(a) == list(c) and list(b) == list(d)


# ---------------------------------------------------------------------- the run


def test_every_head_has_the_same_fold_boundaries(multi, market):
    folds = multi["folds"]
    days = shared_days(multihead_from_dict(SPEC), market)
    assert multi["shared_days"]["n"] == len(days)
    assert not set(NO_WINDOW) - set(days)  # direction labels the days without a cutoff price
    for name, head in multi["heads"].items():
        run = registry.get_run(head["run_id"], home=market.home)
        assert run["multihead"] == {"id": multi["multihead_id"], "name": "heads-tiny", "head": name}
        oof = registry.read_artifact(head["run_id"], "oof.parquet", home=market.home)
        for f in folds:  # each out-of-fold day is in the shared fold of its date
            inside = oof["date"].between(pd.Timestamp(f["test_start"]), pd.Timestamp(f["test_end"]))
            assert (oof.loc[inside, "fold"] == f["fold"]).all() and inside.any()
        for mine, shared in zip(run["folds"], folds, strict=True):
            assert mine["train_start"] == shared["train_start"]
            assert shared["test_start"] <= mine["test_start"] <= mine["test_end"] <= shared["test_end"]
    day = registry.get_run(multi["heads"]["day"]["run_id"], home=market.home)
    assert [{k: f[k] for k in folds[0]} for f in day["folds"]] == folds  # labelled every shared day
    up = registry.read_artifact(multi["heads"]["up"]["run_id"], "dataset.parquet", home=market.home)
    assert not set(NO_WINDOW) & set(up.index)  # no label there: no row, inside the same folds
    assert multi["heads"]["up"]["n_rows"] == len(days) - len(NO_WINDOW)


@pytest.mark.parametrize("head", ["day", "up", "ret"])
def test_each_head_equals_its_run_alone(multi, market, head):
    spec = multihead_from_dict(SPEC)
    # 'day' labels every shared day, so alone it splits the same way; 'up' and 'ret' miss three days and
    # get the shared split by split_days
    split_days = None if head == "day" else shared_days(spec, market)
    alone = run_experiment(spec.head_spec(head), store=market, split_days=split_days)
    try:
        mine = multi["heads"][head]
        assert alone["metrics"] == mine["metrics"]
        assert alone["baselines"] == mine["baselines"]
        pd.testing.assert_frame_equal(registry.read_artifact(alone["run_id"], "oof.parquet", home=market.home),
                                      registry.read_artifact(mine["run_id"], "oof.parquet", home=market.home))
    finally:
        registry.delete_run(alone["run_id"], home=market.home)


def test_gated_signal_by_hand():
    pred = np.array([0.60, 0.40, 0.70, np.nan, 0.30])
    gate = np.array([0.70, 0.90, 0.50, 0.80, np.nan])
    np.testing.assert_array_equal(gated_signal(pred, "binary", gate, 0.6), [0.60, 0.40, np.nan, np.nan, np.nan])
    ret = np.array([0.01, -0.02, 0.0, 0.03])
    np.testing.assert_array_equal(gated_signal(ret, "regression", np.array([0.6, 0.6, 0.9, 0.59]), 0.6),
                                  [1.0, 0.0, np.nan, np.nan])


def test_gated_backtest_is_the_backtester_on_the_hand_gated_signal(multi, market):
    home = market.home
    up, day = (registry.read_artifact(multi["heads"][h]["run_id"], "oof.parquet", home=home).set_index("date")
               for h in ("up", "day"))
    rows = registry.read_artifact(multi["heads"]["up"]["run_id"], "dataset.parquet", home=home).loc[up.index]
    gate = day["prob"].reindex(up.index)
    prob = up["prob"].where(gate >= 0.55)  # a day 'day' did not predict is flat
    frame = pd.DataFrame({"date": up.index, "prob": prob.to_numpy(), "cutoff_price": rows["cutoff_price"].to_numpy(),
                          "close": rows["close"].to_numpy(), "prev_close": rows["prev_close"].to_numpy()})
    want = backtest(frame, threshold=0.52, cost_bps=1.0)
    got = read_gated_backtest(multi["multihead_id"], home=home)
    pd.testing.assert_frame_equal(got, want.daily.reset_index(drop=True), check_dtype=False)
    g = multi["gated_backtest"]
    for k in ("sharpe", "total_return", "trades", "max_drawdown", "win_rate", "exposure", "psr"):
        assert g[k] == pytest.approx(want.stats[k], rel=1e-12, nan_ok=True)
    assert g["days_gate_open"] == int((gate >= 0.55).sum())
    assert 0 < g["trades"] < len(up)  # the gate closed some days, the signal traded others
    assert get_multihead(multi["multihead_id"], home=home)["gated_backtest"] == g
    # the gate's probability of a day comes from the fold that also predicted the signal: trained before it
    folds = up["fold"].to_frame().join(day["fold"].rename("gate_fold"), how="inner")
    assert len(folds) == len(up) and (folds["fold"] == folds["gate_fold"]).all()


def test_the_gated_strategy_is_a_trial_of_the_signal_heads_label(multi, market):
    home = market.home
    up_sharpe = multi["heads"]["up"]["backtest"]["sharpe"]
    g = multi["gated_backtest"]
    assert g["n_trials"] == 2  # the up head's run and the gated strategy itself
    assert trial_sharpes("ES", "rest_of_day", home=home) == pytest.approx([up_sharpe, g["sharpe"]])
    assert trial_sharpes("ES", "direction", home=home) == pytest.approx([multi["heads"]["day"]["backtest"]["sharpe"]])


def test_side_by_side_table(multi):
    from ml.heads import heads_table

    t = heads_table(multi)
    assert list(t["head"]) == ["up", "day", "ret"]
    assert list(t["metric"]) == ["roc_auc", "roc_auc", "ic"]
    for name, h in multi["heads"].items():
        row = t[t["head"] == name].iloc[0]
        assert row["value"] == h["metrics"][row["metric"]]
        assert row["always_long_sharpe"] == h["baselines"]["always_long"]["stats"]["sharpe"]


def test_a_failure_after_some_heads_registers_nothing(market, monkeypatch):
    import ml.heads

    before = {r["run_id"] for r in registry.list_runs(home=market.home)}

    def broken(*a, **k):
        raise AlmanacError("stop here")
    monkeypatch.setattr(ml.heads, "gated_backtest", broken)  # after every head was registered
    with pytest.raises(AlmanacError, match="stop here"):
        run_multihead(SPEC, store=market)
    assert {r["run_id"] for r in registry.list_runs(home=market.home)} == before
    assert not [p for p in (market.home / "multihead").iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------- the command line


def _cli(home: Path, *argv):
    return subprocess.run([sys.executable, "-m", "almanac", *argv], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "ALMANAC_HOME": str(home)}, timeout=300)


def test_train_json_has_heads_and_the_gated_backtest(multi, market, tmp_path):
    cfg = tmp_path / "heads.yaml"
    cfg.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    out = _cli(market.home, "train", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert list(got["heads"]) == ["up", "day", "ret"]
    for name, h in got["heads"].items():
        assert set(h) >= {"run_id", "metrics", "task", "label", "baselines", "backtest", "summary"}
        assert h["metrics"] == multi["heads"][name]["metrics"]  # deterministic: same numbers as the fixture's run
        assert registry.get_run(h["run_id"], home=market.home)["multihead"]["id"] == got["multihead_id"]
    assert got["gated_backtest"]["sharpe"] == pytest.approx(multi["gated_backtest"]["sharpe"])
    assert got["folds"] == multi["folds"]
    for h in got["heads"].values():
        registry.delete_run(h["run_id"], home=market.home)


def test_the_parent_keeps_a_spec_that_reruns(multi):
    spec = load_experiment(Path(multi["path"]) / "spec.yaml")
    assert spec.to_dict() == multihead_from_dict(SPEC).to_dict() == multi["spec"]


def test_a_multihead_spec_is_not_queued(market, tmp_path, monkeypatch, capsys):
    from cli import main

    cfg = tmp_path / "heads.yaml"
    cfg.write_text(yaml.safe_dump(SPEC, sort_keys=False))
    monkeypatch.setenv("ALMANAC_HOME", str(market.home))
    before = home_state(market.home)
    assert main(["train", "--config", str(cfg), "--queue"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("error: a multi-head spec runs here, not on a queue worker: drop --queue (or train "
                                 "each head's spec on its own with --queue)\n")
    assert home_state(market.home) == before


def test_train_refuses_a_bad_multihead_spec_with_one_line(market, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(yaml.safe_dump(changed(lambda d: d["backtest"]["gate"].update(head="ret")), sort_keys=False))
    before = home_state(market.home)
    out = _cli(market.home, "train", "--config", str(cfg), "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("error: spec field backtest.gate.head: head ret is regression (forward_return); a gate "
                          "reads P(class 1) of a binary head: choose a binary head\n")
    # a head the data cannot give is refused before anything is written: VIX has daily closes only
    cfg.write_text(yaml.safe_dump(changed(lambda d: d["heads"].update(
        vix={"label": "direction"}) or d["data"].update(symbol="VIX") or d["features"].update(sets=["regime"])), sort_keys=False))
    out = _cli(market.home, "train", "--config", str(cfg))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and out.stderr.startswith("error: spec field heads.up.label.kind: rest_of_day starts at the price at the cutoff")
    assert home_state(market.home) == before


# ---------------------------------------------------------------------- the pages


def test_viz_side_by_side_and_gated_equity(multi, market):
    from viz.heads import gated_equity_figure, gated_text, heads_frame

    t = heads_frame(multi)
    assert list(t["Head"]) == ["up", "day", "ret"]
    day = multi["heads"]["day"]
    assert t.loc[1, "Score"] == f"ROC AUC {day['metrics']['roc_auc']:.3f}" and t.loc[1, "No skill"] == "0.500"
    assert t.loc[2, "Score"].startswith("IC (Spearman) ") and t.loc[2, "Accuracy"] == "–"
    g = multi["gated_backtest"]
    assert f"Sharpe {g['sharpe']:.2f} (ungated {multi['heads']['up']['backtest']['sharpe']:.2f})" in gated_text(multi)
    gated = read_gated_backtest(multi["multihead_id"], home=market.home)
    alone = registry.read_artifact(multi["heads"]["up"]["run_id"], "backtest.parquet", home=market.home)
    fig = gated_equity_figure(gated, alone, "up")
    assert [tr.name for tr in fig.data] == ["buy and hold", "up alone", "gated"]
    assert list(fig.data[2].y) == list(gated["equity"]) and list(fig.data[1].y) == list(alone["equity"])


def test_a_heads_page_panel_and_none_for_an_ordinary_run(multi, market, monkeypatch):
    monkeypatch.setenv("ALMANAC_HOME", str(market.home))
    from pages._components.heads import multihead_view

    run = registry.get_run(multi["heads"]["day"]["run_id"], home=market.home)
    card = multihead_view(run, "evaluate")
    text = str(card)
    assert "evaluate-heads-table" in text and "evaluate-gated-equity" in text
    assert f"/evaluate?run={multi['heads']['ret']['run_id']}" in text
    assert multihead_view({k: v for k, v in run.items() if k != "multihead"}, "evaluate") is None
    gone = multihead_view({**run, "multihead": {"id": "20200101-000000-gone-000000", "head": "day"}}, "evaluate")
    assert "head day of multi-head run 20200101-000000-gone-000000, which did not complete" in str(gone)
    assert type(gone).__name__ == "Alert" and gone.color == "info"


def test_an_interrupted_parent_write_is_swept(tmp_path):
    from almanac.recovery import sweep

    left = tmp_path / "multihead" / ".tmp-20200101-000000-x-000000"
    left.mkdir(parents=True)
    (left / "multihead.json").write_text("{}")
    assert sweep(tmp_path, min_age_s=0) == ["multihead/.tmp-20200101-000000-x-000000"]
    assert not left.exists()


def test_runs_heads_lists_and_shows(multi, market, monkeypatch, capsys):
    from cli import main

    monkeypatch.setenv("ALMANAC_HOME", str(market.home))
    assert main(["runs", "heads", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["multihead_id"] == multi["multihead_id"]]
    assert mine and mine[0]["heads"] == {n: h["run_id"] for n, h in multi["heads"].items()}
    assert main(["runs", "heads", multi["multihead_id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["heads"]["up"]["metrics"] == multi["heads"]["up"]["metrics"]
    g, recorded = shown["gated_backtest"], multi["gated_backtest"]
    assert {k: v for k, v in g.items() if "trials" not in k and "dsr" not in k} == \
        {k: v for k, v in json.loads(json.dumps(recorded)).items() if "trials" not in k and "dsr" not in k}
    assert (g["n_trials_at_training"], g["dsr_at_training"]) == (recorded["n_trials"], recorded["dsr"])
    # the DSR as it is now counts every trial on ES / rest_of_day, the gated strategy once
    assert g["n_trials"] == len(trial_sharpes("ES", "rest_of_day", home=market.home))
    assert main(["runs", "heads", multi["multihead_id"]]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["Head", "Label", "Task"] and "Gated signal: head up" in out
    assert main(["runs", "heads", "../etc"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_the_gated_dsr_deflates_against_the_trials_now(multi, market):
    import math

    from ml.backtester import deflate
    from ml.heads import current_gated

    before = current_gated(multi, market.home)
    spec = multihead_from_dict(SPEC).head_spec("up").to_dict()
    other = run_experiment({**spec, "model": {"kind": "lightgbm", "params": {"n_estimators": 5}}}, store=market)
    try:
        now = current_gated(multi, market.home)
        assert now["n_trials"] == before["n_trials"] + 1
        g = multi["gated_backtest"]
        trials = trial_sharpes("ES", "rest_of_day", home=market.home)
        assert g["sharpe"] in trials and other["backtest"]["sharpe"] in trials
        n, dsr = deflate(g["sharpe"], g["days"], g["skew"], g["kurtosis"], trials)
        assert now["n_trials"] == n and now["dsr"] == pytest.approx(dsr, abs=1e-12) and math.isfinite(dsr)
        assert (now["n_trials_at_training"], now["dsr_at_training"]) == (g["n_trials"], g["dsr"])
    finally:
        registry.delete_run(other["run_id"], home=market.home)
