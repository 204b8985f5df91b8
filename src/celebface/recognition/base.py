"""The embedder interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from celebface.device import full_precision
from celebface.types import Face

#: The views a face can be embedded in: itself, or its mirror image.
VIEWS = ("orig", "flip")


class Embedder:
    """Faces in, L2-normalised float32 vectors out.

    ``images`` are RGB uint8 arrays; ``faces[i]`` locates the face in ``images[i]`` (box and,
    when known, landmarks). ``None`` (or no ``faces``) means the whole image is the face, as for
    a dataset of crops.

    A subclass overrides :meth:`embed` (the whole image and face in, vectors out), or, when it
    cuts a fixed-size chip per face, :meth:`chips` and :meth:`embed_chips`: then the ``flip``
    view mirrors the chip instead of re-cutting it from the mirrored image.
    """

    name: str = "embedder"
    dim: int = 0

    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
    ) -> np.ndarray:
        """``(len(images), dim)`` float32, each row of unit length."""
        if type(self).chips is Embedder.chips:
            raise NotImplementedError(f"{type(self).__name__} overrides neither embed nor chips")
        return self.embed_views(images, faces, ("orig",))["orig"]

    def chips(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]
              ) -> list[np.ndarray]:
        """The network input cut for each face (override with :meth:`embed_chips`)."""
        raise NotImplementedError

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Vectors of chips from :meth:`chips` (normalised by the caller)."""
        raise NotImplementedError

    def embed_views(
        self,
        images: Sequence[np.ndarray],
        faces: Sequence[Face | None] | None = None,
        views: Sequence[str] = ("orig",),
    ) -> dict[str, np.ndarray]:
        """``{view: (N, dim) normalised vectors}`` for ``views`` of :data:`VIEWS`: ``flip``
        mirrors each chip (an embedder with :meth:`chips`) or each image and its face."""
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise ValueError(f"unknown view {unknown[0]!r}")
        faces = list(faces) if faces is not None else [None] * len(images)
        if type(self).chips is Embedder.chips:
            out = {}
            for view in views:
                if view == "orig":
                    out[view] = self.embed(images, faces)
                else:
                    pairs = [mirror(img, f) for img, f in zip(images, faces, strict=True)]
                    out[view] = self.embed([p[0] for p in pairs], [p[1] for p in pairs])
            return out
        cut = self.chips(images, faces)
        return {view: l2_normalize(self.embed_chips(
            cut if view == "orig" else [np.ascontiguousarray(c[:, ::-1]) for c in cut]))
            for view in views}

    def settings(self) -> dict[str, Any]:
        """Everything that changes the vectors (cache key and metadata)."""
        return {"model": self.name, "dim": self.dim}


def run_batches(net: Any, chips: Sequence[np.ndarray], batch_size: int, device: str,
                prepare: Any = None) -> np.ndarray:
    """``net`` on the uint8 HWC ``chips`` in batches of ``batch_size`` on ``device``
    (``prepare``: a function of each batch tensor first), as one float32 array; inference
    only, in full precision (:func:`celebface.device.full_precision`)."""
    import torch


    parts = []
    with torch.inference_mode(), full_precision():
        for start in range(0, len(chips), batch_size):
            x = torch.from_numpy(np.stack(chips[start:start + batch_size])).to(device)
            parts.append(net(x if prepare is None else prepare(x)).float().cpu().numpy())
    return np.concatenate(parts).astype(np.float32)


def mirror_face(face: Face | None, width: int) -> Face | None:
    """``face`` in the image mirrored left-right (``width`` pixels wide)."""
    if face is None:
        return None
    x1, y1, x2, y2 = face.box
    lm = None
    if face.landmarks is not None:
        lm = np.asarray(face.landmarks, dtype=np.float32).copy()
        lm[:, 0] = width - lm[:, 0]
        if len(lm) == 5:  # left/right swap: eyes and mouth corners
            lm = lm[[1, 0, 2, 4, 3]]
    return face.with_(box=(width - x2, y1, width - x1, y2), landmarks=lm)


def mirror(image: np.ndarray, face: Face | None) -> tuple[np.ndarray, Face | None]:
    """The horizontally mirrored image and the face mapped into it."""
    return np.ascontiguousarray(image[:, ::-1]), mirror_face(face, image.shape[1])


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
