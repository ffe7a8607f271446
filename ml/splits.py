"""Walk-forward splits over rows sorted by date (one row per trading day).

Layout for ``n`` rows, ``n_splits`` folds, ``min_train`` and ``gap``::

    rows 0 .. min_train-1          first training window (never tested)
    next gap rows                  purged before the first test block
    rows min_train+gap .. n-1      the tail, cut into n_splits consecutive test blocks
                                   (np.array_split: sizes differ by at most one, the
                                   larger blocks first)

For the fold whose test block starts at row ``t``, training is

* ``expanding``: rows ``0 .. t-gap-1`` (everything up to the purge),
* ``rolling``: the last ``train_size`` of those rows (default ``train_size=min_train``;
  the first fold may hold fewer when ``train_size > min_train``),

so exactly ``gap`` rows lie between the last training row and the first test row.
Test blocks never overlap and every test row is later than every training row of its
fold. The gap must be at least the label horizon (:func:`check_gap`); labels resolved
at the same day's close have horizon 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from almanac.errors import SpecError

SCHEMES: tuple[str, ...] = ("expanding", "rolling")


def check_gap(gap: int, horizon_days: int) -> None:
    """SpecError unless ``gap >= horizon_days`` (the purge must cover the label horizon)."""
    if gap < horizon_days:
        raise SpecError(f"walk-forward gap {gap} is shorter than the label horizon "
                        f"{horizon_days} days; set gap to at least {horizon_days}")


class WalkForwardSplit:
    """Time-ordered train/test splits with a purge gap (scikit-learn splitter API).

    Parameters
    ----------
    n_splits : number of consecutive test blocks (folds), >= 1.
    scheme : ``"expanding"`` (train from the first row) or ``"rolling"`` (last
        ``train_size`` rows before the gap).
    gap : rows (trading days) purged between the end of train and the start of test.
    min_train : rows in the first fold's training window; the test tail starts at row
        ``min_train + gap``.
    train_size : rolling window length (rolling only; default ``min_train``).
    """

    def __init__(self, n_splits: int = 5, scheme: str = "expanding", gap: int = 1,
                 min_train: int = 250, train_size: int | None = None):
        self.n_splits = n_splits
        self.scheme = scheme
        self.gap = gap
        self.min_train = min_train
        self.train_size = train_size

    def _check_params(self) -> None:
        if self.scheme not in SCHEMES:
            raise SpecError(f"unknown walk-forward scheme {self.scheme!r}; "
                            f"choose one of: {', '.join(SCHEMES)}")
        for name, low in (("n_splits", 1), ("gap", 0), ("min_train", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise SpecError(f"walk-forward {name} must be an integer >= {low}, got {v!r}")
        if self.train_size is not None:
            if self.scheme != "rolling":
                raise SpecError("train_size applies only to the rolling scheme; "
                                "drop it or set scheme='rolling'")
            v = self.train_size
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise SpecError(f"walk-forward train_size must be an integer >= 1, got {v!r}")

    def min_rows(self) -> int:
        """Fewest rows that give every fold at least one test row."""
        return int(self.min_train + self.gap + self.n_splits)

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        return int(self.n_splits)

    def test_blocks(self, n_rows: int) -> list[np.ndarray]:
        """Row indices of each fold's test block (validates the parameters)."""
        self._check_params()
        need = self.min_rows()
        if n_rows < need:
            raise SpecError(
                f"need at least {need} days for {self.n_splits} splits with min_train "
                f"{self.min_train} and gap {self.gap}, have {n_rows}: lower min_train or "
                "n_splits, or widen the date range")
        return np.array_split(np.arange(self.min_train + self.gap, n_rows), self.n_splits)

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_idx, test_idx)`` integer arrays, in time order."""
        n = len(X)
        window = self.min_train if self.train_size is None else self.train_size
        for test in self.test_blocks(n):
            train_end = int(test[0]) - self.gap  # exclusive
            start = max(0, train_end - window) if self.scheme == "rolling" else 0
            yield np.arange(start, train_end), test

    def __repr__(self) -> str:
        return (f"WalkForwardSplit(n_splits={self.n_splits}, scheme={self.scheme!r}, "
                f"gap={self.gap}, min_train={self.min_train}, train_size={self.train_size})")


class TimeGroupSplit(WalkForwardSplit):
    """:class:`WalkForwardSplit` over the *distinct times* of rows sorted by time (a table with
    several rows per time, e.g. an option chain per day): ``min_train``, ``gap``, ``train_size``
    and the test blocks count distinct times, and every row of a time goes where its time goes,
    so the rows of one time never straddle a fold (nor train and test). ``split(X, groups=times)``.
    """

    def split(self, X, y=None, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            raise SpecError("TimeGroupSplit needs the rows' times: split(X, groups=times)")
        t = pd.DatetimeIndex(pd.to_datetime(np.asarray(groups))).asi8
        if len(t) != len(X):
            raise SpecError(f"TimeGroupSplit got {len(t)} times for {len(X)} rows")
        if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
            raise SpecError("TimeGroupSplit needs rows sorted by time: sort the table by its time column")
        starts = np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) if len(t) else np.zeros(0, dtype=np.int64)
        ends = np.r_[starts[1:], len(t)]
        try:
            for tr, te in super().split(starts):
                yield (np.arange(starts[tr[0]], ends[tr[-1]]) if len(tr) else np.zeros(0, dtype=np.int64),
                       np.arange(starts[te[0]], ends[te[-1]]))
        except SpecError as exc:
            raise SpecError(exc.message.replace(" days ", " distinct times ").replace("have ", "the table has ")) from None


def fold_table(dates: Sequence | pd.Index | np.ndarray,
               splits: Iterable[tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """One row per fold: ``fold`` (0-based), train/test first and last date (inclusive),
    ``n_train``, ``n_test``. ``dates[i]`` is the date of row ``i``."""
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    rows = [
        {"fold": k, "train_start": d[tr[0]], "train_end": d[tr[-1]],
         "test_start": d[te[0]], "test_end": d[te[-1]],
         "n_train": len(tr), "n_test": len(te)}
        for k, (tr, te) in enumerate(splits)
    ]
    cols = ["fold", "train_start", "train_end", "test_start", "test_end", "n_train", "n_test"]
    return pd.DataFrame(rows, columns=cols)


def fold_ids(n_rows: int, splits: Iterable[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per row, the fold whose test block holds it (0-based), or -1 if never tested."""
    out = np.full(n_rows, -1, dtype="int64")
    for k, (_, te) in enumerate(splits):
        out[te] = k
    return out


