"""``python -m almanac bench data``: how fast the store takes data in.

Times, in a throw-away data home: sample-data generation on first start, and the import
(read + validate + atomic write + catalog) of one million 1-minute bars from CSV and
from Parquet, plus a pruned read of one day back.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2012-01-03 14:30", periods=n, freq="min", tz="UTC")
    close = 1300 * np.exp(np.cumsum(rng.normal(0, 3e-4, n)))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0, 0.2, (2, n)))
    return pd.DataFrame({"Datetime": ts, "Open": open_.round(2), "High": (np.maximum(open_, close) + wick[0]).round(2),
                         "Low": (np.minimum(open_, close) - wick[1]).round(2), "Close": close.round(2),
                         "Volume": rng.integers(1, 500, n)}).assign(
        High=lambda d: d[["Open", "High", "Close"]].max(axis=1), Low=lambda d: d[["Open", "Low", "Close"]].min(axis=1))


def run(rows: int = 1_000_000) -> dict:
    from almanac.importer import import_file
    from almanac.sample import ensure_sample_data
    from almanac.store import Store

    out: dict = {"rows": rows}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        written = ensure_sample_data(Store(tmp / "sample_home"))
        out["sample_data_seconds"] = time.perf_counter() - t
        out["sample_rows"] = sum(e.rows for e in written)

        df = _bars(rows)
        csv, parquet = tmp / "bars.csv", tmp / "bars.parquet"
        df.to_csv(csv, index=False)
        df.to_parquet(parquet, index=False)
        store = Store(tmp / "home")
        for label, path in (("csv", csv), ("parquet", parquet)):
            t = time.perf_counter()
            entry = import_file(path, f"B{label.upper()}", freq="1min", tz="UTC", store=store).entry
            out[f"import_{label}_seconds"] = time.perf_counter() - t
            assert entry.rows == rows
        t = time.perf_counter()
        day = store.read_bars("BPARQUET", start="2012-06-01", end="2012-06-01", columns=["close"])
        out["read_one_day_seconds"] = time.perf_counter() - t
        out["read_one_day_rows"] = len(day)
    return out


def main(args) -> int:
    from cli import print_json

    res = run(getattr(args, "rows", 1_000_000))
    if getattr(args, "json", False):
        print_json(res)
        return 0
    print(f"sample data on first start : {res['sample_data_seconds']:7.2f} s  ({res['sample_rows']:,} rows)")
    print(f"import {res['rows']:,} minute bars, CSV     : {res['import_csv_seconds']:7.2f} s")
    print(f"import {res['rows']:,} minute bars, Parquet : {res['import_parquet_seconds']:7.2f} s")
    print(f"pruned read of one day      : {res['read_one_day_seconds'] * 1000:7.1f} ms ({res['read_one_day_rows']} rows)")
    return 0
