"""What the server does, without HTTP: models loaded once, inference in a thread pool, and
gallery edits through the gallery store's one write protocol.

The published gallery and recogniser are never changed in place: an edit (:meth:`FaceService._edit`)
takes the store's lock, re-reads the gallery, changes it, saves it and then swaps in a new
recogniser, so requests in flight keep using a consistent one and no other writer's change
(``celebface enroll``, another server on the same store) is lost. Before each request the
store's version stamp is checked (a ``stat`` of the manifest, or one row in PostgreSQL), and a
gallery changed by another process is reloaded.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from celebface.errors import CelebfaceError
from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.enroll import embedder_spec, mark_changed
from celebface.gallery.faces import build_models, pick_face
from celebface.gallery.store import (
    GalleryError,
    GalleryStore,
    StoreUnavailableError,
    is_store_url,
    open_store,
)
from celebface.io import ImageReadError, LoadedImage, read_image_bytes
from celebface.serve.config import ServeConfig, check_name
from celebface.serve.thumbnails import Thumbnails, face_thumbnail
from celebface.streaming.recognizer import Recognizer, RecognizerConfig
from celebface.types import UNKNOWN, Face

log = logging.getLogger(__name__)

T = TypeVar("T")


class RequestError(CelebfaceError, ValueError):
    """Bad input from a client: ``status`` is the HTTP status, ``str()`` the one-line reason."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def image_status(exc: ImageReadError) -> int:
    """413 for oversized images, 415 for what is no image at all, 400 for the rest."""
    if exc.reason.startswith("too large"):
        return 413
    if exc.reason.startswith("not an image"):
        return 415
    return 400


