"""The multi-output network: a backbone trunk with an identity head and a face-box head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class MultiOutputNet(nn.Module):
    """A backbone trunk; the identity head reads the pooled last map, the box head a mid-level
    (stride 16) map, reduced and pooled to 8x8, plus the pooled features.

    Input ``(N, 3, S, S)`` in ``[-1, 1]``; output ``(boxes (N, 4), logits (N, C))`` with boxes
    as normalised ``x1, y1, x2, y2`` (a sigmoid centre and size, so always a valid box)."""

    def __init__(self, num_classes: int, hidden: int = 256, dropout: float = 0.2,
                 backbone: str = "inception_v3", freeze: int = 0):
        super().__init__()
        from celebface.training import backbones

        spec = backbones.spec(backbone)
        self.input_norm = backbones.input_norm(backbone)
        self.features = backbones.build_features(backbone)
        backbones.freeze_blocks(self.features, freeze)
        self._mid = spec.mid_index
        self.box_reduce = nn.Sequential(
            nn.Conv2d(spec.mid_channels, 32, 1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(8), nn.Flatten(),
        )
        self.box_head = nn.Sequential(
            nn.Linear(32 * 64 + spec.out_channels, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 4),
        )
        self.class_head = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(spec.out_channels, num_classes))

    def train(self, mode: bool = True) -> MultiOutputNet:
        from celebface.training.backbones import keep_frozen_eval

        super().train(mode)
        keep_frozen_eval(self.features)
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input_norm(x)
        mid = x
        for i, block in enumerate(self.features):
            x = block(x)
            if i == self._mid:
                mid = x
        pooled = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        raw = self.box_head(torch.cat([self.box_reduce(mid), pooled], 1)).float()
        centre, size = torch.sigmoid(raw[:, :2]), torch.sigmoid(raw[:, 2:])
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0.0, 1.0)
        return boxes, self.class_head(pooled)


def build_net(num_classes: int, network: Mapping[str, Any], weights: str | None = None,
              load_pretrained: bool = True, freeze: int = 0) -> MultiOutputNet:
    """The network for ``num_classes`` identities (``network`` as
    :meth:`MultiOutputConfig.network`; no ``backbone`` means InceptionV3). With
    ``load_pretrained`` and ``pretrained: imagenet`` the trunk gets its ImageNet weights from
    the model store (local files only; :class:`~celebface.models.store.MissingWeightsError`
    when absent)."""
    backbone = str(network.get("backbone", "inception_v3"))
    net = MultiOutputNet(num_classes, int(network["hidden"]), float(network["dropout"]),
                         backbone, freeze)
    if load_pretrained and network["pretrained"] == "imagenet":
        from celebface.training.backbones import load_imagenet

        load_imagenet(net.features, backbone, weights)
    return net
