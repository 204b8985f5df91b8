"""The service's gallery-admin part (:class:`GalleryAdmin`, a part of
:class:`~celebface.serve.service.FaceService`): list, enrol, rename, merge and remove people and
photos. Every edit goes through :meth:`GalleryAdmin._edit`: under the store's lock it re-reads
the gallery, applies the change, saves it atomically and publishes a recogniser for it."""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import numpy as np

from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.enroll import embedder_spec, mark_changed
from celebface.gallery.store import (
    GalleryError,
    GalleryStore,
    StoreBusyError,
    StoreUnavailableError,
    photo_id,
)
from celebface.io import LoadedImage
from celebface.recognition.spec import EmbedderSpec
from celebface.serve.common import STORE_UNAVAILABLE, RequestError, display_name, page_of
from celebface.serve.config import ServeConfig
from celebface.serve.thumbnails import Thumbnails, face_thumbnail
from celebface.types import Face, person_name

log = logging.getLogger(__name__)

T = TypeVar("T")


class GalleryAdmin:
    """People and photos: listed, enrolled, renamed, merged, removed. Needs the service's
    store, models, decoder and the lock its edits take
    (:class:`~celebface.serve.service.FaceService` has them)."""

    config: ServeConfig
    gallery: Gallery
    store: GalleryStore
    thumbs: Thumbnails
    _edit_lock: threading.Lock
    _reload_lock: threading.Lock
    _version: Any
    _refused: Any

    if TYPE_CHECKING:
        @property
        def embedder(self) -> Any: ...
        @property
        def finder(self) -> Any: ...
        @property
        def editable(self) -> bool: ...
        def decode(self, data: bytes, label: str) -> LoadedImage: ...
        def status(self) -> dict[str, Any]: ...
        def models_spec(self) -> EmbedderSpec: ...
        def _use(self, gallery: Gallery) -> None: ...
        def _largest(self, img: LoadedImage, label: str) -> Face: ...

    def people(self, query: str = "") -> list[dict[str, Any]]:
        """Everyone enrolled, or those whose name or shown name holds ``query`` (any case)
        (run it through :meth:`run` to see other writers' changes)."""
        q = query.strip().casefold()
        found: list[dict[str, Any]] = [{"name": n, "label": display_name(n), "photos": c}
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

    return quote(name, safe="")


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
