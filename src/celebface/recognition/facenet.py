"""FaceNet (facenet-pytorch InceptionResnetV1, VGGFace2 weights): 512-d embeddings."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.models.store import MissingWeightsError, find_weights, torch_hub_checkpoints
from celebface.recognition.base import Embedder, l2_normalize
from celebface.types import Face

log = logging.getLogger(__name__)

#: File name facenet-pytorch gives the VGGFace2 weights.
VGGFACE2_FILE = "20180402-114759-vggface2.pt"
INPUT_SIZE = 160


def facenet_weights_path(user_path: str | Path | None = None) -> Path:
    """``user_path``, or the VGGFace2 file in the torch cache (``hub/checkpoints`` or the
    ``checkpoints`` folder facenet-pytorch itself uses)."""
    if user_path is None:
        legacy = torch_hub_checkpoints().parent.parent / "checkpoints" / VGGFACE2_FILE
        if legacy.is_file() and legacy.stat().st_size > 0:
            return legacy
    try:
        return find_weights("FaceNet (InceptionResnetV1, VGGFace2)", [VGGFACE2_FILE], user_path)
    except MissingWeightsError as exc:
        if user_path is not None:
            raise
        legacy = torch_hub_checkpoints().parent.parent / "checkpoints" / VGGFACE2_FILE
        raise MissingWeightsError(f"{exc}; {legacy} is also accepted") from None


def crop_resize(image: np.ndarray, face: Face | None, size: int = INPUT_SIZE) -> np.ndarray:
    """The face box (whole image when ``face`` is None) resized to ``size`` x ``size``."""
    import cv2

    if face is not None:
        h, w = image.shape[:2]
        x1, y1, x2, y2 = (round(float(v)) for v in face.box)
        x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
        if x2 > x1 and y2 > y1:
            image = image[y1:y2, x1:x2]
    return cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_AREA)


class FacenetEmbedder(Embedder):
    """InceptionResnetV1 from facenet-pytorch on 160x160 face crops, batched on ``device``.

    ``weights``: a file path, None (look in the torch cache) or ``"random"`` (untrained
    weights, for tests of the plumbing only).
    """

    name = "facenet"
    dim = 512

    def __init__(self, weights: str | Path | None = None, device: str = "auto",
                 batch_size: int = 64) -> None:
        from celebface.device import resolve_device

        self.weights = str(weights) if weights is not None else None
        self.device = resolve_device(device)
        self.batch_size = batch_size
        if self.weights != "random":  # fail early, before any work
            self.weights_path: Path | None = facenet_weights_path(self.weights)
        else:
            self.weights_path = None
        self._model: Any = None

    @property
    def weights_source(self) -> str:
        """What ``weights=`` rebuilds this embedder: the weights file's path, or "random"."""
        return "random" if self.weights_path is None else str(self.weights_path)

    def settings(self) -> dict[str, Any]:
        source = "random" if self.weights_path is None else self.weights_path.name
        return {"model": self.name, "dim": self.dim, "alignment": "box-resize-160",
                "weights": source}

    def _load(self) -> Any:
        if self._model is None:
            import torch
            from facenet_pytorch import InceptionResnetV1

            model = InceptionResnetV1(pretrained=None, classify=False)
            if self.weights_path is None:
                log.warning("facenet with random weights: vectors are meaningless (tests only)")
            else:
                state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
                state = {k: v for k, v in state.items() if not k.startswith("logits.")}
                model.load_state_dict(state)
            self._model = model.eval().to(self.device)
        return self._model

    def embed(
        self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
    ) -> np.ndarray:
        import torch

        model = self._load()
        faces = faces if faces is not None else [None] * len(images)
        crops = [crop_resize(img, f) for img, f in zip(images, faces, strict=True)]
        out = []
        with torch.inference_mode():
            for start in range(0, len(crops), self.batch_size):
                batch = np.stack(crops[start:start + self.batch_size])
                x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float()
                x = (x - 127.5) / 128.0
                out.append(model(x).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(np.concatenate(out))