class FaceService:
    """Models, gallery and worker pool of one server. Call :meth:`start` before use and
    :meth:`close` (waits for running work) after. ``models``: a prebuilt ``(embedder,
    detector)`` pair to share (tests); by default they are built from the gallery's record."""

    def __init__(self, config: ServeConfig, models: tuple[Any, Any] | None = None):
        self.config = config
        self._models = models
        self.pool: ThreadPoolExecutor | None = None
        self.gallery = Gallery(path=config.gallery)
        self.recognizer: Recognizer | None = None
        self.pair_threshold: float | None = None
        self._model: Any = None
        self.store: GalleryStore = open_store(config.store or config.gallery)
        self._version: Any = None  # the store's stamp of the published gallery
        self._edit_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._scratch: tempfile.TemporaryDirectory[str] | None = None
        if is_store_url(config.store):  # a database's server keeps thumbnails locally
            self._scratch = tempfile.TemporaryDirectory(prefix="celebface-thumbnails-")
            self.thumbs = Thumbnails(Path(self._scratch.name))
        else:
            self.thumbs = Thumbnails(Path(config.store or config.gallery) / "thumbnails")

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
        self._use(self.gallery)
        blank = np.full((160, 160, 3), 128, np.uint8)  # warm-up: the first call is slow
        self.detector.detect(blank)
        self.embedder.embed([blank], [Face(box=(30.0, 30.0, 130.0, 130.0))])
        self.pool = ThreadPoolExecutor(c.workers, thread_name_prefix="celebface-serve")
        log.info("serving %s: %d people, %d photos, %d inference workers", self.store.location,
                 len(self.gallery.names), len(self.gallery), c.workers)

    def _build_models(self) -> tuple[Any, Any]:
        c = self.config
        if self._model is not None and hasattr(self._model, "embedder"):
            return self._model.embedder, build_models(EnrollConfig(
                detector=c.detector, device=c.device))[1]
        if len(self.gallery):
            rec = Recognizer(self.gallery, detector=c.detector, config=self._rec_config())
            return rec.embedder, rec.detector
        spec = self.gallery.embedder
        return build_models(EnrollConfig(
            embedder=spec.get("name", "dlib"), embedder_options=dict(spec.get("options") or {}),
            detector=c.detector, device=c.device))

    def close(self) -> None:
        """Finish the work already handed to the pool, then stop it."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
            self.pool = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the worker pool, on the store's current gallery
        (:meth:`refresh` first)."""
        if self.pool is None:
            raise RuntimeError("the service is not started")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(self._fresh, fn, *args))

    def _fresh(self, fn: Callable[..., T], *args: Any) -> T:
        self.refresh()
        return fn(*args)

    def refresh(self) -> bool:
        """Reload the gallery when the store's version stamp moved (another process edited
        it); True when it did. Cheap when nothing changed: one stat or one indexed row."""
        try:
            if self.store.version() == self._version:
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
    def editable(self) -> bool:
        return self._model is None

    def _rec_config(self) -> RecognizerConfig:
        c = self.config
        return RecognizerConfig(match=c.match, threshold=c.threshold, device=c.device)

    def _use(self, gallery: Gallery) -> None:
        """Publish ``gallery`` and a recogniser for it (none while it is empty)."""
        rec = None
        if self._model is not None or len(gallery):
            rec = Recognizer(None if self._model is not None else gallery,
                             detector=self.detector, embedder=self.embedder,
                             config=self._rec_config(), model=self._model)
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
        """Decode an upload with the safe reader; bad ones raise :class:`RequestError`."""
        if not data:
            raise RequestError(f"{label}: empty (no image sent)")
        try:
            return read_image_bytes(data, label, self.config.max_side)
        except ImageReadError as exc:
            raise RequestError(str(exc), image_status(exc)) from None

    def recognize(self, data: bytes) -> dict[str, Any]:
        """Every face of one photo, named; boxes and landmarks in the photo's pixels."""
        img = self.decode(data, "image")
        rec = self.recognizer
        if rec is not None:
            faces = rec.recognize(img.rgb)
        else:
            faces = [f.with_(identity=UNKNOWN) for f in self.detector.detect(img.rgb)]
        faces = [f.scaled(img.scale) for f in faces]
        return {"width": img.source_size[0], "height": img.source_size[1],
                "faces": [f.to_dict() for f in faces], **self.status()}

    def _largest(self, img: LoadedImage, label: str) -> Face:
        face = pick_face(self.detector.detect(img.rgb))
        if face is None:
            raise RequestError(f"{label}: no face found")
        return face

    def verify(self, first: bytes, second: bytes) -> dict[str, Any]:
        """Are the largest faces of two photos the same person? (celebface.verification,
        with the gallery's pair threshold.)"""
        from celebface.verification import verify

        if self.pair_threshold is None:
            raise RequestError("no same-person threshold for this gallery's embedder: "
                               "calibrate the gallery ('celebface calibrate --match knn')", 409)
        imgs = [self.decode(first, "image1"), self.decode(second, "image2")]
        v = verify(imgs[0].rgb, imgs[1].rgb, detector=self.detector, embedder=self.embedder,
                   threshold=self.pair_threshold)
        for label, whole in (("image1", v.whole_a), ("image2", v.whole_b)):
            if whole:
                raise RequestError(f"{label}: no face found")
        faces = [f.scaled(img.scale).to_dict() for f, img in zip((v.face_a, v.face_b), imgs,
                                                                 strict=True)]
        return {"same": bool(v.same), "score": round(float(v.score), 4),
                "threshold": round(float(v.threshold), 4), "faces": faces}

    # ---------------------------------------------------------------- the gallery
    def people(self) -> list[dict[str, Any]]:
        self.refresh()
        return [{"name": n, "photos": c} for n, c in self.gallery.counts().items()]

    def _check_editable(self) -> None:
        if not self.editable:
            raise RequestError("faces are named by a trained model (--model): the gallery "
                               "cannot be edited here", 409)

    def enroll(self, name: str, photos: Sequence[tuple[str, bytes]]) -> dict[str, Any]:
        """Add the largest face of each photo to ``name`` (new or known); unusable photos are
        listed in ``skipped``; none usable is an error."""
        self._check_editable()
        name = self.valid_name(name)
        if not photos:
            raise RequestError("no photo: send one or more in the multipart field 'image'")
        if len(photos) > self.config.max_photos:
            raise RequestError(f"{len(photos)} photos in one request; at most "
                               f"{self.config.max_photos}", 413)
        images, faces, sources, skipped = [], [], [], []
        errors: list[RequestError] = []
        for label, data in photos:
            try:
                img = self.decode(data, label)
                faces.append(self._largest(img, label))
            except RequestError as exc:
                errors.append(exc)
                skipped.append({"photo": label, "reason": str(exc)})
                continue
            images.append(img)
            sources.append("upload:" + hashlib.sha256(data).hexdigest()[:32])
        if not images:
            raise RequestError("; ".join(str(e) for e in errors), errors[0].status)
        emb = np.asarray(self.embedder.embed([i.rgb for i in images], faces), np.float32)

        def add(gallery: Gallery) -> int:
            gallery.add(emb, [name] * len(images), sources)
            mark_changed(gallery)
            return gallery.counts()[name]

        count = self._edit(add)
        if not self.thumbs.has(name):
            best = max(range(len(faces)), key=lambda i: faces[i].score)
            self.thumbs.save(name, face_thumbnail(images[best].rgb, faces[best]))
        return {"name": name, "added": len(images), "photos": count,
                "skipped": skipped, **self.status()}

    def _edit(self, change: Callable[[Gallery], T]) -> T:
        """The one way the server edits its gallery: under the store's lock (other processes
        and servers wait), re-read it, apply ``change``, save it, publish a recogniser for it;
        returns ``change``'s result. When ``change`` raises, nothing is saved; a store that
        cannot be reached is a 503, a gallery that refuses the change a 409."""
        self._check_editable()
        with self._edit_lock:
            try:
                result, gallery, version = self.store.edit(change, self._load_for_edit)
            except StoreUnavailableError as exc:
                raise RequestError(str(exc), 503) from None
            except GalleryError as exc:
                raise RequestError(str(exc), 409) from None
            with self._reload_lock:
                self._use(gallery)
                self._version = version
        return result

    def _load_for_edit(self) -> Gallery:
        """A new, empty gallery for the first enrolment (the store has none yet)."""
        spec = embedder_spec(self.embedder, EnrollConfig(
            embedder=self.gallery.embedder.get("name", "dlib"),
            embedder_options=dict(self.gallery.embedder.get("options") or {})))
        settings = spec["settings"]
        return Gallery(path=getattr(self.store, "folder", None), embedder=spec, info={
            "alignment": settings.get("alignment", settings.get("align")),
            "faces_from": f"uploads (largest {self.config.detector} face)"})

    def remove(self, name: str) -> dict[str, Any]:
        """Delete ``name`` and every photo of theirs from the gallery."""
        self._check_editable()
        name = self.valid_name(name)

        def drop(gallery: Gallery) -> int:
            if name not in gallery.names:
                raise RequestError(f"{name!r} is not in the gallery", 404)
            removed = gallery.remove(name)
            mark_changed(gallery)
            return removed

        removed = self._edit(drop)
        self.thumbs.remove(name)
        return {"name": name, "removed": removed, **self.status()}

    def thumbnail(self, name: str) -> bytes | None:
        """A small JPEG of ``name``'s face: cached, else cut from their first readable photo
        (people enrolled by ``celebface enroll`` from files), else ``None``."""
        g = self.gallery
        if name not in g.names:
            raise RequestError(f"{name!r} is not in the gallery", 404)
        label = g.names.index(name)
        sources = [s for s, lab in zip(g.sources, g.labels, strict=True) if lab == label]
        return self.thumbs.get(name, sources, self.detector, self.config.max_side)

    @staticmethod
    def valid_name(name: str) -> str:
        """:func:`check_name`, its refusal as a 400 :class:`RequestError`."""
        try:
            return check_name(name)
        except ValueError as exc:
            raise RequestError(str(exc)) from None


def _pair_threshold(gallery: Gallery) -> float | None:
    """The cosine at which /v1/verify calls two faces the same person: the gallery's
    calibrated ``knn`` threshold, else the embedder's measured pair threshold."""
    from celebface.verification import NoThresholdError, gallery_pair_threshold

    try:
        return gallery_pair_threshold(gallery)
    except NoThresholdError as exc:
        log.warning("/v1/verify is off: %s", exc)
        return None
