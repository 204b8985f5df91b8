"""Face detection: ``get_detector("mtcnn" | "hog")`` returns a :class:`Detector`.

Detectors take RGB uint8 images and return :class:`celebface.types.Face` lists (box, score,
5 landmarks) in the input image's pixels, highest score first. Every surface finds faces
through a :class:`FaceFinder` (``get_finder()``: minimum score, size, nested boxes, the
whole-image rule), never through a detector directly.
"""

from __future__ import annotations

from typing import Any

from celebface.detection.base import Detector
from celebface.errors import InputError

DETECTORS = ("mtcnn", "hog")

#: Default ``min_score`` per detector for keeping a face (MTCNN probability; HOG SVM margin).
DEFAULT_MIN_SCORE = {"mtcnn": 0.9, "hog": 0.0}


def get_detector(name: str = "mtcnn", device: str = "auto", **options: Any) -> Detector:
    """A detector by name; ``options`` set fields of its config dataclass
    (:class:`~celebface.detection.mtcnn.MTCNNConfig` or ``hog.HOGConfig``)."""
    if name == "mtcnn":
        from celebface.detection.mtcnn import MTCNNDetector

        return MTCNNDetector(device=device, **options)
    if name == "hog":
        from celebface.detection.hog import HOGDetector

        return HOGDetector(device=device, **options)
    raise InputError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")


from celebface.detection.finder import (  # noqa: E402  (needs DEFAULT_MIN_SCORE above)
    FaceFinder,
    FinderConfig,
    get_finder,
)

__all__ = ["DEFAULT_MIN_SCORE", "DETECTORS", "Detector", "FaceFinder", "FinderConfig",
           "get_detector", "get_finder"]
