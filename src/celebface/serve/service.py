"""What the server does, without HTTP: models loaded once, inference in a bounded thread pool
(a full queue is a 503), uploads decoded under caps, and gallery edits through the atomic store,
one at a time. :class:`FaceService` is this module's life cycle, models and decoding, with
its two parts: :class:`~celebface.serve.inference.Inference` (name, find, embed, verify) and
:class:`~celebface.serve.admin.GalleryAdmin` (people and photos).

The published gallery and recogniser are never changed in place: every edit goes through
:meth:`GalleryAdmin._edit <celebface.serve.admin.GalleryAdmin._edit>`, which loads the gallery
from disk under its lock, applies the change (a :class:`~celebface.gallery.Gallery` method:
add, remove, ``remove_photo``, ``rename``, ``merge``), saves it atomically and then swaps in a
new recogniser, so requests in flight keep using a consistent one.
Edits go through the gallery store's one write protocol (lock, re-read, change, save), so no
other writer's change (``celebface enroll``, another server on the same store) is lost; before
each request the store's version stamp is checked (a ``stat`` of the manifest, or one row in
PostgreSQL) and a gallery changed by another process is reloaded.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from celebface.detection.finder import as_finder
from celebface.errors import CelebfaceError
from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.enroll import embedder_spec
from celebface.gallery.faces import build_detector
from celebface.gallery.policy import NoThresholdError, pair_threshold
from celebface.gallery.store import (
    GalleryError,
    GalleryStore,
    StoreUnavailableError,
)
from celebface.gallery.stores import open_store
from celebface.io import ImageReadError, LoadedImage, read_image_bytes
from celebface.recognition.spec import EmbedderSpec
from celebface.recognizer import Recognizer, RecognizerConfig
from celebface.serve.admin import (
    GalleryAdmin,
    holder_of,
    source_name,
    upload_digest,
    upload_source,
)
from celebface.serve.common import (
    CODES,
    STORE_UNAVAILABLE,
    RequestError,
    display_name,
    page_of,
)
from celebface.serve.config import ServeConfig
from celebface.serve.inference import Inference, face_out, label_of
from celebface.serve.thumbnails import Thumbnails
from celebface.types import Face

__all__ = ["CODES", "STORE_UNAVAILABLE", "FaceService", "RequestError", "display_name",
           "face_out", "holder_of", "image_status", "label_of", "page_of", "source_name",
           "upload_digest", "upload_source"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def image_status(exc: ImageReadError) -> tuple[int, str]:
    """413 for oversized images, 415 for what is no image at all, 400 for the rest; with the
    error's code."""
    if exc.reason.startswith("too large"):
        return 413, "image_too_large"
    if exc.reason.startswith("not an image"):
        return 415, "not_an_image"
    return 400, "bad_image"


