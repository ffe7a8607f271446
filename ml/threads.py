"""One thread count for every model library, set once (docs/design.md §11, OpenMP + fork).

``N_THREADS`` comes from the ``ALMANAC_THREADS`` environment variable (default 1).
Model code passes it as ``n_jobs`` / ``num_threads``; the pipeline calls
:func:`limit_threads` once, before any model work, so BLAS and OpenMP pools agree.
"""
from __future__ import annotations

import os

from almanac.errors import SpecError

_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def _read_threads() -> int:
    raw = os.environ.get("ALMANAC_THREADS", "1")
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise SpecError(f"ALMANAC_THREADS must be a positive integer, got {raw!r}; "
                        "set e.g. ALMANAC_THREADS=1 or unset it.")
    return n


N_THREADS = _read_threads()


def limit_threads(n: int | None = None) -> int:
    """Cap native thread pools at ``n`` (default :data:`N_THREADS`) and return it.

    Sets the usual ``*_NUM_THREADS`` variables only where they are unset
    (``os.environ.setdefault``; they matter for pools not yet started) and limits
    pools already loaded through threadpoolctl when it is installed.
    """
    n = N_THREADS if n is None else int(n)
    for var in _ENV_VARS:
        os.environ.setdefault(var, str(n))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - ships with scikit-learn
        return n
    threadpool_limits(limits=n)
    return n
