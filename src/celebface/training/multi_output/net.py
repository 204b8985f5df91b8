"""The multi-output network: a backbone trunk with an identity head and a face-box head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from celebface.errors import InputError
from celebface.training.multi_output.config import IDENTITY_FROM


def _pool(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class MultiOutputNet(nn.Module):
    """A backbone trunk with a box head and an identity head. The box head reads a mid-level
    (stride 16) map, reduced and pooled to 8x8, plus the pooled last map. The identity head
    reads either the pooled last map of the whole scene (``identity_from="scene"``) or the
    face's region, the box widened by ``roi_margin`` per edge: ``"box"`` RoIAligns the
    stride-8 map to ``roi_size x roi_size`` and runs the trunk's remaining blocks on it,
    ``"crop"`` RoIAligns the input image to ``8 * roi_size`` pixels and runs the whole trunk
    (the same modules and weights as the scene path either way), then a pool. In training the
    given boxes' edges move by up to ``roi_jitter`` of their side.

    Input ``(N, 3, S, S)`` in ``[-1, 1]`` and optional ``boxes (N, 4)`` (normalised): the
    region the identity head reads; ``None`` means the predicted boxes (inference), training
    passes the true ones (teacher forcing). Output ``(boxes (N, 4), logits (N, C))`` with boxes
    as normalised ``x1, y1, x2, y2`` (a sigmoid centre and size, so always a valid box)."""

    def __init__(self, num_classes: int, hidden: int = 256, dropout: float = 0.2,
                 backbone: str = "inception_v3", freeze: int = 0, identity_from: str = "scene",
                 roi_size: int = 14, roi_margin: float = 0.1, roi_jitter: float = 0.0):
        super().__init__()
        from celebface.training import backbones

        if identity_from not in IDENTITY_FROM:
            raise InputError(f"identity_from must be {' or '.join(IDENTITY_FROM)}, "
                             f"got {identity_from!r}")
        spec = backbones.spec(backbone)
        self.input_norm = backbones.input_norm(backbone)
        self.features = backbones.build_features(backbone)
        backbones.freeze_blocks(self.features, freeze)
        self._mid = spec.mid_index
        self._fine = spec.fine_index
        self.identity_from = identity_from
        self.roi_size = roi_size
        self.roi_margin = roi_margin
        self.roi_jitter = roi_jitter
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

    def forward(self, x: torch.Tensor, boxes: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        x = image = self.input_norm(x)
        mid = fine = x
        for i, block in enumerate(self.features):
            x = block(x)
            if i == self._mid:
                mid = x
            if i == self._fine:
                fine = x
        pooled = _pool(x)
        raw = self.box_head(torch.cat([self.box_reduce(mid), pooled], 1)).float()
        centre, size = torch.sigmoid(raw[:, :2]), torch.sigmoid(raw[:, 2:])
        pred = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0.0, 1.0)
        if self.identity_from == "scene":
            return pred, self.class_head(pooled)
        if boxes is None:
            boxes = pred.detach()
        elif self.training and self.roi_jitter > 0:
            side = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
            boxes = boxes + (torch.rand_like(boxes) * 2 - 1) * self.roi_jitter * side
        if self.identity_from == "crop":
            return pred, self.class_head(self.region_features(image, boxes, -1, 8))
        return pred, self.class_head(self.region_features(fine, boxes, self._fine, 1))

    def region_features(self, source: torch.Tensor, boxes: torch.Tensor, index: int,
                        upscale: int) -> torch.Tensor:
        """Pooled last-map features of the regions ``boxes`` (normalised, one per image) of
        ``source``, the output of trunk block ``index`` (``-1``: the input): RoIAlign to
        ``roi_size * upscale`` square, then blocks ``index + 1`` on. ``(N, out_channels)``."""
        from torchvision.ops import roi_align

        boxes = boxes.float()
        pad = (boxes[:, 2:] - boxes[:, :2]) * self.roi_margin
        wide = torch.cat([boxes[:, :2] - pad, boxes[:, 2:] + pad], 1).clamp(0.0, 1.0)
        height, width = source.shape[-2:]
        scale = wide.new_tensor([width, height, width, height])
        order = torch.arange(len(wide), device=wide.device, dtype=wide.dtype)[:, None]
        rois = torch.cat([order, wide * scale], 1).to(source.dtype)
        r = roi_align(source, rois, self.roi_size * upscale, sampling_ratio=2, aligned=True)
        for block in self.features[index + 1:]:
            r = block(r)
        return _pool(r)


def build_net(num_classes: int, network: Mapping[str, Any], weights: str | None = None,
              load_pretrained: bool = True, freeze: int = 0) -> MultiOutputNet:
    """The network for ``num_classes`` identities (``network`` as
    :meth:`MultiOutputConfig.network`; no ``backbone`` means InceptionV3, no ``identity_from``
    the scene identity head, as models saved before it had one). With ``load_pretrained`` and
    ``pretrained: imagenet`` the trunk gets its ImageNet weights from the model store (local
    files only; :class:`~celebface.models.store.MissingWeightsError` when absent)."""
    backbone = str(network.get("backbone", "inception_v3"))
    keys = ("identity_from", "roi_size", "roi_margin", "roi_jitter")
    region = {k: network[k] for k in keys if k in network}
    net = MultiOutputNet(num_classes, int(network["hidden"]), float(network["dropout"]),
                         backbone, freeze, **region)
    if load_pretrained and network["pretrained"] == "imagenet":
        from celebface.training.backbones import load_imagenet

        load_imagenet(net.features, backbone, weights)
    return net
