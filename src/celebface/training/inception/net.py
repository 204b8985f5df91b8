"""The ``inception`` network: an ImageNet backbone with the reference head."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from celebface.errors import InputError
from celebface.training import backbones

if TYPE_CHECKING:
    from celebface.training.inception.head_net import ReferenceHeadNet


def build_network(num_classes: int, input_size: int = 224, backbone: str = "inception_v3",
                  freeze: int = 0) -> ReferenceHeadNet:
    """A backbone trunk (:mod:`celebface.training.backbones`) + the reference head, as one
    ``nn.Module`` with ``.embed(x)``; the first ``freeze`` trunk blocks are frozen."""
    from celebface.training.inception.head_net import ReferenceHeadNet

    spec = backbones.spec(backbone)
    if input_size < spec.min_input:
        raise InputError(f"input size {input_size} too small for {backbone} "
                         f"(minimum {spec.min_input})")
    return ReferenceHeadNet(num_classes, input_size, backbone, freeze)


def load_imagenet(net: ReferenceHeadNet, weights: str | Path | None = None,
                  backbone: str = "inception_v3") -> Path:
    """Load ``backbone``'s ImageNet weights into ``net.features`` (from ``weights`` or the
    model store; never downloads; :class:`MissingWeightsError` when absent)."""

    return backbones.load_imagenet(net.features, backbone, weights)
