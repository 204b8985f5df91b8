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

from celebface.recognition.align import detected_faces
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
    images: Sequence[np.ndarray], detector: Any | None, all_faces: bool = True
) -> list[list[FoundFace]]:
    """Faces of each image by the one rule (:func:`celebface.recognition.align.detected_faces`:
    the largest, or with ``all_faces`` every face, highest score first); an image without a
    face gets the whole image (``whole=True``), as the ``auto`` rule does. ``detector=None``:
    every image is a face crop, used whole."""
    if detector is None:
        return [[FoundFace(whole_face(img), True)] for img in images]
    found = detected_faces(images, detector, every=all_faces)
    return [[FoundFace(f) for f in faces] or [FoundFace(whole_face(img), True)]
            for img, faces in zip(images, found, strict=True)]


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
