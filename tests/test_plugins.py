"""Feature plugins: the look-ahead audit (leaky refused, causal accepted and equal to an independent
computation), garbage and exceptions refused cleanly, the registry, builds and re-audits."""

from __future__ import annotations

import hashlib
import json
import textwrap

import numpy as np
import pandas as pd
import pytest

from bench.synthetic import synthetic_store
from cli import main
from features import build_features

HEAD = "from almanac.plugins import feature\nimport numpy as np\nimport pandas as pd\n\n"

CAUSAL = HEAD + textwrap.dedent('''
    @feature(name="win_ret", description="last window close / first window open - 1")
    def win_ret(window, daily):
        g = window.groupby("date")
        return g["close"].last() / g["open"].first() - 1

    @feature(name="prev_ret", description="close(D-1) / close(D-2) - 1 from the daily bars")
    def prev_ret(window, daily):
        c = daily.set_index("date")["close"]
        return (c / c.shift(1) - 1).shift(1)
''')

LEAKY = {
    "centred": ('''
        @feature(name="centred", description="5-day centred mean of the window's last close")
        def centred(window, daily):
            return window.groupby("date")["close"].last().rolling(5, center=True).mean()
    ''', "centred"),
    "sameday": ('''
        @feature(name="sameday", description="day D's own close-to-close return")
        def sameday(window, daily):
            c = daily.set_index("date")["close"]
            return c / c.shift(1) - 1
    ''', "sameday"),
}

BAD = {
    "raises": ('''
        @feature(name="boom", description="divides by zero")
        def boom(window, daily):
            return 1 / 0
    ''', "plugin raises.py: feature boom raised ZeroDivisionError: division by zero (line 8) on the full data"),
    "notseries": ('''
        @feature(name="lst", description="a list")
        def lst(window, daily):
            return [1, 2, 3]
    ''', "plugin notseries.py: feature lst returned list, not a pandas Series indexed by trading day"),
    "text": ('''
        @feature(name="txt", description="text values")
        def txt(window, daily):
            return window.groupby("date")["close"].last().astype(str)
    ''', "feature txt returned"),
    "rangeidx": ('''
        @feature(name="pos", description="indexed by position")
        def pos(window, daily):
            return window.groupby("date")["close"].last().reset_index(drop=True)
    ''', "feature pos returned a Series indexed by int64 values, not by trading day"),
    "times": ('''
        @feature(name="tms", description="indexed by timestamp")
        def tms(window, daily):
            return window.set_index("timestamp")["close"]
    ''', "feature tms returned an index of times, not trading days"),
    "syntax": ("def broken(:\n    pass\n", "plugin syntax.py could not be loaded: SyntaxError"),
    "importerr": ("import no_such_module_here\n", "plugin importerr.py could not be loaded: ModuleNotFoundError: "
                                                  "No module named 'no_such_module_here' (line 5)"),
    "nofeature": ("def plain(window, daily):\n    return None\n", "defines no @feature function"),
}


