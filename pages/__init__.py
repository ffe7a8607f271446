"""Dash pages (the pages plugin imports every module here that calls ``register_page``).

Each page registers itself with :func:`dash.register_page`, builds its layout in a
function (so every page load reads the current catalog and gets a fresh token) and
keeps callbacks thin: read inputs, call one domain function, call one figure builder.
Shared widgets live in :mod:`pages._components` (skipped by page discovery because of
the leading underscore). No page imports ``app``.
"""