class FaceService(Inference, GalleryAdmin):
    """Models, gallery and worker pool of one server. Call :meth:`start` before use and
    :meth:`close` (waits for running work) after. ``models``: a prebuilt ``(embedder,
    detector)`` pair to share (tests); by default they are built from the gallery's record."""

    def __init__(self, config: ServeConfig, models: tuple[Any, Any] | None = None):
        self.config = config
        self._models = models
        self._given_models = models is not None
        self._given_models = models is not None
        #: the embedder the models make vectors of (None: the one a first enrolment records)
        self._spec: EmbedderSpec | None = None
        self._refused: Any = None  # the store's stamp of a gallery this server cannot serve
        self._finder: Any = None
        self.pool: ThreadPoolExecutor | None = None
        self.gallery = Gallery(path=config.gallery)
        self.recognizer: Recognizer | None = None
        self.pair_threshold: float | None = None
        self._model: Any = None
        self._edit_lock = threading.Lock()
        self._decodes = threading.BoundedSemaphore(config.max_decodes)
        self._waiting = 0  # requests handed to the pool and not finished
        self._count_lock = threading.Lock()
        self._seconds = 0.5  # moving average of a request's time in the pool (Retry-After)
        self.store: GalleryStore = open_store(config.store or config.gallery)
        self._version: Any = None  # the store's stamp of the published gallery
        self._reload_lock = threading.Lock()
        self.thumbs = Thumbnails(self.store)

    # ---------------------------------------------------------------- life cycle
    def start(self) -> None:
        """Load the gallery and the models (once) and start the worker pool."""
        c = self.config
        if c.torch_threads:
            import torch

            torch.set_num_threads(c.torch_threads)
        gallery, self._version = self.store.snapshot()
        if gallery is not None:
            self.gallery = gallery
        else:
            log.warning("%s: no gallery yet; it is created by the first enrolment",
                        self.store.location)
        if c.model is not None:
            from celebface.training import load_model

            self._model = load_model(c.model)
        if self._models is None:
            self._models = self._build_models()
        if self.gallery.embedder:
            self._spec = self.gallery.spec
        self._use(self.gallery)
        blank = np.full((160, 160, 3), 128, np.uint8)  # warm-up: the first call is slow
        self.finder.find(blank)
        self.embedder.embed([blank], [Face(box=(30.0, 30.0, 130.0, 130.0))])
        self.pool = ThreadPoolExecutor(c.workers, thread_name_prefix="celebface-serve")
        log.info("serving %s: %d people, %d photos, %d inference workers", self.store.location,
                 len(self.gallery.names), len(self.gallery), c.workers)

    def _build_models(self) -> tuple[Any, Any]:
        c = self.config
        if self._model is not None and hasattr(self._model, "embedder"):
            return self._model.embedder, build_detector(EnrollConfig(
                detector=c.detector, device=c.device))
        if len(self.gallery):
            rec = Recognizer(self.gallery, detector=c.detector, config=self.recognizer_config())
            return rec.embedder, rec.finder
        return self.gallery.spec.build(c.device), build_detector(
            EnrollConfig(detector=c.detector, device=c.device))

    def close(self) -> None:
        """Finish the work already handed to the pool, then stop it."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the worker pool. The pool's queue is bounded: with
        ``workers + queue`` requests already in it, the request gets 503 with ``Retry-After``
        (seconds until a place is likely free). It runs on the store's current gallery
        (:meth:`refresh` first)."""
        if self.pool is None:
            raise RuntimeError("the service is not started")
        c = self.config
        with self._count_lock:
            if self._waiting >= c.workers + c.queue:
                wait = max(1, math.ceil(self._seconds * (self._waiting - c.workers + 1)
                                        / c.workers))
                raise RequestError(f"the server is busy ({self._waiting} requests queued or "
                                   "running); try again later", 503, "busy",
                                   {"Retry-After": str(wait)})
            self._waiting += 1
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.pool, functools.partial(self._timed, fn, *args))
        finally:
            with self._count_lock:
                self._waiting -= 1

    def _timed(self, fn: Callable[..., T], *args: Any) -> T:
        start = time.perf_counter()
        try:
            self.refresh()
            return fn(*args)
        finally:
            self._seconds = 0.9 * self._seconds + 0.1 * (time.perf_counter() - start)

    def refresh(self) -> bool:
        """Reload the gallery when the store's version stamp moved (another process edited
        it); True when it did. Cheap when nothing changed: one stat or one indexed row."""
        stamp = None
        try:
            stamp = self.store.version()
            if stamp in (self._version, self._refused):
                return False
            # read and publish under one lock, so an older read never replaces what an edit
            # of this server published meanwhile
            with self._reload_lock:
                gallery, version = self.store.snapshot()
                if version == self._version:
                    return False
                if gallery is not None:
                    self._use(gallery)
                self._version = version
        except StoreUnavailableError as exc:  # keep naming faces with what is loaded
            log.warning("%s; serving the gallery loaded before", exc)
            return False
        except GalleryError as exc:  # damaged rows, an embedder this server cannot run
            if stamp != self._refused:
                log.error("%s; serving the gallery loaded before", exc)
                self._refused = stamp
            return False
        log.info("%s changed (another writer): reloaded, %d people, %d photos",
                 self.store.location, len(self.gallery.names), len(self.gallery))
        return True

    # ---------------------------------------------------------------- models
    @property
    def embedder(self) -> Any:
        return self._models[0]  # type: ignore[index]

    @property
    def detector(self) -> Any:
        return self._models[1]  # type: ignore[index]

    @property
    def video_detector(self) -> Any:
        """The video page's detector: ``video_detector`` of the config, or the detector of
        the models the service was given (an app that brings its own)."""
        return self.detector if self._given_models else self.config.video_detector

    @property
    def finder(self) -> Any:
        """The face finder every request uses (:mod:`celebface.detection.finder`): every face
        that counts to recognise, the largest by ``celebface enroll``'s rule to enrol."""

        if self._finder is None:
            self._finder = as_finder(self.detector)
        return self._finder

    @property
    def editable(self) -> bool:
        return self._model is None

    def recognizer_config(self) -> RecognizerConfig:
        """How this server's recognisers decide (match method, threshold, device)."""
        c = self.config
        return RecognizerConfig(match=c.match, threshold=c.threshold, device=c.device)

    def models_spec(self) -> EmbedderSpec:
        """The embedder this server's models make vectors of."""
        if self._spec is None:
            self._spec = EmbedderSpec.from_dict(embedder_spec(
                self.embedder, EnrollConfig().with_spec(self.gallery.spec)))
        return self._spec

    def _check_embedder(self, gallery: Gallery) -> None:
        """Make sure the models embed like ``gallery``'s vectors were made: a gallery of
        another embedder (``gallery import ... --replace`` under a running server) gets its
        embedder built, or, when this server was handed its models, is refused
        (:class:`GalleryError`)."""
        if self._model is not None or not gallery.embedder or not len(gallery):
            return
        spec, have = gallery.spec, self.models_spec()
        if spec.same_vectors(have):
            return
        if self._given_models:
            raise GalleryError(f"{self.store.location}: the gallery's embedder is now "
                               f"{spec.describe()}, this server runs {have.describe()}; "
                               "restart the server to serve it")
        log.warning("%s: the gallery's embedder changed from %s to %s: loading it",
                    self.store.location, have.describe(), spec.describe())
        try:
            embedder = spec.build(self.config.device)
        except CelebfaceError as exc:
            raise GalleryError(f"{self.store.location}: cannot load the gallery's new "
                               f"embedder {spec.describe()}: {exc}") from None
        self._models, self._spec = (embedder, self.detector), spec

    def _use(self, gallery: Gallery) -> None:
        """Publish ``gallery`` and a recogniser for it (none while it is empty)."""
        self._check_embedder(gallery)
        rec = None
        if self._model is not None or len(gallery):
            rec = Recognizer(None if self._model is not None else gallery,
                             detector=self.finder, embedder=self.embedder,
                             config=self.recognizer_config(), model=self._model)
        self.gallery, self.recognizer = gallery, rec
        self.pair_threshold = _pair_threshold(gallery)

    @property
    def threshold(self) -> float | None:
        return None if self.recognizer is None else self.recognizer.threshold

    def status(self) -> dict[str, Any]:
        rec, g = self.recognizer, self.gallery
        return {
            "identities": len(g.names), "embeddings": len(g),
            "match": rec.matcher.method if rec else None,
            "threshold": None if rec is None else round(rec.threshold, 4),
            "calibrated": bool(rec and rec.policy.calibrated),
            "editable": self.editable, "workers": self.config.workers,
        }

    def decode(self, data: bytes, label: str) -> LoadedImage:
        """Decode an upload with the safe reader; bad ones raise :class:`RequestError`.

        Its size in bytes and its pixels (from the header, before decoding) are checked
        against the configured caps, and at most ``max_decodes`` images are decoded at once.
        """
        c = self.config
        if not data:
            raise RequestError(f"{label}: empty (no image sent)", code="empty_image")
        if len(data) > c.max_image_bytes:
            raise RequestError(f"{label}: too large ({len(data):,} bytes > "
                               f"{c.max_image_bytes:,})", 413, "image_too_large")
        size = _header_size(data)
        if size is not None and size[0] * size[1] > c.max_pixels:
            raise RequestError(f"{label}: too large ({size[0]}x{size[1]} pixels > "
                               f"{c.max_pixels:,})", 413, "image_too_large")
        with self._decodes:
            try:
                return read_image_bytes(data, label, c.max_side)
            except ImageReadError as exc:
                status, code = image_status(exc)
                raise RequestError(f"{label}: {_short(exc.reason)}", status, code) from None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header (nothing decoded), or None when Pillow does
    not know the format (the decoder then says so)."""

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # any failure here is reported by the real decode
        return None


def _short(reason: str) -> str:
    """A decoder's reason in plain words: ``corrupt or truncated image: image file is
    truncated (73 bytes not processed)`` -> ``corrupt or truncated image``."""
    return reason.split(":", 1)[0] if reason.startswith("corrupt or truncated") else reason


def _pair_threshold(gallery: Gallery) -> float | None:
    """The cosine at which /v1/verify calls two faces the same person: the gallery's
    calibrated ``knn`` threshold, else the embedder's measured pair threshold."""

    try:
        return pair_threshold(gallery=gallery)
    except NoThresholdError as exc:
        log.warning("/v1/verify is off: %s", exc)
        return None
