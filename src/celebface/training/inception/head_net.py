"""The ``inception`` network's module: a backbone trunk + the reference head (imports torch;
:func:`celebface.training.inception.net.build_network` builds it)."""

from __future__ import annotations

import torch
from torch import nn

from celebface.training import backbones
from celebface.training.inception.config import EMBEDDING_DIM


class ReferenceHeadNet(nn.Module):
    """Trunk ``features`` (the first ``freeze`` blocks frozen) + the reference head;
    ``embed(x)`` gives the embedding, ``forward(x)`` the class logits."""

    def __init__(self, num_classes: int, input_size: int, backbone: str, freeze: int) -> None:
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
