"""What the server does, without HTTP: models loaded once, inference in a bounded thread pool
(a full queue is a 503), uploads decoded under caps, and gallery edits through the atomic store,
one at a time.

The published gallery and recogniser are never changed in place: every edit goes through
:meth:`FaceService._edit`, which loads the gallery from disk under its lock, applies the change
(a :class:`~celebface.gallery.Gallery` method: add, remove, ``remove_photo``, ``rename``,
``merge``), saves it atomically and then swaps in a new recogniser, so requests in flight keep
using a consistent one.
Edits go through the gallery store's one write protocol (lock, re-read, change, save), so no
other writer's change (``celebface enroll``, another server on the same store) is lost; before
each request the store's version stamp is checked (a ``stat`` of the manifest, or one row in
PostgreSQL) and a gallery changed by another process is reloaded.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import io
import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from celebface.errors import CelebfaceError
from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.enroll import embedder_spec, mark_changed
from celebface.gallery.faces import build_detector
from celebface.gallery.store import (
    GalleryError,
    GalleryStore,
    StoreBusyError,
    StoreUnavailableError,
    photo_id,
)
from celebface.gallery.stores import open_store
from celebface.io import ImageReadError, LoadedImage, read_image_bytes
from celebface.recognition.base import l2_normalize
from celebface.recognition.spec import EmbedderSpec
from celebface.recognizer import Recognizer, RecognizerConfig
from celebface.serve.config import ServeConfig
from celebface.serve.thumbnails import Thumbnails, face_thumbnail
from celebface.types import UNKNOWN, Face, person_name

log = logging.getLogger(__name__)

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


def image_status(exc: ImageReadError) -> tuple[int, str]:
    """413 for oversized images, 415 for what is no image at all, 400 for the rest; with the
    error's code."""
    if exc.reason.startswith("too large"):
        return 413, "image_too_large"
    if exc.reason.startswith("not an image"):
        return 415, "not_an_image"
    return 400, "bad_image"


def display_name(name: str) -> str:
    """How the page shows a person's key: ``jerry_seinfeld`` -> ``Jerry Seinfeld``; a name
    with capitals or other characters is shown as it is (spaces for underscores)."""
    text = name.replace("_", " ").strip() or name
    return text.title() if text == text.lower() else text


def upload_source(data: bytes, filename: str | None) -> str:
    """The gallery source of an uploaded photo: its content hash and (shown to people) the
    file name it was sent with, cleaned of paths and control characters."""
    digest = "upload:" + hashlib.sha256(data).hexdigest()[:32]
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if not unicodedata.category(c).startswith("C"))[:120].strip()
    return f"{digest}:{base}" if base else digest


def upload_digest(source: str) -> str | None:
    """The content hash part of an uploaded photo's source (None for a file's)."""
    return source.split(":", 2)[1] if source.startswith("upload:") else None


def source_name(source: str) -> str:
    """A row's source as people read it: the file name (of a path or an upload)."""
    if source.startswith("upload:"):
        parts = source.split(":", 2)
        return parts[2] if len(parts) > 2 else f"upload {parts[1][:8]}"
    return source.replace("\\", "/").rsplit("/", 1)[-1]


def page_of(items: Sequence[T], page: int, size: int) -> dict[str, Any]:
    """One page (from 0) of ``items``: the page's items and the paging numbers."""
    start = page * size
    return {"items": list(items[start : start + size]), "page": page, "size": size,
            "total": len(items), "pages": max(1, math.ceil(len(items) / size))}


