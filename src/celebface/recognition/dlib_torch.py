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
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.errors import InputError

if TYPE_CHECKING:
    from celebface.recognition.dlib_torch_net import DlibFaceResNet

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


def build_model(path: str | Path, trainable: bool = False) -> DlibFaceResNet:
    """The torch module with dlib's weights, in eval mode. ``trainable`` makes every weight a
    trainable ``nn.Parameter`` (Affine scales and shifts included; dlib's network has no
    BatchNorm, so there are no statistics to keep) for fine-tuning; else they are frozen."""
    from celebface.recognition.dlib_torch_net import DlibFaceResNet

    return DlibFaceResNet(read_dlib_weights(path), LEVELS, RGB_MEAN, trainable).eval()


def freeze_levels(net: Any, levels: int) -> None:
    """Stop gradients into the stem and the first ``levels`` levels (0 = train everything,
    5 = only the 128-d layer)."""
    if not 0 <= levels <= len(LEVEL_UNITS):
        raise InputError(f"freeze levels {levels} outside 0..{len(LEVEL_UNITS)}")
    frozen = [net.conv, net.aff, *net.units[: sum(LEVEL_UNITS[:levels])]] if levels else []
    for module in frozen:
        for p in module.parameters():
            p.requires_grad_(False)
