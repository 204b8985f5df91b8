"""Frozen-trunk caches: the frozen first part of a network run once over every image (and its
mirror image) and kept on disk, so that an epoch only runs the trained part (the CPU path).

Used by ``face-resnet`` (dlib's first residual levels) and ``inception --align`` (an ImageNet
backbone's first blocks), both on aligned chips (:mod:`celebface.training.chips`). The maps are
one float16 ``(N, V, C, H, W)`` ``.npy`` (view 0 the image's, view 1 its mirror image's when
cached); :class:`FrozenMaps` serves a random view per item while training (the flip is then
the augmentation), view 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from celebface.training.chips import cached_array

Trunk = Callable[[torch.Tensor], torch.Tensor]


def frozen_maps(trunk: Trunk, images: np.ndarray, path: Path, device: str,
                progress: bool = True, flip: bool = True, desc: str = "cache frozen maps"
                ) -> np.ndarray:
    """``trunk`` (an ``(n, H, W, 3)`` uint8 batch on ``device`` to maps) over every image of
    ``images`` and, with ``flip``, its mirror image; float16 ``(N, 1 or 2, ...)``, cached at
    ``path`` (made on first use, a memmap afterwards)."""
    with torch.inference_mode():
        shape = trunk(torch.zeros(1, *images.shape[1:], dtype=torch.uint8,
                                  device=device)).shape[1:]

    def fill(start: int, stop: int) -> np.ndarray:
        x = torch.from_numpy(np.array(images[start:stop])).to(device)
        with torch.inference_mode():
            views = [trunk(x)] + ([trunk(x.flip(2))] if flip else [])
        return torch.stack(views, 1).half().cpu().numpy()

    return cached_array(path, (len(images), 2 if flip else 1, *shape), np.float16, fill,
                        desc, progress)


class FrozenMaps(Dataset):
    """Cached frozen-trunk maps ``(N, V, C, H, W)`` of some rows, as float32 ``(map, label)``;
    with ``augment`` a random view per item (the image's or its mirror image's), else view 0;
    with ``all_views`` every cached view, ``(V, C, H, W)`` (validation with flip TTA)."""

    def __init__(self, maps: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool,
                 all_views: bool = False):
        self.maps, self.rows, self.labels, self.augment = maps, rows, labels, augment
        self.all_views = all_views

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        if self.all_views:
            return torch.from_numpy(np.array(self.maps[r], np.float32)), int(self.labels[r])
        views = self.maps.shape[1]
        view = int(torch.randint(views, ())) if self.augment and views > 1 else 0
        return torch.from_numpy(np.array(self.maps[r, view], np.float32)), int(self.labels[r])
