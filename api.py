"""The REST prediction service: ``python -m almanac serve`` runs :func:`create_api` with uvicorn.

A separate process from the Dash lab (``app.py``), on ``127.0.0.1:8060`` by default. FastAPI
validates request bodies and writes the OpenAPI document (``/api/v1/openapi.json``); the
work is done by :mod:`ml.serving` (model cache, hot swap, predictions) and :mod:`ml.day_signal`.

Routes, under ``/api/v1``: ``GET /health``, ``GET /models``, ``GET /models/{run_id}``,
``POST /predict`` (at most :data:`ml.serving.PREDICT_MAX_ROWS` rows), ``POST /predict/batch``
(at most ``ALMANAC_MAX_API_ROWS``), ``GET /signal?symbol=&label=&date=``.

Every response carries ``Server-Timing: app;dur=<ms>`` (the time from the request's arrival to
its answer inside the service). Every error is JSON ``{"detail": "<one line: what is wrong and how to fix it>"}``: 400 a
Host that is not served (:func:`almanac.web_security.host_refusal`, DNS rebinding), 401 a
missing or wrong token, 404 an unknown run, no active model or no bars of the day up to
the cutoff, 413 a body over ``ALMANAC_MAX_API_BODY_MB`` (refused before it is read when it
declares its length), 422 a body the model cannot take (types, columns, infinite values,
too many rows), 500 a model file that fails its SHA-256 check (never loaded).

Token: when ``ALMANAC_API_TOKEN`` is set, every route but ``/health`` needs
``Authorization: Bearer <token>``; the service refuses to bind anything but loopback
without one (:func:`almanac.web_security.check_bind`).
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from almanac import web_security
from almanac.errors import AlmanacError, NotFoundError, one_line
from almanac.web_security import TOKEN_VAR, check_bind
from almanac.settings import Limits, Settings, get_settings
from ml import day_signal, serving
from ml.serving import API_PREFIX, PREDICT_MAX_ROWS, ModelLoadError

log = logging.getLogger("almanac.api")


# ---------------------------------------------------------------------- request and response bodies

Value = StrictFloat | StrictInt | None


class PredictRequest(BaseModel):
    """Name the model by ``run_id``, or by ``symbol`` and ``label`` (the active model);
    ``rows``: one object per row with exactly the model's feature columns (null = missing)."""

    model_config = ConfigDict(extra="forbid")
    run_id: Annotated[str, Field(max_length=200)] | None = None
    symbol: Annotated[str, Field(max_length=32)] | None = None
    label: Annotated[str, Field(max_length=64)] | None = None
    rows: Annotated[list[dict[str, Value]], Field(min_length=1)]


class Prediction(BaseModel):
    model_config = ConfigDict(extra="allow")
    prob: float | None = Field(None, description="P(up) of a binary run (multiclass: prob_<class>)")
    signal: int | None = Field(None, description="+1 / -1 / 0 at the run's threshold (binary, regression)")
    pred: float | str | None = Field(None, description="predicted value (regression) or class (multiclass)")


class PredictResponse(BaseModel):
    run_id: str
    sha256: str = Field(description="SHA-256 of the model file that answered")
    task: str
    threshold: float
    predictions: list[Prediction]


class Problem(BaseModel):
    detail: str = Field(description="one line: what is wrong and how to fix it")


ERRORS = {code: {"model": Problem, "description": text} for code, text in (
    (400, "Host not served"), (401, "missing or wrong token"), (404, "unknown run or no active model"),
    (413, "body too large"), (422, "request the model cannot take"), (500, "model file failed its check"))}


def _json(status: int, obj, headers: dict | None = None) -> Response:
    return Response(json.dumps(obj, allow_nan=False, default=str), status_code=status,
                    media_type="application/json", headers=headers)


def _problem(status: int, message: str, headers: dict | None = None) -> Response:
    return _json(status, {"detail": one_line(message)}, headers)


# ---------------------------------------------------------------------- the guard (pure ASGI)

