"""The FastAPI application: ``create_app(ServeConfig(...))``; run it with uvicorn."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from celebface import __version__
from celebface.gallery.store import StoreUnavailableError
from celebface.serve import schemas, videos
from celebface.serve.config import ServeConfig
from celebface.serve.metrics import Metrics
from celebface.serve.schemas import errors
from celebface.serve.service import (
    CODES,
    STORE_UNAVAILABLE,
    FaceService,
    RequestError,
    page_of,
)

log = logging.getLogger(__name__)

STATIC = Path(__file__).with_name("static")
#: The photo fields of each route, each with the names it may be sent under (the first is the
#: one documented first): multipart ``file`` (CompreFace) or ``image``.
PHOTO = ("file", "image")
PAIR = (("image1", "source_image"), ("image2", "target_image"))
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD = frozenset({"0.0.0.0", "::", ""})

# request parameters (module level: the routes' annotations are resolved here)
KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="APIKey",
                          description="an API key (recognize or admin scope)")
BEARER = HTTPBearer(auto_error=False, scheme_name="Bearer",
                    description="the same key as `Authorization: Bearer KEY`")
Key = Annotated[str | None, Security(KEY_HEADER)]
Auth = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
Count = Annotated[int, Query(ge=1, le=100, description="best people listed per face")]
Limit = Annotated[int, Query(ge=0, le=1000, description="only the largest N faces (0: all)")]
MinScore = Annotated[float, Query(ge=0, le=1, description="leave out faces the detector "
                                  "scores lower")]
Plugins = Annotated[str, Query(max_length=100, description="comma-separated face plugins: "
                               "age, gender, pose (CompreFace's names)")]
Page = Annotated[int, Query(ge=0, description="page, from 0")]
Size = Annotated[int, Query(ge=1, le=500, description="items a page")]
Search = Annotated[str, Query(max_length=200, description="only people whose name holds this "
                              "(any case)")]


def checked_plugins(text: str) -> tuple[str, ...]:
    """``face_plugins`` checked (an unknown name: 400 naming the choices)."""
    from celebface.attributes import check_plugins
    from celebface.errors import InputError

    try:
        return check_plugins(text)
    except InputError as exc:
        raise RequestError(str(exc), 400, "bad_parameter") from None


def photo_body(*groups: Sequence[str], many: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of a route reading photos: multipart, raw or base64 JSON."""
    binary = {"type": "string", "format": "binary"}
    b64 = {"type": "string", "description": "base64 (a data: URL prefix is allowed)"}
    one = (lambda s: {"type": "array", "items": s}) if many else (lambda s: s)
    content = {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            n: one(binary) for g in groups for n in g}}},
        "application/json": {"schema": {"type": "object", "properties": {
            n: one(b64) for g in groups for n in g}}},
    }
    if len(groups) == 1:
        content["application/octet-stream"] = {"schema": binary}
    return {"content": content, "required": True}


