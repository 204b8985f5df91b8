"""Box datasets as training tensors: decoded, resized images with normalised true boxes,
box-aware augmentation, and the train/val split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from celebface.data import FaceDataset, FaceItem
from celebface.io import ImageReadError, read_image
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.types import Face

log = logging.getLogger(__name__)


def to_input(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """RGB uint8 images, each resized (stretched) to ``size x size``: ``(N, S, S, 3)`` uint8."""
    import cv2

    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, img in enumerate(images):
        interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)
    return out


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 to ``(N, 3, S, S)`` float in ``[-1, 1]``."""
    return batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@dataclass
class BoxArrays:
    """Decoded, resized images with normalised true boxes and label indices."""

    images: np.ndarray  # (N, S, S, 3) uint8
    boxes: np.ndarray  # (N, 4) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    items: list[FaceItem]
    #: (N, 5, 2) float32 in [0, 1]: dlib's 5-point alignment as MTCNN-order points, or None
    landmarks: np.ndarray | None = None


def face_landmarks(images: np.ndarray, boxes: np.ndarray, progress: bool = True) -> np.ndarray:
    """The landmark targets of ``images`` ((N, S, S, 3) uint8) with their true ``boxes``
    (normalised): dlib's shape predictor in each box, as the 5 points whose alignment cuts
    dlib's own chip (:meth:`~celebface.recognition.dlib_resnet.DlibEmbedder.landmarks`),
    normalised. ``(N, 5, 2)`` float32."""


    aligner = DlibEmbedder()
    out = np.zeros((len(images), 5, 2), np.float32)
    for i in tqdm(range(len(images)), desc="landmarks", unit="img", disable=not progress,
                  leave=False):
        h, w = images[i].shape[:2]
        x1, y1, x2, y2 = (float(v) for v in boxes[i] * np.array([w, h, w, h]))
        box = (x1, y1, x2, y2)
        out[i] = aligner.landmarks(images[i], Face(box=box, score=1.0)) / np.array([w, h])
    return out


def load_box_arrays(items: Sequence[FaceItem], label_names: Sequence[str], size: int,
                    progress: bool = True, workers: int = 4) -> BoxArrays:
    """Decode and resize the images of ``items`` (identities not in ``label_names`` are left
    out); unreadable files are skipped with a one-line warning."""

    index = {n: i for i, n in enumerate(label_names)}
    items = [it for it in items if it.identity in index]

    def load(item: FaceItem) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            img = read_image(item.path, max_side=max(2 * size, 512))
        except ImageReadError as exc:
            log.warning("%s", exc)
            return None
        w, h = img.source_size
        box = np.asarray(item.box, np.float32) / np.array([w, h, w, h], np.float32)
        return to_input([img.rgb], size)[0], np.clip(box, 0.0, 1.0)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(load, items), total=len(items), desc="load images",
                            unit="img", disable=not progress, leave=False))
    keep = [(it, r) for it, r in zip(items, results, strict=True) if r is not None]
    if not keep:
        return BoxArrays(np.zeros((0, size, size, 3), np.uint8), np.zeros((0, 4), np.float32),
                         np.zeros(0, np.int64), [])
    return BoxArrays(
        np.stack([r[0] for _, r in keep]),
        np.stack([r[1] for _, r in keep]).astype(np.float32),
        np.array([index[it.identity] for it, _ in keep], np.int64),
        [it for it, _ in keep],
    )


class BoxTensorDataset(Dataset):
    """Preloaded images, normalised boxes and labels; optional box-aware augmentation.
    Items are ``(image (3, S, S) float in [-1, 1], box (4,), label)``."""

    def __init__(self, data: BoxArrays, augment: bool = False):
        self.images = torch.from_numpy(data.images)
        self.boxes = torch.from_numpy(data.boxes)
        self.labels = torch.from_numpy(data.labels)
        self.landmarks = None if data.landmarks is None else torch.from_numpy(data.landmarks)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        """``(image, box, label)``, with ``landmarks (5, 2)`` last when the data has them."""
        img = normalise(self.images[i : i + 1])[0]
        box = self.boxes[i].clone()
        points = None if self.landmarks is None else self.landmarks[i].clone()
        if self.augment:
            img, box, points = augment(img, box, points)
        return (img, box, self.labels[i]) + (() if points is None else (points,))


#: MTCNN's 5 points in a mirror image: the eyes and the mouth corners swap
MIRROR_ORDER = [1, 0, 2, 4, 3]


def augment(img: torch.Tensor, box: torch.Tensor, landmarks: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """A random flip, a random crop that keeps the whole box (resized back) and a brightness/
    contrast change. ``img`` is ``(3, S, S)`` in ``[-1, 1]``, ``box`` normalised x1y1x2y2,
    ``landmarks`` (optional) ``(5, 2)`` normalised points moved with the image."""
    size = img.shape[-1]
    if torch.rand(()) < 0.5:
        img = img.flip(-1)
        box = torch.stack([1 - box[2], box[1], 1 - box[0], box[3]])
        if landmarks is not None:
            landmarks = landmarks[MIRROR_ORDER] * torch.tensor([-1.0, 1.0]) + torch.tensor(
                [1.0, 0.0])
    if torch.rand(()) < 0.5:
        r = torch.rand(4).tolist()
        x1, y1, x2, y2 = box.tolist()
        side_x = max(x2 - x1, 0.6 + 0.4 * r[0])
        side_y = max(y2 - y1, 0.6 + 0.4 * r[1])
        lo_x, hi_x = max(0.0, x2 - side_x), min(x1, 1.0 - side_x)
        lo_y, hi_y = max(0.0, y2 - side_y), min(y1, 1.0 - side_y)
        if hi_x >= lo_x and hi_y >= lo_y:
            cx0 = round((lo_x + (hi_x - lo_x) * r[2]) * size)
            cy0 = round((lo_y + (hi_y - lo_y) * r[3]) * size)
            cx1 = min(size, max(cx0 + 2, round(cx0 + side_x * size)))
            cy1 = min(size, max(cy0 + 2, round(cy0 + side_y * size)))
            crop = img[:, cy0:cy1, cx0:cx1]
            img = F.interpolate(crop[None], size=(size, size), mode="bilinear",
                                align_corners=False)[0]
            sx, sy = (cx1 - cx0) / size, (cy1 - cy0) / size
            ox, oy = cx0 / size, cy0 / size
            box = torch.tensor([(x1 - ox) / sx, (y1 - oy) / sy, (x2 - ox) / sx,
                                (y2 - oy) / sy]).clamp(0.0, 1.0)
            if landmarks is not None:
                landmarks = (landmarks - torch.tensor([ox, oy])) / torch.tensor([sx, sy])
    gain = 1.0 + (float(torch.rand(())) - 0.5) * 0.4
    bias = (float(torch.rand(())) - 0.5) * 0.2
    mean = img.mean()
    return ((img - mean) * gain + mean + bias).clamp(-1.0, 1.0), box, landmarks


def split_items(dataset: FaceDataset, val_fraction: float, seed: int
                ) -> tuple[list[FaceItem], list[FaceItem]]:
    """``train``/``val`` items: the dataset's splits when it has a train split, else a
    stratified split with ``seed`` (:meth:`FaceDataset.with_splits`)."""
    items = dataset.items
    if not any(it.split == "train" for it in items):
        unsplit = replace(dataset, items=[replace(it, split=None) for it in items])
        items = unsplit.with_splits(seed, val_fraction).items
    return ([it for it in items if it.split == "train"], [it for it in items if it.split == "val"])
