"""Stand-in detectors and embedders shared by the tests: fast, deterministic, no model files."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from celebface.detection.base import Detector
from celebface.recognition.base import Embedder, l2_normalize
from celebface.types import Face


def _face_region(img: np.ndarray, face: Face | None) -> np.ndarray:
    """The pixels of ``face``'s box (rounded), or the whole image when ``face`` is None."""
    if face is None:
        return img
    x1, y1, x2, y2 = (round(v) for v in face.box)
    return img[y1:y2, x1:x2]


# ---------------------------------------------------------------------------------- embedders
class ColourEmbedder(Embedder):
    """The mean colour of each quadrant of the whole image (faces ignored); counts faces."""

    name, dim = "colour", 12

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        self.calls += len(images)
        out = []
        for img in images:
            h, w = img.shape[0] // 2, img.shape[1] // 2
            quads = [img[:h, :w], img[:h, w:], img[h:, :w], img[h:, w:]]
            out.append(np.concatenate([q.reshape(-1, 3).mean(0) for q in quads]) - 127.5)
        return l2_normalize(np.array(out, np.float32))


class MeanColourEmbedder(Embedder):
    """The mean colour inside the face box (whole image when none) plus ``offset``, as a unit
    vector; ``flip_call`` makes that call (1-based) return a wrong colour."""

    dim = 3

    def __init__(self, name: str = "meancolour", offset: float = -128.0,
                 flip_call: int | None = None) -> None:
        self.name, self.offset, self.flip_call = name, offset, flip_call
        self.faces_seen = 0
        self.calls = 0

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        self.calls += 1
        self.faces_seen += len(images)
        out = []
        for img, f in zip(images, faces or [None] * len(images), strict=True):
            vec = _face_region(img, f).reshape(-1, 3).mean(0) + self.offset
            out.append(vec[::-1] if self.calls == self.flip_call else vec)
        return l2_normalize(np.array(out, np.float32))


class HalvesEmbedder(Embedder):
    """Colour means of the left and right halves of the face box (not mirror-symmetric)."""

    name, dim = "toy", 6

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        rows = []
        for img, f in zip(images, faces or [None] * len(images), strict=True):
            region = _face_region(img, f)
            half = region.shape[1] // 2
            rows.append(np.r_[region[:, :half].mean((0, 1)), region[:, half:].mean((0, 1))] + 1)
        return l2_normalize(np.asarray(rows))


class ProjectionEmbedder(Embedder):
    """A fixed random projection (``seed``) of each image's mean colour and height."""

    def __init__(self, name: str, dim: int, seed: int) -> None:
        self.name, self.dim = name, dim
        self.proj = np.random.default_rng(seed).normal(size=(4, dim))

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        feats = np.asarray([[*img.reshape(-1, 3).mean(0), img.shape[0]] for img in images])
        return l2_normalize(np.tanh((feats - 100) / 50) @ self.proj)


# ---------------------------------------------------------------------------------- detectors
class ListDetector:
    """Returns the given faces (``faces[i]`` for the i-th image of a batch); records batches."""

    name = "mtcnn"  # its minimum score (0.9) applies

    def __init__(self, faces: list[list[Face]]):
        self.faces, self.calls, self.seen = faces, 0, []

    def detect_batch(self, images):
        self.calls += 1
        self.seen.append(len(images))
        return self.faces[: len(images)]


class BoxDetector:
    """Returns the boxes it was given for each image width (score 0.99)."""

    name = "fake"

    def __init__(self, boxes: dict[int, list[tuple]]):
        self.boxes = boxes

    def detect_batch(self, images):
        return [[Face(box=b, score=0.99) for b in self.boxes.get(img.shape[1], [])]
                for img in images]


class BrightSquareDetector(Detector):
    """A face where the picture has a bright square, one per image half (scores 0.99 and
    0.95); ``crash_after`` calls, it raises KeyboardInterrupt (Ctrl-C mid-run)."""

    name = "fake"
    thread_safe = True  # exercise the concurrent detection path

    def __init__(self, crash_after: int | None = None):
        self.calls = 0
        self.crash_after = crash_after

    def settings(self) -> dict:
        return {"detector": self.name}

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        self.calls += 1
        if self.crash_after is not None and self.calls > self.crash_after:
            raise KeyboardInterrupt
        out = []
        for im in images:
            faces = []
            bright = im[..., 0] > 200
            w = bright.shape[1]
            for x0, x1, score in ((0, w // 2, 0.99), (w // 2, w, 0.95)):
                ys, xs = np.nonzero(bright[:, x0:x1])
                if len(xs):
                    box = (float(xs.min() + x0), float(ys.min()), float(xs.max() + x0 + 1),
                           float(ys.max() + 1))
                    lm = np.tile([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], (5, 1))
                    faces.append(Face(box=box, score=score, landmarks=lm.astype(np.float32)))
            out.append(faces)
        return out


class BlobDetector(Detector):
    """Saturated blobs on a grey-ish background, largest first; records image sizes."""

    name = "blob"

    def __init__(self) -> None:
        self.sizes: list[tuple[int, int]] = []

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        import cv2

        out = []
        for img in images:
            self.sizes.append(img.shape[:2])
            arr = img.astype(np.int16)
            sat = arr.max(-1) - arr.min(-1)
            n, _, stats, _ = cv2.connectedComponentsWithStats((sat > 120).astype(np.uint8))
            faces = [Face((float(x), float(y), float(x + w), float(y + h)), 0.99)
                     for x, y, w, h, area in stats[1:n] if area > 30]
            out.append(sorted(faces, key=lambda f: -f.area))
        return out