def _error(status: int, detail: str, code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
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
            from urllib.parse import parse_qs

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


def _b64(text: Any, label: str) -> bytes:
    if not isinstance(text, str):
        raise RequestError(f"{label}: expected a base64 string", code="bad_base64")
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:  # base64 wrapped at 76 columns (MIME, `base64` without -w0): line breaks are not data
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{label}: not valid base64", code="bad_base64") from None


async def read_photos(request: Request, *groups: Sequence[str], many: bool = False,
                      limit: int = 1) -> list[list[tuple[str, bytes]]]:
    """``(label, bytes)`` of the photos of each field group (a field and its other names; one
    photo each unless ``many``): multipart files, base64 strings in a JSON object, or, for one
    group, the raw body. A multipart photo's label is its file name."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    names = " or ".join(repr(g[0]) for g in groups)
    out = []
    if ctype == "multipart/form-data":
        async with request.form(max_files=limit + len(groups),
                                max_fields=limit + 8) as form:
            for group in groups:
                field = next((f for f in group if form.getlist(f)), None)
                if field is None:
                    raise RequestError(f"no multipart field {' or '.join(map(repr, group))}",
                                       code="missing_field")
                items = form.getlist(field)
                if len(items) > 1 and not many:
                    raise RequestError(f"one photo in {field!r}, not {len(items)}",
                                       code="too_many_photos")
                got = []
                for i, item in enumerate(items):
                    if isinstance(item, str):
                        raise RequestError(f"{field!r} must be a file, not a text field",
                                           code="missing_field")
                    label = item.filename or (field if len(items) == 1 else f"{field} #{i + 1}")
                    got.append((label, await item.read()))
                out.append(got)
        return out
    if ctype == "application/json":
        try:
            body = json.loads(await request.body())
        except (ValueError, UnicodeDecodeError):
            raise RequestError("the JSON body is not valid JSON", code="bad_json") from None
        except RecursionError:
            raise RequestError("the JSON body is nested too deeply", code="bad_json") from None
        if not isinstance(body, dict):
            raise RequestError(f"send a JSON object with {names}", code="bad_json")
        for group in groups:
            field = next((f for f in group if f in body), None)
            if field is None:
                raise RequestError(f"no JSON field {' or '.join(map(repr, group))}",
                                   code="missing_field")
            value = body[field]
            if isinstance(value, list):
                if not many and len(value) != 1:
                    raise RequestError(f"one photo in {field!r}, not {len(value)}",
                                       code="too_many_photos")
                out.append([(f"{field} #{i + 1}", _b64(v, f"{field} #{i + 1}"))
                            for i, v in enumerate(value)])
            else:
                out.append([(field, _b64(value, field))])
        return out
    if len(groups) != 1:
        raise RequestError(f"send multipart/form-data or JSON with the fields {names}",
                           415, "unsupported_media_type")
    # anything else is the photo itself (curl --data-binary sends it as a form's type); the
    # decoder judges the bytes, never the content type
    return [[(request.headers.get("x-filename") or "image", await request.body())]]


def create_app(config: ServeConfig, models: tuple[Any, Any] | None = None) -> FastAPI:
    """The application. Models are loaded (or ``models``, an ``(embedder, detector)`` pair, are
    used) when it starts; the worker pool is drained when it stops."""
    service = FaceService(config, models)
    metrics = Metrics()
    keys = config.keys()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            service.close()
            log.info("stopped: requests in flight finished")

    app = FastAPI(title="celebface", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Find and name faces in photos; manage the gallery of people. "
                  "Errors are JSON: `detail` (one line) and `code` (stable). With keys on, "
                  "send one as `X-API-Key` or `Authorization: Bearer` (the Authorize button).")
    app.state.service, app.state.metrics = service, metrics
    app.add_middleware(Guard, config=config, metrics=metrics)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST", "PATCH", "DELETE"],
                           allow_headers=["X-API-Key", "Authorization", "Content-Type"])

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> JSONResponse:
        return _error(exc.status, str(exc), exc.code, exc.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), None, exc.headers)

    @app.exception_handler(StoreUnavailableError)
    async def store_unavailable(request: Request, exc: StoreUnavailableError) -> JSONResponse:
        log.error("%s", exc)  # the reason names the database: for the log, not the client
        return _error(503, STORE_UNAVAILABLE, "store_unavailable", {"Retry-After": "5"})

    @app.exception_handler(RecursionError)
    async def too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return _error(400, "the request is nested too deeply", "bad_request")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        # a JSON reply (never a plain-text 500); the traceback goes to the server's log
        log.error("%s %s failed", request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return _error(500, "internal error (the server's log has the details)",
                      "internal_error")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "bad_parameter")

    def scope_of(key: str | None, auth: HTTPAuthorizationCredentials | None) -> str | None:
        """The scope of the key sent (None: none sent or unknown); checked in constant time."""
        got = key or (auth.credentials if auth else "")
        found = None
        for known, scope in keys.items():
            if hmac.compare_digest(got.encode(), known.encode()):
                found = scope
        return found

    def needs(scope: str) -> Any:
        async def check(key: Key = None, auth: Auth = None) -> None:
            if not keys:
                return
            got = scope_of(key, auth)
            if got is None:
                raise RequestError("missing or wrong API key (send the header X-API-Key, or "
                                   "Authorization: Bearer KEY)", 401, "unauthorized",
                                   {"WWW-Authenticate": "Bearer"})
            if scope == "admin" and got != "admin":
                raise RequestError("this key may recognise faces but not edit the gallery "
                                   "(an admin key may)", 403, "forbidden")
        return Depends(check)

    read, admin = needs("recognize"), needs("admin")
    v1 = APIRouter(prefix="/v1")
    photo_errors = errors(400, 401, 403, 413, 415, 503)

    @v1.post("/recognize", response_model=schemas.RecognizeOut, summary="Name every face",
             dependencies=[read], responses=photo_errors,
             openapi_extra={"requestBody": photo_body(PHOTO)})
    async def recognize(request: Request, prediction_count: Count = 1, limit: Limit = 0,
                        det_prob_threshold: MinScore = 0.0,
                        face_plugins: Plugins = "") -> dict[str, Any]:
        """Every face of a photo (multipart field `file` or `image`, base64 JSON, or the raw
        body): box, landmarks, identity or `unknown` (below the gallery's threshold), the name
        to show, similarity, runner-up and the best `prediction_count` people; with
        `face_plugins`, its age, gender and head pose."""
        plugins = checked_plugins(face_plugins)
        [[(label, data)]] = await read_photos(request, PHOTO)
        return await service.run(service.recognize, data, label, prediction_count, limit,
                                 det_prob_threshold, plugins)

    @v1.post("/detect", response_model=schemas.DetectOut, response_model_exclude_none=True,
             summary="Find faces (no names)",
             dependencies=[read], responses=photo_errors,
             openapi_extra={"requestBody": photo_body(PHOTO)})
    async def detect(request: Request, limit: Limit = 0,
                     det_prob_threshold: MinScore = 0.0,
                     face_plugins: Plugins = "") -> dict[str, Any]:
        """Every face of a photo: box, landmarks and detector score (the detection
        `/v1/recognize` runs); with `face_plugins`, its age, gender and head pose."""
        plugins = checked_plugins(face_plugins)
        [[(label, data)]] = await read_photos(request, PHOTO)
        return await service.run(service.detect, data, label, limit, det_prob_threshold,
                                 plugins)

    @v1.post("/embed", response_model=schemas.EmbedOut, response_model_exclude_none=True,
             summary="Face embeddings",
             dependencies=[read], responses=photo_errors,
             openapi_extra={"requestBody": photo_body(PHOTO)})
    async def embed(request: Request, limit: Limit = 0,
                    det_prob_threshold: MinScore = 0.0) -> dict[str, Any]:
        """Every face of a photo with its unit-length embedding from the gallery's embedder
        (deepface's `represent`)."""
        [[(label, data)]] = await read_photos(request, PHOTO)
        return await service.run(service.embed, data, label, limit, det_prob_threshold)

    @v1.post("/verify", response_model=schemas.VerifyOut, summary="Same person?",
             dependencies=[read], responses=errors(400, 401, 403, 409, 413, 415, 503),
             openapi_extra={"requestBody": photo_body(*PAIR)})
    async def verify(request: Request, crop: Annotated[bool, Query(
            description="the photos are face crops: one without a detected face is compared "
                        "whole (else it is a 400 `no_face`)")] = False) -> dict[str, Any]:
        """Whether the largest faces of two photos (fields `image1` and `image2`, or
        `source_image` and `target_image`; multipart or base64 JSON) are the same person:
        their cosine similarity against the gallery's calibrated `knn` threshold, else the
        embedder's measured pair threshold (1% false accepts)."""
        [[(_, first)], [(_, second)]] = await read_photos(request, *PAIR)
        return await service.run(service.verify, first, second, crop)

    @v1.get("/people", response_model=schemas.PeopleOut, summary="Everyone enrolled",
            dependencies=[read], responses=errors(400, 401, 403))
    async def people(page: Page = 0, size: Size = 100, q: Search = "") -> dict[str, Any]:
        """Everyone enrolled (key, name to show, photo count), a page at a time; `q` keeps
        those whose key or shown name holds it."""
        paged = page_of(await service.run(service.people, q), page, size)  # a fresh gallery
        return {"people": paged.pop("items"), **paged, **service.status()}

    @v1.post("/people/{name}/photos", response_model=schemas.EnrollOut, summary="Enrol photos",
             dependencies=[admin], responses=errors(400, 401, 403, 409, 413, 415, 503),
             openapi_extra={"requestBody": photo_body(PHOTO, many=True)})
    async def add_photos(name: str, request: Request) -> dict[str, Any]:
        """Add the largest face of each photo (multipart field `file` or `image`, repeatable;
        a JSON list of base64 strings; or one photo as the raw body) to `name`, a new or
        enrolled person."""
        service.valid_name(name)  # refuse a bad name before reading the photos
        [photos] = await read_photos(request, PHOTO, many=True, limit=config.max_photos)
        return await service.run(service.enroll, name, photos)

    @v1.get("/people/{name}/photos", response_model=schemas.PhotosOut,
            summary="A person's photos", dependencies=[read], responses=errors(400, 401, 403,
                                                                                 404))
    async def list_photos(name: str, page: Page = 0, size: Size = 50) -> dict[str, Any]:
        """One page of `name`'s enrolled photos: id, source file name, thumbnail address."""
        return await service.run(service.photos, name, page, size)

    @v1.delete("/people/{name}/photos/{photo}", response_model=schemas.RemovePhotoOut,
               summary="Remove one photo", dependencies=[admin],
               responses=errors(400, 401, 403, 404, 409, 503))
    async def remove_photo(name: str, photo: str) -> dict[str, Any]:
        """Remove photo `photo` (an id from the photo list) of `name`; the person goes with
        their last photo."""
        return await service.run(service.remove_photo, name, photo)

    @v1.get("/people/{name}/photos/{photo}/thumbnail", summary="A small photo of one face",
            dependencies=[read], responses={200: {"content": {"image/jpeg": {}}},
                                            **errors(400, 401, 403, 404, 503)})
    async def photo_thumbnail(name: str, photo: str) -> Response:
        jpeg = await service.run(service.photo_thumbnail, name, photo)
        if jpeg is None:
            raise RequestError(f"{name!r}: photo {photo} cannot be shown (its file is gone)",
                               404, "no_picture")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    @v1.patch("/people/{name}", response_model=schemas.RenameOut, summary="Rename or merge",
              dependencies=[admin], responses=errors(400, 401, 403, 404, 409, 503))
    async def rename(name: str, change: schemas.RenameIn) -> dict[str, Any]:
        """Rename `name` to `change.name`; when that person is enrolled already, 409 unless
        `merge` is true, which moves every photo of `name` to them."""
        return await service.run(service.rename, name, change.name, change.merge)

    @v1.post("/people", response_model=schemas.Person, status_code=201,
             summary="Add a person without photos", dependencies=[admin],
             responses=errors(400, 401, 403, 409, 503))
    async def add_person(body: schemas.PersonIn) -> dict[str, Any]:
        """Add a person with no photo yet (CompreFace's subject): listed with 0 photos, never
        matched until photos are added to them."""
        return await service.run(service.add_person, body.name)

    @v1.delete("/people", response_model=schemas.RemoveAllOut, summary="Remove everyone",
               dependencies=[admin], responses=errors(400, 401, 403, 409, 503))
    async def remove_all() -> dict[str, Any]:
        """Delete every person and photo (CompreFace's "delete all subjects")."""
        return await service.run(service.remove_all)

    @v1.get("/photos", response_model=schemas.AllPhotosOut, summary="Every enrolled photo",
            dependencies=[read], responses=errors(400, 401, 403))
    async def all_photos(page: Page = 0, size: Size = 50) -> dict[str, Any]:
        """One page of every enrolled photo: id, source name, person, thumbnail address."""
        return await service.run(service.all_photos, page, size)

    @v1.post("/photos/delete", response_model=schemas.RemovePhotosOut,
             summary="Remove several photos", dependencies=[admin],
             responses=errors(400, 401, 403, 409, 503))
    async def remove_photos(body: schemas.PhotoIdsIn) -> dict[str, Any]:
        """Remove the photos with these ids, whoever they belong to (a person goes with their
        last photo); ids that are not in the gallery are listed in `missing`."""
        return await service.run(service.remove_photos, body.ids)

    @v1.post("/photos/{photo}/verify", response_model=schemas.VerifyPhotoOut,
             summary="Same person as a stored photo?", dependencies=[read],
             responses=errors(400, 401, 403, 404, 409, 413, 415, 503),
             openapi_extra={"requestBody": photo_body(PHOTO)})
    async def verify_photo(photo: str, request: Request) -> dict[str, Any]:
        """Whether the largest face of a photo (as `/v1/recognize` reads it) is the person
        of enrolled photo `photo` (an id), against the same threshold as `/v1/verify`."""
        [[(label, data)]] = await read_photos(request, PHOTO)
        return await service.run(service.verify_photo, photo, data, label)

    @v1.post("/recognize/embeddings", response_model=schemas.RecognizeEmbeddingsOut,
             summary="Name embeddings", dependencies=[read],
             responses=errors(400, 401, 403, 409, 503))
    async def recognize_embeddings(body: schemas.EmbeddingsIn) -> dict[str, Any]:
        """Name face embeddings made by the gallery's embedder (e.g. by `/v1/embed`), as
        `/v1/recognize` names faces."""
        return await service.run(service.recognize_embeddings, body.embeddings,
                                 body.prediction_count)

    @v1.delete("/people/{name}", response_model=schemas.RemoveOut, summary="Remove a person",
               dependencies=[admin], responses=errors(400, 401, 403, 404, 409, 503))
    async def remove(name: str) -> dict[str, Any]:
        return await service.run(service.remove, name)

    @v1.get("/people/{name}/thumbnail", summary="A small photo of a person's face",
            dependencies=[read], responses={200: {"content": {"image/jpeg": {}}},
                                            **errors(400, 401, 403, 404, 503)})
    async def thumbnail(name: str) -> Response:
        jpeg = await service.run(service.thumbnail, name)
        if jpeg is None:
            raise RequestError(f"{name!r}: no photo to show", 404, "no_picture")
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    app.include_router(v1)
    app.include_router(videos.router(service, read))

    @app.get("/health", response_model=schemas.HealthOut, response_model_exclude_none=True,
             summary="Liveness; gallery size and threshold with a key",
             responses=errors(400))
    async def health(key: Key = None, auth: Auth = None) -> dict[str, Any]:
        """`{"status": "ok"}`; the gallery's size and threshold too when keys are off or a
        valid key is sent."""
        scope = scope_of(key, auth) if keys else "admin"
        if scope is None:
            return {"status": "ok"}
        return {"status": "ok", "scope": scope, **service.status()}

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics",
             dependencies=[read], responses=errors(400, 401))
    async def prometheus() -> str:
        s = service.status()
        return metrics.render({"gallery_identities": s["identities"],
                               "gallery_embeddings": s["embeddings"], "workers": s["workers"]})

    _docs(app)

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) with its files served from the installed ``fastapi-offline``
    package (no network needed; there is no ``/redoc``: ReDoc fetches its logo from a CDN),
    and an OpenAPI document without the 422 FastAPI adds by default (this API answers bad
    parameters with 400)."""
    from importlib.resources import files

    assets = Path(str(files("fastapi_offline") / "static"))
    app.mount("/docs-static", StaticFiles(directory=assets), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="celebface API",
                                   swagger_js_url="/docs-static/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-static/swagger-ui.css",
                                   swagger_favicon_url="/docs-static/favicon.png")

    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = plain()
            for path in schema.get("paths", {}).values():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
