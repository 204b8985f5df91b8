"""Where the faces are: one :class:`FaceFinder` for every surface (embed, enroll, calibrate,
recognize in photos and video, verify, cluster, audit, serve, the facade, Ray).

A finder holds the detector, the minimum score, the size policy, nested-box suppression, the
whole-image fallback rule and the device (:class:`FinderConfig`), and returns
:class:`~celebface.types.Face` s in the input image's own pixels:

- :meth:`FaceFinder.find` / :meth:`~FaceFinder.find_batch`: every face that counts, highest
  score first. A face counts when it scores at least ``min_score`` (default the detector's
  registered one, :mod:`celebface.detection.registry`: MTCNN 0.9, YuNet 0.6, HOG 0.0), its
  box's shorter side
  is at least ``min_face`` pixels, and it does not lie mostly inside the head around a larger
  face (:func:`drop_nested`: a chin or neck box is not a second face).
- :meth:`FaceFinder.locate` (and :meth:`~FaceFinder.largest` for one image): the one face an
  image is about, for an embedder: a known face as it is, else by the ``rule``:

  - ``detect``: the largest face that counts; none: ``None`` (the caller skips the image).
  - ``auto``: as ``detect``, but an image without one is taken whole (:func:`whole_face`: a
    tight crop). With a detector registered with a large-face pass (MTCNN) the search has two
    passes: first on a copy resized to a shorter side of ``LARGE_SIDE`` px for faces of
    ``LARGE_FACE`` x that side or more (a three-level pyramid whatever the photo's size: 2.3x
    faster locating on pins105-dev's tight crops, ``benchmarks/results/locate.md``), then the
    full search for the images still without a face.
  - ``whole``: the whole image is the face.

  The whole image is one convention everywhere: a box from (0, 0) to (w - 1, h - 1), score 0,
  no landmarks (the box dlib's aligner takes for "no face given"); :func:`is_whole` tells it.

Which rule each surface uses (``FinderConfig.rule`` is ``detect`` unless said):

- recognising the faces of a scene (``recognize`` CLI, ``celebface.recognize``,
  ``POST /v1/recognize``, video frames): every face that counts (:meth:`find`); an image
  without one has no faces, never a whole-image face.
- verifying a single-person photo (``verify``, ``POST /v1/verify``), ``embed --faces auto``
  (the default), the facade's ``celebface.embed`` and a trained model's ``embed``: ``auto``,
  so a tight crop (e.g. pins' ``Morgan Freeman10_3028.jpg``, where MTCNN finds no face) is
  taken whole, as ``embed`` takes it, instead of refused. ``verify --all`` and clustering: every
  face that counts, an image without one whole.
- enrolling raw photos (``celebface enroll``, ``POST /v1/people/{name}/photos``) and
  calibrating: ``detect`` (a photo without a face that counts is skipped and said so, never
  enrolled whole: a gallery holds faces only, and an upload of a jacket is refused rather
  than enrolled); ``enroll --detector none`` (face crops): ``auto``. The CLI and the service
  enrol by the same rule, so they store the same vectors. Auditing: every face that counts
  (a photo without one is reported, not embedded). Thumbnails: ``detect``.

Size: images are shrunk (``INTER_AREA``) so their longer side is at most ``max_side`` before
the full search (faces come back in the input's pixels; 0: never); this is the one resize, the
detector itself is built not to shrink again. Video uses its own finder whose ``max_side`` is
the recogniser's ``video_detect_side`` (smaller, for speed): the one place a surface detects at
another size, and only because its config says so.

:func:`get_finder` returns one finder per settings and device per process.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from celebface import validate
from celebface.detection.registry import (
    DEFAULT_DETECTOR,
    LARGE_FACE,
    LARGE_SIDE,
    check_detector,
    detector_info,
    detector_names,
    get_detector,
    min_score,
)
from celebface.errors import InputError
from celebface.types import Face

log = logging.getLogger(__name__)

RULES = ("auto", "detect", "whole")
#: A face whose box lies this much (intersection over its own area) inside the head around a
#: larger face is dropped: the head is the larger face's box grown by ``HEAD_MARGIN`` of its
#: width and height on each side (MTCNN's boxes are tight: brows to lips; chin, forehead and
#: ears lie around them). MTCNN's own suppression compares IoU, which stays small for a small
#: box on a part of a larger face: five_celeb's Elton John val photo
#: (``...eltonjohnemmysperformancewatchnowjpg.jpg``) has a 0.963 box on his chin and neck,
#: 35% inside his 1.000 face box and 67% inside his head. Two real faces overlap that much
#: only when one hides most of the other behind its head.
NESTED = 0.6
HEAD_MARGIN = 0.25


def check_rule(rule: str) -> str:
    if rule not in RULES:
        raise InputError(f"unknown face rule {rule!r}: choose one of {', '.join(RULES)}")
    return rule


@dataclass(frozen=True)
class FinderConfig:
    """How faces are found (module doc). ``detector``: a registered name
    (:func:`~celebface.detection.registry.detector_names`); ``min_score``:
    None = the detector's default; ``max_side``: shrink images to this longer side before
    detection (0: never); ``min_face``: smallest box side kept (pixels of the input);
    ``nested``: drop a face this much inside the head around a larger one (:data:`NESTED`,
    :func:`drop_nested`; over 1: off); ``rule``: ``auto``, ``detect`` or ``whole``
    (:meth:`FaceFinder.locate`); ``device``: ``auto``, ``cpu``, ``cuda``..."""

    detector: str = DEFAULT_DETECTOR
    min_score: float | None = None
    max_side: int = 1024
    min_face: float = 0.0
    nested: float = NESTED
    rule: str = "detect"
    device: str = "auto"

    def __post_init__(self) -> None:
        check_detector(self.detector)
        check_rule(self.rule)
        validate.image_side("max_side", self.max_side)
        validate.nonneg_float("min_face", self.min_face)
        validate.nonneg_float("nested", self.nested)

    @property
    def score_floor(self) -> float:
        """The minimum score in force."""
        if self.min_score is not None:
            return float(self.min_score)
        return min_score(self.detector)


def pick_face(faces: Sequence[Face]) -> Face | None:
    """The face an image is about: the largest one (ties: highest score)."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.area, f.score))


