"""dlib's face ResNet re-expressed as a PyTorch module, with the weights read from dlib's own
``dlib_face_recognition_resnet_model_v1.dat`` (no conversion step, no other file).

Same architecture as dlib's ``anet_type`` (examples/dnn_face_recognition_ex.cpp): a 7x7
stride-2 convolution, max pooling, 4 levels of residual units (32, 64, 128, 256 channels) and
a 256 -> 128 linear layer. dlib pads a stride-1 3x3 convolution by 1 and a stride-2 one by 0,
and its residual addition zero-pads the smaller tensor (channels and bottom/right). Batched on
any torch device; on a CPU it is several times faster than dlib's own (BLAS-less) build.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError

#: dlib's input_rgb_image mean (R, G, B); pixels become (value - mean) / 256.
RGB_MEAN = (122.782, 117.001, 104.298)
#: (channels, residual units, first unit downsamples) per level, input side first.
LEVELS = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))


def _encode_int(n: int) -> bytes:
    """dlib's serialisation of a non-negative integer: byte count, then little-endian bytes."""
    if n == 0:
        return b"\x00"
    raw = n.to_bytes((n.bit_length() + 7) // 8, "little")
    return bytes([len(raw)]) + raw


def _tensor_shapes() -> list[tuple[int, ...]]:
    """Shapes of the parameter tensors in file order (input side first)."""
    shapes: list[tuple[int, ...]] = [(32, 3, 7, 7), (2, 32)]
    c_in = 32
    for c, units, _down in LEVELS:
        for _ in range(units):
            shapes += [(c, c_in, 3, 3), (2, c), (c, c, 3, 3), (2, c)]
            c_in = c
    shapes.append((256, 128))
    return shapes


def read_dlib_weights(path: str | Path) -> list[np.ndarray]:
    """The parameter tensors of dlib's face ResNet file, in file order.

    A dlib tensor is written as version 2, its 4 dimensions, then raw little-endian float32;
    a convolution stores its filters then its biases in one tensor, affine its gamma then beta.
    """
    blob = Path(path).read_bytes()
    out: list[np.ndarray] = []
    pos = 0
    for shape in _tensor_shapes():
        if len(shape) == 4:  # conv: filters + biases, stored as an (n, 1, 1, 1) tensor
            n = int(np.prod(shape)) + shape[0]
            dims = (n, 1, 1, 1)
        elif shape[0] == 2:  # affine: gamma + beta
            n = 2 * shape[1]
            dims = (n, 1, 1, 1)
        else:  # fc without bias: (inputs, outputs)
            n = shape[0] * shape[1]
            dims = (shape[0], shape[1], 1, 1)
        header = b"\x01\x02" + b"".join(_encode_int(d) for d in dims)
        found = blob.find(header, pos)
        if found < 0:
            raise InputError(f"{path}: not dlib's face ResNet (no tensor of shape {dims})")
        start = found + len(header)
        out.append(np.frombuffer(blob, "<f4", n, start).astype(np.float32))
        pos = start + 4 * n
    return out


#: Residual units per level, input side first (levels 1-5 of :data:`LEVELS`).
LEVEL_UNITS = tuple(n for _c, n, _d in LEVELS)


def build_model(path: str | Path, trainable: bool = False) -> Any:
    """The torch module with dlib's weights, in eval mode. ``trainable`` makes every weight a
    trainable ``nn.Parameter`` (Affine scales and shifts included; dlib's network has no
    BatchNorm, so there are no statistics to keep) for fine-tuning; else they are frozen."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Affine(nn.Module):
        def __init__(self, params: np.ndarray) -> None:
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

    def conv(params: np.ndarray, c_out: int, c_in: int, k: int, stride: int) -> nn.Conv2d:
        # skip_init: no random initialisation, the weights are replaced right away
        layer = torch.nn.utils.skip_init(nn.Conv2d, c_in, c_out, k, stride,
                                         padding=0 if stride != 1 else k // 2)
        w = params[: c_out * c_in * k * k].reshape(c_out, c_in, k, k)
        layer.weight = nn.Parameter(torch.from_numpy(w.copy()), requires_grad=trainable)
        layer.bias = nn.Parameter(torch.from_numpy(params[c_out * c_in * k * k:].copy()),
                                  requires_grad=trainable)
        return layer

    def padded_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:], strict=True))
        if a.shape[1:] != (c, h, w):
            a = F.pad(a, (0, w - a.shape[3], 0, h - a.shape[2], 0, c - a.shape[1]))
        if b.shape[1:] != (c, h, w):
            b = F.pad(b, (0, w - b.shape[3], 0, h - b.shape[2], 0, c - b.shape[1]))
        return a + b

    class Unit(nn.Module):
        def __init__(self, ps: list[np.ndarray], c_in: int, c: int, down: bool) -> None:
            super().__init__()
            self.down = down
            self.conv1 = conv(ps[0], c, c_in, 3, 2 if down else 1)
            self.aff1 = Affine(ps[1])
            self.conv2 = conv(ps[2], c, c, 3, 1)
            self.aff2 = Affine(ps[3])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.aff2(self.conv2(F.relu(self.aff1(self.conv1(x)))))
            shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
            return F.relu(padded_add(y, shortcut))

    class DlibFaceResNet(nn.Module):
        def __init__(self, params: list[np.ndarray]) -> None:
            super().__init__()
            self.conv = conv(params[0], 32, 3, 7, 2)
            self.aff = Affine(params[1])
            units, k, c_in = [], 2, 32
            for c, n, down in LEVELS:
                for u in range(n):
                    units.append(Unit(params[k:k + 4], c_in, c, down and u == 0))
                    k, c_in = k + 4, c
            self.units = nn.Sequential(*units)
            self.fc = torch.nn.utils.skip_init(nn.Linear, 256, 128, bias=False)
            self.fc.weight = nn.Parameter(
                torch.from_numpy(params[k].reshape(256, 128).T.copy()), requires_grad=trainable)
            self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1))

        def trunk(self, chips: torch.Tensor, levels: int = 5) -> torch.Tensor:
            """The map after the stem and the first ``levels`` levels (0-5) of
            ``chips`` ((N, 150, 150, 3) uint8 RGB)."""
            x = (chips.permute(0, 3, 1, 2).float() - self.mean) / 256.0
            x = F.max_pool2d(F.relu(self.aff(self.conv(x))), 3, 2)
            return self.units[: sum(LEVEL_UNITS[:levels])](x)

        def head(self, x: torch.Tensor, levels: int = 0) -> torch.Tensor:
            """Levels after the first ``levels`` and the 128-d layer, on a :meth:`trunk` map."""
            x = self.units[sum(LEVEL_UNITS[:levels]):](x)
            return self.fc(x.mean(dim=(2, 3)))

        def forward(self, chips: torch.Tensor) -> torch.Tensor:
            """``chips``: (N, 150, 150, 3) uint8 RGB -> (N, 128) raw descriptors."""
            return self.head(self.trunk(chips, 0), 0)

    return DlibFaceResNet(read_dlib_weights(path)).eval()


def freeze_levels(net: Any, levels: int) -> None:
    """Stop gradients into the stem and the first ``levels`` levels (0 = train everything,
    5 = only the 128-d layer)."""
    if not 0 <= levels <= len(LEVEL_UNITS):
        raise InputError(f"freeze levels {levels} outside 0..{len(LEVEL_UNITS)}")
    frozen = [net.conv, net.aff, *net.units[: sum(LEVEL_UNITS[:levels])]] if levels else []
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
