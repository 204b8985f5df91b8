"""The FastAPI application: ``create_app(ServeConfig(...))``; run it with uvicorn."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from celebface import __version__
from celebface.serve import schemas, videos
from celebface.serve.config import ServeConfig
from celebface.serve.metrics import Metrics
from celebface.serve.service import FaceService, RequestError

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
IMAGE_BODY = {"content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary"}}, "required": ["image"]}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}, "required": True}


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


class Guard:
    """ASGI middleware: request bodies over ``limit`` bytes get 413 (by their Content-Length,
    or while they stream in), and every request is counted in ``metrics``."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Metrics):
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500
        too_big = f"request body larger than {self.limit:,} bytes"

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
            if received > self.limit:
                raise HTTPException(413, too_big)
            return message

        self.metrics.in_flight += 1
        try:
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                await _error(413, too_big)(scope, receive, counting_send)
            else:
                await self.app(scope, limited_receive, counting_send)
        finally:
            self.metrics.in_flight -= 1
            route = getattr(scope.get("route"), "path", None)
            self.metrics.observe(scope["method"], route or "other", status,
                                 time.perf_counter() - start)


async def read_photos(request: Request, *fields: str, many: bool = False, limit: int = 1
                      ) -> list[list[tuple[str, bytes]]]:
    """``(label, bytes)`` of the photos in each multipart field of ``fields`` (one each unless
    ``many``), or the raw body as the one ``image``."""
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        if fields != ("image",):
            raise RequestError("send multipart/form-data with the file fields "
                               + ", ".join(repr(f) for f in fields))
        return [[("image", await request.body())]]
    out = []
    async with request.form(max_files=limit + len(fields), max_fields=limit + 8) as form:
        for field in fields:
            items = form.getlist(field)
            if not items:
                raise RequestError(f"no multipart field {field!r}")
            if len(items) > 1 and not many:
                raise RequestError(f"one photo in {field!r}, not {len(items)}")
            got = []
            for i, item in enumerate(items):
                if isinstance(item, str):
                    raise RequestError(f"{field!r} must be a file, not a text field")
                got.append((field if len(items) == 1 else f"{field} #{i + 1}", await item.read()))
            out.append(got)
    return out


def create_app(config: ServeConfig, models: tuple[Any, Any] | None = None) -> FastAPI:
    """The application. Models are loaded (or ``models``, an ``(embedder, detector)`` pair, are
    used) when it starts; the worker pool is drained when it stops."""
    service = FaceService(config, models)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()
            log.info("stopped: requests in flight finished")

    app = FastAPI(title="celebface", version=__version__, lifespan=lifespan,
                  description="Find and name faces in photos; manage the gallery of people.")
    app.state.service, app.state.metrics = service, metrics
    app.add_middleware(Guard, limit=config.max_body_bytes, metrics=metrics)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    def require_key(request: Request) -> None:
        if not config.api_key:
            return
        got = request.headers.get("x-api-key", "")
        auth = request.headers.get("authorization", "")
        if not got and auth[:7].lower() == "bearer ":
            got = auth[7:].strip()
        if not hmac.compare_digest(got.encode(), config.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key (send the header X-API-Key, or "
                                "Authorization: Bearer KEY)",
                                headers={"WWW-Authenticate": "Bearer"})

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])

    @v1.post("/recognize", response_model=schemas.RecognizeOut, summary="Name every face",
             openapi_extra={"requestBody": IMAGE_BODY})
    async def recognize(request: Request) -> dict[str, Any]:
        """Every face of a photo (multipart field `image`, or the raw body): box, landmarks,
        identity or `unknown` (below the gallery's threshold), similarity and runner-up."""
        [[(_, data)]] = await read_photos(request, "image")
        return await service.run(service.recognize, data)

    two = {"schema": {"type": "object", "required": ["image1", "image2"], "properties": {
        k: {"type": "string", "format": "binary"} for k in ("image1", "image2")}}}

    @v1.post("/verify", response_model=schemas.VerifyOut, summary="Same person?",
             openapi_extra={"requestBody": {"content": {"multipart/form-data": two},
                                            "required": True}})
    async def verify(request: Request) -> dict[str, Any]:
        """Whether the largest faces of two photos (multipart fields `image1`, `image2`) are
        the same person: their cosine similarity against the gallery's calibrated `knn`
        threshold, else the embedder's measured pair threshold (1% false accepts)."""
        [[(_, first)], [(_, second)]] = await read_photos(request, "image1", "image2")
        return await service.run(service.verify, first, second)

    @v1.get("/people", response_model=schemas.PeopleOut, summary="Everyone enrolled")
    async def people() -> dict[str, Any]:
        return {"people": service.people(), **service.status()}

    @v1.post("/people/{name}/photos", response_model=schemas.EnrollOut, summary="Enrol photos",
             openapi_extra={"requestBody": IMAGE_BODY})
    async def add_photos(name: str, request: Request) -> dict[str, Any]:
        """Add the largest face of each photo (multipart field `image`, repeatable; or one
        photo as the raw body) to `name`, a new or enrolled person."""
        service.valid_name(name)  # refuse a bad name before reading the photos
        [photos] = await read_photos(request, "image", many=True, limit=config.max_photos)
        return await service.run(service.enroll, name, photos)

    @v1.delete("/people/{name}", response_model=schemas.RemoveOut, summary="Remove a person")
    async def remove(name: str) -> dict[str, Any]:
        return await service.run(service.remove, name)

    @v1.get("/people/{name}/thumbnail", summary="A small photo of a person's face",
            responses={200: {"content": {"image/jpeg": {}}}, 404: {}})
    async def thumbnail(name: str) -> Response:
        jpeg = await service.run(service.thumbnail, name)
        if jpeg is None:
            raise RequestError(f"{name!r}: no photo to show", 404)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    app.include_router(v1)
    app.include_router(videos.router(service, require_key))

    @app.get("/health", response_model=schemas.HealthOut, summary="Liveness and gallery size")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **service.status()}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    async def prometheus() -> str:
        s = service.status()
        return metrics.render({"gallery_identities": s["identities"],
                               "gallery_embeddings": s["embeddings"], "workers": s["workers"]})

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
