"""Small face pictures of the photos in a gallery, for the web page's people list.

Each enrolled photo's thumbnail lives in the gallery's store (a folder's ``thumbnails/``, a
database's ``thumbnails`` table: :meth:`~celebface.gallery.store.GalleryStore.thumbnails`), so
every server of the store, and one restarted, shows it. A photo enrolled from a file without
one gets it cut from the file when first asked for. A person's picture is their first photo's.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.gallery.store import GalleryStore
from celebface.io import ImageReadError, encode_jpeg, read_image
from celebface.types import Face

log = logging.getLogger(__name__)

SIZE = 160
#: thumbnails kept in memory (about 5 KB each)
CACHED = 4096


def face_thumbnail(rgb: np.ndarray, face: Face, size: int = SIZE) -> bytes:
    """A square JPEG around ``face`` (its box grown by half, kept inside the image)."""
    import cv2

    h, w = rgb.shape[:2]
    cx, cy = face.center
    side = max(1, round(min(max(face.width, face.height) * 1.5, w, h)))
    x1 = int(min(max(0, round(cx - side / 2)), w - side))
    y1 = int(min(max(0, round(cy - side / 2)), h - side))
    crop = rgb[y1 : y1 + side, x1 : x1 + side]
    return encode_jpeg(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA), 88)


class Thumbnails:
    """The thumbnails of ``store``'s photos (by photo id), with the last :data:`CACHED` in
    memory (a photo id names one source, so its picture does not change)."""

    def __init__(self, store: GalleryStore):
        self.store = store
        self._cache: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, jpegs: dict[str, bytes]) -> None:
        with self._lock:
            for pid, jpeg in jpegs.items():
                self._cache[pid] = jpeg
                self._cache.move_to_end(pid)
            while len(self._cache) > CACHED:
                self._cache.popitem(last=False)

    def first(self, photos: Sequence[tuple[str, str]], finder: Any, max_side: int
              ) -> bytes | None:
        """The picture of the first of ``photos`` (``(photo id, source)``) that has one: a
        stored (or cached) one, else one cut around the largest face in a photo file (then
        stored), else ``None``."""
        with self._lock:
            for pid, _ in photos:
                if pid in self._cache:
                    return self._cache[pid]
        stored = self.store.thumbnails([pid for pid, _ in photos])
        for pid, _ in photos:
            if pid in stored:
                self.remember({pid: stored[pid]})
                return stored[pid]
        for pid, source in photos:
            jpeg = _cut(source, finder, max_side)
            if jpeg is not None:
                self.remember({pid: jpeg})
                try:
                    self.store.put_thumbnails({pid: jpeg})
                except OSError as exc:  # a read-only gallery: shown, not kept
                    log.debug("%s: thumbnail not stored: %s", source, exc)
                return jpeg
        return None


def _cut(source: str, finder: Any, max_side: int) -> bytes | None:
    """A thumbnail around the largest face ``finder`` finds in photo file ``source``."""
    if not Path(source).is_file():
        return None
    try:
        img = read_image(source, max_side)
    except ImageReadError as exc:
        log.debug("%s", exc)
        return None
    face = finder.largest(img.rgb, rule="detect")
    return None if face is None else face_thumbnail(img.rgb, face)
