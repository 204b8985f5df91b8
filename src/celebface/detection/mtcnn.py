"""MTCNN with facenet-pytorch's shipped P/R/O-net weights, batched across images.

Differences from ``facenet_pytorch.MTCNN.detect`` (same networks, same thresholds):

* images of different sizes are batched, yet an image's faces do not depend on its
  batch-mates (within float noise): each image gets its own pyramid (scales from its own
  size), each level is resized per image and placed top-left on a shared canvas, P-net
  outputs whose window reaches past an image's edge are masked, R-net and O-net crops are cut
  from each image's own pixels, and NMS runs per image with ties (scores saturate at 1.0)
  going to the earlier candidate (an unstable sort over the whole batch used to decide them);
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
from celebface.device import full_precision, resolve_device
from celebface.types import Face

log = logging.getLogger(__name__)

#: Bumped when the faces found in an image change (cache keys name it, see
#: :func:`celebface.recognition.align.face_tag`). 2: faces no longer depend on the batch.
VERSION = 2


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

    config: MTCNNConfig

    def __init__(self, device: str = "auto", config: MTCNNConfig | None = None, **options):
        import torch
        from facenet_pytorch.models.mtcnn import ONet, PNet, RNet


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
            for i, faces in zip(group, self._detect_group([preps[i] for i in group]), strict=True):
                results[i] = faces
        return results

    def _detect_group(self, preps: list[Prepared]) -> list[list[Face]]:
        """Run the three stages on a group of images (their pyramid levels share canvases)."""

        torch = self._torch
        with torch.inference_mode(), full_precision():
            imgs = [torch.from_numpy(np.ascontiguousarray(p.image.transpose(2, 0, 1)))
                    .to(self.device).float()[None] for p in preps]
            boxes, points, inds = self._stages(imgs)
        boxes, points, inds = boxes.cpu().numpy(), points.cpu().numpy(), inds.cpu().numpy()
        out: list[list[Face]] = []
        for k, p in enumerate(preps):
            faces = [
                to_input_pixels(
                    Face(
                        box=(float(boxes[j, 0]), float(boxes[j, 1]), float(boxes[j, 2]),
                             float(boxes[j, 3])),
                        score=float(boxes[j, 4]),
                        landmarks=points[j].astype(np.float32),
                    ),
                    p,
                )
                for j in np.nonzero(inds == k)[0]
            ]
            out.append(sort_faces(faces))
        return out

    def _scales(self, h: int, w: int) -> list[float]:
        """The image pyramid's scales for an ``h`` x ``w`` image (facenet-pytorch's rule)."""
        c = self.config
        scale = m = 12.0 / c.min_face_size
        minl = min(h, w) * m
        scales = []
        while minl >= 12:
            scales.append(scale)
            scale *= c.factor
            minl *= c.factor
        return scales

    def _pnet_level(self, imgs, members: list[int], s: float):
        """P-net candidates of images ``members`` at pyramid scale ``s``: each image resized
        on its own (as if alone) and placed top-left on a shared zero canvas; outputs that
        would see past an image's edge are masked, so none depends on its batch-mates."""
        torch = self._torch
        from facenet_pytorch.models.utils.detect_face import generateBoundingBox
        from torch.nn.functional import interpolate

        sizes = [(int(imgs[k].shape[2] * s + 1), int(imgs[k].shape[3] * s + 1)) for k in members]
        ch, cw = max(h for h, _ in sizes), max(w for _, w in sizes)
        data = imgs[members[0]].new_zeros(len(members), 3, ch, cw)
        for i, (k, (h, w)) in enumerate(zip(members, sizes, strict=True)):
            # antialiased bilinear ~ facenet's "area" resize, at a fraction of its cost
            data[i, :, :h, :w] = interpolate(imgs[k], size=(h, w), mode="bilinear",
                                             antialias=True)[0]
        data = ((data - 127.5) * 0.0078125).contiguous(memory_format=torch.channels_last)
        hs = torch.tensor([h for h, _ in sizes], device=data.device)
        ws = torch.tensor([w for _, w in sizes], device=data.device)
        net = self.pnet
        x = net.prelu1(net.conv1(data))
        for i, (h, w) in enumerate(sizes):
            # the ceil-mode pool's last window takes the image's last row (column) alone
            x[i, :, h - 2 :] = float("-inf")
            x[i, :, :, w - 2 :] = float("-inf")
        x = net.pool1(x)
        x = net.prelu3(net.conv3(net.prelu2(net.conv2(x))))
        probs = net.softmax4_1(net.conv4_1(x))[:, 1]
        reg = net.conv4_2(x)
        # output positions whose 12-px window lies in the image: ceil((size - 2) / 2) - 4 a side
        probs = probs.masked_fill(_outside(probs, (hs - 1) // 2 - 4, (ws - 1) // 2 - 4), -1.0)
        b, ind = generateBoundingBox(reg, probs, s, self.config.thresholds[0])
        ind = torch.tensor(members, device=ind.device)[ind]
        pick = _nms(b[:, :4], b[:, 4], ind, 0.5)
        return b[pick], ind[pick]

    def _stages(self, imgs):
        """MTCNN P/R/O stages on a list of float 1 x 3 x H x W images; returns (K x 5
        boxes+score, K x 5 x 2 landmarks, K image indices) in each image's pixels."""
        torch = self._torch
        from facenet_pytorch.models.utils.detect_face import bbreg, rerec

        c = self.config
        dev = imgs[0].device
        levels = [self._scales(im.shape[2], im.shape[3]) for im in imgs]
        empty = (
            torch.zeros(0, 5, device=dev),
            torch.zeros(0, 5, 2, device=dev),
            torch.zeros(0, dtype=torch.long, device=dev),
        )
        # Stage 1: P-net over each image's own pyramid.
        all_boxes, all_inds = [], []
        for j, s in enumerate(max(levels, key=len)):
            members = [k for k, lv in enumerate(levels) if len(lv) > j]
            b, ind = self._pnet_level(imgs, members, s)
            all_boxes.append(b)
            all_inds.append(ind)
        if not all_boxes:
            return empty
        # each image's candidates in a batch-independent order: by image, then level
        inds = torch.cat(all_inds)
        order = torch.sort(inds, stable=True)[1]
        boxes, inds = torch.cat(all_boxes)[order], inds[order]
        if len(boxes) == 0:
            return empty
        pick = _nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
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
        boxes, reg = self._rnet(imgs, boxes, inds)
        keep = boxes[:, 4] > c.thresholds[1]
        boxes, inds, reg = boxes[keep], inds[keep], reg[keep]
        if len(boxes) == 0:
            return empty
        pick = _nms(boxes[:, :4], boxes[:, 4], inds, 0.7)
        boxes = rerec(bbreg(boxes[pick], reg[pick]))
        inds = inds[pick]

        # Stage 3: O-net on 48x48 crops, landmarks.
        boxes, points = self._onet(imgs, boxes, inds)
        keep = boxes[:, 4] > c.thresholds[2]
        boxes, points, inds = boxes[keep], points[keep], inds[keep]
        if len(boxes) == 0:
            return empty
        pick = _nms(boxes[:, :4], boxes[:, 4], inds, 0.7, by_min=True)
        return boxes[pick], points[pick], inds[pick]

    def _rnet(self, imgs, boxes, inds):
        """R-net on (squared) ``boxes`` of images ``inds``: (K x 5 boxes + R-net score,
        K x 4 box regressions)."""
        reg, probs = self._chunked(self.rnet, self._crops(imgs, boxes, inds, 24, sampling=2))
        return self._torch.cat([boxes[:, :4], probs[:, 1:2]], dim=1), reg

    def _onet(self, imgs, boxes, inds):
        """O-net on (squared) ``boxes`` of images ``inds``: (K x 5 regressed boxes + O-net
        score, K x 5 x 2 landmarks)."""
        torch = self._torch
        from facenet_pytorch.models.utils.detect_face import bbreg

        reg, lms, probs = self._chunked(self.onet, self._crops(imgs, boxes, inds, 48, sampling=4))
        boxes = torch.cat([boxes[:, :4], probs[:, 1:2]], dim=1)
        bw = boxes[:, 2] - boxes[:, 0] + 1
        bh = boxes[:, 3] - boxes[:, 1] + 1
        px = bw[:, None] * lms[:, :5] + boxes[:, 0:1] - 1
        py = bh[:, None] * lms[:, 5:10] + boxes[:, 1:2] - 1
        return bbreg(boxes, reg), torch.stack([px, py], dim=2)

    def refine(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]
               ) -> list[list[Face]]:
        """Each of ``faces`` (found in ``images`` by another detector) with MTCNN's box and
        landmarks: the cascade's last two stages run on its box made square, in place of
        P-net's candidates (R-net's box regression, then O-net's). A face O-net scores under
        its threshold keeps its own box and landmarks; every face keeps its own score."""
        from facenet_pytorch.models.utils.detect_face import bbreg, rerec

        torch = self._torch
        todo = [(k, j) for k, fs in enumerate(faces) for j in range(len(fs))]
        out = [list(fs) for fs in faces]
        if not todo:
            return out
        with torch.inference_mode(), full_precision():
            imgs = [torch.from_numpy(np.ascontiguousarray(im.transpose(2, 0, 1)))
                    .to(self.device).float()[None] for im in images]
            boxes = torch.tensor([[*faces[k][j].box, 1.0] for k, j in todo],
                                 dtype=torch.float32, device=self.device)
            inds = torch.tensor([k for k, _ in todo], device=self.device)
            boxes, reg = self._rnet(imgs, rerec(boxes), inds)
            boxes, points = self._onet(imgs, rerec(bbreg(boxes, reg)), inds)
        boxes, points = boxes.cpu().numpy(), points.cpu().numpy()
        for (k, j), b, lm in zip(todo, boxes, points, strict=True):
            if b[4] > self.config.thresholds[2]:
                out[k][j] = faces[k][j].with_(box=(float(b[0]), float(b[1]), float(b[2]),
                                                   float(b[3])), landmarks=lm.astype(np.float32))
        return out

    def _chunked(self, net, x, chunk: int = 256):
        """``net(x)`` in chunks (cache-friendly on CPU), outputs concatenated."""
        outs = [net(x[i : i + chunk]) for i in range(0, len(x), chunk)]
        return tuple(self._torch.cat(parts) for parts in zip(*outs, strict=True))

    def _crops(self, imgs, boxes, inds, size: int, sampling: int = -1):
        """``size`` x ``size`` normalised crops of integer-truncated boxes, each cut from its
        own image (zero outside it); ``sampling`` points per bin side (-1: enough to average
        every pixel, like an area resize; 2 is much cheaper for the many R-net candidates)."""
        torch = self._torch
        from torchvision.ops import roi_align

        b = boxes[:, :4].trunc()
        rois = torch.cat([torch.zeros_like(b[:, :1]), b[:, :2] - 1, b[:, 2:4]], dim=1)
        crops = b.new_empty(len(b), 3, size, size)
        for k in torch.unique(inds).tolist():
            sel = torch.nonzero(inds == k)[:, 0]
            crops[sel] = roi_align(imgs[k], rois[sel], (size, size), 1.0,
                                   sampling_ratio=sampling, aligned=True)
        crops = (crops - 127.5) * 0.0078125
        return crops.contiguous(memory_format=torch.channels_last)


def _outside(x, rows, cols):
    """N x H x W mask of ``x``'s (N x [C x] H x W) positions at or past ``rows`` / ``cols``
    (length-N tensors)."""
    import torch

    r = torch.arange(x.shape[-2], device=x.device)
    c = torch.arange(x.shape[-1], device=x.device)
    return (r[None, :, None] >= rows[:, None, None]) | (c[None, None, :] >= cols[:, None, None])


def _nms(boxes, scores, inds, threshold: float, by_min: bool = False):
    """Greedy NMS within each image (``inds``), kept indices by image then score. Ties (MTCNN
    scores saturate at 1.0) go to the earlier candidate, and coordinates are compared in
    float64, so an image's result does not depend on the other images' boxes. ``by_min``:
    overlap over the smaller box's area (+1 pixel areas, as facenet-pytorch's "Min")."""
    import torch
    from torchvision.ops import batched_nms

    if len(boxes) == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True)[1]
    order = order[torch.sort(inds[order], stable=True)[1]]
    if not by_min:
        rank = torch.empty(len(order), dtype=torch.float64, device=boxes.device)
        rank[order] = torch.arange(len(order), 0, -1, dtype=torch.float64, device=boxes.device)
        return batched_nms(boxes.double(), rank, inds, threshold)
    b = boxes.double().cpu().numpy()
    ind = inds.cpu().numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    alive, keep = order.cpu().numpy(), []
    while alive.size:
        i, rest = alive[0], alive[1:]
        keep.append(i)
        w = np.maximum(0.0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
        h = np.maximum(0.0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
        overlap = w * h / np.minimum(area[i], area[rest])
        alive = rest[(overlap <= threshold) | (ind[rest] != ind[i])]
    return torch.as_tensor(np.array(keep, dtype=np.int64), device=boxes.device)
