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

from celebface.detection.finder import FaceFinder, is_whole, whole_face
from celebface.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundFace:
    """A face of one image: ``face.embedding`` is set once embedded; ``whole`` means no face
    was detected and the whole image stands for it
    (:func:`~celebface.detection.finder.whole_face`)."""

    face: Face
    whole: bool = False


def locate(
    images: Sequence[np.ndarray], finder: FaceFinder | None, all_faces: bool = True,
    crop: bool = True,
) -> list[list[FoundFace]]:
    """Faces of each image by ``finder``: the largest face
    (:meth:`FaceFinder.locate <celebface.detection.finder.FaceFinder.locate>`), or with
    ``all_faces`` every face that counts, highest score first. An image without a detected
    face (MTCNN already retried it with a padded border, which finds the face of a tight
    crop) gets the whole image (``whole=True``) when ``crop`` says the images are face crops
    (the ``auto`` rule), else no face (an empty list). ``finder=None``: every image is a face
    crop, used whole."""
    if finder is None:
        return [[FoundFace(whole_face(img), True)] for img in images]
    if all_faces:
        return [[FoundFace(f) for f in faces] or
                ([FoundFace(whole_face(img), True)] if crop else [])
                for img, faces in zip(images, finder.find_batch(images), strict=True)]
    # the auto rule's search (its large-face pass too), then its whole-image fallback only
    # for crops: the faces found are the same with and without ``crop``
    return [[FoundFace(f, is_whole(f))] if crop or not is_whole(f) else []  # type: ignore[arg-type]
            for f in finder.locate(images, rule="auto")]


def embed_found(
    images: Sequence[np.ndarray], found: Sequence[Sequence[FoundFace]], embedder: Any
) -> list[list[FoundFace]]:
    """``found`` with each face's ``embedding`` set (one batch for all faces of all images)."""
    flat_images, flat_faces = [], []
    for img, faces in zip(images, found, strict=True):
        for f in faces:
            flat_images.append(img)
            flat_faces.append(f.face)
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
    images: Sequence[np.ndarray], finder: FaceFinder | None, embedder: Any,
    all_faces: bool = True, crop: bool = True,
) -> list[list[FoundFace]]:
    """:func:`locate` then :func:`embed_found`."""
    return embed_found(images, locate(images, finder, all_faces, crop), embedder)
