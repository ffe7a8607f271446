"""The web entry point: ``python app.py`` serves the lab on http://127.0.0.1:8050.

* :func:`create_app` builds the multi-page Dash app: pages from ``pages/`` (the pages
  plugin), the Bootswatch theme and the lab's CSS from ``assets/`` (served locally, no
  CDN), and a background-callback manager on a private (0700) disk cache in
  ``$ALMANAC_HOME/jobs`` whose jobs run in *forked* processes (docs/design.md §11).
* Importing this module builds ``app`` and ``server`` (for ``gunicorn app:server``) but
  starts nothing and writes no data; :func:`main` (``python app.py``) first writes the
  sample data if the data home holds no dataset, then serves on ``HOST``/``PORT``
  (default 127.0.0.1:8050) with debug off unless ``ALMANAC_DEBUG=1``.
* :func:`harden`: every request with a ``Host`` that is not loopback, ``HOST`` or in
  ``ALMANAC_ALLOWED_HOSTS`` gets 400 (DNS rebinding), a body over ``MAX_CONTENT_LENGTH``
  (from ``ALMANAC_MAX_UPLOAD_MB``) gets 413 unread, and every response carries the
  security headers and CSP of :mod:`almanac.web_security`.
* SIGTERM stops ``python app.py`` as Ctrl-C does; on the way out, background jobs still
  running get SIGTERM (their own stop signal) so that they clean up (:func:`stop_jobs`).

Model libraries (LightGBM, XGBoost, SHAP) are not imported here nor by any page at
import time; they load inside the jobs that need them.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import dash
import diskcache
import flask
import multiprocess

from almanac import web_security
from almanac.settings import Settings, get_settings, mask_url
from pages._components.jobs import stop_processes
from pages._components.layout import shell

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("almanac.app")


def background_manager(settings: Settings) -> dash.DiskcacheManager | dash.CeleryManager:
    """The background-callback manager: a disk cache in the private jobs folder.

    Jobs run in processes started with ``fork`` (the start method the manager is built
    for; spawn and forkserver break the jobs), set explicitly because Python's default
    differs across versions and platforms.

    With ``ALMANAC_REDIS_URL`` set: ``dash.CeleryManager`` on the lab's Celery app
    (:func:`ml.scale.client`, JSON only), so every background callback runs on a worker
    (``celery -A worker worker``, which imports this module to register them). Dash's
    manager keeps the callback's inputs (task arguments, JSON) and its progress and
    outputs (``json.dumps`` strings in the Redis result backend): no pickle.
    """
    if settings.redis_url:
        from ml.scale import client

        return dash.CeleryManager(client(settings.redis_url))
    if multiprocess.get_start_method(allow_none=True) != "fork":
        multiprocess.set_start_method("fork", force=True)
    jobs = settings.private_dir(settings.jobs_dir)
    return dash.DiskcacheManager(diskcache.Cache(str(jobs)))


def create_app(settings: Settings | None = None) -> dash.Dash:
    """Build the Dash app (pages registered, layout set); starts no server."""
    settings = settings or get_settings()
    app = dash.Dash(
        __name__,
        use_pages=True,
        pages_folder=str(ROOT / "pages"),
        assets_folder=str(ROOT / "assets"),
        background_callback_manager=background_manager(settings),
        title="Almanac ML Lab",
        update_title=None,
        serve_locally=True,
        suppress_callback_exceptions=False,
    )
    app.layout = shell
    harden(app.server, settings, app.csp_hashes)
    return app


def harden(server: flask.Flask, settings: Settings, script_hashes: Callable[[], list[str]]) -> None:
    """Refuse a foreign ``Host`` (400) and an oversized body (413, left unread) before any
    other hook, and send the security headers of :mod:`almanac.web_security` on every
    response, refusals and errors included.

    ``script_hashes`` (``Dash.csp_hashes``) is called per response: Dash's pages plugin
    registers its inline title script at the first request, after :func:`create_app`.
    """
    server.config["MAX_CONTENT_LENGTH"] = web_security.max_request_bytes(settings.limits)

    def refuse(status: int, message: str) -> flask.Response:
        return flask.Response(message + "\n", status=status, mimetype="text/plain")

    def check_request() -> flask.Response | None:
        reason = web_security.host_refusal(flask.request.headers.get("Host"), settings)
        if reason:
            return refuse(400, reason)
        length = flask.request.content_length
        if length is not None and length > server.config["MAX_CONTENT_LENGTH"]:
            return refuse(413, web_security.too_large_message(settings.limits))
        return None

    def add_headers(response: flask.Response) -> flask.Response:
        response.headers["Content-Security-Policy"] = web_security.content_security_policy(script_hashes())
        response.headers.update(web_security.SECURITY_HEADERS)
        return response

    server.before_request_funcs.setdefault(None, []).insert(0, check_request)  # before Dash's hooks
    # a body without Content-Length (chunked) that grows past the bound, found while read
    server.register_error_handler(413, lambda _e: refuse(413, web_security.too_large_message(settings.limits)))
    server.after_request(add_headers)


def prepare_data() -> None:
    """Remove what interrupted operations left, then write the sample data into an empty
    data home (logs what it did and how long it took)."""
    from almanac.recovery import describe, sweep
    from almanac.sample import ensure_sample_data
    from almanac.store import Store

    store = Store()
    removed = sweep(store.home)
    if removed:
        log.warning("%s", describe(removed))
    if store.catalog():
        log.info("data home %s holds %d dataset(s)", store.home, len(store.catalog()))
        return
    log.info("data home %s is empty: writing the sample data", store.home)
    t0 = time.perf_counter()
    written = ensure_sample_data(store)
    log.info("sample data written in %.1f s: %s", time.perf_counter() - t0,
             ", ".join(f"{e.symbol} {e.freq} ({e.rows:,} rows)" for e in written) or "nothing (another process did)")


def _interrupt(signum, _frame) -> None:
    """SIGTERM handler: stop the way Ctrl-C (SIGINT) stops, with every ``finally`` run."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def stop_jobs(timeout_s: float = 10.0) -> None:
    """Stop the background jobs still running, with their clean-up, then kill leftovers.

    SIGTERM is the jobs' own stop signal (the training job turns it into a cancel that
    removes its temporary run folder; other jobs inherit :func:`_interrupt`). SIGINT
    would not do: a server started in the background by a shell ignores it, and so do
    its jobs. After Ctrl-C in a terminal the jobs got SIGINT themselves: they get a
    second to finish first.
    """
    import psutil  # a dependency of dash[diskcache]

    jobs = multiprocess.active_children()
    grace = time.monotonic() + 1.0
    for job in jobs:
        job.join(max(0.0, grace - time.monotonic()))
    family = []
    for job in (job for job in jobs if job.is_alive()):
        log.info("stopping background job %d", job.pid)
        try:
            proc = psutil.Process(job.pid)
            family += [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
    stop_processes(family, timeout_s, reap_s=5, on_kill=lambda proc: log.warning(
        "background process %d did not stop in %.0f s: killing it", proc.pid, timeout_s))
    for job in jobs:
        job.join(0)  # reap


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per HTTP request
    signal.signal(signal.SIGTERM, _interrupt)
    settings = get_settings()
    try:
        prepare_data()
        log.info("serving Almanac ML Lab on http://%s:%d (debug %s)", settings.host, settings.port,
                 "on" if settings.debug else "off")
        if settings.redis_url:
            log.info("background callbacks and study trials on Celery workers via %s (start them with "
                     "`celery -A worker worker`)", mask_url(settings.redis_url))
        # no version check: Dash's debug tools would call plotly.com from the page (the CSP refuses it)
        app.run(host=settings.host, port=settings.port, debug=settings.debug,
                dev_tools_disable_version_check=True)
    except KeyboardInterrupt:
        pass  # the server swallows an interrupt while serving; one during start-up lands here
    finally:
        stop_jobs()
        log.info("stopped")


app = create_app()
server = app.server

if __name__ == "__main__":
    main()
