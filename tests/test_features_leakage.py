"""Leakage (docs/design.md §4) as a property: whatever happens at or after the cutoff of day D --
minute bars (regular and overnight), day D's daily bar, cross-asset day-D values --
the features of day D (and of every earlier day) do not change."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from almanac.sessions import Session
from features import build_features
from bench.synthetic import synthetic_store

NY = Session()
SETS = ("early_session", "cross_asset", "regime")


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    from almanac.store import Store

    store = Store(tmp_path_factory.mktemp("leak"))
    frames = synthetic_store(store)
    return store, frames


def _days(store, n, seed):
    ft = build_features("ES", sets=SETS, cross_assets=("VIX", "NQ"), store=store, use_cache=False)
    rng = np.random.default_rng(seed)
    idx = ft.frame.index
    chosen = set(rng.choice(len(idx), n, replace=False).tolist())
    must = [pd.Timestamp("2018-03-12"), pd.Timestamp("2018-11-05")]  # first days after the DST changes
    return ft, sorted({idx[i] for i in chosen} | set(must))


def _perturb(frames, day, cut_utc, rng, drop: bool):
    out = {}
    for (sym, freq), df in frames.items():
        if freq == "1min":
            late = (df["timestamp"] >= cut_utc).to_numpy()
        else:
            late = (df["date"] >= day).to_numpy()
        if drop:
            out[(sym, freq)] = df[~late].reset_index(drop=True)
            continue
        df = df.copy()
        k = int(late.sum())
        for col in ("open", "high", "low", "close"):
            if col in df.columns:
                df.loc[late, col] = df.loc[late, col].to_numpy() * rng.uniform(0.7, 1.3, k)
        if "volume" in df.columns:
            df.loc[late, "volume"] = rng.integers(1, 10_000, k).astype(float)
        out[(sym, freq)] = df
    return out


@pytest.mark.parametrize("drop", [True, False], ids=["truncate", "scramble"])
def test_nothing_at_or_after_the_cutoff_changes_day_d(market, tmp_path, drop):
    from almanac.store import Store

    store, frames = market
    full, days = _days(store, 5, seed=1 if drop else 2)
    assert full.frame.shape[1] >= 20 and "NQ_early_ret" in full.frame and "overnight_range_atr" in full.frame
    rng = np.random.default_rng(3)
    for day in days:
        cut = NY.at([day], "10:15")[0]
        other = Store(tmp_path / f"{day:%Y%m%d}")
        for (sym, freq), df in _perturb(frames, day, cut, rng, drop).items():
            other.write(sym, freq, df, source="perturbed")
        ft = build_features("ES", sets=SETS, cross_assets=("VIX", "NQ"), store=other, use_cache=False)
        got, want = ft.frame.loc[:day], full.frame.loc[:day]
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        assert want.loc[day].notna().sum() >= 15  # the day really has features to protect


def test_daily_only_symbol_ignores_day_d_bar(market, tmp_path):
    from almanac.store import Store

    store, frames = market
    daily = frames[("ES", "1d")]
    s1 = Store(tmp_path / "a")
    s1.write("SPX", "1d", daily, source="t")
    s1.write("VIX", "1d", frames[("VIX", "1d")], source="t")
    full = build_features("SPX", sets=SETS, cross_assets=("VIX",), store=s1, use_cache=False)
    rng = np.random.default_rng(4)
    for day in full.frame.index[[300, 350, 420, -1]]:
        s2 = Store(tmp_path / f"b{day:%Y%m%d}")
        pert = _perturb({("SPX", "1d"): daily, ("VIX", "1d"): frames[("VIX", "1d")]}, day, None, rng, False)
        for (sym, freq), df in pert.items():
            s2.write(sym, freq, df, source="t")
        ft = build_features("SPX", sets=SETS, cross_assets=("VIX",), store=s2, use_cache=False)
        pd.testing.assert_frame_equal(ft.frame.loc[:day], full.frame.loc[:day], check_exact=True)
    assert full.frame.loc[full.frame.index[300]].notna().all()
