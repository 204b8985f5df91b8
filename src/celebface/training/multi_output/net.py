"""The multi-output network: a backbone trunk with an identity head and a face-box head."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from celebface.errors import InputError
from celebface.recognition.dlib_resnet import chip_template
from celebface.recognition.dlib_torch import freeze_levels
from celebface.training import backbones
from celebface.training.backbones import keep_frozen_eval, load_imagenet
from celebface.training.face_resnet.config import DEFAULT_MARGIN
from celebface.training.face_resnet.net import ClassHead, build_dlib_net
from celebface.training.multi_output.config import IDENTITY_FROM


def _pool(x: torch.Tensor) -> torch.Tensor:
    return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)


class MultiOutput(NamedTuple):
    """The network's outputs: boxes ``(N, 4)`` and landmarks ``(N, 5, 2)`` (``face`` networks
    only, else None) normalised to the input's side, identity logits ``(N, C)``."""

    boxes: torch.Tensor
    logits: torch.Tensor
    landmarks: torch.Tensor | None = None


def align_chips(pixels: torch.Tensor, landmarks: torch.Tensor, size: int = 150,
                padding: float = 0.25) -> torch.Tensor:
    """Faces cut from ``pixels`` ((N, 3, H, W), 0-255) by the least-squares similarity that
    maps dlib's chip template onto ``landmarks`` ((N, 5, 2) in MTCNN's order, normalised to
    the image): ``(N, size, size, 3)`` float chips framed as dlib's own 5-point alignment
    (:meth:`celebface.recognition.dlib_resnet.DlibEmbedder.landmarks`). Differentiable."""

    height, width = pixels.shape[-2:]
    pts = landmarks.float() * landmarks.new_tensor([width, height]).float()
    tmpl = torch.as_tensor(chip_template(size, padding), dtype=pts.dtype, device=pts.device)
    ms, md = tmpl.mean(0), pts.mean(1)
    s0, d0 = tmpl - ms, pts - md[:, None]
    den = (s0 ** 2).sum()
    a = (s0[:, 0] * d0[..., 0] + s0[:, 1] * d0[..., 1]).sum(-1) / den
    b = (s0[:, 0] * d0[..., 1] - s0[:, 1] * d0[..., 0]).sum(-1) / den
    tx = md[:, 0] - (a * ms[0] - b * ms[1])
    ty = md[:, 1] - (b * ms[0] + a * ms[1])
    v, u = torch.meshgrid(torch.arange(size, dtype=pts.dtype, device=pts.device),
                          torch.arange(size, dtype=pts.dtype, device=pts.device), indexing="ij")
    a, b, tx, ty = (t[:, None, None] for t in (a, b, tx, ty))
    px, py = a * u - b * v + tx, b * u + a * v + ty
    grid = torch.stack([(2 * px + 1) / width - 1, (2 * py + 1) / height - 1], -1)
    chips = F.grid_sample(pixels.float(), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
    return chips.permute(0, 2, 3, 1)


class LandmarkHeatmaps(nn.Module):
    """Five landmarks from a region's stride-8 and stride-16 maps: the coarser map upsampled
    and joined to the finer one, two convolutions, one heatmap per point, and the heatmap's
    expected position (soft-argmax). Output ``(N, 5, 2)`` in ``[0, 1]`` of the region."""

    def __init__(self, fine_channels: int, mid_channels: int, width: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(fine_channels + mid_channels, width, 3, padding=1), nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.Conv2d(width, 5, 1),
        )

    def forward(self, fine: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
        mid = F.interpolate(mid, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        maps = self.body(torch.cat([fine, mid], 1)).float()
        n, k, h, w = maps.shape
        prob = torch.softmax(maps.view(n, k, h * w), -1).view(n, k, h, w)
        xs = (torch.arange(w, device=maps.device, dtype=maps.dtype) + 0.5) / w
        ys = (torch.arange(h, device=maps.device, dtype=maps.dtype) + 0.5) / h
        return torch.stack([(prob.sum(2) * xs).sum(-1), (prob.sum(3) * ys).sum(-1)], -1)


class MultiOutputNet(nn.Module):
    """A backbone trunk with a box head and an identity head. The box head reads a mid-level
    (stride 16) map, reduced and pooled to 8x8, plus the pooled last map. The identity head
    reads either the pooled last map of the whole scene (``identity_from="scene"``) or the
    face's region, the box widened by ``roi_margin`` per edge: ``"box"`` RoIAligns the
    stride-8 map to ``roi_size x roi_size`` and runs the trunk's remaining blocks on it,
    ``"crop"`` RoIAligns the input image to ``8 * roi_size`` pixels and runs the whole trunk
    (the same modules and weights as the scene path either way), then a pool. In training the
    given boxes' edges move by up to ``roi_jitter`` of their side.

    ``"face"`` reads the ``crop`` region's features with a landmark head (5 points inside
    the region), cuts the face aligned by those landmarks from the image (:func:`align_chips`,
    dlib's framing) and identifies it with dlib's face ResNet (``face_freeze`` levels kept as
    dlib's) and a :class:`~celebface.training.face_resnet.net.ClassHead`; in training the true
    landmarks, each moved by up to ``landmark_jitter`` of the box side, cut the face.

    Input ``(N, 3, S, S)`` in ``[-1, 1]`` and optional ``boxes (N, 4)`` (normalised): the
    region the identity head reads; ``None`` means the predicted boxes (inference), training
    passes the true ones (teacher forcing). Output ``(boxes (N, 4), logits (N, C))`` with boxes
    as normalised ``x1, y1, x2, y2`` (a sigmoid centre and size, so always a valid box);
    :meth:`outputs` also gives a ``face`` network's landmarks."""

    def __init__(self, num_classes: int, hidden: int = 256, dropout: float = 0.2,
                 backbone: str = "inception_v3", freeze: int = 0, identity_from: str = "scene",
                 roi_size: int = 14, roi_margin: float = 0.1, roi_jitter: float = 0.0,
                 face_freeze: int = 5, landmark_jitter: float = 0.03,
                 face_head: str = "cosface", landmark_head: str = "heatmap"):
        super().__init__()

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
        self.landmark_jitter = landmark_jitter
        if identity_from == "face":

            self.landmark_kind = landmark_head
            self.landmark_head = (
                LandmarkHeatmaps(spec.fine_channels, spec.mid_channels)
                if landmark_head == "heatmap" else nn.Linear(spec.out_channels, 10))
            self.face_net = build_dlib_net(trainable=True)
            freeze_levels(self.face_net, face_freeze)
            self.face_head = ClassHead(num_classes, face_head, 30.0, DEFAULT_MARGIN[face_head])
        else:
            self.class_head = nn.Sequential(nn.Dropout(dropout),
                                            nn.Linear(spec.out_channels, num_classes))

    def train(self, mode: bool = True) -> MultiOutputNet:

        super().train(mode)
        keep_frozen_eval(self.features)
        return self

    def forward(self, x: torch.Tensor, boxes: torch.Tensor | None = None,
                landmarks: torch.Tensor | None = None, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.outputs(x, boxes, landmarks, labels)
        return out.boxes, out.logits

    def outputs(self, x: torch.Tensor, boxes: torch.Tensor | None = None,
                landmarks: torch.Tensor | None = None, labels: torch.Tensor | None = None
                ) -> MultiOutput:
        """Boxes, logits and (``face``) landmarks. ``boxes`` / ``landmarks``: the true ones
        the identity head reads in training (None: the predicted ones); ``labels``: the true
        classes a margin head needs in training."""
        raw = x
        x = image = self.input_norm(x)
        mid = fine = x
        for i, block in enumerate(self.features):
            x = block(x)
            if i == self._mid:
                mid = x
            if i == self._fine:
                fine = x
        pooled = _pool(x)
        raw_box = self.box_head(torch.cat([self.box_reduce(mid), pooled], 1)).float()
        centre, size = torch.sigmoid(raw_box[:, :2]), torch.sigmoid(raw_box[:, 2:])
        pred = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0.0, 1.0)
        if self.identity_from == "scene":
            return MultiOutput(pred, self.class_head(pooled))
        if boxes is None:
            boxes = pred.detach()
        elif self.training and self.roi_jitter > 0:
            side = (boxes[:, 2:] - boxes[:, :2]).repeat(1, 2)
            boxes = boxes + (torch.rand_like(boxes) * 2 - 1) * self.roi_jitter * side
        if self.identity_from == "face":
            return self._face_outputs(raw, image, pred, boxes, landmarks, labels)
        if self.identity_from == "crop":
            return MultiOutput(pred, self.class_head(self.region_features(image, boxes, -1, 8)))
        return MultiOutput(pred, self.class_head(self.region_features(fine, boxes, self._fine, 1)))

    def _face_outputs(self, raw: torch.Tensor, image: torch.Tensor, pred: torch.Tensor,
                      boxes: torch.Tensor, landmarks: torch.Tensor | None,
                      labels: torch.Tensor | None) -> MultiOutput:
        wide = self.widen(boxes)
        fine, mid, pooled = self.region_maps(image, boxes, -1, 8)
        if self.landmark_kind == "heatmap":
            rel = self.landmark_head(fine, mid)
        else:  # "regress": from the pooled last map
            rel = torch.sigmoid(self.landmark_head(pooled)).float().view(-1, 5, 2)
        corner, side = wide[:, None, :2].float(), (wide[:, 2:] - wide[:, :2])[:, None].float()
        pred_landmarks = corner + rel * side
        if landmarks is None:
            landmarks = pred_landmarks.detach()
        elif self.training and self.landmark_jitter > 0:
            box_side = (boxes[:, 2:] - boxes[:, :2])[:, None].float()
            landmarks = landmarks + ((torch.rand_like(landmarks) * 2 - 1)
                                     * self.landmark_jitter * box_side)
        logits = self.face_head(self.face_embeddings(raw, landmarks), labels)
        return MultiOutput(pred, logits, pred_landmarks)

    def face_embeddings(self, x: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
        """dlib ResNet vectors ``(N, 128)`` of the faces at ``landmarks`` (normalised) in the
        input ``x`` (``(N, 3, S, S)`` in ``[-1, 1]``)."""
        return self.face_net(align_chips((x.float() + 1.0) * 127.5, landmarks))

    def widen(self, boxes: torch.Tensor) -> torch.Tensor:
        """``boxes`` (normalised) widened by ``roi_margin`` of their side per edge."""
        boxes = boxes.float()
        pad = (boxes[:, 2:] - boxes[:, :2]) * self.roi_margin
        return torch.cat([boxes[:, :2] - pad, boxes[:, 2:] + pad], 1).clamp(0.0, 1.0)

    def region_features(self, source: torch.Tensor, boxes: torch.Tensor, index: int,
                        upscale: int) -> torch.Tensor:
        """Pooled last-map features of the regions ``boxes`` (normalised, one per image) of
        ``source``, the output of trunk block ``index`` (``-1``: the input): RoIAlign to
        ``roi_size * upscale`` square, then blocks ``index + 1`` on. ``(N, out_channels)``."""
        return self.region_maps(source, boxes, index, upscale)[-1]

    def region_maps(self, source: torch.Tensor, boxes: torch.Tensor, index: int,
                    upscale: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`region_features` with the region's stride-8 and stride-16 maps (the outputs
        of the trunk's ``fine`` and ``mid`` blocks; ``index`` must come before them):
        ``(fine, mid, pooled)``."""
        from torchvision.ops import roi_align

        wide = self.widen(boxes)
        height, width = source.shape[-2:]
        scale = wide.new_tensor([width, height, width, height])
        order = torch.arange(len(wide), device=wide.device, dtype=wide.dtype)[:, None]
        rois = torch.cat([order, wide * scale], 1).to(source.dtype)
        r = fine = mid = roi_align(source, rois, self.roi_size * upscale, sampling_ratio=2,
                                   aligned=True)
        for i, block in enumerate(self.features[index + 1:], index + 1):
            r = block(r)
            if i == self._fine:
                fine = r
            if i == self._mid:
                mid = r
        return fine, mid, _pool(r)


def build_net(num_classes: int, network: Mapping[str, Any], weights: str | None = None,
              load_pretrained: bool = True, freeze: int = 0) -> MultiOutputNet:
    """The network for ``num_classes`` identities (``network`` as
    :meth:`MultiOutputConfig.network`; no ``backbone`` means InceptionV3, no ``identity_from``
    the scene identity head, as models saved before it had one). With ``load_pretrained`` and
    ``pretrained: imagenet`` the trunk gets its ImageNet weights from the model store (local
    files only; :class:`~celebface.models.store.MissingWeightsError` when absent)."""
    backbone = str(network.get("backbone", "inception_v3"))
    keys = ("identity_from", "roi_size", "roi_margin", "roi_jitter", "face_freeze",
            "landmark_jitter", "face_head", "landmark_head")
    region = {k: network[k] for k in keys if k in network}
    net = MultiOutputNet(num_classes, int(network["hidden"]), float(network["dropout"]),
                         backbone, freeze, **region)
    if load_pretrained and network["pretrained"] == "imagenet":

        load_imagenet(net.features, backbone, weights)
    return net
