"""Alerts and empty states: how results, warnings and errors reach the user.

* an :class:`~almanac.errors.AlmanacError` becomes a red (``danger``) alert showing its
  one-line message, which already says what to fix;
* any other exception is a bug: its traceback goes to the log and the user sees a red
  alert that names the action and the exception type and points to the server log;
* warnings (e.g. "sorted the rows") become one yellow (``warning``) alert listing them.
"""

from __future__ import annotations

import logging

import dash_bootstrap_components as dbc
from dash import html

from almanac.errors import AlmanacError


def error_alert(message: str, title: str = "That did not work") -> dbc.Alert:
    """A red alert with a bold title and the one-line ``message``."""
    return dbc.Alert([html.Strong(f"{title}: "), html.Span(message, className="alert-message")],
                     color="danger", className="almanac-alert", dismissable=False)


def failure_alert(exc: BaseException, log: logging.Logger, action: str) -> dbc.Alert:
    """The alert for an exception raised while doing ``action`` (e.g. "importing bars.csv").

    User mistakes (:class:`AlmanacError`) show their message and are logged at INFO
    without a traceback; anything else is logged with its traceback at ERROR and shown
    as a short message that points to the log.
    """
    if isinstance(exc, AlmanacError):
        log.info("%s refused: %s", action, exc.message)
        return error_alert(exc.message, title=f"Could not finish {action}")
    log.error("unexpected error while %s", action, exc_info=exc)
    return error_alert(
        f"an unexpected {type(exc).__name__} occurred while {action}; the traceback is in the server "
        "log. Please report it with the file or settings you used.",
        title="Internal error",
    )


def read_catalog(log: logging.Logger) -> tuple[list, dbc.Alert | None]:
    """``(catalog entries, None)``, or ``([], alert)`` when the catalog cannot be read (the
    page still renders and shows why; the traceback of a bug goes to ``log``)."""
    from almanac.store import Store

    try:
        return Store().catalog(), None
    except Exception as exc:  # noqa: BLE001 - shown as an alert, traceback logged
        return [], failure_alert(exc, log, "reading the catalog")


def warning_alert(messages: list[str], title: str = "Warnings") -> dbc.Alert | None:
    """A yellow alert listing ``messages`` (``None`` when there are none)."""
    if not messages:
        return None
    body = html.Ul([html.Li(m) for m in messages], className="mb-0") if len(messages) > 1 \
        else html.Span(messages[0])
    return dbc.Alert([html.Strong(f"{title}: "), body], color="warning", className="almanac-alert")


def success_alert(message, title: str = "Done") -> dbc.Alert:
    return dbc.Alert([html.Strong(f"{title}: "), html.Span(message)], color="success",
                     className="almanac-alert")


def info_alert(message, title: str | None = None) -> dbc.Alert:
    children = [html.Strong(f"{title}: "), html.Span(message)] if title else message
    return dbc.Alert(children, color="info", className="almanac-alert")


def empty_state(title: str, text, action=None, icon: str = "◇") -> html.Div:
    """A centred placeholder for "nothing here yet", with an optional call to action."""
    return html.Div(
        [html.Div(icon, className="almanac-empty-icon", **{"aria-hidden": "true"}),
         html.H5(title, className="almanac-empty-title"),
         html.P(text, className="almanac-empty-text"),
         action],
        className="almanac-empty",
    )
