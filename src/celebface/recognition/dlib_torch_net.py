"""The torch modules of dlib's face ResNet (:mod:`celebface.recognition.dlib_torch` builds
them with dlib's weights; this module imports torch, that one does not until it builds).

Every weight comes from the caller (``params``, dlib's tensors in file order); ``trainable``
makes each an ``nn.Parameter`` that trains (Affine scales and shifts included), else they are
frozen. The ``state_dict`` keys are the same either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Affine(nn.Module):
    """dlib's affine layer (its stand-in for batch norm): ``x * gamma + beta`` per channel."""

    def __init__(self, params: np.ndarray, trainable: bool) -> None:
        super().__init__()
        c = len(params) // 2
        gamma = torch.from_numpy(params[:c].copy()).view(1, c, 1, 1)
        beta = torch.from_numpy(params[c:].copy()).view(1, c, 1, 1)
        if trainable:  # same state_dict keys either way
            self.gamma, self.beta = nn.Parameter(gamma), nn.Parameter(beta)
        else:
            self.register_buffer("gamma", gamma)
            self.register_buffer("beta", beta)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma + self.beta


def conv(params: np.ndarray, c_out: int, c_in: int, k: int, stride: int, trainable: bool
         ) -> nn.Conv2d:
    """dlib's convolution with its weights and bias: a stride-1 one padded by ``k // 2``, a
    stride-2 one not padded."""
    # skip_init: no random initialisation, the weights are replaced right away
    layer = torch.nn.utils.skip_init(nn.Conv2d, c_in, c_out, k, stride,
                                     padding=0 if stride != 1 else k // 2)
    w = params[: c_out * c_in * k * k].reshape(c_out, c_in, k, k)
    layer.weight = nn.Parameter(torch.from_numpy(w.copy()), requires_grad=trainable)
    layer.bias = nn.Parameter(torch.from_numpy(params[c_out * c_in * k * k:].copy()),
                              requires_grad=trainable)
    return layer


def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's residual addition: the smaller tensor zero-padded (channels, bottom, right)."""
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))
    if a.shape[1:] != (c, h, w):
        a = F.pad(a, (0, w - a.shape[3], 0, h - a.shape[2], 0, c - a.shape[1]))
    if b.shape[1:] != (c, h, w):
        b = F.pad(b, (0, w - b.shape[3], 0, h - b.shape[2], 0, c - b.shape[1]))
    return a + b


class Unit(nn.Module):
    """A residual unit: two 3x3 convolutions with affine layers; ``down`` halves the side
    (stride 2, the shortcut average-pooled)."""

    def __init__(self, ps: Sequence[np.ndarray], c_in: int, c: int, down: bool,
                 trainable: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = conv(ps[0], c, c_in, 3, 2 if down else 1, trainable)
        self.aff1 = Affine(ps[1], trainable)
        self.conv2 = conv(ps[2], c, c, 3, 1, trainable)
        self.aff2 = Affine(ps[3], trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(padded_add(y, shortcut))


class DlibFaceResNet(nn.Module):
    """The stem (7x7 stride-2 convolution, affine, max pooling), the residual ``levels``
    ((channels, units, first unit downsamples) each) and the 256 -> 128 layer; pixels become
    ``(value - mean) / 256``."""

    mean: torch.Tensor

    def __init__(self, params: Sequence[np.ndarray], levels: Sequence[tuple[int, int, bool]],
                 mean: Sequence[float], trainable: bool = False) -> None:
        super().__init__()
        self.level_units = tuple(n for _c, n, _d in levels)
        self.conv = conv(params[0], 32, 3, 7, 2, trainable)
        self.aff = Affine(params[1], trainable)
        units, k, c_in = [], 2, 32
        for c, n, down in levels:
            for u in range(n):
                units.append(Unit(params[k:k + 4], c_in, c, down and u == 0, trainable))
                k, c_in = k + 4, c
        self.units = nn.Sequential(*units)
        self.fc = torch.nn.utils.skip_init(nn.Linear, 256, 128, bias=False)
        self.fc.weight = nn.Parameter(
            torch.from_numpy(params[k].reshape(256, 128).T.copy()), requires_grad=trainable)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))

    def trunk(self, chips: torch.Tensor, levels: int = 5) -> torch.Tensor:
        """The map after the stem and the first ``levels`` levels (0-5) of
        ``chips`` ((N, 150, 150, 3) uint8 RGB)."""
        x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.aff(self.conv(x))), 3, 2)
        return self.units[: sum(self.level_units[:levels])](x)

    def head(self, x: torch.Tensor, levels: int = 0) -> torch.Tensor:
        """Levels after the first ``levels`` and the 128-d layer, on a :meth:`trunk` map."""
        x = self.units[sum(self.level_units[:levels]):](x)
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        """``chips``: (N, 150, 150, 3) uint8 RGB -> (N, 128) raw descriptors."""
        return self.head(self.trunk(chips, 0), 0)
