"""A trained ``inception`` model, and its 128-d layer as an embedder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from celebface.device import resolve_device
from celebface.geometry import crop_face
from celebface.io import atomic_write
from celebface.recognition.base import Embedder, l2_normalize
from celebface.training.base import TrainedModel, weights_file
from celebface.training.chips import face_chips
from celebface.training.inception.aligned import aligner, crop
from celebface.training.inception.config import ALIGNMENT, DLIB_PADDING, EMBEDDING_DIM, WEIGHTS
from celebface.training.inception.data import to_tensor
from celebface.training.inception.net import build_network
from celebface.training.registry import register_model_kind

if TYPE_CHECKING:
    from celebface.training.inception.head_net import ReferenceHeadNet
    from celebface.types import Face


class InceptionModel(TrainedModel):
    kind: ClassVar[str] = "inception"
    #: the folder the model was saved in or loaded from (None: not saved yet)
    model_dir: str | None = None

    def __init__(self, net: ReferenceHeadNet, label_names: Sequence[str], input_size: int,
                 meta: dict[str, Any] | None = None, device: str = "auto",
                 batch_size: int = 64):

        super().__init__(label_names, meta)
        self.input_size = input_size
        prep = (meta or {}).get("preprocessing") or {}
        #: how training made images square (a pack's ``fit``); prediction does the same
        self.fit = str(prep.get("fit", "stretch"))
        #: trained on aligned chips (``--align``): photos are aligned the same way first
        self.cutter = None
        self.chip_padding = float(prep.get("chip_padding", DLIB_PADDING))
        if prep.get("align"):

            self.cutter = aligner(prep.get("alignment"))
        #: ``flip``: probabilities averaged over the image and its mirror image
        self.tta = str(prep.get("tta", "none"))
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.net = net.to(self.device).eval()

    def _forward(self, images: Sequence[np.ndarray], embed: bool,
                 faces: Sequence[Any] | None = None) -> np.ndarray:
        import torch

        if self.cutter is not None and len(images):

            images = [crop(c, self.chip_padding, self.cutter.config.padding)
                      for c in face_chips(images, self.cutter, faces)]
        outs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = to_tensor(images[start:start + self.batch_size], self.input_size, self.fit)
                x = x.to(self.device)
                y = self.net.embed(x) if embed else torch.softmax(self.net(x).double(), 1)
                if self.tta == "flip" and not embed:
                    y = (y + torch.softmax(self.net(x.flip(3)).double(), 1)) / 2
                outs.append(y.double().cpu().numpy())
        width = EMBEDDING_DIM if embed else self.num_classes
        return np.concatenate(outs) if outs else np.zeros((0, width))

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self._forward(images, embed=False, faces=faces)

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        """The 128-d ELU layer's output, L2-normalised (``faces``: for aligned models)."""
        return l2_normalize(self._forward(images, embed=True, faces=faces))

    def as_embedder(self) -> Embedder:
        return InceptionEmbedder(self)

    def alignment(self) -> dict[str, Any]:
        """What ``model.json`` records of the chips an aligned model was trained on."""
        if self.cutter is None:
            return {}
        return {"align": ALIGNMENT, "alignment": self.cutter.settings(),
                "chip_padding": self.chip_padding}

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        import torch

        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, fh)
        return {"weights": WEIGHTS, "input_size": self.input_size,
                "backbone": getattr(self.net, "backbone", "inception_v3"),
                "preprocessing": {"resize": [self.input_size, self.input_size], "fit": self.fit,
                                  "scale": "x / 127.5 - 1", "channels": "RGB",
                                  "tta": self.tta, **self.alignment()},
                "embedding_dim": EMBEDDING_DIM}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> InceptionModel:
        import torch

        size = int(meta["input_size"])
        net = build_network(len(meta["label_names"]), size, meta.get("backbone", "inception_v3"))
        net.load_state_dict(torch.load(weights_file(model_dir, meta, WEIGHTS),
                                       map_location="cpu", weights_only=True))
        model = cls(net, meta["label_names"], size, meta, device)
        model.model_dir = str(model_dir)
        return model


class InceptionEmbedder(Embedder):
    """A trained ``inception`` model's 128-d ELU layer as an :class:`Embedder`. With ``faces``
    the face box is cut out first (square, 20% margin), as ``celebface crop`` does."""

    name = "inception"
    dim = EMBEDDING_DIM

    def __init__(self, model: InceptionModel, margin: float = 0.2):
        self.model = model
        self.margin = margin

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "input_size": self.model.input_size,
                "model_dir": getattr(self.model, "model_dir", None), "margin": self.margin,
                **self.model.alignment()}

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        if self.model.cutter is not None:  # aligned on the faces (located when not given)
            return self.model.embed(images, faces).astype(np.float32)
        if faces is not None and any(f is not None for f in faces):

            images = [im if f is None else crop_face(im, f, margin=self.margin,
                                                     size=self.model.input_size)
                      for im, f in zip(images, faces, strict=True)]
        return self.model.embed(images).astype(np.float32)


register_model_kind("inception", InceptionModel)
