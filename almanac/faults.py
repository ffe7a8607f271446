"""Fault injection for the crash-consistency tests.

Every step of a write that matters for consistency calls :func:`point` with a name such
as ``"store.write:renamed"``. Normally this does nothing but read one environment
variable. A test sets ``ALMANAC_FAULT=<name>`` in the environment of a subprocess; the
process then kills itself with SIGKILL at that point -- exactly what a ``kill -9`` or a
power cut at that instant does -- and the test checks the data home it left behind.

``ALMANAC_FAULT`` may name several points separated by commas, and ``name#N`` kills at
the N-th time the point is reached (1-based), for steps that run once per dataset.
Nothing but tests sets the variable; the product never reads it elsewhere.
"""

from __future__ import annotations

import os
import signal

ENV = "ALMANAC_FAULT"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Die here with SIGKILL if a test asked for it (see the module doc)."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    _hits[name] = _hits.get(name, 0) + 1
    for item in wanted.split(","):
        target, _, nth = item.strip().partition("#")
        if target == name and (not nth or int(nth) == _hits[name]):
            os.kill(os.getpid(), signal.SIGKILL)
