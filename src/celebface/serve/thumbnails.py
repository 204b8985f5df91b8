"""Small face pictures of the people in a gallery, for the web page's people list."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.io import ImageReadError, atomic_write_bytes, encode_jpeg, read_image
from celebface.types import Face

log = logging.getLogger(__name__)

SIZE = 160


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
    """One JPEG per person in ``folder`` (named by a hash of the name, so any valid name is a
    safe file name), cached in memory; a read-only folder only loses the files."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.folder / f"{hashlib.sha256(name.encode('utf-8')).hexdigest()[:24]}.jpg"

    def has(self, name: str) -> bool:
        return name in self._cache or self.path(name).is_file()

    def save(self, name: str, jpeg: bytes) -> None:
        with self._lock:
            self._cache[name] = jpeg
        try:
            atomic_write_bytes(self.path(name), jpeg)
        except OSError as exc:
            log.debug("%s: thumbnail not saved: %s", name, exc)

    def remove(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)
        self.path(name).unlink(missing_ok=True)

    def get(self, name: str, sources: Sequence[str], finder: Any, max_side: int
            ) -> bytes | None:
        """The cached picture, else one cut around the largest face that counts in the first
        of ``sources`` (photo files) where ``finder`` (a
        :class:`~celebface.detection.finder.FaceFinder`) finds one, else ``None``."""
        if name in self._cache:
            return self._cache[name]
        if self.path(name).is_file():
            with self._lock:
                self._cache[name] = self.path(name).read_bytes()
            return self._cache[name]
        for source in sources:
            if not Path(source).is_file():
                continue
            try:
                img = read_image(source, max_side)
            except ImageReadError as exc:
                log.debug("%s", exc)
                continue
            face = finder.largest(img.rgb, rule="detect")
            if face is not None:
                jpeg = face_thumbnail(img.rgb, face)
                self.save(name, jpeg)
                return jpeg
        return None
