"""Faces of arbitrary photos, found and embedded, shared by verify, cluster and audit.

A photo may be a raw picture (the detector finds its faces) or a tight face crop (the detector
often finds nothing there: the whole image is then the face and ``whole`` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from celebface.types import Face

log = logging.getLogger(__name__)

#: Photos are shrunk to this longer side before detection (as ``enroll`` does).
MAX_SIDE = 1024


@dataclass(frozen=True)
class FoundFace:
    """A face of one image: ``face.embedding`` is set once embedded; ``whole`` means no face
    was detected and the whole image stands for it."""

    face: Face
    whole: bool = False


def whole_face(image: np.ndarray) -> Face:
    """The whole image as a face (score 0: nothing was detected)."""
    h, w = image.shape[:2]
    return Face(box=(0.0, 0.0, float(w), float(h)), score=0.0)


def locate(
    images: Sequence[np.ndarray], detector: Any | None, all_faces: bool = True,
    min_score: float | None = None, min_size: float = 0.0,
) -> list[list[FoundFace]]:
    """Faces of each image (the largest only unless ``all_faces``), highest score first; an
    image without a face gets the whole image (``whole=True``). ``detector=None``: every
    image is a face crop."""
    if detector is None:
        return [[FoundFace(whole_face(img), True)] for img in images]
    from celebface.cropping.dataset import select_faces
    from celebface.detection import DEFAULT_MIN_SCORE

    if min_score is None:
        min_score = DEFAULT_MIN_SCORE.get(getattr(detector, "name", ""), 0.0)
    policy = "all" if all_faces else "largest"
    out = []
    for img, faces in zip(images, detector.detect_batch(list(images)), strict=True):
        kept = select_faces(faces, policy, min_score, min_size)
        out.append([FoundFace(f) for f in kept] or [FoundFace(whole_face(img), True)])
    return out


def embed_found(
    images: Sequence[np.ndarray], found: Sequence[Sequence[FoundFace]], embedder: Any
) -> list[list[FoundFace]]:
    """``found`` with each face's ``embedding`` set (one batch for all faces of all images);
    a whole-image face is embedded as a crop (no box)."""
    flat_images, flat_faces = [], []
    for img, faces in zip(images, found, strict=True):
        for f in faces:
            flat_images.append(img)
            flat_faces.append(None if f.whole else f.face)
    vectors = (embedder.embed(flat_images, flat_faces) if flat_images
               else np.zeros((0, embedder.dim), np.float32))
    out, k = [], 0
    for faces in found:
        row = []
        for f in faces:
            row.append(FoundFace(f.face.with_(embedding=np.asarray(vectors[k], np.float32)),
                                 f.whole))
            k += 1
        out.append(row)
    return out


def find_and_embed(
    images: Sequence[np.ndarray], detector: Any | None, embedder: Any, all_faces: bool = True
) -> list[list[FoundFace]]:
    """:func:`locate` then :func:`embed_found`."""
    return embed_found(images, locate(images, detector, all_faces), embedder)
