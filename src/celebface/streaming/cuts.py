"""Shot cuts and face changes, found by PySceneDetect's ``ContentDetector`` fed frame by frame.

:class:`ContentChange` gives each image (an RGB array) to a
:class:`scenedetect.detectors.ContentDetector`, whose score is the mean change of hue,
saturation and brightness (0-255) from the previous image; a score at or above the threshold
is a change. Its flash filter runs in ``SUPPRESS`` mode: a change is reported on the image it
happens on (no look-ahead: a streaming loop must know at once) and a second one within
``min_frames`` is ignored. PySceneDetect's ``AdaptiveDetector`` (a rolling average of the
scores) reports each cut ``window_width`` frames late, so the frames in between would be named
by the last shot's tracks; it is measured beside ``ContentDetector`` in ``benchmarks/cuts.py``.

Two uses: :class:`CutDetector`, the whole frame shrunk to :data:`CUT_WIDTH` px wide (as
PySceneDetect's own ``SceneManager`` downscales), for shot cuts; and :class:`BoxChange`, the
inside of one face box shrunk to :data:`BOX_SIDE` px square, brightness only
(``luma_only``), which tells the tracker that the face a track follows changed between two
detections (another person took its place with no cut). A tracked box is a few pixels off the
face (detector jitter, the box moved on at the last velocity): the small square and brightness
alone keep those shifts under the threshold while another face is well over it
(``benchmarks/cuts.py``, second table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from scenedetect.detectors import ContentDetector

#: Width a frame is shrunk to before the cut test (PySceneDetect's default downscale target).
CUT_WIDTH = 256
#: Side a face box is shrunk to before its change test.
BOX_SIDE = 16
#: A shot cut within this many frames of the last one is ignored (a flash, a glitch).
MIN_SHOT_FRAMES = 8
#: Frame rate given to PySceneDetect's timecodes (only frame counts are used).
_FPS = 30.0


class ContentChange:
    """``update(rgb)`` is True when ``rgb`` differs from the previous image by a
    ``ContentDetector`` score at or above ``threshold`` (never for the first; 0: never)."""

    def __init__(self, threshold: float, min_frames: int = 0, luma_only: bool = False) -> None:
        self.threshold, self.min_frames, self.luma_only = threshold, min_frames, luma_only
        self._detector: ContentDetector | None = None
        self._n = 0

    def reset(self) -> None:
        self._detector = None
        self._n = 0

    def update(self, rgb: np.ndarray) -> bool:
        """Feed the next image (RGB, the same shape as the previous ones)."""
        if self.threshold <= 0:
            return False
        from scenedetect.common import FrameTimecode
        from scenedetect.detector import FlashFilter
        from scenedetect.detectors import ContentDetector

        if self._detector is None:
            self._detector = ContentDetector(threshold=self.threshold,
                                             min_scene_len=self.min_frames,
                                             luma_only=self.luma_only,
                                             filter_mode=FlashFilter.Mode.SUPPRESS)
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # PySceneDetect reads OpenCV's BGR
        cuts = self._detector.process_frame(FrameTimecode(self._n, fps=_FPS), bgr)
        self._n += 1
        return bool(cuts) and self._n > 1


def _shrink(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


class CutDetector:
    """``update(frame)`` is True when ``frame`` starts a new shot (never for the first)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._change = ContentChange(threshold, MIN_SHOT_FRAMES)

    def reset(self) -> None:
        self._change.reset()

    def update(self, rgb: np.ndarray) -> bool:
        if self.threshold <= 0:
            return False
        h, w = rgb.shape[:2]
        if w > CUT_WIDTH:
            rgb = _shrink(rgb, (CUT_WIDTH, max(1, round(h * CUT_WIDTH / w))))
        return self._change.update(rgb)


class BoxChange:
    """Whether the inside of a tracked face's box changed from one frame to the next (another
    face took the place): :meth:`crop` its box in the first frame, then :meth:`changed` with
    its (moved) box in the next."""

    def __init__(self, threshold: float) -> None:
        self._change = ContentChange(threshold, luma_only=True)

    @staticmethod
    def crop(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray | None:
        """The inside of ``box``, shrunk to :data:`BOX_SIDE` px square (None when empty)."""
        h, w = rgb.shape[:2]
        x1, y1 = max(0, int(box[0])), max(0, int(box[1]))
        x2, y2 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if x2 - x1 < 2 or y2 - y1 < 2:
            return None
        return _shrink(rgb[y1:y2, x1:x2], (BOX_SIDE, BOX_SIDE))

    def changed(self, before: np.ndarray | None, rgb: np.ndarray,
                box: tuple[float, float, float, float]) -> bool:
        """Whether ``box`` in ``rgb`` shows another image than ``before`` (the :meth:`crop`
        of the face's box in the frame before)."""
        after = self.crop(rgb, box)
        if before is None or after is None:
            return False
        self._change.reset()
        self._change.update(before)
        return self._change.update(after)
