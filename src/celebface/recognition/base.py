"""The embedder interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.types import Face


class Embedder(ABC):
    """Faces in, L2-normalised float32 vectors out.

    ``images`` are RGB uint8 arrays; ``faces[i]`` locates the face in ``images[i]`` (box and,
    when known, landmarks). ``None`` (or no ``faces``) means the whole image is the face, as for
    a dataset of crops.
    """

    name: str = "embedder"
    dim: int = 0

    @abstractmethod
    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
    ) -> np.ndarray:
        """``(len(images), dim)`` float32, each row of unit length."""

    def settings(self) -> dict[str, Any]:
        """Everything that changes the vectors (cache key and metadata)."""
        return {"model": self.name, "dim": self.dim}


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
