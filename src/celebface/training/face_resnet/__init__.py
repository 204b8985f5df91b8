"""``face-resnet``: dlib's face ResNet fine-tuned on aligned 150-px chips, with a softmax or
margin (CosFace, ArcFace) classification head on its 128-d layer.

The network is :mod:`celebface.recognition.dlib_torch` built ``trainable``; the stem and the
first ``freeze`` residual levels stay as dlib trained them. Chips are cut once
(:mod:`celebface.training.chips`). With ``trunk_cache`` (the CPU path) the frozen levels' maps
of every chip and of its mirror image are computed once and cached too, so an epoch only runs
the trained levels; augmentation is then the flip. Without it, every step runs the whole
network on chips with flip, crop and colour augmentation. The fine-tuned 128-d layer is an
embedder (:meth:`FaceResNetModel.as_embedder`: ``embed --embedder MODEL_DIR``, ``enroll``).
With ``tta="flip"`` predictions average the chip's and its mirror image's probabilities, and the
fit loop validates (and picks its best epoch) the same way.

Measured on pins105-dev (``benchmarks/results/face_resnet.md``): CosFace beats the plain softmax
head (the default), and a network fine-tuned on 80 people separates 25 people it never saw
worse than dlib's original one, so galleries of new people should keep ``--embedder dlib``.
"""

from celebface.lazy import lazy_getattr
from celebface.training.face_resnet.config import (
    DEFAULT_MARGIN,
    HEADS,
    KIND,
    WEIGHTS,
    FaceResNetConfig,
)

#: the rest imports torch: imported on first use, so reading the config stays light
_LAZY = {
    "ChipData": "celebface.training.face_resnet.data",
    "trunk_maps": "celebface.training.face_resnet.data",
    "FaceResNetEmbedder": "celebface.training.face_resnet.model",
    "FaceResNetModel": "celebface.training.face_resnet.model",
    "ClassHead": "celebface.training.face_resnet.net",
    "FaceResNetNet": "celebface.training.face_resnet.net",
    "build_dlib_net": "celebface.training.face_resnet.net",
    "step_fn": "celebface.training.face_resnet.net",
    "train": "celebface.training.face_resnet.trainer",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "DEFAULT_MARGIN",
    "HEADS",
    "KIND",
    "WEIGHTS",
    "ChipData",
    "ClassHead",
    "FaceResNetConfig",
    "FaceResNetEmbedder",
    "FaceResNetModel",
    "FaceResNetNet",
    "build_dlib_net",
    "step_fn",
    "train",
    "trunk_maps",
]
