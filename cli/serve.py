"""``serve``: the REST prediction service (``api.py``), a process of its own.

``python -m almanac serve [--host 127.0.0.1] [--port 8060]`` serves the registry's runs
under ``/api/v1`` until Ctrl-C or SIGTERM. A bind on anything but loopback needs
``ALMANAC_API_TOKEN`` (then every route but ``/health`` needs ``Authorization: Bearer``).
"""

from __future__ import annotations

import os

DEFAULT_PORT = 8060  # ml.serving.DEFAULT_PORT (not imported: the parser stays light)


def register(sub) -> None:
    s = sub.add_parser("serve", help="serve predictions of the registered runs over REST (FastAPI)",
                       description="Serve /api/v1/health, /models, /models/RUN_ID, /predict, /predict/batch and "
                                   "/signal from the runs under ALMANAC_HOME, loading the active models in memory "
                                   "and following active.json without a restart. Binds 127.0.0.1 by default; any "
                                   "other address needs ALMANAC_API_TOKEN.")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s.set_defaults(handler=cmd_serve)


def cmd_serve(args) -> int:
    from almanac.errors import AlmanacError

    if not 0 < args.port < 65536:
        raise AlmanacError(f"--port {args.port} is not a port number: use 1-65535, e.g. {DEFAULT_PORT}")
    from almanac.web_security import TOKEN_VAR, check_bind

    token = check_bind(args.host, os.environ.get(TOKEN_VAR))  # refused before the service is imported
    from api import serve

    serve(args.host, args.port, token)
    return 0
