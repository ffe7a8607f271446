"""What the web server refuses and the headers it sends, as plain data (no Flask here).

``app.py`` installs these as Flask hooks; keeping the rules here lets them be tested
without a server and keeps the kernel free of web imports.

* :func:`host_refusal`: the ``Host`` allow-list against DNS rebinding. A page on an
  attacker's domain that re-resolves to 127.0.0.1 reaches the lab with its own name in
  ``Host``; only loopback names, the configured ``HOST`` and ``ALMANAC_ALLOWED_HOSTS``
  are served.
* :func:`max_request_bytes`: Flask's ``MAX_CONTENT_LENGTH``. A browser upload arrives
  base64-encoded (4/3 of its size) inside a JSON callback body, so the bound is 4/3 of
  ``Limits.upload_bytes`` plus a margin for the rest of the body.
* :func:`content_security_policy` and :data:`SECURITY_HEADERS`: sent on every response.
* :func:`check_bind`: the REST service (``python -m almanac serve``) binds anything but
  loopback only with ``ALMANAC_API_TOKEN`` set (checked before the service is imported).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from almanac.errors import AlmanacError
from almanac.settings import Limits, Settings

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_VAR = "ALMANAC_API_TOKEN"
MIN_TOKEN_CHARS = 16
REQUEST_MARGIN_BYTES = 2**20  # the callback's JSON around an upload: file name, other inputs, state

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def host_name(header: str) -> str | None:
    """The name in a ``Host`` header, lower-case, without port or trailing dot
    (``"[::1]:8050"`` -> ``"::1"``); None when it is not a well-formed host."""
    text = header.strip().lower()
    if text.startswith("["):
        name, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest.startswith(":") and rest[1:].isdigit())):
            return None
    else:
        name, _, port = text.partition(":")
        if ":" in port or (port and not port.isdigit()) or (_ and not port):
            return None
    name = name.removesuffix(".")
    return name or None


def allowed_hosts(settings: Settings) -> frozenset[str]:
    """Loopback names, the configured ``HOST`` and ``Settings.allowed_hosts``."""
    extra = (host_name(h) for h in (settings.host, *settings.allowed_hosts))
    return LOOPBACK_HOSTS | {h for h in extra if h}


def host_refusal(header: str | None, settings: Settings) -> str | None:
    """None when ``Host: header`` is served; else the one-line reason for a 400."""
    name = host_name(header or "")
    if name is not None and name in allowed_hosts(settings):
        return None
    what = f"Host {header[:80]!r} is not served here" if header else "the request has no Host header"
    return (f"{what}: open the lab at http://127.0.0.1:{settings.port}/ "
            f"or add the host name to ALMANAC_ALLOWED_HOSTS")


def max_request_bytes(limits: Limits) -> int:
    """Flask's ``MAX_CONTENT_LENGTH``: room for an upload of ``limits.upload_bytes``."""
    return 4 * -(-limits.upload_bytes // 3) + REQUEST_MARGIN_BYTES  # the base64 length, exactly


def too_large_message(limits: Limits) -> str:
    """The one line of a 413: the upload limit and the variable that sets it."""
    mb = limits.upload_bytes / 2**20
    return (f"request body too large: uploads are limited to {mb:g} MB; "
            f"set {Limits.var('upload_bytes')} to change the limit")


def content_security_policy(script_hashes: Iterable[str]) -> str:
    """The CSP for the lab's pages; each source was needed in headless Chromium.

    * script-src: the lab's own files and Dash's inline scripts by hash (no
      'unsafe-inline'); 'unsafe-eval' because plotly's WebGL traces (scattergl, used
      above 30,000 points) compile their drawing code with ``Function`` (regl) and show
      "WebGL is not supported" without it.
    * style-src 'unsafe-inline': Dash's renderer, dcc, plotly and AG Grid insert
      ``<style>`` elements at run time.
    * img-src data: (Bootstrap's and AG Grid's SVG icons: select caret, checkbox, switch)
      and blob: (plotly's "Download plot as PNG").
    * Nothing may frame the lab; no plugins, no ``<base>``, no foreign form target, and
      connections only to the lab itself.
    """
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", "'unsafe-eval'", *script_hashes],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> str | None:
    """The token the service requires (None: none), or AlmanacError: a bind on anything but
    loopback needs ``ALMANAC_API_TOKEN`` (at least :data:`MIN_TOKEN_CHARS` characters)."""
    token = (token or "").strip() or None
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise AlmanacError(f"{TOKEN_VAR} has {len(token)} characters: use at least {MIN_TOKEN_CHARS} random "
                           "ones, e.g. from `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if token is None and not is_loopback(host):
        raise AlmanacError(f"refusing to serve on {host} without {TOKEN_VAR}: set it to a long random string "
                           "(clients then send 'Authorization: Bearer <token>') or bind 127.0.0.1")
    return token
