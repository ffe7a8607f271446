"""The web entry point: ``python app.py`` serves the lab on http://127.0.0.1:8050.

* :func:`create_app` builds the multi-page Dash app: pages from ``pages/`` (the pages
  plugin), the Bootswatch theme and the lab's CSS from ``assets/`` (served locally, no
  CDN), and a background-callback manager on a private (0700) disk cache in
  ``$ALMANAC_HOME/jobs`` whose jobs run in *forked* processes (docs/design.md §11).
* Importing this module builds ``app`` and ``server`` (for ``gunicorn app:server``) but
  starts nothing and writes no data; :func:`main` (``python app.py``) first writes the
  sample data if the data home holds no dataset, then serves on ``HOST``/``PORT``
  (default 127.0.0.1:8050) with debug off unless ``ALMANAC_DEBUG=1``.

Model libraries (LightGBM, XGBoost, SHAP) are not imported here nor by any page at
import time; they load inside the jobs that need them.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import dash
import diskcache
import multiprocess

from almanac.settings import Settings, get_settings
from pages._components.layout import shell

ROOT = Path(__file__).resolve().parent
log = logging.getLogger("almanac.app")


def background_manager(settings: Settings) -> dash.DiskcacheManager:
    """The background-callback manager: a disk cache in the private jobs folder.

    Jobs run in processes started with ``fork`` (the start method the manager is built
    for; spawn and forkserver break the jobs), set explicitly because Python's default
    differs across versions and platforms.
    """
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
    return app


def prepare_data() -> None:
    """Write the sample data into an empty data home (logs what it did and how long it took)."""
    from almanac.sample import ensure_sample_data
    from almanac.store import Store

    store = Store()
    if store.catalog():
        log.info("data home %s holds %d dataset(s)", store.home, len(store.catalog()))
        return
    log.info("data home %s is empty: writing the sample data", store.home)
    t0 = time.perf_counter()
    written = ensure_sample_data(store)
    log.info("sample data written in %.1f s: %s", time.perf_counter() - t0,
             ", ".join(f"{e.symbol} {e.freq} ({e.rows:,} rows)" for e in written) or "nothing (another process did)")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per HTTP request
    settings = get_settings()
    prepare_data()
    log.info("serving Almanac ML Lab on http://%s:%d (debug %s)", settings.host, settings.port,
             "on" if settings.debug else "off")
    app.run(host=settings.host, port=settings.port, debug=settings.debug)


app = create_app()
server = app.server

if __name__ == "__main__":
    main()
