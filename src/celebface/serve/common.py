"""What the service's parts share: the error a client gets (:class:`RequestError`, with the
stable ``code`` of each status) and how people's names and pages of items are shown."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from celebface.errors import CelebfaceError

T = TypeVar("T")

#: What a client is told when the gallery's store cannot be reached (the reason, which may
#: name the database's host, user and port, goes to the server's log only).
STORE_UNAVAILABLE = "the gallery store is unavailable"

#: The stable ``code`` of an error reply by HTTP status, when the error names none itself.
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         409: "conflict", 413: "too_large", 415: "unsupported_media_type", 503: "busy"}


class RequestError(CelebfaceError, ValueError):
    """Bad input from a client: ``status`` is the HTTP status, ``str()`` the one-line reason,
    ``code`` a stable machine-readable name (:data:`CODES` by default), ``headers`` extra
    response headers."""

    def __init__(self, message: str, status: int = 400, code: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or CODES.get(status, "error")
        self.headers = headers


def display_name(name: str) -> str:
    """How the page shows a person's key: ``jerry_seinfeld`` -> ``Jerry Seinfeld``; a name
    with capitals or other characters is shown as it is (spaces for underscores)."""
    text = name.replace("_", " ").strip() or name
    return text.title() if text == text.lower() else text


def page_of(items: Sequence[T], page: int, size: int) -> dict[str, Any]:
    """One page (from 0) of ``items``: the page's items and the paging numbers."""
    start = page * size
    return {"items": list(items[start : start + size]), "page": page, "size": size,
            "total": len(items), "pages": max(1, math.ceil(len(items) / size))}