def inside(inner: Face, outer: Face, margin: float = 0.0) -> float:
    """How much of ``inner``'s box lies inside ``outer``'s, grown by ``margin`` of its width
    and height on each side (intersection / inner's area)."""
    ax1, ay1, ax2, ay2 = inner.box
    bx1, by1, bx2, by2 = outer.box
    mx, my = margin * (bx2 - bx1), margin * (by2 - by1)
    bx1, by1, bx2, by2 = bx1 - mx, by1 - my, bx2 + mx, by2 + my
    w = min(ax2, bx2) - max(ax1, bx1)
    h = min(ay2, by2) - max(ay1, by1)
    if w <= 0 or h <= 0 or inner.area <= 0:
        return 0.0
    return float(w * h / inner.area)


def drop_nested(faces: Sequence[Face], overlap: float = NESTED,
                margin: float = HEAD_MARGIN) -> list[Face]:
    """``faces`` without those lying ``overlap`` or more inside the head (box grown by
    ``margin``) of a larger kept face: the larger face is the person, the smaller box a part
    of them. Highest score first."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: (-f.area, -f.score)):
        if not any(inside(f, k, margin) >= overlap for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: -f.score)


def whole_face(image: np.ndarray) -> Face:
    """The whole image as the face (module doc: the one convention)."""
    h, w = image.shape[:2]
    return Face(box=(0.0, 0.0, w - 1.0, h - 1.0), score=0.0)


def is_whole(face: Face | None) -> bool:
    """Whether ``face`` is :func:`whole_face` of its image (no face was found)."""
    return (face is not None and face.score == 0.0 and face.landmarks is None
            and face.box[0] == 0.0 and face.box[1] == 0.0)


@functools.lru_cache(maxsize=8)
def _detector(name: str, device: str) -> Any:
    """A detector built once per process and device (every finder of it shares it); it does
    not shrink images itself: the finder does (``FinderConfig.max_side``)."""
    return get_detector(name, device=device, max_side=0)


def shrink(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` resized so its longer side is at most ``max_side`` (0: as it is) and the
    factor that maps its pixels back (``input = shrunk / factor``)."""
    import cv2

    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), size[0] / w


@functools.lru_cache(maxsize=4)
def _large_detector(name: str, device: str) -> Any:
    """Detector ``name`` for a face filling much of the image (``auto``'s first pass, module
    doc), with its registered large-pass options; None when it has none."""
    options = detector_info(name).large_pass
    return None if options is None else get_detector(name, device=device, **options)