async def _send_problem(send, status: int, message: str, extra: list | None = None) -> None:
    body = json.dumps({"detail": one_line(message)}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(extra or [])]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Before FastAPI sees a request: the Host allow-list, the token, the body size."""

    def __init__(self, app, settings: Settings, token: str | None, max_body: int):
        self.app, self.settings, self.max_body = app, settings, max_body
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        inner = send

        async def send(message):  # Server-Timing: the time spent in the service (benchmarks read it)
            if message["type"] == "http.response.start":
                took = f"app;dur={(time.perf_counter() - t0) * 1000:.3f}".encode()
                message = {**message, "headers": [*message.get("headers", []), (b"server-timing", took)]}
            await inner(message)

        headers = dict(scope.get("headers") or [])
        reason = web_security.host_refusal(headers.get(b"host", b"").decode("latin-1"), self.settings)
        if reason:
            return await _send_problem(send, 400, reason)
        if self.expected is not None and scope["path"] != f"{API_PREFIX}/health":
            given = headers.get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                what = "wrong" if given else "missing"
                return await _send_problem(send, 401, f"{what} token: send the header 'Authorization: Bearer "
                                                      f"<token>' with the value of {TOKEN_VAR}",
                                           [(b"www-authenticate", b"Bearer")])
        too_large = (f"request body is over the {self.max_body / 2**20:g} MB limit: send fewer rows per "
                     f"request or raise {Limits.var('api_body_bytes')}")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.max_body:
                return await _send_problem(send, 413, too_large)
            return await self.app(scope, receive, send)
        if scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        # no declared length (chunked): read at most the limit, then replay it
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] != "http.request":
                return
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            more = msg.get("more_body", False)
            if size > self.max_body:
                return await _send_problem(send, 413, too_large)
        body, replayed = b"".join(chunks), False

        async def replay():  # the body once, then the connection's own messages (a disconnect)
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


# ---------------------------------------------------------------------- the app

def _validation_message(exc: RequestValidationError) -> str:
    err = exc.errors()[0]
    loc = [p for p in err.get("loc", ()) if p != "body"]
    if err.get("type") == "json_invalid":
        return "the body is not valid JSON: send {\"run_id\": ..., \"rows\": [{feature: number, ...}]}"
    if loc == ["rows"]:
        return ("rows must be a non-empty list of objects {feature: number or null}: send "
                "{\"run_id\": ..., \"rows\": [{feature: number, ...}]}")
    if len(loc) >= 3 and loc[0] == "rows":
        got = err.get("input")
        return (f"rows[{loc[1]}].{loc[2]} is {json.dumps(got, default=str)[:40]} ({type(got).__name__}): "
                "send a number, or null for a missing value")
    if err.get("type") == "extra_forbidden":
        return (f"unknown field {'.'.join(map(str, loc))}: the body takes run_id or symbol and label, "
                "and rows")
    if err.get("loc", ("",))[0] == "query":
        return (f"query parameter {'.'.join(map(str, loc[1:]))}: {err.get('msg')}; e.g. "
                f"{API_PREFIX}/signal?symbol=ES&label=rest_of_day&date=2018-03-01")
    where = ".".join(map(str, loc)) or "the body"
    return f"{where}: {err.get('msg')}; see {API_PREFIX}/openapi.json"


def create_api(host: str = "127.0.0.1", port: int = serving.DEFAULT_PORT, token: str | None = None,
               settings: Settings | None = None, write_status: bool = False):
    """The ASGI app of the service (FastAPI inside :class:`Guard`)."""
    settings = replace(settings or get_settings(), host=host, port=port)
    cache = serving.ModelCache(settings.home)

    @asynccontextmanager
    async def lifespan(_app):
        from ml.threads import limit_threads

        limit_threads()
        cache.warm()
        # what is loaded now (libraries, the warm models) lives as long as the process: out of the
        # collector's way, so a full collection does not walk it in the middle of a request
        gc.collect()
        gc.freeze()
        if write_status:
            serving.write_status(host, port, token is not None, settings.home)
        try:
            yield
        finally:
            if write_status:
                serving.clear_status(settings.home)

    api = FastAPI(title="Almanac ML Lab prediction service", version=serving.lab_version(),
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=None, redoc_url=None, lifespan=lifespan,
                  description="Predictions of the lab's registered runs and today's signal at the cutoff. "
                              "Every error is {\"detail\": \"<one line>\"}.")

    @api.exception_handler(RequestValidationError)
    async def invalid(_request, exc):
        return _problem(422, _validation_message(exc))

    @api.exception_handler(AlmanacError)
    async def refused(_request, exc: AlmanacError):
        status = 500 if isinstance(exc, ModelLoadError) else 404 if isinstance(exc, NotFoundError) else 422
        if status == 500:
            log.error("%s", exc.message)
        return _problem(status, exc.message)

    @api.exception_handler(Exception)
    async def failed(_request, exc: Exception):
        log.exception("request failed")
        return _problem(500, f"internal error ({type(exc).__name__}); see the service's log")

    @api.get(f"{API_PREFIX}/health", summary="Status, version, data home, number of active models")
    def health():
        return _json(200, {"status": "ok", "version": serving.lab_version(), "data_home": str(settings.home),
                           "active_models": len(cache.active()), "token_required": token is not None})

    @api.get(f"{API_PREFIX}/models", summary="The active model of each symbol and label", responses=ERRORS)
    def models():
        from almanac import registry

        out = []
        for entry in registry.active_runs(settings.home):
            try:
                run = registry.get_run(entry["run_id"], settings.home)
            except AlmanacError as exc:  # deleted meanwhile
                log.warning("%s", exc.message)
                continue
            out.append({**serving.describe_run(run), "active": True, "active_since": entry.get("set_at")})
        return _json(200, {"models": out})

    @api.get(f"{API_PREFIX}/models/{{run_id}}", summary="A run's model card", responses=ERRORS)
    def model(run_id: str):
        return _json(200, serving.card_of(run_id, settings.home))

    @api.post(f"{API_PREFIX}/predict", summary=f"Predict up to {PREDICT_MAX_ROWS} rows",
              responses={200: {"model": PredictResponse}, **ERRORS})
    async def predict(body: PredictRequest):
        return _json(200, serving.predict_rows(cache, body.model_dump(), PREDICT_MAX_ROWS, "predict"))

    @api.post(f"{API_PREFIX}/predict/batch", summary="Predict many rows (at most ALMANAC_MAX_API_ROWS)",
              responses={200: {"model": PredictResponse}, **ERRORS})
    async def predict_batch(body: PredictRequest):
        limit = settings.limits.api_rows
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, serving.predict_rows, cache, body.model_dump(), limit,
                                            "predict/batch")
        return _json(200, result)

    @api.get(f"{API_PREFIX}/signal", summary="The active model's signal for a day at its cutoff",
             responses=ERRORS)
    async def signal(symbol: Annotated[str, Query(max_length=32)],
                     label: Annotated[str | None, Query(max_length=64)] = None,
                     date: Annotated[str | None, Query(max_length=32, description="YYYY-MM-DD; default today")] = None):
        try:  # a day already built answers at once; building one reads bars, off the event loop
            result = day_signal.day_signal(cache, symbol, label, date, build=False)
        except day_signal.NotBuilt:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(None, day_signal.day_signal, cache, symbol, label, date)
        return _json(200, result)

    return Guard(api, settings, token, settings.limits.api_body_bytes)


def serve(host: str = "127.0.0.1", port: int = serving.DEFAULT_PORT, token: str | None = None) -> None:
    """Run the service with uvicorn until SIGINT / SIGTERM (after :func:`check_bind`). The
    socket is bound here first, so a port in use is one line, not a log."""
    import socket

    import uvicorn

    token = check_bind(host, token)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise AlmanacError(f"cannot bind {host}:{port} ({exc.strerror or exc}): choose another --port or "
                           "--host") from None
    app = create_api(host, port, token, write_status=True)
    print(f"serving {serving.base_url(host, port)}{API_PREFIX} (data home {get_settings().home}"
          f"{', token required' if token else ''}); Ctrl-C stops", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
