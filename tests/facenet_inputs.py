"""Inputs of the FaceNet reference fixture (tests/data/facenet_casia_reference.npz).

The fixture holds the 512-d outputs OpenCV 4.8.1's dnn module computed from the wheel's frozen
graph for these 160x160 chips: synthetic ones (made here, no face data in the repository) and
whole pins105-dev photos resized to 160 (read from ../shared/data when present).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: pins105-dev photos of the fixture (relative to the dataset root).
PINS_FILES = (
    "pins_Adriana Lima/Adriana Lima0_0.jpg",
    "pins_Bill Gates/Bill Gates105_501.jpg",
    "pins_Jason Momoa/Jason Momoa100_2403.jpg",
    "pins_Zendaya/Zendaya101_1790.jpg",
)


def synthetic_chips(n: int = 3, seed: int = 0) -> np.ndarray:
    """``(n, 160, 160, 3)`` uint8: blocky random colours plus a smooth gradient (numpy only,
    so the chips are the same with any OpenCV)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 200, (n, 10, 10, 3)).repeat(16, axis=1).repeat(16, axis=2)
    ramp = np.linspace(0, 55, 160)[None, :, None, None] * np.ones((n, 1, 160, 3))
    return (blocks + ramp).astype(np.uint8)


def pins_chips(root: str | Path) -> np.ndarray:
    """The fixture's pins photos as the facenet embedder sees a whole-photo face."""
    from celebface.io import read_image
    from celebface.recognition.facenet import crop_resize

    return np.stack([crop_resize(read_image(Path(root) / f).rgb, None) for f in PINS_FILES])
