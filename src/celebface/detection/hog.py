"""dlib's frontal-face HOG detector, with 5 landmarks from dlib's 68-point shape predictor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celebface.detection.base import PaddingConfig, PaddingDetector, apply_options
from celebface.detection.prepare import prepare, sort_faces, to_input_pixels
from celebface.models.store import dlib_model_path
from celebface.types import Face

# 68-point indices -> the 5 points in MTCNN order, as seen in the image:
# left eye (36-41), right eye (42-47), nose tip (30), left mouth corner (48), right (54).
_FIVE_FROM_68 = (tuple(range(36, 42)), tuple(range(42, 48)), (30,), (48,), (54,))


@dataclass
class HOGConfig(PaddingConfig):
    """HOG settings (padding as in :class:`PaddingConfig`): ``upsample`` doubles the image that
    many times (finds smaller faces); ``threshold`` is dlib's ``adjust_threshold`` (scores are
    SVM margins, 0 = dlib default)."""

    upsample: int = 1
    threshold: float = 0.0
    landmarks: bool = True


def five_points(shape) -> np.ndarray:
    """The 5 MTCNN-order landmarks (5 x 2 float32) of a dlib 68-point shape."""
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
    return np.stack([pts[list(idx)].mean(axis=0) for idx in _FIVE_FROM_68]).astype(np.float32)


class HOGDetector(PaddingDetector):
    """dlib HOG + linear SVM frontal face detector (CPU only; ``device`` is ignored)."""

    name = "hog"

    config: HOGConfig

    def __init__(self, device: str = "auto", config: HOGConfig | None = None, **options):
        import dlib


        self.config = apply_options(config or HOGConfig(), options, "HOG")
        self.device = "cpu"
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = (
            dlib.shape_predictor(str(dlib_model_path("shape_predictor_68")))
            if self.config.landmarks
            else None
        )

    def _detect_padded(self, images: Sequence[np.ndarray], pad: float) -> list[list[Face]]:
        return [self._detect_one(im, pad) for im in images]

    def _detect_one(self, image: np.ndarray, pad: float) -> list[Face]:
        c = self.config
        prep = prepare(image, c.max_side, pad, c.pad_mode, short_side=c.short_side)
        rects, scores, _ = self._detector.run(prep.image, c.upsample, c.threshold)
        faces = []
        for rect, score in zip(rects, scores, strict=True):
            lm = five_points(self._predictor(prep.image, rect)) if self._predictor else None
            box = (float(rect.left()), float(rect.top()), float(rect.right() + 1),
                   float(rect.bottom() + 1))
            faces.append(to_input_pixels(Face(box=box, score=float(score), landmarks=lm), prep))
        return sort_faces(faces)
