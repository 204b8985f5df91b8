"""MTCNN with facenet-pytorch's shipped P/R/O-net weights, batched across images.

Differences from ``facenet_pytorch.MTCNN.detect`` (same networks, same thresholds):

* images of different sizes are batched on shared canvases (top-left aligned, so the P-net
  grid is where a single-image run has it);
* the R-net and O-net crops of all candidate boxes are cut in one ``roi_align`` call instead of
  a Python loop, with out-of-image parts zero-filled like the original MTCNN (facenet-pytorch
  stretches the in-image part instead); the pyramid uses antialiased bilinear resizing instead
  of the slower "area" mode; the nets run channels-last in cache-sized chunks;
* huge images are shrunk, and images without a confident face are retried with a padded border
  (tight face crops), see :mod:`celebface.detection.prepare`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celebface.detection.base import PaddingConfig, PaddingDetector, apply_options
from celebface.detection.prepare import (
    Prepared,
    prepare,
    sort_faces,
    to_input_pixels,
)
from celebface.types import Face

log = logging.getLogger(__name__)


@dataclass
class MTCNNConfig(PaddingConfig):
    """MTCNN settings (padding as in :class:`PaddingConfig`, retrying images without a face
    scoring ``miss_score``). ``canvas_waste`` caps how much padding (as a share of canvas
    pixels) batching several image sizes on one canvas may add."""

    min_face_size: int = 20
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    miss_score: float = 0.9
    batch_size: int = 32
    canvas_waste: float = 0.3


def _group_by_canvas(
    sizes: list[tuple[int, int]], batch_size: int, waste: float
) -> list[list[int]]:
    """Group image indices so each group's shared canvas wastes at most ``waste`` of its area."""
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0] * sizes[i][1], sizes[i]))
    groups: list[list[int]] = []
    cur: list[int] = []
    ch = cw = area = 0
    for i in order:
        h, w = sizes[i]
        nh, nw = max(ch, h), max(cw, w)
        n = len(cur) + 1
        if cur and (n > batch_size or (area + h * w) < (1 - waste) * nh * nw * n):
            groups.append(cur)
            cur, ch, cw, area = [], 0, 0, 0
            nh, nw = h, w
        cur.append(i)
        ch, cw, area = nh, nw, area + h * w
    if cur:
        groups.append(cur)
    return groups