class FaceService:
    """Models, gallery and worker pool of one server. Call :meth:`start` before use and
    :meth:`close` (waits for running work) after. ``models``: a prebuilt ``(embedder,
    detector)`` pair to share (tests); by default they are built from the gallery's record."""

    def __init__(self, config: ServeConfig, models: tuple[Any, Any] | None = None):
        self.config = config
        self._models = models
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
    def finder(self) -> Any:
        """The face finder every request uses (:mod:`celebface.detection.finder`): every face
        that counts to recognise, the largest by ``celebface enroll``'s rule to enrol."""
        from celebface.detection.finder import as_finder

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
            "calibrated": bool(rec and g.is_calibrated(rec.matcher.method)),
            "editable": self.editable, "workers": self.config.workers,
        }

    # ---------------------------------------------------------------- inference
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

    def _detect(self, img: LoadedImage) -> list[Face]:
        """The faces of a decoded upload, in its decoded pixels (the recogniser's detection
        when there is one, so /v1/detect and /v1/recognize find the same faces)."""
        rec = self.recognizer
        if rec is not None:
            return rec.detect(img.rgb, rec.config.detect_side)
        return self.finder.find(img.rgb)

    def recognize(self, data: bytes, label: str = "image", candidates: int = 1,
                  limit: int = 0, min_score: float = 0.0, plugins: Sequence[str] = ()
                  ) -> dict[str, Any]:
        """Every face of one photo, named; boxes and landmarks in the photo's pixels.

        ``candidates``: the best ``candidates`` people per face (``predictions``);
        ``limit``: only the largest ``limit`` faces (0: all); ``min_score``: faces the
        detector is less sure of are left out; ``plugins``: the attributes to add
        (:mod:`celebface.attributes`: age, gender, pose)."""
        img = self.decode(data, label)
        rec = self.recognizer
        if rec is not None:
            faces = rec.recognize(img.rgb)
        else:
            faces = [f.with_(identity=UNKNOWN) for f in self._detect(img)]
        keep = _with_plugins(img.rgb, _chosen(faces, limit, min_score), plugins)
        out = []
        for f in keep:
            d = f.scaled(img.scale).to_dict()
            d["label"] = display_name(d["identity"]) if d["identity"] != UNKNOWN else UNKNOWN
            if rec is not None and f.embedding is not None:
                d["predictions"] = _top(rec, f.embedding, candidates)
            out.append(d)
        return {"width": img.source_size[0], "height": img.source_size[1], "faces": out,
                **self.status()}

    def detect(self, data: bytes, label: str = "image", limit: int = 0, min_score: float = 0.0,
               plugins: Sequence[str] = ()) -> dict[str, Any]:
        """Every face of one photo, unnamed: box, landmarks, detector score (and the
        attributes ``plugins`` name)."""
        img = self.decode(data, label)
        faces = _with_plugins(img.rgb, _chosen(self._detect(img), limit, min_score), plugins)
        return {"width": img.source_size[0], "height": img.source_size[1],
                "faces": [f.scaled(img.scale).to_dict() for f in faces]}

    def embed(self, data: bytes, label: str = "image", limit: int = 0, min_score: float = 0.0
              ) -> dict[str, Any]:
        """Every face of one photo with its embedding (unit length), as the gallery's
        embedder makes them."""
        img = self.decode(data, label)
        faces = _chosen(self._detect(img), limit, min_score)
        emb = (l2_normalize(np.asarray(self.embedder.embed([img.rgb] * len(faces), faces),
                                       np.float32)) if faces else [])
        return {"width": img.source_size[0], "height": img.source_size[1],
                "embedder": self.gallery.spec.name,
                "faces": [{**f.scaled(img.scale).to_dict(),
                           "embedding": [round(float(v), 6) for v in e]}
                          for f, e in zip(faces, emb, strict=True)]}

    def _largest(self, img: LoadedImage, label: str) -> Face:
        """The face to enrol: the largest that counts, by ``celebface enroll``'s rule."""
        rule = EnrollConfig(detector=self.config.detector).face_rule
        face = self.finder.largest(img.rgb, rule=rule)
        if face is None:
            raise RequestError(f"{label}: no face found", code="no_face")
        return face

    def verify(self, first: bytes, second: bytes, crop: bool = False) -> dict[str, Any]:
        """Are the largest faces of two photos the same person? (celebface.verification,
        with the gallery's pair threshold; a photo without a face: 400 ``no_face`` unless
        ``crop``.)"""
        from celebface.verification import NoFaceError, verify

        if self.pair_threshold is None:
            raise RequestError("no same-person threshold for this gallery's embedder: "
                               "calibrate the gallery ('celebface calibrate --match knn')", 409)
        imgs = [self.decode(first, "image1"), self.decode(second, "image2")]
        try:
            v = verify(imgs[0].rgb, imgs[1].rgb, detector=self.finder, embedder=self.embedder,
                       threshold=self.pair_threshold, crop=crop)
        except NoFaceError as exc:
            raise RequestError(f"image{exc.index + 1}: no face found (crop=true compares a "
                               "face crop whole)", code="no_face") from None
        faces = [{**f.scaled(img.scale).to_dict(), "whole_image": whole} for f, img, whole
                 in zip((v.face_a, v.face_b), imgs, (v.whole_a, v.whole_b), strict=True)]
        return {"same": bool(v.same), "score": round(float(v.score), 4),
                "threshold": round(float(v.threshold), 4), "faces": faces}

    # ---------------------------------------------------------------- the gallery
    def people(self, query: str = "") -> list[dict[str, Any]]:
        """Everyone enrolled, or those whose name or shown name holds ``query`` (any case)
        (run it through :meth:`run` to see other writers' changes)."""
        q = query.strip().casefold()
        found = [{"name": n, "label": display_name(n), "photos": c}
                 for n, c in self.gallery.counts().items()]
        found += [{"name": n, "label": display_name(n), "photos": 0}
                  for n in self.gallery.waiting]
        return [p for p in found if q in p["name"].casefold() or q in p["label"].casefold()]

    def _check_editable(self) -> None:
        if not self.editable:
            raise RequestError("faces are named by a trained model (--model): the gallery "
                               "cannot be edited here", 409, "not_editable")

    def _edit(self, change: Callable[[Gallery], T]) -> T:
        """The one way the server edits its gallery: under the store's lock (other processes
        and servers wait), re-read it, apply ``change`` (a :class:`Gallery` method: add,
        remove, ``remove_photo``, ``rename``, ``merge``), save it, publish a recogniser for it;
        returns ``change``'s result. When ``change`` raises, nothing is saved; a store that
        cannot be reached is a 503, a gallery that refuses the change a 409."""
        self._check_editable()
        wait = self.config.edit_timeout
        deadline = time.monotonic() + wait
        busy = RequestError(f"another edit of the gallery is under way (waited {wait:g} s); "
                            "nothing was changed: try again", 503, "store_busy",
                            {"Retry-After": str(max(1, math.ceil(wait)))})
        if not self._edit_lock.acquire(timeout=wait):
            raise busy
        try:
            try:
                result, gallery, version = self.store.edit(
                    change, self._load_for_edit, timeout=max(0.1, deadline - time.monotonic()))
            except StoreBusyError as exc:
                log.warning("%s", exc)
                raise busy from None
            except StoreUnavailableError as exc:
                log.error("%s", exc)
                raise RequestError(STORE_UNAVAILABLE, 503, "store_unavailable",
                                   {"Retry-After": "5"}) from None
            except GalleryError as exc:  # told without where the store is (a database's
                # user, host and port, a server path): the log has that
                log.warning("%s", exc)
                text = str(exc).replace(self.store.location, "the gallery")
                raise RequestError(text, 409, "gallery_refused") from None
            except OSError as exc:  # a full disk, a read-only gallery: nothing was committed
                log.error("%s: the edit could not be saved: %s", self.store.location, exc)
                raise RequestError("the gallery could not be saved (no space left, or "
                                   "read-only); nothing was changed", 503,
                                   "store_write_failed") from None
            with self._reload_lock:
                try:
                    self._use(gallery)
                    self._version = version
                except GalleryError as exc:  # saved, but of an embedder this server lacks
                    log.error("%s; serving the gallery loaded before", exc)
                    self._refused = version
        finally:
            self._edit_lock.release()
        return result

    def enroll(self, name: str, photos: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
        """Add the largest face of each photo (``(file name, bytes)``) to ``name`` (new or
        known); unusable photos are listed in ``skipped``; none usable is an error."""
        self._check_editable()
        name = self.valid_name(name)
        if not photos:
            raise RequestError("no photo: send one or more in the multipart field 'file' "
                               "or 'image'")
        if len(photos) > self.config.max_photos:
            raise RequestError(f"{len(photos)} photos in one request; at most "
                               f"{self.config.max_photos}", 413, "too_many_photos")
        images, faces, sources, skipped = [], [], [], []
        errors: list[RequestError] = []
        for label, data in photos:
            try:
                img = self.decode(data, label)
                faces.append(self._largest(img, label))
            except RequestError as exc:
                errors.append(exc)
                skipped.append({"photo": label, "reason": str(exc), "code": exc.code})
                continue
            images.append(img)
            sources.append(upload_source(data, label))
        if not images:
            raise RequestError("; ".join(str(e) for e in errors), errors[0].status,
                               errors[0].code)
        emb = np.asarray(self.embedder.embed([i.rgb for i in images], faces), np.float32)
        spec = self.models_spec()
        jpegs = {photo_id(source): face_thumbnail(img.rgb, face)
                 for img, face, source in zip(images, faces, sources, strict=True)}

        def add(gallery: Gallery) -> int:
            other = holder_of(gallery, name)
            if other not in (None, name):  # one card per shown name
                raise RequestError(f"{display_name(name)!r} is the name of {other!r}: add the "
                                   f"photos to {other!r}", 409, "name_taken")
            if gallery.embedder and len(gallery) and not gallery.spec.same_vectors(spec):
                raise GalleryError(f"the gallery's embedder is {gallery.spec.describe()}, "
                                   f"this server's {spec.describe()}: its photos cannot be "
                                   "added (restart the server)")
            # the same photo sent again (under any file name) replaces its old rows
            again = {upload_digest(s) for s in sources}
            replaced = set()
            if name in gallery.names:
                replaced = {pid for pid, src in gallery.photos_of(name)
                            if upload_digest(src) in again}
            for pid in replaced:  # a photo id names all its rows: each is removed once
                if name in gallery.names:
                    gallery.remove_photo(name, pid)
            # under the lock, before the save that keeps them: every server shows them
            self.store.put_thumbnails(jpegs)
            gallery.add(emb, [name] * len(images), sources)
            mark_changed(gallery)
            return gallery.counts()[name]

        count = self._edit(add)
        self.thumbs.remember(jpegs)
        return {"name": name, "label": display_name(name), "added": len(images), "photos": count,
                "added_photos": [{"id": photo_id(s), "source": source_name(s)} for s in sources],
                "skipped": skipped,
                **self.status()}

    def _load_for_edit(self) -> Gallery:
        """A new, empty gallery for the first enrolment (the store has none yet)."""
        spec = embedder_spec(self.embedder, EnrollConfig().with_spec(self.gallery.spec))
        settings = spec["settings"]
        return Gallery(path=getattr(self.store, "folder", None), embedder=spec, info={
            "alignment": settings.get("alignment", settings.get("align")),
            "faces_from": f"uploads (largest {self.config.detector} face)"})

    def _known(self, name: str) -> str:
        name = self.valid_name(name)
        if name not in self.gallery.people():
            raise RequestError(f"{name!r} is not in the gallery", 404, "no_such_person")
        return name

    def remove(self, name: str) -> dict[str, Any]:
        """Delete ``name`` and every photo of theirs from the gallery."""
        name = self._known(name)

        def drop(gallery: Gallery) -> int:
            removed = _edited(gallery.remove, name)
            mark_changed(gallery)
            return removed

        removed = self._edit(drop)  # the save drops the photos' thumbnails
        return {"name": name, "label": display_name(name), "removed": removed, **self.status()}

    def photos(self, name: str, page: int = 0, size: int = 50) -> dict[str, Any]:
        """One page of ``name``'s photos: id, source name and thumbnail address of each."""
        name = self._known(name)
        rows = [{"id": pid, "source": source_name(src),
                 "thumbnail": f"/v1/people/{_quote(name)}/photos/{pid}/thumbnail"}
                for pid, src in self.gallery.photos_of(name)]
        paged = page_of(rows, page, size)
        return {"name": name, "label": display_name(name), "photos": paged.pop("items"),
                **paged}

    def remove_photo(self, name: str, photo: str) -> dict[str, Any]:
        """Delete one photo of ``name`` (the person too when it was the last)."""
        name = self._known(name)

        def drop(gallery: Gallery) -> int:
            removed = _edited(gallery.remove_photo, name, photo)
            mark_changed(gallery)
            return removed

        removed = self._edit(drop)
        left = self.gallery.counts().get(name, 0)
        return {"name": name, "label": display_name(name), "removed": removed, "photos": left,
                **self.status()}

    def rename(self, name: str, new: str, merge: bool = False) -> dict[str, Any]:
        """Call ``name`` ``new``; when ``new`` is enrolled already, or someone else is shown
        under ``new``'s name (``ben_afflek`` and ``Ben Afflek``), 409 unless ``merge``, which
        moves every photo of ``name`` to that person. Whether the name is taken is decided
        under the store's lock (a rename by another server or request meanwhile counts)."""
        name, new = self._known(name), self.valid_name(new)
        if new == name:
            raise RequestError(f"{name!r} already has that name", 409, "same_name")

        def taken(gallery: Gallery) -> str | None:
            """Who (another person) already has ``new``'s name or its shown name."""
            return holder_of(gallery, new, besides=name)

        def refuse(other: str) -> RequestError:
            who = repr(new) if other == new else f"{display_name(new)!r} (as {other!r})"
            return RequestError(f"{who} is already in the gallery: send \"merge\": true to "
                                "merge the two", 409, "name_taken")

        other = taken(self.gallery)
        if other is not None and not merge:
            raise refuse(other)

        def change(gallery: Gallery) -> tuple[str, bool, int]:
            other = taken(gallery)
            if other is not None:
                if not merge:
                    raise refuse(other)
                moved = _edited(gallery.merge, name, other)
                mark_changed(gallery)
                return other, True, moved
            _edited(gallery.rename, name, new)
            return new, False, 0

        new, merged, moved = self._edit(change)
        return {"name": new, "label": display_name(new), "from": name,
                "from_label": display_name(name), "merged": merged, "moved": moved,
                "photos": self.gallery.counts().get(new, 0), **self.status()}

    # ------------------------------------------------------------ CompreFace's other calls
    def add_person(self, name: str) -> dict[str, Any]:
        """Add ``name`` without a photo (listed with 0 photos; named once photos are added)."""
        name = self.valid_name(name)

        def add(gallery: Gallery) -> str:
            if holder_of(gallery, name) is not None:
                raise RequestError(f"{name!r} is already in the gallery", 409, "name_taken")
            return gallery.add_person(name)

        name = self._edit(add)
        return {"name": name, "label": display_name(name), "photos": 0}

    def remove_all(self) -> dict[str, Any]:
        """Delete everyone (the gallery stays, empty)."""
        def drop(gallery: Gallery) -> tuple[int, int]:
            people, rows = len(gallery.people()), len(gallery)
            gallery.keep_sources(set())
            for name in gallery.waiting:
                gallery.remove(name)
            mark_changed(gallery, bool(rows))
            return people, rows

        people, rows = self._edit(drop)
        return {"removed_people": people, "removed": rows, **self.status()}

    def all_photos(self, page: int = 0, size: int = 50) -> dict[str, Any]:
        """One page of every enrolled photo: id, source name, person, thumbnail address."""
        g = self.gallery
        rows = [{"id": photo_id(src), "source": source_name(src), "name": g.names[lab],
                 "label": display_name(g.names[lab]),
                 "thumbnail": f"/v1/people/{_quote(g.names[lab])}/photos/{photo_id(src)}"
                              "/thumbnail"}
                for src, lab in zip(g.sources, g.labels, strict=True)]
        paged = page_of(rows, page, size)
        return {"photos": paged.pop("items"), **paged}

    def remove_photos(self, ids: Sequence[str]) -> dict[str, Any]:
        """Delete the photos with these ids, whoever they belong to; ids not in the gallery
        are listed in ``missing``."""
        self._check_editable()
        wanted = set(ids)
        missing: list[str] = []

        def drop(gallery: Gallery) -> int:
            have = {photo_id(s) for s in gallery.sources}
            missing.extend(sorted(wanted - have))
            removed = gallery.remove_photos(wanted)
            mark_changed(gallery, bool(removed))
            return removed

        removed = self._edit(drop)
        return {"removed": removed, "missing": missing, **self.status()}

    def verify_photo(self, photo: str, data: bytes, label: str = "image") -> dict[str, Any]:
        """Is the largest face of an upload the person of stored photo ``photo``?"""
        if self.pair_threshold is None:
            raise RequestError("no same-person threshold for this gallery's embedder: "
                               "calibrate the gallery ('celebface calibrate --match knn')", 409)
        stored = self.gallery.rows_of_photo(photo)
        if not len(stored):
            raise RequestError(f"no photo {photo!r} in the gallery", 404, "no_such_photo")
        img = self.decode(data, label)
        face = self._largest(img, label)
        emb = l2_normalize(np.asarray(self.embedder.embed([img.rgb], [face]), np.float32))
        score = float((stored @ emb[0]).max())
        return {"same": score >= self.pair_threshold, "score": round(score, 4),
                "threshold": round(float(self.pair_threshold), 4), "photo": photo,
                "face": face.scaled(img.scale).to_dict()}

    def recognize_embeddings(self, embeddings: Sequence[Sequence[float]], candidates: int = 1
                             ) -> dict[str, Any]:
        """Name face embeddings sent by the client (of this gallery's embedder)."""
        rec = self.recognizer
        if rec is None:
            raise RequestError("no one is enrolled yet", 409, "empty_gallery")
        emb = np.asarray(embeddings, np.float32)
        dim = self.gallery.dim or int(getattr(self.embedder, "dim", 0))
        if emb.ndim != 2 or emb.shape[1] != dim or not np.isfinite(emb).all():
            raise RequestError(f"embeddings must be lists of {dim} numbers (this gallery's "
                               "embedder)", code="bad_embedding")
        if (np.linalg.norm(emb, axis=1) == 0).any():
            raise RequestError("an embedding of zeros", code="bad_embedding")
        emb = l2_normalize(emb)
        results = []
        for e, m in zip(emb, rec.name(emb), strict=True):
            results.append({
                "identity": m.identity,
                "label": display_name(m.identity) if m.known else UNKNOWN,
                "similarity": round(float(m.similarity), 4), "runner_up": m.runner_up,
                "runner_up_similarity": None if m.runner_up_similarity is None
                else round(float(m.runner_up_similarity), 4),
                "predictions": _top(rec, e, candidates)})
        return {"results": results, **self.status()}

    def photo_thumbnail(self, name: str, photo: str) -> bytes | None:
        """A small JPEG of one enrolled photo's face (cut when the service enrolled it, else
        from the photo's file), or ``None``."""
        name = self._known(name)
        rows = [(pid, src) for pid, src in self.gallery.photos_of(name) if pid == photo]
        if not rows:
            raise RequestError(f"{name!r} has no photo {photo!r}", 404, "no_such_photo")
        return self.thumbs.first(rows, self.finder, self.config.max_side)

    def thumbnail(self, name: str) -> bytes | None:
        """A small JPEG of ``name``'s face: their first photo's stored thumbnail, else one cut
        from their first readable photo file, else ``None``."""
        name = self._known(name)
        return self.thumbs.first(self.gallery.photos_of(name), self.finder,
                                 self.config.max_side)

    @staticmethod
    def valid_name(name: str) -> str:
        """:func:`celebface.types.person_name` (the one rule), its refusal as a 400
        :class:`RequestError`."""
        try:
            return person_name(name)
        except ValueError as exc:
            raise RequestError(str(exc), code="invalid_name") from None


def holder_of(gallery: Gallery, name: str, besides: str | None = None) -> str | None:
    """Who in ``gallery`` (other than ``besides``) has ``name``, or is shown under its shown
    name (``ben_afflek`` for "Ben Afflek"): one card per shown name. None: nobody."""
    if name in gallery.people() and name != besides:
        return name
    shown = display_name(name).casefold()
    return next((n for n in gallery.people()
                 if n != besides and display_name(n).casefold() == shown), None)


def _edited(method: Callable[..., T], *args: Any) -> T:
    """A :class:`Gallery` edit; its refusal (a person or photo that is not there, a name
    taken meanwhile) as a :class:`RequestError`."""
    try:
        return method(*args)
    except GalleryError as exc:
        status, code = (409, "name_taken") if "already" in str(exc) else (404, "not_found")
        raise RequestError(str(exc), status, code) from None


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from an image's header (nothing decoded), or None when Pillow does
    not know the format (the decoder then says so)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # any failure here is reported by the real decode
        return None


def _short(reason: str) -> str:
    """A decoder's reason in plain words: ``corrupt or truncated image: image file is
    truncated (73 bytes not processed)`` -> ``corrupt or truncated image``."""
    return reason.split(":", 1)[0] if reason.startswith("corrupt or truncated") else reason


def _with_plugins(rgb: np.ndarray, faces: list[Face], plugins: Sequence[str]) -> list[Face]:
    """``faces`` with the attributes ``plugins`` name (none: as they are)."""
    if not plugins:
        return faces
    from celebface.attributes import add_attributes

    return add_attributes(rgb, faces, plugins)


def _chosen(faces: Sequence[Face], limit: int, min_score: float) -> list[Face]:
    """The faces the detector scored at least ``min_score``, the largest ``limit`` of them
    (0: all), in the order every surface gives faces (highest score first)."""
    kept = [f for f in faces if f.score >= min_score]
    if limit:
        largest = sorted(kept, key=lambda f: -f.area)[:limit]
        kept = [f for f in kept if any(f is g for g in largest)]
    return kept


def _top(rec: Recognizer, embedding: np.ndarray, n: int) -> list[dict[str, Any]]:
    """The ``n`` best people for one face with their scores, best first."""
    from celebface.gallery.matching import GalleryMatcher

    emb = np.asarray(embedding, np.float32)[None]
    if isinstance(rec.matcher, GalleryMatcher):
        ids, scores = rec.matcher.top(emb, n)
        pairs = zip(ids[0], scores[0], strict=True)
    else:
        row = rec.matcher.scores(emb)[0]
        pairs = ((i, row[i]) for i in np.argsort(-row)[:n])
    names = rec.matcher.names
    return [{"name": names[int(i)], "label": display_name(names[int(i)]),
             "similarity": round(float(v), 4)} for i, v in pairs if int(i) >= 0]


def _pair_threshold(gallery: Gallery) -> float | None:
    """The cosine at which /v1/verify calls two faces the same person: the gallery's
    calibrated ``knn`` threshold, else the embedder's measured pair threshold."""
    from celebface.verification import NoThresholdError, gallery_pair_threshold

    try:
        return gallery_pair_threshold(gallery)
    except NoThresholdError as exc:
        log.warning("/v1/verify is off: %s", exc)
        return None