class FaceFinder:
    """Finds the faces of images by one :class:`FinderConfig` (module doc). ``detector``: a
    built detector to use instead of building the config's (its ``name`` then sets the
    default minimum score; its own ``max_side``, if smaller, applies too);
    ``large_detector``: ``auto``'s first pass (default: the detector's registered large-face
    pass, built once per device; ``auto`` with a detector without one has no first pass)."""

    def __init__(self, config: FinderConfig | None = None, detector: Any | None = None,
                 large_detector: Any | None = None):
        config = config or FinderConfig()
        name = getattr(detector, "name", config.detector)
        if name != config.detector and name in detector_names():
            config = replace(config, detector=name)
        elif name != config.detector and config.min_score is None:  # another detector
            config = replace(config, min_score=min_score(name))
        self.config = config
        self._detector = detector
        self._large = large_detector

    def __repr__(self) -> str:
        return f"FaceFinder({self.config})"

    @property
    def detector(self) -> Any:
        """The detector, built on first use."""
        if self._detector is None:
            self._detector = _detector(self.config.detector, self.config.device)
        return self._detector

    @property
    def large_detector(self) -> Any | None:
        """``auto``'s first pass: the detector's registered large-face pass, if any."""
        if self._large is None and self.name in detector_names():
            self._large = _large_detector(self.name, self.config.device)
        return self._large

    @property
    def name(self) -> str:
        return str(getattr(self.detector, "name", self.config.detector))

    def settings(self) -> dict[str, Any]:
        """Every result-changing setting (the device left out), as JSON-plain values."""
        out = {k: v for k, v in asdict(self.config).items() if k != "device"}
        out["min_score"] = self.config.score_floor
        return out

    def with_(self, **changes: Any) -> FaceFinder:
        """A finder with some config fields changed, sharing this one's detectors (the
        detector and the device cannot change)."""
        fixed = set(changes) & {"detector", "device"}
        if fixed:
            raise ValueError(f"with_ cannot change {sorted(fixed)}: build another finder")
        return FaceFinder(replace(self.config, **changes), self.detector, self._large)

    # ------------------------------------------------------------------ every face
    def counted(self, faces: Sequence[Face]) -> list[Face]:
        """The faces of one image that count (module doc), highest score first."""
        c = self.config
        floor = c.score_floor
        kept = [f for f in faces if f.score >= floor
                and (not c.min_face or min(f.width, f.height) >= c.min_face)]
        if c.nested <= 1.0:
            return drop_nested(kept, c.nested)
        return sorted(kept, key=lambda f: -f.score)

    def find_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Every face that counts in each image, highest score first."""
        return [self.counted(faces) for faces in self._detect(self.detector, images)]

    def find(self, image: np.ndarray) -> list[Face]:
        """Every face that counts in ``image``, highest score first."""
        return self.find_batch([image])[0]

    # ------------------------------------------------------------------ the face
    def largest(self, image: np.ndarray, rule: str | None = None) -> Face | None:
        """The face ``image`` is about, by ``rule`` (default the config's): :meth:`locate`."""
        return self.locate([image], rule=rule)[0]

    def locate(
        self,
        images: Sequence[np.ndarray],
        known: Sequence[Face | None] | None = None,
        rule: str | None = None,
    ) -> list[Face | None]:
        """The face to embed in each image: ``known[i]`` when given, else by ``rule``
        (default the config's; module doc); ``None``: no face (``detect``), skip it."""
        rule = check_rule(rule or self.config.rule)
        out: list[Face | None] = (list(known) if known is not None
                                  else [None] * len(images))
        todo = [i for i, f in enumerate(out) if f is None]
        if rule == "auto" and todo and self.large_detector is not None:
            self._largest_into(out, todo, images, self.large_detector)
            missed = [i for i in todo if out[i] is None]
            log.debug("auto rule: %d of %d faces found by the large-face pass",
                      len(todo) - len(missed), len(todo))
            self._largest_into(out, missed, images, None)
        elif rule != "whole" and todo:
            self._largest_into(out, todo, images, None)
        if rule != "detect":
            for i in todo:
                if out[i] is None:
                    out[i] = whole_face(images[i])
        return out

    def _largest_into(self, out: list[Face | None], todo: Sequence[int],
                      images: Sequence[np.ndarray], large: Any | None) -> None:
        """``out[i]``: the largest face that counts in ``images[i]``, found by the full
        search, or (``large``) by that detector on the image as it is."""
        if not todo:
            return
        part = [images[i] for i in todo]
        found = large.detect_batch(part) if large is not None else self._detect(
            self.detector, part)
        for i, faces in zip(todo, found, strict=True):
            out[i] = pick_face(self.counted(faces))

    def _detect(self, detector: Any, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """The detector's faces of each image, found on a copy shrunk to ``max_side``,
        mapped back to the image's pixels."""
        if not len(images):
            return []
        shrunk = [shrink(im, self.config.max_side) for im in images]
        found = detector.detect_batch([im for im, _ in shrunk])
        return [faces if k == 1.0 else [f.scaled(1.0 / k) for f in faces]
                for faces, (_, k) in zip(found, shrunk, strict=True)]


def as_finder(detector: Any | None = None, **config: Any) -> FaceFinder:
    """A finder for ``detector``: a :class:`FaceFinder` as it is (``config`` may change its
    rule and scores, :meth:`FaceFinder.with_`), a built detector wrapped, or ``None``: the
    process's default finder (:func:`get_finder`) for ``config``."""
    if isinstance(detector, FaceFinder):
        return detector.with_(**config) if config else detector
    if detector is None:
        return get_finder(**config)
    return FaceFinder(FinderConfig(**config), detector=detector)


def get_finder(config: FinderConfig | None = None, **changes: Any) -> FaceFinder:
    """The finder for ``config`` (with ``changes``), built once per settings and device in
    this process (detection is often called in a loop)."""
    config = replace(config or FinderConfig(), **changes)
    return _cached_finder(config)


@functools.lru_cache(maxsize=8)
def _cached_finder(config: FinderConfig) -> FaceFinder:
    return FaceFinder(config)


__all__ = ["HEAD_MARGIN", "LARGE_FACE", "LARGE_SIDE", "NESTED", "RULES", "FaceFinder",
           "FinderConfig", "as_finder", "check_rule", "drop_nested", "get_finder", "inside",
           "is_whole", "pick_face", "whole_face"]
