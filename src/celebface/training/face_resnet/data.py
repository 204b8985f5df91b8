"""Training data of ``face-resnet``: aligned chips, or the cached maps of its frozen levels
(:mod:`celebface.training.frozen`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from celebface.recognition.dlib_torch_net import DlibFaceResNet
from celebface.training.frozen import frozen_maps


class ChipData(Dataset):
    """Chips (HWC uint8) of some rows with flip, crop and colour augmentation; with
    ``all_views`` each chip and its mirror image, ``(2, H, W, 3)`` (validation with flip TTA)."""

    def __init__(self, chips: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool,
                 all_views: bool = False):
        self.chips, self.rows, self.labels, self.augment = chips, rows, labels, augment
        self.all_views = all_views
        self._tf: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        x = torch.from_numpy(np.array(self.chips[r]))
        if self.all_views:
            return torch.stack([x, x.flip(1)]), int(self.labels[r])
        if self.augment:
            if self._tf is None:
                from torchvision.transforms import v2

                self._tf = v2.Compose([
                    v2.RandomHorizontalFlip(),
                    v2.RandomResizedCrop(150, scale=(0.85, 1.0), ratio=(0.95, 1.05),
                                         antialias=True),
                    v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
                ])
            x = self._tf(x.permute(2, 0, 1)).permute(1, 2, 0).contiguous()
        return x, int(self.labels[r])


def trunk_maps(net: DlibFaceResNet, chips: np.ndarray, levels: int, path: Path, device: str,
               progress: bool = True, flip: bool = True) -> np.ndarray:
    """The maps after the first ``levels`` levels of every chip (and, with ``flip``, of its
    mirror image), float16, cached at ``path`` (:func:`celebface.training.frozen.frozen_maps`)."""
    return frozen_maps(lambda x: net.trunk(x, levels), chips, path, device, progress, flip,
                       f"cache levels 1-{levels}")
