"""Settings of ``celebface serve`` and the rules for names that come over HTTP."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from celebface import validate
from celebface.errors import CelebfaceError
from celebface.gallery.matching import DEFAULT_MATCH
from celebface.types import UNKNOWN

#: The environment variable ``celebface serve`` reads the API key from when no flag gives one.
API_KEY_ENV = "CELEBFACE_API_KEY"
MAX_NAME_LENGTH = 64


class InvalidNameError(CelebfaceError, ValueError):
    """A person's name that cannot be used; the message says why."""


def default_workers() -> int:
    """Inference threads: one per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class ServeConfig:
    """How the server runs.

    ``gallery``: the gallery folder (created on the first enrolment when it does not exist).
    ``model``: name faces with a trained classifier instead (gallery edits are then refused).
    ``api_key``: when set, every ``/v1`` call must send it (``X-API-Key`` or
    ``Authorization: Bearer``). ``max_body_mb``: larger request bodies get 413.
    ``max_side``: uploads are decoded shrunk to this longer side (boxes are still reported in
    the upload's pixels). ``workers``: inference threads (default: the cores);
    ``torch_threads``: torch's thread count, set at start-up (0: leave it as it is;
    ``celebface serve`` passes cores // workers).
    ``cors_origins``: origins allowed to call the API from other pages (none by default).
    ``store``: a gallery store to use instead of the ``gallery`` folder (a ``postgresql://``
    URL: one gallery shared by several servers).
    """

    gallery: Path = Path("gallery")
    model: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    max_body_mb: float = 10.0
    max_side: int = 1600
    max_photos: int = 20
    workers: int = 0
    torch_threads: int = 0
    detector: str = "mtcnn"
    device: str = "auto"
    match: str = DEFAULT_MATCH
    threshold: float | None = None
    cors_origins: tuple[str, ...] = ()
    #: where the gallery lives instead of ``gallery``: a ``postgresql://`` URL shared by servers
    store: str | None = None

    def __post_init__(self) -> None:
        self.gallery = Path(self.gallery)
        self.model = Path(self.model) if self.model is not None else None
        self.workers = int(self.workers) or default_workers()
        validate.positive_float("max_body_mb", self.max_body_mb)
        self.api_key = self.api_key or None

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


def check_name(name: str) -> str:
    """``name`` if it can name a person, else :class:`InvalidNameError` saying why.

    Refused: empty, longer than :data:`MAX_NAME_LENGTH`, leading/trailing spaces, path
    separators, control or other invisible characters, ``.``/``..`` and ``unknown``.
    """
    if not name or not name.strip():
        raise InvalidNameError("name is empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(f"name is longer than {MAX_NAME_LENGTH} characters")
    if name != name.strip():
        raise InvalidNameError("name starts or ends with a space")
    if "/" in name or "\\" in name:
        raise InvalidNameError("name contains a path separator")
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise InvalidNameError("name contains a control or invisible character")
    if name in (".", "..") or name.lower() == UNKNOWN:
        raise InvalidNameError(f"{name!r} is reserved")
    return name
