"""A trained ``face-resnet`` model, and its 128-d layer as an embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from celebface.device import resolve_device
from celebface.io import atomic_write
from celebface.recognition.base import Embedder
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.recognition.spec import DEFAULT_TTA, check_tta
from celebface.training.base import TrainedModel, weights_file
from celebface.training.chips import alignment_config, face_chips
from celebface.training.face_resnet.config import KIND, WEIGHTS
from celebface.training.face_resnet.net import ClassHead, FaceResNetNet, build_dlib_net
from celebface.training.registry import register_model_kind


class FaceResNetModel(TrainedModel):
    """A fine-tuned dlib ResNet with its classification head; predicts on face crops (each
    image is the face) or, through :meth:`as_embedder`, embeds located faces."""

    kind: ClassVar[str] = KIND
    #: the folder the model was saved in or loaded from (None: not saved yet)
    model_dir: str | None = None

    def __init__(self, net: FaceResNetNet, label_names: Sequence[str],
                 meta: dict[str, Any] | None = None, device: str = "auto",
                 batch_size: int = 64):

        super().__init__(label_names, meta)
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.net.from_level = 0
        self.batch_size = batch_size
        #: ``flip``: probabilities averaged over the chip and its mirror image (old folders
        #: without ``preprocessing.tta``: none)
        self.tta = check_tta(str(((meta or {}).get("preprocessing") or {}).get("tta",
                                                                            DEFAULT_TTA)))
        alignment = dict((meta or {}).get("alignment") or {})
        self._aligner = FaceResNetEmbedder(self, alignment)

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        chips = face_chips(images, self._aligner, faces)
        outs = []
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(np.stack(chips[start:start + self.batch_size]))
                x = x.to(self.device)
                p = torch.softmax(self.net(x).double(), 1)
                if self.tta == "flip":  # (N, H, W, 3) chips: the mirror image flips W
                    p = (p + torch.softmax(self.net(x.flip(2)).double(), 1)) / 2
                outs.append(p.cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes))

    def as_embedder(self) -> Embedder:
        return self._aligner

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, fh)
        return {"weights": WEIGHTS, "embedding_dim": 128,
                "preprocessing": {"chips": "dlib 5-point alignment, 150 px",
                                  "scale": "(x - dlib RGB mean) / 256", "tta": self.tta}}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto"
             ) -> FaceResNetModel:
        path = weights_file(model_dir, meta, WEIGHTS)
        h = meta["head"]
        net = FaceResNetNet(build_dlib_net(trainable=False),
                            ClassHead(len(meta["label_names"]), h["head"], h["scale"],
                                      h["margin"]))
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model = cls(net, meta["label_names"], meta, device)
        model.model_dir = str(model_dir)
        return model


class FaceResNetEmbedder(DlibEmbedder):
    """A fine-tuned ``face-resnet`` model's 128-d layer on dlib-aligned chips."""

    name = "face-resnet"

    def __init__(self, model: FaceResNetModel, alignment: dict[str, Any] | None = None):
        super().__init__(alignment_config(alignment), device=model.device, net=model.net.net)
        self.model = model

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "alignment": "dlib-5-point",
                "model_dir": getattr(self.model, "model_dir", None)}


register_model_kind(KIND, FaceResNetModel)