def _digest(home):
    return {str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(home.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture
def market(store):
    synthetic_store(store, days=120, minute_start="2017-03-01")
    return store


def _write(tmp_path, name, body, head=True):
    p = tmp_path / f"{name}.py"
    p.write_text((HEAD if head else "") + textwrap.dedent(body))
    return p


def _independent_win_ret(store) -> pd.Series:
    """Window return from the raw stored bars with plain pandas (local time, 09:30 <= t < 10:15)."""
    bars = store.read_bars("ES", "1min")
    local = bars["timestamp"].dt.tz_convert("America/New_York")
    minutes = local.dt.hour * 60 + local.dt.minute
    w = bars[(minutes >= 570) & (minutes < 615)].assign(date=local.dt.tz_localize(None).dt.normalize())
    g = w.groupby("date")
    return g["close"].last() / g["open"].first() - 1


def test_causal_plugin_is_accepted_and_equals_an_independent_computation(market, tmp_path, capsys):
    store = market
    path = _write(tmp_path, "causal", CAUSAL, head=False)
    assert main(["plugins", "add", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("accepted plugin causal (win_ret, prev_ret)") and "no look-ahead on ES at 10:15" in out
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    copy = store.home / "plugins" / f"causal.{sha[:16]}.py"
    assert copy.read_bytes() == path.read_bytes()
    assert main(["plugins", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["sha256"]) for r in listed] == [("causal", sha)]
    assert len(next(iter(listed[0]["audits"].values()))["days"]) == 6

    ft = build_features("ES", store=store, sets="early_session,plugins", use_cache=False)
    expected = _independent_win_ret(store).reindex(ft.frame.index)
    np.testing.assert_allclose(ft.frame["win_ret"].to_numpy(), expected.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ft.frame["win_ret"], ft.frame["or_return_pct"], rtol=1e-12)  # the lab's own
    daily = store.read_bars("ES", "1d").set_index("date")["close"]
    prev = (daily / daily.shift(1) - 1).shift(1).reindex(ft.frame.index)
    np.testing.assert_allclose(ft.frame["prev_ret"].to_numpy(), prev.to_numpy(), rtol=1e-12)
    lin = ft.lineage["win_ret"]
    assert lin["set"] == "plugins" and lin["plugin"]["sha256"] == sha and lin["plugin"]["file"].endswith(f"{sha[:16]}.py")
    assert ft.data_hashes["plugin causal"] == sha

    assert main(["plugins", "remove", "causal"]) == 0
    assert not copy.exists() and json.loads((store.home / "plugins" / "registry.json").read_text())["plugins"] == []


@pytest.mark.parametrize("case", sorted(LEAKY))
def test_leaky_plugins_are_refused_naming_the_feature_and_a_day(market, tmp_path, capsys, case):
    body, feature = LEAKY[case]
    path = _write(tmp_path, case, body)
    before = _digest(market.home)
    assert main(["plugins", "add", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: plugin {case}.py: look-ahead in feature {feature} on 2017-")
    assert "with all the data but" in err and "cut at that day's cutoff 10:15" in err
    assert _digest(market.home) == before


@pytest.mark.parametrize("case", sorted(BAD))
def test_plugins_that_raise_or_return_garbage_are_refused_cleanly(market, tmp_path, capsys, case):
    body, message = BAD[case]
    path = _write(tmp_path, case, body, head=case not in ("syntax", "nofeature"))
    before = _digest(market.home)
    assert main(["plugins", "add", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: ") and message in err, err
    assert "Traceback" not in err
    assert _digest(market.home) == before


def test_audit_runs_again_when_the_file_or_the_data_changes(market, tmp_path, capsys):
    store = market
    path = _write(tmp_path, "causal", CAUSAL, head=False)
    assert main(["plugins", "add", str(path)]) == 0
    registry = store.home / "plugins" / "registry.json"
    assert len(json.loads(registry.read_text())["plugins"][0]["audits"]) == 1
    build_features("ES", store=store, sets="plugins", use_cache=False, cutoff="10:30")  # another cutoff: audited
    assert len(json.loads(registry.read_text())["plugins"][0]["audits"]) == 2
    # new data: audited again
    bars = store.read_bars("ES", "1min")
    store.write("ES", "1min", bars.iloc[:-500], source="shorter")
    build_features("ES", store=store, sets="plugins", use_cache=False)
    assert len(json.loads(registry.read_text())["plugins"][0]["audits"]) == 3
    # the accepted copy edited into a leaky feature: the next build refuses it
    rec = json.loads(registry.read_text())["plugins"][0]
    (store.home / rec["file"]).write_text(HEAD + textwrap.dedent(LEAKY["centred"][0]))
    from almanac.errors import DataError

    with pytest.raises(DataError, match="look-ahead in feature centred on"):
        build_features("ES", store=store, sets="plugins", use_cache=False)


def test_plugins_set_without_plugins_says_how_to_add_one(market):
    from almanac.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no plugin added yet: add one with"):
        build_features("ES", store=market, sets="plugins", use_cache=False)


def test_plugin_file_size_limit_names_its_variable(market, tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, "big", CAUSAL + "\n#" + "x" * 3000, head=False)
    monkeypatch.setenv("ALMANAC_MAX_PLUGIN_KB", "2")
    assert main(["plugins", "add", str(path)]) == 2
    assert "over the 2 KB limit (ALMANAC_MAX_PLUGIN_KB)" in capsys.readouterr().err


def test_a_run_with_plugins_records_them_in_its_lineage_and_bundle(market, tmp_path, capsys):
    import zipfile

    from ml.export import export_run
    from ml.runner import run_experiment

    path = _write(tmp_path, "causal", CAUSAL, head=False)
    assert main(["plugins", "add", str(path)]) == 0
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    rec = run_experiment({"data": {"symbol": "ES"}, "features": {"sets": ["regime", "plugins"]},
                          "label": {"kind": "rest_of_day"}, "model": {"kind": "logistic"},
                          "validation": {"n_splits": 2, "min_train": 30}}, store=market)
    assert {"win_ret", "prev_ret"} <= set(rec["feature_names"])
    assert rec["lineage"]["win_ret"]["plugin"]["sha256"] == sha and rec["data_hashes"]["plugin causal"] == sha
    bundle = export_run(rec["run_id"], tmp_path)
    with zipfile.ZipFile(bundle) as z:
        meta = json.loads(z.read(next(n for n in z.namelist() if n.endswith("metadata.json"))))
    assert [(p["name"], p["sha256"], sorted(p["features"])) for p in meta["plugins"]] == \
        [("causal", sha, ["prev_ret", "win_ret"])]
    assert meta["plugins"][0]["file"] == f"plugins/causal.{sha[:16]}.py" and meta["tables"] == []


def test_a_plugin_that_runs_too_long_is_stopped(market, tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, "slow", '''
        @feature(name="slow", description="never returns")
        def slow(window, daily):
            while True:
                pass
    ''')
    monkeypatch.setenv("ALMANAC_PLUGIN_TIMEOUT_S", "0.5")
    before = _digest(market.home)
    assert main(["plugins", "add", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: plugin slow.py: feature slow ran longer than 0.5 s (ALMANAC_PLUGIN_TIMEOUT_S): make it "
                   "faster, or raise the limit")
    assert _digest(market.home) == before
