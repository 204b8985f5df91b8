"""A trained multi-output model: identity, probability and face box per image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from celebface.device import resolve_device
from celebface.io import atomic_write
from celebface.recognition.spec import DEFAULT_TTA, check_tta
from celebface.synth.boxeval import box_report
from celebface.training.base import Prediction, TrainedModel, predictions_from_probs, weights_file
from celebface.training.multi_output.config import KIND
from celebface.training.multi_output.data import normalise, to_input
from celebface.training.multi_output.net import MultiOutputNet, build_net
from celebface.training.registry import register_model_kind

WEIGHTS = "model.pt"


class MultiOutputModel(TrainedModel):
    """A trained multi-output network: ``predict`` gives identity, probability and box."""

    kind: ClassVar[str] = KIND

    def __init__(self, label_names: Sequence[str], net: MultiOutputNet,
                 network: Mapping[str, Any], meta: dict[str, Any] | None = None,
                 device: str = "cpu", batch_size: int = 32, tta: str = DEFAULT_TTA):
        super().__init__(label_names, meta)
        self.net = net.to(device).eval()
        self.network = dict(network)
        self.device = device
        self.batch_size = batch_size
        #: ``flip``: identity probabilities averaged over the image and its mirror image (the
        #: box is the image's own)
        self.tta = check_tta(tta)

    @property
    def input_size(self) -> int:
        return int(self.network["input_size"])

    def predict_outputs(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (N, C), boxes (N, 4) as x1, y1, x2, y2 in each image's pixels)``."""
        probs, boxes = [], []
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                x = normalise(torch.from_numpy(to_input(chunk, self.input_size))).to(self.device)
                b, logits = self.net(x)
                p = torch.softmax(logits.float(), 1)
                if self.tta == "flip":
                    p = (p + torch.softmax(self.net(x.flip(3))[1].float(), 1)) / 2
                probs.append(p.cpu().numpy())
                wh = np.array([[im.shape[1], im.shape[0]] * 2 for im in chunk], np.float32)
                boxes.append(b.float().cpu().numpy() * wh)
        if not probs:
            return np.zeros((0, self.num_classes), np.float32), np.zeros((0, 4), np.float32)
        return np.concatenate(probs), np.concatenate(boxes)

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self.predict_outputs(images)[0]

    def predict(
        self, images: Sequence[np.ndarray], top_k: int = 5, faces: Sequence[Any] | None = None
    ) -> list[Prediction]:
        if len(images) == 0:
            return []
        probs, boxes = self.predict_outputs(images)
        preds = predictions_from_probs(probs, self.label_names, top_k)
        for p, b in zip(preds, boxes, strict=True):
            p.box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        return preds

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save(state, fh)
        return {"weights": WEIGHTS, "network": self.network,
                "preprocessing": {"resize": [self.input_size, self.input_size],
                                  "keep_aspect": False, "scale": "x / 127.5 - 1",
                                  "tta": self.tta}}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto"
             ) -> MultiOutputModel:

        path = weights_file(model_dir, meta, WEIGHTS)
        net = build_net(len(meta["label_names"]), meta["network"], load_pretrained=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(meta["label_names"], net, meta["network"], meta,
                   device=resolve_device(device),
                   tta=str((meta.get("preprocessing") or {}).get("tta", DEFAULT_TTA)))

    def evaluate_extra(self, images: Sequence[np.ndarray], predictions: Sequence[Prediction],
                       items: Sequence[Any], out_dir: str | Path) -> dict[str, Any]:
        """Box metrics against the items' true boxes (``item.box`` in the image's pixels, as a
        box dataset's :class:`celebface.data.FaceItem` has) and ``box_samples.png``; ``{}``
        without boxes."""

        return box_report(images, predictions, items, out_dir)


register_model_kind(KIND, MultiOutputModel)
