"""Score-level fusion of embedders as one embedder (``dlib+facenet``; its weights are in its
registry entry, :mod:`celebface.recognition.registry`).

Each part's L2-normalised vector is scaled by ``sqrt(w_i)`` (weights summing to 1) and the
parts are concatenated: the result has unit length, and the cosine of two fused vectors is the
weighted mean of the parts' cosines. Everything downstream (galleries, classifiers,
thresholds) works on it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.recognition.base import Embedder, l2_normalize
from celebface.types import Face

#: Part settings that describe rather than configure a part (not flattened into options).
_DESCRIPTIVE = ("model", "dim", "alignment", "weights")


def fuse(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """``[sqrt(w_1) v_1, ..., sqrt(w_k) v_k]`` of row-normalised parts, renormalised."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    parts = [l2_normalize(v) * np.float32(np.sqrt(wi)) for v, wi in zip(vectors, w, strict=True)]
    return l2_normalize(np.concatenate(parts, axis=1))


class FusedEmbedder(Embedder):
    """The parts' vectors of the same faces, fused by :func:`fuse` with ``weights``."""

    def __init__(self, parts: Sequence[Embedder], weights: Sequence[float] | None = None
                 ) -> None:
        if len(parts) < 2:
            raise InputError("fusion needs at least two embedders")
        self.parts = list(parts)
        self.name = "+".join(p.name for p in self.parts)
        self.dim = sum(p.dim for p in self.parts)
        if weights is None:  # equal (``EmbedderSpec.build`` passes a registered fusion's measured)
            weights = (1.0,) * len(self.parts)
        if len(weights) != len(self.parts) or min(weights) < 0 or sum(weights) <= 0:
            raise InputError(f"fusion weights {list(weights)}: need {len(self.parts)} "
                             "non-negative numbers, not all 0")
        total = float(sum(weights))
        self.weights = tuple(round(float(w) / total, 6) for w in weights)

    @property
    def weights_source(self) -> str | None:
        """The facenet part's weights file (what ``weights=`` rebuilds), if any."""
        for part in self.parts:
            source = getattr(part, "weights_source", None)
            if source is not None:
                return source
        return None

    def settings(self) -> dict[str, Any]:
        """The parts' settings flattened (their option names do not overlap), the weights."""
        out: dict[str, Any] = {"model": self.name, "dim": self.dim}
        for part in self.parts:
            s = part.settings()
            if "weights" in s:
                out["weights"] = s["weights"]
            out.update({k: v for k, v in s.items() if k not in _DESCRIPTIVE})
        out["alignment"] = "+".join(str(p.settings().get("alignment")) for p in self.parts)
        out["fusion_weights"] = list(self.weights)
        return out

    def embed_views(
        self,
        images: Sequence[np.ndarray],
        faces: Sequence[Face | None] | None = None,
        views: Sequence[str] = ("orig",),
    ) -> dict[str, np.ndarray]:
        per_part = [p.embed_views(images, faces, views) for p in self.parts]
        return {v: fuse([pv[v] for pv in per_part], self.weights) for v in views}

    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
    ) -> np.ndarray:
        return self.embed_views(images, faces, ("orig",))["orig"]
