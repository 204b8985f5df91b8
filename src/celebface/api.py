"""The short public API, re-exported as ``celebface.<name>``.

    import celebface
    faces = celebface.detect("party.jpg")                     # list[Face]: box, score, landmarks
    faces = celebface.analyze("party.jpg")                    # + age, gender, pose
    vectors = celebface.embed(["a.jpg", "b.jpg"])              # (2, 128) unit vectors
    celebface.enroll("people/", "gallery/")                    # a gallery folder
    named = celebface.recognize("party.jpg", "gallery/")       # list[Face] with identity
    result = celebface.verify("a.jpg", "b.jpg")                # .same, .score, .threshold

An image is a path, a PIL image or an RGB uint8 array; a gallery is a folder, a
``postgresql://`` URL or a :class:`~celebface.gallery.Gallery`. Models are built on first use
and kept (one per setting).
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from celebface.attributes import analyze_faces, check_plugins
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.gallery import EnrollConfig
from celebface.gallery import enroll as _enroll
from celebface.gallery.store import is_store_url
from celebface.gallery.stores import open_store
from celebface.io.images import as_rgb
from celebface.recognition import EmbedderSpec
from celebface.recognition.spec import DEFAULT_EMBEDDER
from celebface.recognizer import Recognizer, RecognizerConfig, TrackerConfig
from celebface.streaming.recognizer import VideoTracker
from celebface.streaming.run import video_timeline
from celebface.types import Face
from celebface.verification import verify as _verify

ImageLike = Any  # str | Path | PIL.Image.Image | np.ndarray


def load_rgb(image: ImageLike) -> np.ndarray:
    """An RGB uint8 array from a path, a PIL image or an array (greyscale/RGBA converted)."""

    return as_rgb(image, max_side=None)


@functools.lru_cache(maxsize=4)
def _recognizer(location: str, device: str, version: Hashable) -> Any:
    """One recogniser per gallery location and version (its store's stamp, which every save
    changes), so an edited gallery is read again."""

    return Recognizer.open(location, config=RecognizerConfig(device=device))


def _store_version(location: str) -> Hashable:

    store = open_store(location)
    try:
        return store.version()
    finally:
        store.close()


def detect(image: ImageLike, detector: str = DEFAULT_DETECTOR, device: str = "auto") -> list[Face]:
    """Every face of ``image`` that counts (box, score, 5 landmarks), highest score first:
    the default face finder's (:mod:`celebface.detection.finder`: at least the detector's
    minimum score, none nested in another), as ``recognize`` finds them."""
    from celebface.detection import get_finder

    return get_finder(detector=detector, device=device).find(load_rgb(image))


def analyze(image: ImageLike, plugins: str | Sequence[str] = ("age", "gender", "pose"),
            detector: str = DEFAULT_DETECTOR, device: str = "auto") -> list[Face]:
    """Every face of ``image`` as :func:`detect` finds them, with the attributes ``plugins``
    name (``age``, ``gender``, ``pose``; :mod:`celebface.attributes`): ``Face.age`` (years),
    ``gender`` and ``gender_probability``, ``pose`` (yaw, pitch, roll in degrees)."""
    from celebface.detection import get_finder

    return analyze_faces(load_rgb(image), get_finder(detector=detector, device=device),
                         check_plugins(plugins))


def embed(
    images: Sequence[ImageLike],
    faces: Sequence[Face | None] | None = None,
    embedder: str = DEFAULT_EMBEDDER,
    tta: str = "none",
    device: str = "auto",
) -> np.ndarray:
    """Unit vectors ``(N, dim)`` of one face per image: ``faces[i]`` where given, else the
    largest face MTCNN finds in the image, else the whole image (a tight crop): the ``auto``
    rule of :mod:`celebface.detection.finder`, on ``device``. A single image (a path, a PIL
    image, an H x W (x 3) array) counts as a list of one."""
    from celebface.detection import get_finder

    if _single_image(images):
        images = [images]
    rgb = [load_rgb(im) for im in images]
    located = get_finder(device=device).locate(rgb, faces, "auto")
    return EmbedderSpec(embedder, tta).build(device).embed(rgb, located)


def _single_image(images: Any) -> bool:
    """Whether ``images`` is one image rather than a sequence of them (a path is a str, which
    would otherwise be read as a list of one-character paths)."""
    if isinstance(images, str | Path | bytes) or hasattr(images, "convert"):
        return True
    return isinstance(images, np.ndarray) and (
        images.ndim == 2 or (images.ndim == 3 and images.shape[2] in (1, 3, 4)))


def enroll(folder: str | Path, gallery_dir: str | Path, **options: Any) -> Any:
    """Build (or with ``add=True`` extend) gallery ``gallery_dir`` from ``folder`` (one
    sub-folder per person; a ``crop`` output or raw photos). ``options``: ``add``,
    ``remove``, ``progress`` and the fields of :class:`~celebface.gallery.EnrollConfig`."""


    names = {f.name for f in fields(EnrollConfig)}
    config = EnrollConfig(**{k: options.pop(k) for k in list(options) if k in names})
    return _enroll(folder, gallery_dir, config=config, **options)


def recognize(image: ImageLike, gallery: str | Path | Any, device: str = "auto") -> list[Face]:
    """Every face of ``image``, named from ``gallery`` (``identity`` is ``"unknown"`` below
    the gallery's threshold)."""
    if isinstance(gallery, str | Path):

        location = str(gallery) if is_store_url(gallery) else str(Path(gallery).resolve())
        rec = _recognizer(location, device, _store_version(location))
    else:

        rec = Recognizer.open(gallery, config=RecognizerConfig(device=device))
    return rec.recognize(load_rgb(image))


def timeline(video: str | Path, gallery: str | Path | Any, out: str | Path | None = None,
             device: str = "auto", **tracker: Any) -> list[Any]:
    """Who appears when in ``video``: one :class:`~celebface.streaming.timeline.Appearance`
    per track (person or ``unknown-N``, start/end time, frames, scores); with ``out``, also
    writes ``appearances.csv``/``.json``, thumbnails and ``timeline.png`` there. ``tracker``:
    :class:`~celebface.recognizer.TrackerConfig` settings (e.g. ``detect_every=3``); the
    gallery as :func:`recognize` takes it."""

    config = RecognizerConfig(device=device, tracker=TrackerConfig(**tracker))
    return video_timeline(VideoTracker(Recognizer.open(gallery, config=config)), video, out)


def verify(a: ImageLike, b: ImageLike, *, crop: bool = False, **options: Any) -> Any:
    """Are the largest faces of ``a`` and ``b`` the same person? A
    :class:`~celebface.types.Verification` (``.same``, ``.score``, ``.threshold``). A photo
    without a detected face raises :class:`~celebface.verification.NoFaceError`, unless
    ``crop=True`` says the photos are face crops (one without a detected face is then
    compared whole)."""

    return _verify(a, b, crop=crop, **options)


__all__ = ["detect", "embed", "enroll", "load_rgb", "recognize", "timeline", "verify"]
