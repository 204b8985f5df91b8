"""Shared detector pre-processing: shrink huge images, pad tight crops, map faces back."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from celebface.errors import InputError
from celebface.io.images import ImageInputError
from celebface.types import Face

PAD_MODES = ("constant", "replicate", "reflect")


@dataclass(frozen=True)
class Prepared:
    """An image ready for a detector, and how to map its pixels back to the input image.

    ``input = (prepared - offset) / scale``.
    """

    image: np.ndarray
    scale: float
    offset: tuple[float, float]
    input_size: tuple[int, int]  # (width, height) of the caller's image


def prepare(
    image: np.ndarray,
    max_side: int | None = None,
    pad: float = 0.0,
    pad_mode: str = "constant",
    pad_value: int = 127,
    short_side: int | None = None,
) -> Prepared:
    """Resize ``image`` so its shorter side is ``short_side`` (up or down; None: as it is)
    and its longer side at most ``max_side``, then add a border of ``pad`` x the longer side
    on every side (faces that fill the frame are found more easily).
    """
    import cv2

    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageInputError(f"expected an H x W x 3 uint8 RGB image, got {image.shape} "
                              f"{image.dtype}")
    h, w = image.shape[:2]
    scale = short_side / min(h, w) if short_side else 1.0
    if max_side and max(h, w) * scale > max_side:
        scale = max_side / max(h, w)
    if scale != 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        mode = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, size, interpolation=mode)
        scale = size[0] / w
    border = round(pad * max(image.shape[:2])) if pad > 0 else 0
    if border:
        if pad_mode not in PAD_MODES:
            raise InputError(f"unknown pad mode {pad_mode!r}: choose one of {PAD_MODES}")
        kind = {
            "constant": cv2.BORDER_CONSTANT,
            "replicate": cv2.BORDER_REPLICATE,
            "reflect": cv2.BORDER_REFLECT_101,
        }[pad_mode]
        image = cv2.copyMakeBorder(
            image, border, border, border, border, kind, value=(pad_value,) * 3
        )
    return Prepared(np.ascontiguousarray(image), scale, (float(border), float(border)), (w, h))


def to_input_pixels(face: Face, prep: Prepared, extra_offset: tuple[float, float] = (0, 0)) -> Face:
    """Map a face found in ``prep.image`` (placed at ``extra_offset`` in a larger canvas) back
    to the caller's image, clipping the box to it (landmarks are left unclipped)."""
    ox = prep.offset[0] + extra_offset[0]
    oy = prep.offset[1] + extra_offset[1]
    f = 1.0 / prep.scale
    face = face.scaled(f, (-ox * f, -oy * f))
    w, h = prep.input_size
    x1, y1, x2, y2 = face.box
    box = (
        float(np.clip(x1, 0, w)),
        float(np.clip(y1, 0, h)),
        float(np.clip(x2, 0, w)),
        float(np.clip(y2, 0, h)),
    )
    return face.with_(box=box)


def sort_faces(faces: list[Face]) -> list[Face]:
    """Highest score first; empty boxes (after clipping) dropped."""
    kept = [f for f in faces if f.width > 1 and f.height > 1]
    return sorted(kept, key=lambda f: -f.score)


def pad_on_miss(
    run: Callable[[Sequence[np.ndarray], float], list[list[Face]]],
    images: Sequence[np.ndarray],
    pad: float,
    miss_score: float,
) -> list[list[Face]]:
    """Detect without padding; images with no face scoring ``miss_score`` or more are run
    again with a ``pad`` border, keeping whichever pass found the higher-scoring face.

    Tight face crops (a face filling the frame) are often missed without a border, while
    padding every photo would cost (1 + 2 pad)^2 more pixels for nothing.
    """
    first = run(images, 0.0)
    if pad <= 0:
        return first
    missed = [i for i, faces in enumerate(first) if not any(f.score >= miss_score for f in faces)]
    if missed:
        again = run([images[i] for i in missed], pad)
        for i, faces in zip(missed, again, strict=True):
            best_first = max((f.score for f in first[i]), default=-np.inf)
            if faces and max(f.score for f in faces) > best_first:
                first[i] = faces
    return first
