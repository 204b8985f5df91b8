"""Settings of ``celebface serve`` and the rules for names that come over HTTP."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from celebface import validate
from celebface.detection.registry import DEFAULT_DETECTOR, DEFAULT_VIDEO_DETECTOR
from celebface.errors import CelebfaceError
from celebface.gallery.matching import DEFAULT_MATCH

#: The environment variable ``celebface serve`` reads the admin API key from when no flag
#: gives one; :data:`RECOGNIZE_KEY_ENV` holds recognise-only keys (comma-separated).
API_KEY_ENV = "CELEBFACE_API_KEY"
RECOGNIZE_KEY_ENV = "CELEBFACE_RECOGNIZE_KEYS"
#: Key scopes: ``recognize`` may name faces and read the people list; ``admin`` may do all.
SCOPES = ("recognize", "admin")
#: The most requests that may wait for a worker (``--queue``): a bound, so backpressure holds.
MAX_QUEUE = 10_000


class KeyFileError(CelebfaceError, ValueError):
    """A keys file that cannot be used; the message names the file, the line and the reason."""


def read_keys_file(path: Path) -> dict[str, str]:
    """``key -> scope`` from a keys file: one ``KEY SCOPE`` pair a line (``SCOPE`` is
    ``recognize`` or ``admin``; ``admin`` when left out); blank lines and ``#`` comments are
    skipped."""
    try:
        if Path(path).stat().st_mode & stat.S_IWOTH:
            raise KeyFileError(f"{path}: the keys file is writable by every user (anyone could "
                               "add a key): chmod o-w it")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the keys file: {exc}") from None
    keys: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split("#", 1)[0].split()
        if not parts:
            continue
        if len(parts) > 2 or (len(parts) == 2 and parts[1] not in SCOPES):
            raise KeyFileError(f"{path}:{n}: expected 'KEY [recognize|admin]'")
        keys[parts[0]] = parts[1] if len(parts) == 2 else "admin"
    if not keys:
        raise KeyFileError(f"{path}: no key in the keys file")
    return keys


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
    ``api_key`` (admin), ``recognize_keys`` and ``keys_file`` (:func:`read_keys_file`): when
    any key is set, every ``/v1`` call and ``/metrics`` must send one (``X-API-Key`` or
    ``Authorization: Bearer``) whose scope allows it (:data:`SCOPES`).
    ``max_body_mb``: larger request bodies get 413; ``max_image_mb`` and ``max_pixels``: an
    image over either is refused (413) from its header, before it is decoded;
    ``detector``: the uploads' face detector; ``video_detector``: the video page's.
    ``max_decodes``: images decoded at once. ``max_video_mb``: a video upload
    (``POST /v1/videos``) over it gets 413 (its own limit instead of ``max_body_mb``).
    ``max_side``: uploads are decoded shrunk to this longer side (boxes are still reported in
    the upload's pixels).
    ``workers``: inference threads (default: the cores); ``queue``: requests that may wait for
    a worker (more get 503 with ``Retry-After``); ``torch_threads``: torch's thread count, set
    at start-up (0: leave it as it is; ``celebface serve`` passes cores // workers).
    ``cors_origins``: origins allowed to call the API from other pages (none by default; other
    origins' writes are refused). ``allowed_hosts``: ``Host`` header values accepted besides the
    bound address and the loopback names (``*``: any; the default for a wildcard address).
    ``insecure``: allow a non-loopback address without a key.
    ``store``: a gallery store to use instead of the ``gallery`` folder (a ``postgresql://``
    URL: one gallery shared by several servers).
    ``edit_timeout``: seconds a gallery edit waits for another writer's lock (then 503 with
    ``Retry-After``, nothing applied); keep it below the clients' request timeout.
    ``max_videos``: video jobs queued or running at once (more uploads get 503 with
    ``Retry-After``).
    """

    gallery: Path = Path("gallery")
    model: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    recognize_keys: tuple[str, ...] = ()
    keys_file: Path | None = None
    max_body_mb: float = 10.0
    max_image_mb: float = 10.0
    max_video_mb: float = 200.0
    max_pixels: int = 40_000_000
    max_decodes: int = 2
    max_side: int = 1600
    max_photos: int = 20
    workers: int = 0
    queue: int = 16
    torch_threads: int = 0
    detector: str = DEFAULT_DETECTOR
    video_detector: str = DEFAULT_VIDEO_DETECTOR
    device: str = "auto"
    match: str = DEFAULT_MATCH
    threshold: float | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    insecure: bool = False
    #: where the gallery lives instead of ``gallery``: a ``postgresql://`` URL shared by servers
    store: str | None = None
    edit_timeout: float = 10.0
    max_videos: int = 4

    def __post_init__(self) -> None:
        self.gallery = Path(self.gallery)
        self.model = Path(self.model) if self.model is not None else None
        self.keys_file = Path(self.keys_file) if self.keys_file is not None else None
        validate.in_range("port", self.port, 0, 65535, kind=int)
        validate.in_range("workers", self.workers, 0, 256, kind=int)
        self.workers = int(self.workers) or default_workers()
        validate.in_range("queue", self.queue, 0, MAX_QUEUE, kind=int)
        validate.nonneg_int("torch_threads", self.torch_threads)
        validate.positive_float("max_body_mb", self.max_body_mb)
        validate.positive_float("max_image_mb", self.max_image_mb)
        validate.positive_float("max_video_mb", self.max_video_mb)
        validate.positive_int("max_pixels", self.max_pixels)
        validate.positive_int("max_decodes", self.max_decodes)
        validate.positive_int("max_photos", self.max_photos)
        validate.in_range("edit_timeout", self.edit_timeout, 0.1, 3600.0)
        validate.in_range("max_videos", self.max_videos, 1, 1000, kind=int)
        validate.image_side("max_side", self.max_side)
        validate.optional(validate.unit_float, "threshold", self.threshold)
        self.api_key = self.api_key or None
        # 'k1, k2' (a list written with spaces): the keys are k1 and k2, as a client sends them
        self.recognize_keys = tuple(k.strip() for k in self.recognize_keys if k.strip())

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * 1024 * 1024)

    @property
    def max_image_bytes(self) -> int:
        return int(self.max_image_mb * 1024 * 1024)

    def keys(self) -> dict[str, str]:
        """Every accepted key and its scope (empty: the server is open)."""
        keys = dict.fromkeys(self.recognize_keys, "recognize")
        if self.keys_file is not None:
            keys.update(read_keys_file(self.keys_file))
        if self.api_key:
            keys[self.api_key] = "admin"
        return keys

