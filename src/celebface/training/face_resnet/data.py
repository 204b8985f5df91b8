"""Training data of ``face-resnet``: aligned chips, or the cached maps of its frozen levels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from celebface.training.chips import cached_array


class ChipData(Dataset):
    """Chips (HWC uint8) of some rows with flip, crop and colour augmentation."""

    def __init__(self, chips: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool):
        self.chips, self.rows, self.labels, self.augment = chips, rows, labels, augment
        self._tf: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        x = torch.from_numpy(np.array(self.chips[r]))
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


class TrunkData(Dataset):
    """Cached frozen-trunk maps ``(N, V, C, H, W)`` (view 0 the chip, 1 its mirror image when
    cached); with ``augment`` a random view per item, else the chip's."""

    def __init__(self, maps: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool):
        self.maps, self.rows, self.labels, self.augment = maps, rows, labels, augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        views = self.maps.shape[1]
        view = int(torch.randint(views, ())) if self.augment and views > 1 else 0
        return torch.from_numpy(np.array(self.maps[r, view], np.float32)), int(self.labels[r])


def trunk_maps(net: nn.Module, chips: np.ndarray, levels: int, path: Path, device: str,
               progress: bool = True, flip: bool = True) -> np.ndarray:
    """The maps after the first ``levels`` levels of every chip (and, with ``flip``, of its
    mirror image), float16, cached at ``path``."""
    with torch.inference_mode():
        shape = net.trunk(torch.zeros(1, 150, 150, 3, dtype=torch.uint8), levels).shape[1:]

    def fill(start: int, stop: int) -> np.ndarray:
        x = torch.from_numpy(np.array(chips[start:stop])).to(device)
        with torch.inference_mode():
            views = [net.trunk(x, levels)] + ([net.trunk(x.flip(2), levels)] if flip else [])
        return torch.stack(views, 1).half().cpu().numpy()

    return cached_array(path, (len(chips), 2 if flip else 1, *shape), np.float16, fill,
                        f"cache levels 1-{levels}", progress)
