"""``verify``: are the faces of two images the same person?"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from celebface.detection.finder import FaceFinder, as_finder, get_finder
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.errors import InputError
from celebface.gallery.policy import pair_threshold, same_person
from celebface.gallery.stores import load_gallery
from celebface.io.images import as_rgb
from celebface.recognition.spec import EmbedderSpec
from celebface.types import Verification
from celebface.verification.faces import embed_found, locate

log = logging.getLogger(__name__)


class NoFaceError(InputError):
    """A photo given to :func:`verify` without a detected face that the caller did not say is
    a face crop. ``index``: 0 for the first photo, 1 for the second."""

    def __init__(self, message: str, index: int):
        super().__init__(message)
        self.index = index


def _label(image: Any, index: int) -> str:
    return str(image) if isinstance(image, str | Path) else f"image {'AB'[index]}"


def gallery_settings(gallery: str | Path | Any, device: str = "auto") -> tuple[Any, float]:
    """``(embedder, threshold)`` of a gallery (object, folder, ``postgresql://`` URL or
    store)."""
    gallery = load_gallery(gallery)
    # the embedder the gallery was built with: its calibrated threshold holds for it only
    return gallery.spec.build(device), pair_threshold(gallery=gallery)


def face_finder(detector: Any | None, device: str = "auto") -> FaceFinder | None:
    """The finder ``verify``'s ``detector`` argument names (``"none"``: ``None``, faces used
    whole)."""
    if detector == "none":
        return None
    if detector is None or isinstance(detector, str):
        return get_finder(detector=detector or DEFAULT_DETECTOR, device=device)
    return as_finder(detector)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def verify(
    image_a: Any,
    image_b: Any,
    *,
    detector: Any | None = None,
    embedder: Any | None = None,
    threshold: float | None = None,
    all_faces: bool = False,
    crop: bool = False,
) -> Verification | list[Verification]:
    """Compare the largest face of ``image_a`` with the largest of ``image_b`` (paths, PIL
    images or RGB arrays); with ``all_faces`` every face of A against every face of B (a list,
    A's faces outer, each image's faces highest score first).

    ``detector``: a :class:`~celebface.detection.finder.FaceFinder`, a built detector, a name
    (``mtcnn``, ``hog``, or ``none`` when both images are face crops) or ``None`` (the default
    finder). An image without a detected face (MTCNN retries an image without a confident face
    with a padded border, which is what finds the face of a tight crop) raises
    :class:`NoFaceError`, unless ``crop`` says the images are face crops: it is then used whole
    (the ``auto`` rule of :mod:`celebface.detection.finder`; ``Verification.whole_a``/
    ``whole_b``), as with the detector ``none``. ``embedder``: a built embedder or ``None`` (dlib).
    ``threshold``: the cosine at or above which the faces are the same person (default: the
    embedder's measured pair threshold, :func:`celebface.gallery.policy.pair_threshold`).
    """
    finder = face_finder(detector)
    embedder = embedder if embedder is not None else EmbedderSpec().build()
    threshold = pair_threshold(embedder=embedder, override=threshold)
    images = [as_rgb(image_a), as_rgb(image_b)]
    located = locate(images, finder, all_faces, crop)
    for i, found in enumerate(located):
        if not found:
            raise NoFaceError(f"{_label((image_a, image_b)[i], i)}: no face found (a face "
                              "crop is used whole when the caller says it is one)", i)
    found_a, found_b = embed_found(images, located, embedder)
    for name, found in (("A", found_a), ("B", found_b)):
        if found[0].whole:
            log.info("image %s: no face found; the whole image is used as the face", name)
    results = []
    for fa in found_a:
        for fb in found_b:
            score = cosine(fa.face.embedding, fb.face.embedding)  # type: ignore[arg-type]
            results.append(Verification(
                same=same_person(score, threshold), score=score, threshold=float(threshold),
                face_a=fa.face, face_b=fb.face, whole_a=fa.whole, whole_b=fb.whole))
    return results if all_faces else results[0]
