"""Face detection: ``get_detector(name)`` returns a :class:`Detector` registered by name
(:mod:`celebface.detection.registry`: ``mtcnn``, ``hog``, ``yunet``, ``yunet+onet``).

Detectors take RGB uint8 images and return :class:`celebface.types.Face` lists (box, score,
5 landmarks) in the input image's pixels, highest score first. Every surface finds faces
through a :class:`FaceFinder` (``get_finder()``: minimum score, size, nested boxes, the
whole-image rule), never through a detector directly.
"""

from __future__ import annotations

from celebface.detection.base import Detector
from celebface.detection.finder import FaceFinder, FinderConfig, get_finder
from celebface.detection.registry import (
    DEFAULT_DETECTOR,
    DEFAULT_VIDEO_DETECTOR,
    DetectorInfo,
    check_detector,
    detector_info,
    detector_names,
    get_detector,
    min_score,
    register_detector,
)

__all__ = [
    "DEFAULT_DETECTOR",
    "DEFAULT_VIDEO_DETECTOR",
    "Detector",
    "DetectorInfo",
    "FaceFinder",
    "FinderConfig",
    "check_detector",
    "detector_info",
    "detector_names",
    "get_detector",
    "get_finder",
    "min_score",
    "register_detector",
]
