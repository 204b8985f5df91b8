"""YuNet's faces with MTCNN's landmarks (``--detector yunet+onet``).

YuNet finds small faces that MTCNN misses at the same image size, at a fraction of its cost
(``benchmarks/results/detectors.md``), but its landmarks differ from MTCNN's, on which every
measured constant of the embedders was made: with YuNet's own landmarks the default
``dlib+sface`` accepts fewer same-person pairs at its pair threshold
(``benchmarks/results/detectors_transfer_dlib+sface.json``). So each face YuNet finds is given
MTCNN's box and landmarks by MTCNN's last two stages (R-net's box regression and O-net's, on
the face's box made square, in place of P-net's candidates); a face O-net does not accept
keeps YuNet's. On 30 five_celeb photos the landmarks lie 0.036 of the inter-ocular distance
from MTCNN's own on average (YuNet's: 0.101; O-net alone on YuNet's box: 0.042).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.detection.mtcnn import MTCNNDetector
from celebface.detection.prepare import sort_faces
from celebface.detection.yunet import YuNetConfig, YuNetDetector
from celebface.types import Face


class YuNetONetDetector(YuNetDetector):
    """YuNet proposes, MTCNN's R-net and O-net place the box and the five landmarks (module
    doc)."""

    name = "yunet+onet"

    def __init__(self, device: str = "auto", config: YuNetConfig | None = None, **options: Any):
        super().__init__(device, config, **options)
        self.refine_device = device
        self._refiner: MTCNNDetector | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "refine_device": self.refine_device}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._refiner = None

    @property
    def refiner(self) -> MTCNNDetector:
        if self._refiner is None:
            self._refiner = MTCNNDetector(device=self.refine_device)
        return self._refiner

    def _detect_padded(self, images: Sequence[np.ndarray], pad: float) -> list[list[Face]]:
        found = super()._detect_padded(images, pad)
        return [sort_faces(faces) for faces in self.refiner.refine(images, found)]
