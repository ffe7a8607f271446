"""The plain baseline of ``almanac train``: what a user would write by hand.

``python -m bench.plain DATASET.parquet RUN.json PARAMS.json`` reads a run's feature table
(the ``dataset.parquet`` the lab wrote: features and ``y`` by date), fits one LightGBM
model per fold of ``RUN.json`` (same rows, the same parameters ``PARAMS.json`` as the lab's
model, one thread), predicts each fold's test rows, refits on every row, and exits. Only
pandas and lightgbm are imported: :mod:`bench.all` times this process against the whole
``almanac train`` process.
"""

from __future__ import annotations

import json
import sys


def main(dataset: str, run_json: str, params_json: str) -> int:
    import lightgbm
    import pandas as pd

    data = pd.read_parquet(dataset)
    run = json.loads(open(run_json).read())
    params = json.loads(open(params_json).read())
    X, y = data[run["feature_names"]], data["y"]
    known = y.notna().to_numpy()
    for fold in run["folds"]:
        train = known & (data.index >= pd.Timestamp(fold["train_start"])) & (data.index <= pd.Timestamp(fold["train_end"]))
        test = known & (data.index >= pd.Timestamp(fold["test_start"])) & (data.index <= pd.Timestamp(fold["test_end"]))
        model = lightgbm.LGBMClassifier(**params).fit(X[train], y[train].astype("int64"))
        model.predict_proba(X[test])
    lightgbm.LGBMClassifier(**params).fit(X[known], y[known].astype("int64"))
    return 0


if __name__ == "__main__":  # pragma: no cover - run by bench.all in its own process
    raise SystemExit(main(*sys.argv[1:4]))
