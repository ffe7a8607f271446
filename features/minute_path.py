"""The ``minute_path`` feature set: day D's raw price path from the session open to the cutoff.

One column per bar slot of the window ``[open, cutoff)``: ``mp_000`` is the bar starting at
the open, ``mp_001`` the next one, ... up to the last slot before the cutoff (45 columns for
a 09:30 open and a 10:15 cutoff on 1-minute bars). The value of slot j on day D is

    ln(close of D's bar starting at open + j bars / D's session open price)

(the session open price is the open of D's first regular-session bar, as in the session
table), so every day's path is normalized to start near 0 and is a plain log return.

Gaps stay gaps: a slot without a bar (a missing minute, a late first bar) is NaN; so is
every slot of a day without any window bar. The features layer never fills them; a model
that needs a complete sequence fills them itself (``ml.rocket``: forward fill along time,
leading slots at 0 = the open price). Only window bars are read, so nothing at or after
day D's cutoff reaches its row (tests/test_minute_path.py alters later bars and compares).

This is the raw-sequence input of the ``minirocket`` model kind; as columns it can also be
used by any other model kind.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from almanac.sessions import Session
from features.sessions_table import DayBars

PREFIX = "mp_"
_MINUTE_US = 60_000_000


def path_columns(n: int) -> list[str]:
    """The column names of an ``n``-slot path."""
    return [f"{PREFIX}{j:03d}" for j in range(n)]


def is_path_column(name: str) -> bool:
    return name.startswith(PREFIX) and name[len(PREFIX):].isdigit()


def window_slots(db: DayBars, session: Session, cutoff: str, bar_minutes: int = 1) -> int:
    """Bar slots in the longest window ``[open, cutoff)`` of ``db``'s days (0 without days)."""
    if db.n == 0:
        return 0
    span = session.at(db.days, cutoff).as_unit("us").asi8 - session.opens(db.days).as_unit("us").asi8
    step = bar_minutes * _MINUTE_US
    return int(max(0, -(-int(span.max()) // step)))


def minute_path(db: DayBars, table: pd.DataFrame, session: Session, cutoff: str,
                bar_minutes: int = 1) -> pd.DataFrame:
    """The path frame indexed like ``table`` (the session table of ``db``); see the module doc."""
    if db.win_t is None:
        raise ValueError("these day bars were split without their window timestamps")
    m = window_slots(db, session, cutoff, bar_minutes)
    out = np.full((db.n, m), np.nan)
    if m and db.win_t.size:
        opens = session.opens(db.days).as_unit("us").asi8
        slot = (db.win_t - opens[db.win_pos]) // (bar_minutes * _MINUTE_US)
        ok = (slot >= 0) & (slot < m)
        open_price = table["open"].to_numpy(dtype="float64")[db.win_pos]
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.log(db.win["close"] / open_price)
        out[db.win_pos[ok], slot[ok]] = value[ok]
    frame = pd.DataFrame(out, index=table.index, columns=path_columns(m))
    return frame.replace([np.inf, -np.inf], np.nan).astype("float64")
