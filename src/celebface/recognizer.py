"""Naming the faces of still images: ``Recognizer(gallery).recognize(image)`` detects every
face of one image, embeds them as one batch and names them through its open-set policy
(:mod:`celebface.gallery.policy`). Video (tracking, voting) wraps it in
:class:`celebface.streaming.recognizer.VideoTracker`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import numpy as np

from celebface import validate
from celebface.detection.finder import FaceFinder, as_finder, get_finder
from celebface.detection.registry import DEFAULT_DETECTOR, DEFAULT_VIDEO_DETECTOR, video_side
from celebface.errors import InputError
from celebface.gallery import Gallery, get_matcher
from celebface.gallery.matching import DEFAULT_MATCH, Matcher, match
from celebface.gallery.policy import OpenSetPolicy, policy_for
from celebface.gallery.store import GalleryError, GalleryStore
from celebface.gallery.stores import load_gallery
from celebface.types import Face, Match

log = logging.getLogger(__name__)

STAGES = ("detect", "embed", "match", "track")


#: How a video face's name is decided (:class:`TrackerConfig` ``decide``).
DECIDE = ("track", "frame")


@dataclass(frozen=True)
class TrackerConfig:
    """How :mod:`celebface.streaming.tracker` follows and names faces through video (part of
    the recogniser's config). ``decide``: ``track`` names a face from its whole track
    (default), ``frame`` from each frame's own embedding (the old behaviour, for comparison).
    ``cut_threshold``: the PySceneDetect ``ContentDetector`` score (mean change of hue,
    saturation and brightness between two frames, 0-255) that counts as a shot cut (0: never;
    :mod:`celebface.streaming.cuts`). ``box_change``: the same score inside a face's box that
    counts as another face taking its place: that frame is a detection frame and the face is
    embedded (0: never). ``track_gate``: the cosine a face's embedding must reach with one of
    its track's latest views to stay on it (``None``: the embedder's measured gates, or the
    fallback :meth:`~celebface.streaming.recognizer.VideoTracker.gate` documents; -1:
    never split).
    """

    match_iou: float = 0.3
    reembed_iou: float = 0.6
    reembed_every: int = 10
    max_missed: int = 5
    detect_every: int = 3
    switch_after: int = 2
    track_gate: float | None = None
    cut_threshold: float = 27.0
    box_change: float = 28.0
    decide: str = "track"

    def __post_init__(self) -> None:
        validate.unit_float("match_iou", self.match_iou)
        validate.unit_float("reembed_iou", self.reembed_iou)
        validate.positive_int("reembed_every", self.reembed_every)
        validate.nonneg_int("max_missed", self.max_missed)
        validate.positive_int("detect_every", self.detect_every)
        validate.positive_int("switch_after", self.switch_after)
        validate.optional(lambda n, v: validate.in_range(n, v, -1, 1), "track_gate",
                          self.track_gate)
        validate.content_score("cut_threshold", self.cut_threshold)
        validate.content_score("box_change", self.box_change)
        if self.decide not in DECIDE:
            raise validate.ConfigError("decide",
                                       f"{self.decide!r} is not one of {', '.join(DECIDE)}")


@dataclass(frozen=True)
class RecognizerConfig:
    """How faces are found and named.

    ``match``: ``centroid`` (the reference's method), ``knn`` or ``topk``; ignored with a
    model. ``threshold``: the unknown threshold (``None`` = the gallery's calibrated one).
    ``detect_side``/``video_detect_side``: the ``max_side`` of the face finder for images /
    video frames (:class:`~celebface.detection.finder.FinderConfig`: shrunk so their longer
    side is at most this before detection, 0 = never; ``video_detect_side`` ``None``: the
    video detector's registered size, :func:`~celebface.detection.registry.video_side`);
    faces are embedded at full resolution.
    ``min_face``: the finder's ``min_face`` (faces whose shorter box side is smaller, in
    pixels, are ignored).
    """

    match: str = DEFAULT_MATCH
    k: int = 5
    threshold: float | None = None
    device: str = "auto"
    detect_side: int = 1024
    video_detect_side: int | None = None
    min_face: float = 0.0
    track: bool = True
    tracker: TrackerConfig = field(default_factory=TrackerConfig)

    def __post_init__(self) -> None:
        validate.positive_int("k", self.k)
        # a cosine similarity or a probability (the CLI takes 0-1; -1 here accepts all)
        validate.optional(lambda n, v: validate.in_range(n, v, -1, 1), "threshold",
                          self.threshold)
        validate.image_side("detect_side", self.detect_side)
        validate.optional(validate.image_side, "video_detect_side", self.video_detect_side)
        validate.nonneg_float("min_face", self.min_face)


@dataclass
class StageStats:
    """Seconds spent per stage, and counts, since the last :meth:`reset`."""

    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    frames: int = 0
    faces: int = 0
    embedded: int = 0

    def reset(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.frames = self.faces = self.embedded = 0

    @contextmanager
    def time(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - start

    def per_frame_ms(self) -> dict[str, float]:
        n = max(self.frames, 1)
        return {k: 1000.0 * v / n for k, v in self.seconds.items()}


class Recognizer:
    """Detect, embed and name the faces of still images. See the module docstring.

    ``gallery``: a :class:`Gallery` or its folder (may be ``None`` with ``model``).
    ``detector``: a registered detector name (``mtcnn``, ``yunet``, ``yunet+onet``,
    ``hog``), a built ``Detector`` or a :class:`~celebface.detection.finder.FaceFinder`, for
    photos and video frames alike; ``None`` (the default): ``DEFAULT_DETECTOR`` (MTCNN) for
    photos, ``DEFAULT_VIDEO_DETECTOR`` (YuNet's faces, MTCNN's landmarks) for video frames.
    Faces are found by a finder with the config's ``detect_side`` (``video_detect_side``) and
    ``min_face`` (:attr:`finder`, :attr:`video_finder`), every face that counts.
    ``embedder``: an ``Embedder``; default: the one the gallery (or model) was built with.
    ``model``: a trained classifier (folder or object with ``predict_embeddings``) that names
    faces instead of the gallery; the unknown threshold then applies to its probability.
    ``policy``: the open-set policy (threshold, gap weight) that names the faces, built by the
    caller; default: :func:`~celebface.gallery.policy.policy_for` the gallery, the match method
    and the config's ``threshold`` (:attr:`policy`).
    """

    def __init__(
        self,
        gallery: Gallery | str | Path | None,
        detector: str | Any | None = None,
        embedder: Any | None = None,
        config: RecognizerConfig | None = None,
        model: str | Path | Any | None = None,
        policy: OpenSetPolicy | None = None,
    ):
        self.config = config or RecognizerConfig()
        if gallery is not None and not isinstance(gallery, Gallery):
            gallery = load_gallery(gallery)
        if gallery is None and model is None:
            raise InputError("Recognizer needs a gallery or a model")
        self.gallery = gallery
        if isinstance(model, str | Path):
            from celebface.training import load_model

            model = load_model(model)
        self.model = model
        self.matcher: Matcher = (
            get_matcher(gallery, self.config.match, self.config.k, model)  # type: ignore[arg-type]
            if model is None else get_matcher(Gallery(), model=model)
        )
        if policy is not None and policy.method != self.matcher.method:
            raise InputError(f"a policy for {policy.method!r} cannot decide "
                             f"{self.matcher.method!r} matches")
        self.policy: OpenSetPolicy = policy if policy is not None else policy_for(
            gallery, self.matcher.method, self.config.threshold)
        self._warn_uncalibrated()
        self._detector = detector
        self._finders: dict[bool, FaceFinder] = {}
        self._embedder = embedder
        self.stats = StageStats()

    @classmethod
    def open(
        cls,
        location: Gallery | str | Path | GalleryStore | None,
        detector: str | Any | None = None,
        embedder: Any | None = None,
        config: RecognizerConfig | None = None,
        model: str | Path | Any | None = None,
        policy: OpenSetPolicy | None = None,
    ) -> Self:
        """A recogniser over the gallery at ``location``: a folder, a ``postgresql://`` URL
        or a :class:`~celebface.gallery.store.GalleryStore` (read once, through
        :func:`~celebface.gallery.stores.open_store`), or a loaded :class:`Gallery`; ``None``
        with ``model``. The other arguments are the constructor's."""
        gallery = None if location is None else load_gallery(location)
        return cls(gallery, detector=detector, embedder=embedder, config=config, model=model,
                   policy=policy)

    # -------------------------------------------------------------- set-up
    def _warn_uncalibrated(self) -> None:
        p = self.policy
        if p.source == "given" or p.calibrated:
            return
        if self.gallery is None:
            log.warning("no gallery: using the %s threshold %.3f", p.method, p.threshold)
        else:
            log.warning("no calibrated %s threshold in the gallery: using %.3f (run 'celebface "
                        "calibrate' for a chosen false-accept rate)", p.method, p.threshold)

    @property
    def threshold(self) -> float:
        """The unknown threshold of one face (:attr:`policy`'s)."""
        return self.policy.threshold

    @property
    def finder(self) -> FaceFinder:
        """The face finder of still images (``max_side``: the config's ``detect_side``)."""
        return self._finder(video=False)

    @property
    def video_finder(self) -> FaceFinder:
        """The face finder of video frames (``max_side``: the config's ``video_detect_side``,
        else the detector's registered video size)."""
        return self._finder(video=True)

    def _finder(self, video: bool) -> FaceFinder:
        if video not in self._finders:
            c, given = self.config, self._detector
            if given is None:
                given = DEFAULT_VIDEO_DETECTOR if video else DEFAULT_DETECTOR
            name = given if isinstance(given, str) else str(getattr(given, "name", ""))
            side = (c.detect_side if not video else c.video_detect_side
                    if c.video_detect_side is not None else video_side(name))
            self._finders[video] = (
                get_finder(detector=given, device=c.device, max_side=side, min_face=c.min_face)
                if isinstance(given, str)
                else as_finder(given).with_(max_side=side, min_face=c.min_face))
        return self._finders[video]

    @property
    def detector(self) -> Any:
        return self.finder.detector

    @property
    def embedder(self) -> Any:
        """The embedder given, else the model's, else the one the gallery names (built by its
        :class:`~celebface.recognition.spec.EmbedderSpec`; a warning when this version's
        settings differ from those the gallery recorded)."""
        if self._embedder is None:
            if self.model is not None and hasattr(self.model, "embedder"):
                self._embedder = self.model.embedder
            elif self.gallery is None:
                raise InputError("no embedder: pass one, or a gallery or model that names theirs")
            else:
                spec = self.gallery.spec
                embedder = spec.build(self.config.device)
                dim = getattr(embedder, "dim", None)
                if dim and self.gallery.dim and dim != self.gallery.dim:
                    raise GalleryError(
                        f"{self.gallery.path or 'the gallery'}: its manifest names the "
                        f"{spec.name} embedder ({dim}-d vectors) but it holds "
                        f"{self.gallery.dim}-d embeddings (edited or damaged); enroll the "
                        "photos again")
                if not spec.made_by(embedder):
                    log.warning("embedder settings %s differ from the gallery's %s: "
                                "similarities may be off; re-enroll with this version",
                                embedder.settings(), spec.settings)
                self._embedder = embedder
        return self._embedder

    @property
    def names(self) -> list[str]:
        return list(self.matcher.names)

    # -------------------------------------------------------------- stages
    def detect(self, image: np.ndarray, *, video: bool = False) -> list[Face]:
        """Every face of ``image`` that counts (boxes in its pixels), found by the finder of
        still images, or with ``video`` of video frames."""
        with self.stats.time("detect"):
            return self._finder(video).find(image)

    def embed(self, image: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """Embeddings of ``faces`` of one image, computed as one batch."""
        with self.stats.time("embed"):
            emb = self.embedder.embed([image] * len(faces), list(faces))
        self.stats.embedded += len(faces)
        return np.asarray(emb, np.float32)

    def name(self, embeddings: np.ndarray, top: tuple[np.ndarray, np.ndarray] | None = None
             ) -> list[Match]:
        """The decision (name or unknown, similarity, runner-up) for each embedding (``top``:
        :func:`~celebface.gallery.matching.top_n`'s answer, when the caller has it)."""
        with self.stats.time("match"):
            if not len(embeddings):
                return []
            return match(self.matcher, embeddings, self.policy, top)

    # -------------------------------------------------------------- public API
    def recognize(self, image: np.ndarray) -> list[Face]:
        """Every face of one still image, named (no tracking)."""
        faces = self.detect(image)
        out = self.name_faces(image, faces)
        self.stats.frames += 1
        self.stats.faces += len(out)
        return out

    def name_faces(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """``faces`` of ``image``, embedded as one batch and named (no stats of frames)."""
        if not faces:
            return []
        emb = self.embed(image, faces)
        return [
            d.apply(f.with_(embedding=e))
            for f, e, d in zip(faces, emb, self.name(emb), strict=True)
        ]
