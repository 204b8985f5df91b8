"""celebface: a folder of celebrity photos to a working face-identification system.

The short API: ``celebface.detect``, ``embed``, ``enroll``, ``recognize``, ``verify``
(:mod:`celebface.api`). Stages, in pipeline order: :mod:`celebface.detection` and
:mod:`celebface.cropping` (crop),
:mod:`celebface.packing` (pack), :mod:`celebface.recognition` (embed),
:mod:`celebface.training` and :mod:`celebface.evaluation` (train, evaluate),
:mod:`celebface.gallery` and :mod:`celebface.streaming` (recognize), :mod:`celebface.synth`.
Nothing heavy is imported until used.
"""

from __future__ import annotations

from typing import Any

from celebface.errors import CelebfaceError
from celebface.lazy import lazy_getattr
from celebface.plugins import register_embedder_kind, register_engine
from celebface.types import UNKNOWN, Decision, Face, Match, Prediction, Verification

__version__ = "0.1.0"


# The parts above the stages that ship with celebface (:mod:`celebface.plugins`), each
# imported only when first used: the Ray engines, and trained-model folders as embedders.
def _crop_on_ray(*args: Any) -> Any:
    from celebface.engines.ray_engine import crop_on_ray

    return crop_on_ray(*args)


def _embed_on_ray(*args: Any) -> Any:
    from celebface.engines.ray_engine import embed_on_ray

    return embed_on_ray(*args)


def _model_folder_embedder(path: str, device: str = "auto") -> Any:
    from celebface.training import folder_embedder

    return folder_embedder(path, device)


register_engine("crop", "ray", _crop_on_ray)
register_engine("embed", "ray", _embed_on_ray)
register_embedder_kind("model-folder", _model_folder_embedder)

# name -> module; resolved lazily so `import celebface` loads no model and no torch.
_LAZY = {
    # the short API (celebface/api.py)
    "analyze": "celebface.api",
    "detect": "celebface.api",
    "embed": "celebface.api",
    "enroll": "celebface.api",
    "recognize": "celebface.api",
    "timeline": "celebface.api",
    "verify": "celebface.api",
    "crop_dataset": "celebface.cropping",
    "pack_dataset": "celebface.packing",
    "embed_dataset": "celebface.recognition",
    "get_detector": "celebface.detection",
    "EmbedderSpec": "celebface.recognition.spec",
    "load_model": "celebface.training",
    "train_model": "celebface.training",
    "evaluate_model": "celebface.evaluation",
    "Gallery": "celebface.gallery",
    "Recognizer": "celebface.recognizer",
}

__all__ = ["UNKNOWN", "CelebfaceError", "Decision", "Face", "Match", "Prediction",
           "Verification", "__version__", *_LAZY]


__getattr__ = lazy_getattr(__name__, _LAZY)
