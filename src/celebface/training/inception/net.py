"""The ``inception`` network: an ImageNet backbone with the reference head."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from celebface.errors import InputError
from celebface.training.inception.config import EMBEDDING_DIM

if TYPE_CHECKING:
    import torch
    from torch import nn


def build_network(num_classes: int, input_size: int = 224, backbone: str = "inception_v3",
                  freeze: int = 0) -> nn.Module:
    """A backbone trunk (:mod:`celebface.training.backbones`) + the reference head, as one
    ``nn.Module`` with ``.embed(x)``; the first ``freeze`` trunk blocks are frozen."""
    import torch
    from torch import nn

    from celebface.training import backbones

    spec = backbones.spec(backbone)
    if input_size < spec.min_input:
        raise InputError(f"input size {input_size} too small for {backbone} "
                         f"(minimum {spec.min_input})")

    class ReferenceHeadNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            #: > 0: inputs are the maps after that many trunk blocks (cached, see ``aligned``)
            self.from_block = 0
            self.input_norm = backbones.input_norm(backbone)
            self.features = backbones.build_features(backbone)
            backbones.freeze_blocks(self.features, freeze)
            with torch.no_grad():
                self.features.eval()
                c, h, w = self.features(torch.zeros(1, 3, input_size, input_size)).shape[1:]
                self.features.train()
            self.feature_shape = (c, h, w)
            self.embedding = nn.Sequential(
                nn.Flatten(), nn.Linear(c * h * w, 1024), nn.ReLU(inplace=True), nn.Dropout(0.2),
                nn.Linear(1024, EMBEDDING_DIM), nn.ELU(inplace=True),
            )
            self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(EMBEDDING_DIM, num_classes))

        def train(self, mode: bool = True) -> ReferenceHeadNet:
            super().train(mode)
            backbones.keep_frozen_eval(self.features)
            return self

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            if self.from_block:
                return self.embedding(self.features[self.from_block:](x))
            return self.embedding(self.features(self.input_norm(x)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.embed(x))

    return ReferenceHeadNet()


def load_imagenet(net: nn.Module, weights: str | Path | None = None,
                  backbone: str = "inception_v3") -> Path:
    """Load ``backbone``'s ImageNet weights into ``net.features`` (from ``weights`` or the
    model store; never downloads; :class:`MissingWeightsError` when absent)."""
    from celebface.training.backbones import load_imagenet as load

    return load(net.features, backbone, weights)
