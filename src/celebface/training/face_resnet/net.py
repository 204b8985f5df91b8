"""The ``face-resnet`` network: dlib's ResNet trunk with a softmax or margin classification head."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from celebface.models.store import dlib_model_path
from celebface.recognition.dlib_torch import build_model
from celebface.recognition.dlib_torch_net import DlibFaceResNet


class ClassHead(nn.Module):
    """Identity logits from 128-d vectors: ``softmax`` is a linear layer on the raw vector;
    ``cosface`` (s * (cos - m)) and ``arcface`` (s * cos(theta + m)) use unit vectors and unit
    class weights, the margin only on the true class while training."""

    def __init__(self, num_classes: int, head: str = "cosface", scale: float = 30.0,
                 margin: float = 0.35, dim: int = 128):
        super().__init__()
        self.head, self.scale, self.margin = head, scale, margin
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if head == "softmax" else None

    def init_from_centroids(self, centroids: torch.Tensor) -> None:
        """Class weights = the classes' mean vectors (a nearest-centroid start)."""
        with torch.no_grad():
            if self.head == "softmax":  # logits ~ s * cos with unit-ish rows
                self.weight.copy_(self.scale * F.normalize(centroids) /
                                  centroids.norm(dim=1).mean().clamp(min=1e-6))
            else:
                self.weight.copy_(F.normalize(centroids))

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.head == "softmax":
            return F.linear(emb, self.weight, self.bias)
        cos = F.linear(F.normalize(emb.float()), F.normalize(self.weight.float()))
        if labels is None or self.margin == 0:
            return self.scale * cos
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        if self.head == "cosface":
            target = cos - self.margin
        else:
            theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
            # past pi - m cos(theta + m) is no longer monotonic: CosFace's fallback there
            target = torch.where(theta + self.margin < math.pi, torch.cos(theta + self.margin),
                                 cos - self.margin * math.sin(self.margin))
        return self.scale * torch.where(onehot, target, cos)


class FaceResNetNet(nn.Module):
    """dlib's ResNet + :class:`ClassHead`. ``forward(x, labels)`` takes chips
    ``(N, 150, 150, 3)`` uint8 or, with ``from_level`` > 0, the map after that many levels."""

    def __init__(self, net: DlibFaceResNet, head: ClassHead, from_level: int = 0):
        super().__init__()
        self.net, self.head, self.from_level = net, head, from_level

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_level:
            return self.net.head(x, self.from_level)
        return self.net(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(x), labels)


def build_dlib_net(pretrained: str = "dlib", trainable: bool = True, seed: int = 0
                   ) -> DlibFaceResNet:
    """dlib's network with its weights (``pretrained="dlib"``) or randomly re-initialised."""
    net = build_model(dlib_model_path("resnet"), trainable=trainable)
    if pretrained == "none":
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(1.0)
                elif name.endswith(("beta", "bias")):
                    p.zero_()
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))
    return net


def step_fn(model: nn.Module, batch: Sequence[torch.Tensor], label_smoothing: float = 0.0
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy on margin logits while training; plain logits for validation metrics.
    Inputs ``(N, V, ...)`` (several views of each face: validation with flip TTA) are scored
    by the log of the views' mean probabilities, as ``predict_proba`` averages them."""
    x, y = batch[0], batch[1]
    if x.dim() == 5:
        n, v = x.shape[:2]
        prob = torch.softmax(model(x.flatten(0, 1)).float(), 1).view(n, v, -1).mean(1)
        logp = prob.clamp_min(1e-30).log()
        return F.nll_loss(logp, y), {"logits": logp, "targets": y}
    logits = model(x, y if model.training else None).float()
    loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
    return loss, {"logits": logits, "targets": y}
