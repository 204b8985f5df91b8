"""``inception --align``: the reference-head model on dlib-aligned face chips (the CPU path).

Training cuts each photo's aligned 150-px chip once (:func:`celebface.training.chips.
aligned_chips`: the face located by the ``auto`` rule, its 5 landmarks, a similarity
transform; the alignment of the dlib embedder and ``face-resnet``, sharing their cache) and
feeds its centre (``chip_padding``: the context kept around the face, dlib's 0.25 at most)
resized to ``input_size``. With ``--freeze N`` and ``trunk_cache`` the first N backbone blocks'
maps of every chip and of its mirror image are cached as well
(:mod:`celebface.training.frozen`), so an epoch runs only the trained blocks and the head, and
the flip is the augmentation. Prediction aligns each photo the same way
(:func:`celebface.training.chips.face_chips`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.errors import InputError
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.training.chips import Chips, aligned_chips, alignment_config
from celebface.training.data import ImageData
from celebface.training.inception.config import DLIB_PADDING
from celebface.training.inception.data import to_tensor

if TYPE_CHECKING:
    from celebface.recognition.dlib_resnet import DlibEmbedder
    from celebface.training.inception.head_net import ReferenceHeadNet


def aligner(settings: dict[str, Any] | None = None) -> DlibEmbedder:
    """The chip cutter for ``settings`` (a ``DlibEmbedder.settings()`` dict), default dlib's."""

    return DlibEmbedder(alignment_config(settings))


def crop(chips: np.ndarray, padding: float, cut_with: float = DLIB_PADDING) -> np.ndarray:
    """The centre of chips (``(..., S, S, 3)``, cut with padding ``cut_with``) framed as if
    cut with ``padding`` (less context: a larger face), a view of the same array."""
    if not 0 <= padding <= cut_with:
        raise InputError(f"chip padding {padding} outside 0..{cut_with}")
    side = chips.shape[-2]
    keep = round(side * (1 + 2 * padding) / (1 + 2 * cut_with))
    o = (side - keep) // 2
    return chips[..., o:o + keep, o:o + keep, :]


def chip_data(images: ImageData, cache_dir: Path, padding: float = DLIB_PADDING,
              progress: bool = True) -> tuple[ImageData, Chips, DlibEmbedder]:
    """``images`` whose ``image(i)`` is row ``i``'s aligned chip framed with ``padding`` (from
    the chips cache in ``cache_dir``, cut now when missing), the chips and their cutter."""
    cutter = aligner()
    chips = aligned_chips(images.paths, cutter, cache_dir, progress=progress)
    return (dataclasses.replace(images, _images=crop(chips.images, padding), fit="stretch"),
            chips, cutter)


def trunk_maps(net: ReferenceHeadNet, chips: Chips, padding: float, input_size: int, blocks: int,
               cache_dir: Path, tag: str, device: str, progress: bool = True,
               flip: bool = True) -> np.ndarray:
    """The maps after the first ``blocks`` trunk blocks of ``net`` (a reference-head network,
    in eval mode there) for every chip framed with ``padding``, resized to ``input_size`` and,
    with ``flip``, its mirror image; cached in ``cache_dir``, named by the chips and every
    setting that changes the maps, ``tag`` saying what the weights are."""
    import torch

    from celebface.training.frozen import frozen_maps

    trunk = torch.nn.Sequential(net.input_norm, *list(net.features)[:blocks]).to(device).eval()

    def run(x: torch.Tensor) -> torch.Tensor:
        return trunk(to_tensor(list(x.cpu().numpy()), input_size).to(device))

    name = (f"inception-{chips.key}-p{padding:g}-{net.backbone}-{input_size}px-B{blocks}-{tag}"
            f"-v{2 if flip else 1}.npy")
    return frozen_maps(run, crop(chips.images, padding), Path(cache_dir) / name, device,
                       progress, flip, f"cache blocks 1-{blocks}")
