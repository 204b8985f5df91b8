"""dlib's ResNet face embedder (128-d) on chips aligned with dlib's 5-point shape predictor.

This is what the ``face_recognition`` library computes (``face_encodings``), done in batches:
locate the 5 landmarks inside the face box, cut an aligned chip with ``dlib.get_face_chip``
and run the network on a list of chips at once. The network runs either in dlib itself
(``backend="dlib"``) or, by default, as the same network in PyTorch with dlib's weights
(:mod:`celebface.recognition.dlib_torch`: equal to dlib's output within 1e-6, much faster, and
usable on a GPU).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from celebface.device import resolve_device
from celebface.errors import InputError
from celebface.geometry import similarity_transform, warp
from celebface.models.store import dlib_model_path
from celebface.recognition.base import Embedder, run_batches
from celebface.recognition.dlib_torch import build_model
from celebface.types import Face

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DlibConfig:
    """Settings of the dlib embedder (all of them change the vectors).

    ``aligner``: ``landmarks`` maps a face's 5 detector landmarks (MTCNN's eye centres, nose,
    mouth corners) straight onto dlib's chip template by a similarity transform (no shape
    predictor); ``predictor`` runs dlib's 5-point shape predictor inside the face box (what
    ``face_recognition`` does). A face without landmarks always uses the predictor.
    ``padding`` is the context around the aligned face in the chip (dlib's default 0.25, the
    value the network was trained with); ``num_jitters`` > 1 averages that many randomly
    jittered copies (slower); ``box_shrink`` shrinks the face box given to the shape predictor
    by this fraction of its size on each side (0 = the box as given, negative = grown; for a
    crop dataset the box is the whole image). ``backend`` and ``batch_size`` do not change the
    vectors (the torch port equals dlib within 1e-6) and are not part of the cache key.
    """

    aligner: str = "landmarks"
    padding: float = 0.25
    num_jitters: int = 1
    box_shrink: float = 0.0
    chip_size: int = 150  # fixed by the network
    backend: str = "torch"  # "torch" (dlib's weights in PyTorch) or "dlib"
    batch_size: int = 64

    def __post_init__(self) -> None:
        if self.aligner not in ALIGNERS:
            raise InputError(f"unknown dlib aligner {self.aligner!r}: choose "
                             f"{' or '.join(ALIGNERS)}")
        if self.backend not in BACKENDS:
            raise InputError(f"unknown dlib backend {self.backend!r}: choose "
                             f"{' or '.join(BACKENDS)}")


BACKENDS = ("torch", "dlib")
ALIGNERS = ("landmarks", "predictor")
#: Where MTCNN's 5 landmarks (left eye, right eye, nose, mouth left, mouth right) fall in a
#: 150-px chip made by dlib's own pipeline (HOG box, 5-point predictor, padding 0.25): the mean
#: over 298 typical pins105-dev photos of MTCNN run on such chips (benchmarks/align.py).
CHIP_TEMPLATE_150 = np.array(
    [[47.139, 44.674], [101.598, 44.578], [73.580, 77.523], [52.166, 103.038],
     [96.658, 102.860]], dtype=np.float64)


def chip_template(size: int = 150, padding: float = 0.25) -> np.ndarray:
    """:data:`CHIP_TEMPLATE_150` for another chip size and padding (dlib's chip framing: a
    point ``u`` of the unit face square sits at ``(padding + u) / (1 + 2 padding) * size``)."""
    unit = CHIP_TEMPLATE_150 / 150.0 * 1.5 - 0.25
    return (padding + unit) / (1 + 2 * padding) * size
#: Config fields that do not change the vectors (left out of the cache key).
_RUNTIME_FIELDS = ("backend", "batch_size")


@functools.lru_cache(maxsize=4)
def _torch_net(path: str, device: str) -> Any:
    """dlib's network in torch, built once per process and device (read-only, shared)."""

    return build_model(path).to(device)


