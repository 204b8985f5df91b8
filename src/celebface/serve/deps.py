"""What every route shares: the service and metrics of the application (``Depends``), the API
key check by scope, the query parameters, and reading the photos of a request.

The routes (:mod:`celebface.serve.routes`) never close over the application: they get its
:class:`~celebface.serve.service.FaceService` from ``request.app.state`` through
:func:`get_service`, so one router serves any application :func:`~celebface.serve.app.
create_app` builds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from celebface.attributes import check_plugins
from celebface.errors import InputError
from celebface.serve.metrics import Metrics
from celebface.serve.service import FaceService, RequestError

#: The photo fields of each route, each with the names it may be sent under (the first is the
#: one documented first): multipart ``file`` (CompreFace) or ``image``.
PHOTO = ("file", "image")
PAIR = (("image1", "source_image"), ("image2", "target_image"))

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


def get_service(request: Request) -> FaceService:
    """The application's service (``app.state.service``)."""
    service: FaceService = request.app.state.service
    return service


def get_metrics(request: Request) -> Metrics:
    """The application's request metrics (``app.state.metrics``)."""
    metrics: Metrics = request.app.state.metrics
    return metrics


Service = Annotated[FaceService, Depends(get_service)]


def scope_of(request: Request, key: str | None, auth: HTTPAuthorizationCredentials | None
             ) -> str | None:
    """The scope of the key sent (None: none sent or unknown); checked in constant time."""
    got = key or (auth.credentials if auth else "")
    found = None
    for known, scope in request.app.state.keys.items():
        if hmac.compare_digest(got.encode(), known.encode()):
            found = scope
    return found


def needs(scope: str) -> Any:
    """A ``Depends`` that lets a request through with a key of ``scope`` (``recognize`` or
    ``admin``; an admin key may do all), or when keys are off."""
    async def check(request: Request, key: Key = None, auth: Auth = None) -> None:
        if not request.app.state.keys:
            return
        got = scope_of(request, key, auth)
        if got is None:
            raise RequestError("missing or wrong API key (send the header X-API-Key, or "
                               "Authorization: Bearer KEY)", 401, "unauthorized",
                               {"WWW-Authenticate": "Bearer"})
        if scope == "admin" and got != "admin":
            raise RequestError("this key may recognise faces but not edit the gallery "
                               "(an admin key may)", 403, "forbidden")
    return Depends(check)


READ, ADMIN = needs("recognize"), needs("admin")


def checked_plugins(text: str) -> tuple[str, ...]:
    """``face_plugins`` checked (an unknown name: 400 naming the choices)."""

    try:
        return check_plugins(text)
    except InputError as exc:
        raise RequestError(str(exc), 400, "bad_parameter") from None


def photo_body(*groups: Sequence[str], many: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of a route reading photos: multipart, raw or base64 JSON."""
    binary = {"type": "string", "format": "binary"}
    b64 = {"type": "string", "description": "base64 (a data: URL prefix is allowed)"}
    one = (lambda s: {"type": "array", "items": s}) if many else (lambda s: s)
    content: dict[str, Any] = {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            n: one(binary) for g in groups for n in g}}},
        "application/json": {"schema": {"type": "object", "properties": {
            n: one(b64) for g in groups for n in g}}},
    }
    if len(groups) == 1:
        content["application/octet-stream"] = {"schema": binary}
    return {"content": content, "required": True}


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
    if ctype == "multipart/form-data":
        return await _multipart_photos(request, groups, many, limit)
    if ctype == "application/json":
        return await _json_photos(request, groups, many)
    if len(groups) != 1:
        names = " or ".join(repr(g[0]) for g in groups)
        raise RequestError(f"send multipart/form-data or JSON with the fields {names}",
                           415, "unsupported_media_type")
    # anything else is the photo itself (curl --data-binary sends it as a form's type); the
    # decoder judges the bytes, never the content type
    return [[(request.headers.get("x-filename") or "image", await request.body())]]


async def _multipart_photos(request: Request, groups: Sequence[Sequence[str]], many: bool,
                            limit: int) -> list[list[tuple[str, bytes]]]:
    out = []
    async with request.form(max_files=limit + len(groups), max_fields=limit + 8) as form:
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


async def _json_photos(request: Request, groups: Sequence[Sequence[str]], many: bool
                       ) -> list[list[tuple[str, bytes]]]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise RequestError("the JSON body is not valid JSON", code="bad_json") from None
    except RecursionError:
        raise RequestError("the JSON body is nested too deeply", code="bad_json") from None
    if not isinstance(body, dict):
        names = " or ".join(repr(g[0]) for g in groups)
        raise RequestError(f"send a JSON object with {names}", code="bad_json")
    out = []
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
