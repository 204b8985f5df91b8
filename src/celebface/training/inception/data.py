"""Face crops as ``inception`` inputs: square resizing, scaling, a torch dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from celebface.errors import InputError
from celebface.io import ImageReadError
from celebface.packing.pack import fit_square
from celebface.training.data import ImageData

if TYPE_CHECKING:
    import torch


log = logging.getLogger(__name__)

def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` resized to ``size`` x ``size`` (bilinear, antialiased)."""

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def to_tensor(images: Sequence[np.ndarray], size: int, fit: str = "stretch") -> torch.Tensor:
    """RGB uint8 images to a normalised ``(N, 3, size, size)`` float batch in [-1, 1]; a
    non-square image is stretched, or centre-cropped/padded (``fit``, as ``celebface pack``)."""
    import torch


    def square(im: np.ndarray) -> np.ndarray:
        im = np.asarray(im, dtype=np.uint8)
        if fit == "stretch" or im.shape[0] == im.shape[1]:
            return resize_square(im, size)
        return fit_square(im, size, fit)

    arr = np.stack([square(im) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class FaceImages:
    """Torch dataset over some samples of :class:`ImageData`: ``(image tensor, label)``.
    An unreadable file is logged once and replaced by the next sample."""

    def __init__(self, data: ImageData, indices: np.ndarray, size: int, augment: bool):
        self.data, self.indices, self.size, self.augment = data, np.asarray(indices), size, augment
        self._transform: Any = None
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.indices)

    def _augmenter(self) -> Any:
        if self._transform is None:
            from torchvision.transforms import v2

            self._transform = v2.Compose([
                v2.RandomResizedCrop(self.size, scale=(0.75, 1.0), ratio=(0.9, 1.1),
                                     antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
            ])
        return self._transform

    def __getitem__(self, pos: int) -> tuple[torch.Tensor, int]:
        import torch

        for attempt in range(len(self.indices)):
            i = int(self.indices[(pos + attempt) % len(self.indices)])
            if i in self._bad:
                continue
            try:
                rgb = resize_square(self.data.image(i), self.size)
                break
            except ImageReadError as exc:
                self._bad.add(i)
                log.warning("skipped: %s", exc)
        else:
            raise InputError("no readable image in the data")
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)
        if self.augment:
            x = self._augmenter()(x)
        return x.float().div_(127.5).sub_(1.0), int(self.data.labels[i])
