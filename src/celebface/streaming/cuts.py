"""Shot cuts: a colour-histogram test on a small copy of each frame.

The histogram (8 bins per channel of a 64 px wide copy) of a frame is compared with the
previous frame's by total variation (half the L1 distance, 0 = same colours, 1 = disjoint); a
change above the threshold is a cut. Camera motion and moving people change a frame's
colours slowly; a cut to another shot changes them at once.
"""

from __future__ import annotations

import numpy as np

BINS = 8
SIDE = 64


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """The normalised joint histogram (``BINS``^3) of a ``SIDE`` px wide copy of ``rgb``."""
    import cv2

    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (SIDE, max(1, round(h * SIDE / max(w, 1)))),
                       interpolation=cv2.INTER_AREA) if w > SIDE else rgb
    q = (small.reshape(-1, 3).astype(np.int32) * BINS) // 256
    idx = (q[:, 0] * BINS + q[:, 1]) * BINS + q[:, 2]
    hist = np.bincount(idx, minlength=BINS**3).astype(np.float32)
    return hist / max(float(hist.sum()), 1.0)


def histogram_change(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two normalised histograms (0-1)."""
    return float(0.5 * np.abs(a - b).sum())


class CutDetector:
    """``update(frame)`` is True when ``frame`` starts a new shot (never for the first)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._last: np.ndarray | None = None
        self.last_change = 0.0

    def reset(self) -> None:
        self._last = None

    def update(self, rgb: np.ndarray) -> bool:
        if self.threshold <= 0:
            return False
        hist = colour_histogram(rgb)
        last, self._last = self._last, hist
        if last is None:
            return False
        self.last_change = histogram_change(last, hist)
        return self.last_change > self.threshold