class DlibEmbedder(Embedder):
    """``dlib_face_recognition_resnet_model_v1`` on 150x150 chips aligned by 5 landmarks."""

    name = "dlib"
    dim = 128

    def __init__(
        self, config: DlibConfig | None = None, device: str = "cpu", net: Any = None,
        **options: Any
    ) -> None:
        """``net``: a torch module to run instead of dlib's network (a fine-tuned copy, see
        :mod:`celebface.training.face_resnet`); the alignment stays dlib's."""
        self.config = config or DlibConfig(**options)
        if self.config.chip_size != 150:
            raise InputError("dlib's ResNet needs 150x150 chips (chip_size=150)")
        self.device = device
        self.backend = self.config.backend
        if self.backend == "torch" and self.config.num_jitters > 1:
            log.info("num_jitters > 1 uses dlib's own random jitter: backend dlib")
            self.backend = "dlib"
        self._predictor: Any = None
        self._net: Any = net
        if net is not None:

            self.backend, self.device = "torch", resolve_device(device)
            self._net = net.to(self.device).eval()

    def _load(self) -> None:
        if self._predictor is None:
            import dlib

            self._predictor = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5")))
        if self._net is None:
            if self.backend == "torch":

                self.device = resolve_device(self.device)
                self._net = _torch_net(str(dlib_model_path("resnet")), self.device)
            else:
                import dlib

                self._net = dlib.face_recognition_model_v1(str(dlib_model_path("resnet")))

    def settings(self) -> dict[str, Any]:
        config = {k: v for k, v in asdict(self.config).items() if k not in _RUNTIME_FIELDS}
        return {"model": self.name, "dim": self.dim, "alignment": "dlib-5-point", **config}

    def _rect(self, image: np.ndarray, face: Face | None) -> Any:
        import dlib

        h, w = image.shape[:2]
        if face is None:
            x1, y1, x2, y2 = 0.0, 0.0, w - 1.0, h - 1.0
        else:
            x1, y1, x2, y2 = (float(v) for v in face.box)
        s = self.config.box_shrink
        if s:
            dx, dy = (x2 - x1) * s, (y2 - y1) * s
            x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 - dx, y2 - dy
        return dlib.rectangle(round(x1), round(y1), round(x2), round(y2))

    def chip(self, image: np.ndarray, face: Face | None = None) -> np.ndarray:
        """The aligned 150x150 RGB uint8 chip the network sees (``face`` None: the whole
        image is the face box)."""
        import dlib

        image = np.ascontiguousarray(image, dtype=np.uint8)
        if (self.config.aligner == "landmarks" and face is not None
                and face.landmarks is not None):

            size = self.config.chip_size
            m = similarity_transform(face.landmarks, chip_template(size, self.config.padding))
            return warp(image, m, size)
        self._load()
        shape = self._predictor(image, self._rect(image, face))
        return dlib.get_face_chip(image, shape, size=self.config.chip_size,
                                  padding=self.config.padding)

    def landmarks(self, image: np.ndarray, face: Face | None = None) -> np.ndarray:
        """Five points in MTCNN's order (eyes, nose, mouth corners), ``(5, 2)`` in ``image``'s
        pixels, whose similarity warp onto :func:`chip_template` cuts the chip dlib's own
        5-point alignment cuts (its shape predictor run in ``face``'s box): a landmark target
        in the same framing as :meth:`chip`."""
        import dlib

        image = np.ascontiguousarray(image, dtype=np.uint8)
        self._load()
        shape = self._predictor(image, self._rect(image, face))
        size, padding = self.config.chip_size, self.config.padding
        d = dlib.get_face_chip_details(shape, size, padding)
        r = d.rect
        centre = np.array([(r.left() + r.right()) / 2, (r.top() + r.bottom()) / 2])
        c, s = np.cos(d.angle), np.sin(d.angle)
        corners = np.array([[r.left(), r.top()], [r.right(), r.top()], [r.right(), r.bottom()]])
        in_image = (corners - centre) @ np.array([[c, s], [-s, c]]) + centre
        in_chip = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], np.float64)
        # the affine map chip -> image through three corners (dlib's get_mapping_to_chip)
        a = np.linalg.solve(np.c_[in_chip, np.ones(3)], in_image)
        template = chip_template(size, padding)
        return (np.c_[template, np.ones(len(template))] @ a).astype(np.float32)

    def embed_chips(self, chips: Sequence[np.ndarray]) -> np.ndarray:
        """Raw (not normalised) descriptors of aligned chips, ``(N, 128)`` float32."""
        self._load()
        if not chips:
            return np.zeros((0, self.dim), np.float32)
        if self.backend == "dlib":
            out = self._net.compute_face_descriptor(list(chips), self.config.num_jitters)
            return np.asarray([np.asarray(v) for v in out], dtype=np.float32)
        return run_batches(self._net, chips, self.config.batch_size, self.device)

    def chips(self, images: Sequence[np.ndarray], faces: Sequence[Face | None]
              ) -> list[np.ndarray]:
        return [self.chip(img, f) for img, f in zip(images, faces, strict=True)]
