"""What fired the running callback, for callbacks that are also called as plain functions (tests)."""

from __future__ import annotations

import dash
from dash.exceptions import MissingCallbackContextException


def triggered_id():
    """The id of the input that fired the running callback (None when called as a function)."""
    try:
        return dash.ctx.triggered_id
    except MissingCallbackContextException:
        return None


__all__ = ["triggered_id"]
