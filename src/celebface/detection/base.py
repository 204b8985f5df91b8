"""The detector interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from celebface.types import Face


class Detector(ABC):
    """Finds faces in RGB uint8 images (H x W x 3). Boxes are in the input image's pixels."""

    name: str = "detector"

    @abstractmethod
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces of each image, highest score first."""

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]