def split_on_days(splitter: WalkForwardSplit, days, dates) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of ``splitter`` computed on ``days`` (sorted distinct dates), applied to rows
    dated ``dates`` (sorted, each one of ``days``): a row is in a fold's training (test) rows
    when its date lies within that fold's training (test) days.

    Several runs whose rows are different subsets of the same days (the heads of a multi-head
    run, :mod:`ml.heads`: a head whose label is missing on a day has no row there) so share one
    set of fold boundaries; the purge gap counts ``days``. DataError (one line) when a fold
    would leave such a run without a training or a test row."""
    from almanac.errors import DataError

    d = pd.DatetimeIndex(days)
    idx = pd.DatetimeIndex(dates)
    pos = d.get_indexer(idx)
    if (pos < 0).any():
        raise DataError(f"{int((pos < 0).sum())} row date(s) are not among the split's days: a multi-head run "
                        "splits on the days its heads label")
    out = []
    for k, (tr, te) in enumerate(splitter.split(np.arange(len(d)))):
        rows_tr = np.flatnonzero((pos >= tr[0]) & (pos <= tr[-1])) if len(tr) else np.zeros(0, dtype=np.int64)
        rows_te = np.flatnonzero((pos >= te[0]) & (pos <= te[-1]))
        if len(rows_tr) == 0 or len(rows_te) == 0:
            what = "training" if len(rows_tr) == 0 else "test"
            raise DataError(f"fold {k + 1} ({d[te[0]]:%Y-%m-%d} .. {d[te[-1]]:%Y-%m-%d}) has no labelled {what} "
                            "day for one head: its label is missing there; widen the date range or drop that head")
        out.append((rows_tr, rows_te))
    return out
