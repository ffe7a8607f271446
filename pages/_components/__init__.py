"""Shared widgets of the pages: navbar, alerts, empty states, headers, tokens, shell.

Page discovery skips this package (its name starts with ``_``).
"""

from pages._components.feedback import (
    empty_state,
    error_alert,
    failure_alert,
    info_alert,
    read_catalog,
    success_alert,
    warning_alert,
)
from pages._components.layout import page_header, planned_page, section, shell, step_links
from pages._components.navbar import nav_pages, navbar
from pages._components.token import page_token

__all__ = [
    "empty_state", "error_alert", "failure_alert", "info_alert", "read_catalog", "success_alert", "warning_alert",
    "nav_pages", "navbar", "page_header", "page_token", "planned_page", "section", "shell",
    "step_links",
]
