"""Test-time augmentation: views of a face (``orig``, ``flip``) and their average."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.recognition.base import Embedder, l2_normalize
from celebface.types import Face

#: The test-time augmentations: ``none``, or ``flip`` (each face with its mirror image: the
#: average of the two embeddings, or of a trained model's two predictions).
TTAS = ("none", "flip")


def check_tta(tta: str) -> str:
    """``tta`` when it is one of :data:`TTAS` (the check of every ``--tta`` setting)."""
    if tta not in TTAS:
        raise InputError(f"--tta must be {' or '.join(TTAS)}, not {tta!r}")
    return tta


#: The views each of :data:`TTAS` averages.
TTA_VIEWS: dict[str, tuple[str, ...]] = {"none": ("orig",), "flip": ("orig", "flip")}


def views_for(tta: str) -> tuple[str, ...]:
    return TTA_VIEWS[check_tta(tta)]


def combine_views(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Average of normalised view vectors, renormalised."""
    return l2_normalize(np.mean(np.stack(vectors), axis=0))


class FlipTTA(Embedder):
    """Wraps an embedder: the embedding of a face is the average of it and its mirror image."""

    def __init__(self, base: Embedder) -> None:
        self.base = base
        self.name = base.name
        self.dim = base.dim

    def settings(self) -> dict[str, Any]:
        return {**self.base.settings(), "tta": "flip"}

    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
    ) -> np.ndarray:
        views = self.base.embed_views(images, faces, ("orig", "flip"))
        return combine_views([views["orig"], views["flip"]])
