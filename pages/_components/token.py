"""A per-page-load token for background callbacks (docs/design.md §11, "two users, one cache key").

Dash derives a background callback's cache key from the function and its arguments.
Two browser tabs that click the same button with the same inputs would share one key
and so one job. Put ``page_token(...)`` in a page's *function* layout (so each page load
gets a fresh value) and pass it as a ``State`` to the background callback: the token
makes the arguments, and so the key, unique to that page load.
"""

from __future__ import annotations

import uuid

from dash import dcc


def new_token() -> str:
    """128 random bits as 32 hex digits."""
    return uuid.uuid4().hex


def page_token(component_id: str) -> dcc.Store:
    """A memory ``dcc.Store`` holding a fresh token; call it inside a layout function."""
    return dcc.Store(id=component_id, data=new_token(), storage_type="memory")
