"""The FastAPI application: ``create_app(ServeConfig(...))``; run it with uvicorn."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from celebface import __version__
from celebface.gallery.store import StoreUnavailableError
from celebface.serve import videos
from celebface.serve.config import ServeConfig
from celebface.serve.metrics import Metrics
from celebface.serve.routes import gallery, inference, system
from celebface.serve.service import CODES, STORE_UNAVAILABLE, FaceService, RequestError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})

def _error(status: int, detail: str, code: str | None = None,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code or CODES.get(status, "error")},
                        status_code=status, headers=headers)


def allowed_hosts(config: ServeConfig) -> frozenset[str] | None:
    """The ``Host`` names the server answers to (None: any): the bound address, the loopback
    names and ``allowed_hosts``; any for a wildcard address unless ``allowed_hosts`` says."""
    extra = frozenset(h.lower().strip("[]") for h in config.allowed_hosts)
    if "*" in extra:
        return None
    if config.host in WILDCARD:
        return (extra | LOOPBACK) if extra else None
    return extra | LOOPBACK | {config.host.lower().strip("[]")}


def host_name(host: str) -> str:
    """``example.com:8000`` -> ``example.com``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def refusal(config: ServeConfig, hosts: frozenset[str] | None, method: str,
            headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
    """Why a request must be refused before it is read, or None: a ``Host`` the server does
    not answer to (DNS rebinding), or a write sent by another site's page (its ``Origin`` is
    neither this server nor one of ``cors_origins``)."""
    host = headers.get(b"host", b"").decode("latin-1")
    if hosts is not None and host_name(host) not in hosts:
        return 400, f"this server does not answer to Host {host!r} (allow it with " \
                    "--allowed-host)", "bad_host"
    if method not in WRITES:
        return None
    origin = headers.get(b"origin", b"").decode("latin-1")
    if not origin:
        if headers.get(b"sec-fetch-site", b"") == b"cross-site":
            return 403, "writes from other sites' pages are refused", "cross_origin"
        return None
    if origin in config.cors_origins or "*" in config.cors_origins:
        return None
    if origin != "null" and urlsplit(origin).netloc.lower() == host.lower():
        return None
    return 403, f"writes from pages of {origin} are refused (allow it with --cors-origin)", \
        "cross_origin"


class Guard:
    """ASGI middleware: requests to a ``Host`` the server does not answer to get 400, writes
    from other sites' pages 403 (:func:`refusal`); request bodies over ``max_body_mb`` (a
    video upload: ``max_video_mb``, :meth:`limit_for`) get 413 (by their Content-Length, or
    while they stream in); every request is counted in ``metrics``."""

    def __init__(self, app: ASGIApp, config: ServeConfig, metrics: Metrics):
        self.app, self.config, self.metrics = app, config, metrics
        self.limit = config.max_body_bytes
        self.hosts = allowed_hosts(config)

    def limit_for(self, scope: Scope) -> tuple[int, str]:
        """The body limit of a request and the message when it is over it (a video upload's
        names the user's file)."""
        if scope["method"] == "POST" and scope["path"] == "/v1/videos":

            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            name = query.get("filename", ["the video"])[0]
            mb = self.config.max_video_mb
            return self.config.max_video_bytes, f"{name}: larger than {mb:g} MB (--max-video-mb)"
        return self.limit, f"request body larger than {self.limit:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        limit, too_big = self.limit_for(scope)

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:
                raise RequestError(too_big, 413, "body_too_large")
            return message

        self.metrics.in_flight += 1
        try:
            headers = dict(scope["headers"])
            refused = refusal(self.config, self.hosts, scope["method"], headers)
            length = headers.get(b"content-length", b"")
            if refused is not None:
                await _error(*refused)(scope, receive, counting_send)
            elif length.isdigit() and int(length) > limit:
                await _error(413, too_big, "body_too_large")(scope, receive, counting_send)
            else:
                await self.app(scope, limited_receive, counting_send)
        finally:
            self.metrics.in_flight -= 1
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe(scope["method"], route or "other", status,
                                 time.perf_counter() - start)


async def _request_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestError)
    return _error(exc.status, str(exc), exc.code, exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, str(exc.detail), None, exc.headers)


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s", exc)  # the reason names the database: for the log, not the client
    return _error(503, STORE_UNAVAILABLE, "store_unavailable", {"Retry-After": "5"})


async def _too_deep(request: Request, exc: Exception) -> JSONResponse:
    return _error(400, "the request is nested too deeply", "bad_request")


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    # a JSON reply (never a plain-text 500); the traceback goes to the server's log
    log.error("%s %s failed", request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    return _error(500, "internal error (the server's log has the details)", "internal_error")


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "bad_parameter")


Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]
#: Every error as JSON (``detail`` and ``code``), by the exception it comes from.
ERROR_HANDLERS: dict[int | type[Exception], Handler] = {
    RequestError: _request_error, HTTPException: _http_error,
    StoreUnavailableError: _store_unavailable, RecursionError: _too_deep,
    Exception: _internal, RequestValidationError: _validation_error,
}


def create_app(config: ServeConfig, models: tuple[Any, Any] | None = None) -> FastAPI:
    """The application. Models are loaded (or ``models``, an ``(embedder, detector)`` pair, are
    used) when it starts; the worker pool is drained when it stops. The routes
    (:mod:`celebface.serve.routes`, :mod:`celebface.serve.videos`) find the service, metrics,
    keys and video jobs in ``app.state``."""
    service = FaceService(config, models)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()
            log.info("stopped: requests in flight finished")

    app = FastAPI(title="celebface", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, exception_handlers=ERROR_HANDLERS,
                  description="Find and name faces in photos; manage the gallery of people. "
                  "Errors are JSON: `detail` (one line) and `code` (stable). With keys on, "
                  "send one as `X-API-Key` or `Authorization: Bearer` (the Authorize button).")
    app.state.service, app.state.metrics, app.state.keys = service, Metrics(), config.keys()
    app.state.videos = videos.VideoJobs(service)
    app.add_middleware(Guard, config=config, metrics=app.state.metrics)
    if config.cors_origins:

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])
    for router in (inference.router, gallery.router, videos.router, system.router):
        app.include_router(router)
    system.add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