class MTCNNDetector(PaddingDetector):
    """Batched MTCNN; returns boxes, scores and 5 landmarks in the input images' pixels."""

    name = "mtcnn"
    runtime_fields = ("batch_size", "canvas_waste")
    thread_safe = True  # detect_batch may run in several threads at once (no mutable state)

    def __init__(self, device: str = "auto", config: MTCNNConfig | None = None, **options):
        import torch
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet

        from celebface.device import resolve_device

        self.config = apply_options(config or MTCNNConfig(), options, "MTCNN")
        self.device = resolve_device(device)
        self.pnet = PNet().eval().to(self.device)
        self.rnet = RNet().eval().to(self.device)
        self.onet = ONet().eval().to(self.device)
        self._torch = torch

    def _detect_padded(self, images: Sequence[np.ndarray], pad: float) -> list[list[Face]]:
        c = self.config
        preps = [prepare(im, c.max_side, pad, c.pad_mode, short_side=c.short_side) for im in images]
        results: list[list[Face]] = [[] for _ in preps]
        sizes = [p.image.shape[:2] for p in preps]
        for group in _group_by_canvas(sizes, c.batch_size, c.canvas_waste):
            for i, faces in zip(group, self._detect_canvas([preps[i] for i in group]), strict=True):
                results[i] = faces
        return results

    def _detect_canvas(self, preps: list[Prepared]) -> list[list[Face]]:
        """Run the three stages on images placed in one shared canvas (top-left aligned)."""
        torch = self._torch
        ch = max(p.image.shape[0] for p in preps)
        cw = max(p.image.shape[1] for p in preps)
        canvas = np.full((len(preps), ch, cw, 3), 127, dtype=np.uint8)
        offsets = []
        for k, p in enumerate(preps):
            h, w = p.image.shape[:2]
            # top-left placement keeps the P-net grid where a single-image run has it
            canvas[k, :h, :w] = p.image
            offsets.append((0.0, 0.0))
        with torch.inference_mode():
            imgs = torch.from_numpy(canvas).to(self.device).permute(0, 3, 1, 2).float()
            boxes, points, inds = self._stages(imgs)
        boxes, points, inds = boxes.cpu().numpy(), points.cpu().numpy(), inds.cpu().numpy()
        out: list[list[Face]] = []
        for k, p in enumerate(preps):
            sel = np.nonzero(inds == k)[0]
            faces = [
                to_input_pixels(
                    Face(
                        box=tuple(float(v) for v in boxes[j, :4]),
                        score=float(boxes[j, 4]),
                        landmarks=points[j].astype(np.float32),
                    ),
                    p,
                    offsets[k],
                )
                for j in sel
            ]
            out.append(sort_faces(faces))
        return out

    def _stages(self, imgs):
        """MTCNN P/R/O stages on a float N x 3 x H x W batch; returns (K x 5 boxes+score,
        K x 5 x 2 landmarks, K image indices) in canvas pixels."""
        torch = self._torch
        from facenet_pytorch.models.utils.detect_face import (
            batched_nms_numpy,
            bbreg,
            generateBoundingBox,
            rerec,
        )
        from torch.nn.functional import interpolate
        from torchvision.ops import batched_nms

        c = self.config
        h, w = imgs.shape[2:]
        m = 12.0 / c.min_face_size
        minl = min(h, w) * m
        scales = []
        scale = m
        while minl >= 12:
            scales.append(scale)
            scale *= c.factor
            minl *= c.factor

        empty = (
            torch.zeros(0, 5, device=imgs.device),
            torch.zeros(0, 5, 2, device=imgs.device),
            torch.zeros(0, dtype=torch.long, device=imgs.device),
        )
        # Stage 1: P-net over the image pyramid.
        all_boxes, all_inds = [], []
        for s in scales:
            # antialiased bilinear ~ facenet's "area" resize, at a fraction of its cost
            size = (int(h * s + 1), int(w * s + 1))
            data = interpolate(imgs, size=size, mode="bilinear", antialias=True)
            data = ((data - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
            reg, probs = self.pnet(data)
            b, ind = generateBoundingBox(reg, probs[:, 1], s, c.thresholds[0])
            pick = batched_nms(b[:, :4], b[:, 4], ind, 0.5)
            all_boxes.append(b[pick])
            all_inds.append(ind[pick])
        if not all_boxes:
            return empty
        boxes = torch.cat(all_boxes)
        inds = torch.cat(all_inds)
        if len(boxes) == 0:
            return empty
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes, inds = boxes[pick], inds[pick]
        regw = boxes[:, 2] - boxes[:, 0]
        regh = boxes[:, 3] - boxes[:, 1]
        boxes = torch.stack(
            [
                boxes[:, 0] + boxes[:, 5] * regw,
                boxes[:, 1] + boxes[:, 6] * regh,
                boxes[:, 2] + boxes[:, 7] * regw,
                boxes[:, 3] + boxes[:, 8] * regh,
                boxes[:, 4],
            ],
            dim=1,
        )
        boxes = rerec(boxes)

        # Stage 2: R-net on 24x24 crops.
        out = self._chunked(self.rnet, self._crops(imgs, boxes, inds, 24, sampling=2))
        score = out[1][:, 1]
        keep = score > c.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        inds, reg = inds[keep], out[0][keep]
        if len(boxes) == 0:
            return empty
        pick = batched_nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        inds = inds[pick]

        # Stage 3: O-net on 48x48 crops, landmarks.
        reg, lms, probs = self._chunked(self.onet, self._crops(imgs, boxes, inds, 48, sampling=4))
        score = probs[:, 1]
        keep = score > c.thresholds[2]
        boxes = torch.cat([boxes[keep, :4], score[keep, None]], dim=1)
        inds, reg, lms = inds[keep], reg[keep], lms[keep]
        if len(boxes) == 0:
            return empty
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        px = bw[:, None] * lms[:, :5] + boxes[:, 0:1] - 1
        py = bh[:, None] * lms[:, 5:10] + boxes[:, 1:2] - 1
        points = torch.stack([px, py], dim=2)
        boxes = bbreg(boxes, reg)
        pick = batched_nms_numpy(boxes[:, :4], boxes[:, 4], inds, 0.7, "Min")
        return boxes[pick], points[pick], inds[pick]

    def _chunked(self, net, x, chunk: int = 256):
        """``net(x)`` in chunks (cache-friendly on CPU), outputs concatenated."""
        outs = [net(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        return tuple(self._torch.cat(parts) for parts in zip(*outs, strict=True))

    def _crops(self, imgs, boxes, inds, size: int, sampling: int = -1):
        """``size`` x ``size`` normalised crops of integer-truncated boxes (zero outside);
        ``sampling`` points per bin side (-1: enough to average every pixel, like an area
        resize; 2 is much cheaper for the many R-net candidates)."""
        torch = self._torch
        from torchvision.ops import roi_align

        b = boxes[:, :4].trunc()
        rois = torch.cat([inds[:, None].to(b.dtype), b[:, :2] - 1, b[:, 2:4]], dim=1)
        crops = roi_align(imgs, rois, (size, size), 1.0, sampling_ratio=sampling, aligned=True)
        crops = (crops - 127.5) * 0.0078125
        return crops.contiguous(memory_format=torch.channels_last)
