"""Naming the faces of video frames: :class:`VideoRecognizer` adds speed and stability to the
still-image :class:`~celebface.recognizer.Recognizer`: detection runs on a downscaled copy of
every k-th frame (and at every shot cut), an IoU tracker follows faces in between, a face is
embedded only when its track is new, moved enough, or every few frames, and its name is
decided on the mean of its track's views' scores with hysteresis
(:mod:`celebface.streaming.tracker`), against a threshold lowered by the embedder's measured
offset once the track has several distinct views (:meth:`VideoRecognizer.track_threshold`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from celebface.gallery.matching import decide
from celebface.recognizer import Recognizer as StillRecognizer
from celebface.recognizer import RecognizerConfig, StageStats
from celebface.streaming.cuts import CutDetector
from celebface.streaming.tracker import IoUTracker, Track
from celebface.types import UNKNOWN, Face, Match

__all__ = ["Recognizer", "RecognizerConfig", "StageStats", "VideoRecognizer"]


class VideoRecognizer(StillRecognizer):
    """A :class:`~celebface.recognizer.Recognizer` that also follows faces through video."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = IoUTracker(self.config.tracker)
        self.cuts = CutDetector(self.config.tracker.cut_threshold)
        self._frame = 0
        self._detected = -(10**9)
        #: Frames of the current video where a shot cut was found.
        self.cut_frames: list[int] = []
        #: Cosine at which two embeddings of a track are one view, and the threshold offsets
        #: for 2, 3, 4+ views: the gallery embedder's measured ones (none: views not counted).
        self.same_view, self.view_offsets = self._view_constants()

    def _view_constants(self) -> tuple[float, tuple[float, ...]]:
        from celebface.recognition.registry import embedder_config

        if self.gallery is None or self.model is not None:
            return -1.0, ()
        spec = self.gallery.spec
        cfg = embedder_config(spec.name)
        bound, offsets = cfg.near_duplicate.get(spec.tta), cfg.view_offsets.get(spec.tta, ())
        return (-1.0, ()) if bound is None or not offsets else (bound, tuple(offsets))

    def track_threshold(self, views: int) -> float:
        """The unknown threshold of a track with ``views`` distinct views: the recogniser's
        (one view), lowered by the embedder's offset for 2, 3, 4 or more views (measured at
        the same false-accept rate, benchmarks/track_tails.py)."""
        if views < 2 or not self.view_offsets:
            return self.threshold
        return self.threshold - self.view_offsets[min(views, len(self.view_offsets) + 1) - 2]

    def process_frame(self, frame: np.ndarray) -> list[Face]:
        """One video frame: cut test, detect (every k-th frame) or coast, embed what needs
        it, name each face by its track."""
        n, cfg = self._frame, self.config.tracker
        with self.stats.time("track"):
            cut = self.cuts.update(frame)
        if cut:
            self.cut_frames.append(n)
            self.tracker.end_all()
        if not self.config.track:
            out = self._name_all(frame, self.detect(frame, self.config.video_detect_side))
        elif cut or n - self._detected >= cfg.detect_every:
            self._detected = n
            out = self._tracked(frame, self.detect(frame, self.config.video_detect_side))
        else:
            with self.stats.time("track"):
                out = [self._show(Face(t.box, track_id=t.id), t)
                       for t in self.tracker.coast(n)]
        self._frame += 1
        self.stats.frames += 1
        self.stats.faces += len(out)
        return out

    def _tracked(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        n, cfg = self._frame, self.config.tracker
        with self.stats.time("track"):
            tracks = self.tracker.update(faces, n)
            need = [i for i, t in enumerate(tracks) if t.needs_embedding(n, cfg)]
        embedded: dict[int, np.ndarray] = {}
        if need:
            emb = self.embed(frame, [faces[i] for i in need])
            scores = self._scores(emb)
            for i, e, row, own in zip(need, emb, scores, self._decide(scores), strict=True):
                if tracks[i].count and tracks[i].similarity(e) < cfg.jump_similarity:
                    tracks[i] = self.tracker.replace(tracks[i], faces[i], n)
                tracks[i].add(e, n, row, self.same_view)
                tracks[i].frame_match = own
                embedded[i] = e
            means = np.stack([tracks[i].mean_scores for i in need])
            limits = np.array([self.track_threshold(len(tracks[i].views)) for i in need])
            for i, d in zip(need, self._decide(means, limits), strict=True):
                tracks[i].decide(d, cfg.switch_after)
        return [self._show(f.with_(track_id=t.id, embedding=embedded.get(i)), t)
                for i, (f, t) in enumerate(zip(faces, tracks, strict=True))]

    def _scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Each embedding's score for every enrolled person (the matcher's)."""
        with self.stats.time("match"):
            return np.asarray(self.matcher.scores(embeddings), np.float32)

    def _decide(self, scores: np.ndarray, threshold: float | np.ndarray | None = None
                ) -> list[Match]:
        with self.stats.time("match"):
            return decide(scores, self.names,
                          self.threshold if threshold is None else threshold, self.gap_weight)

    def _show(self, face: Face, track: Track) -> Face:
        """``face`` with its track's name (or its own, ``decide='frame'``) and the latest
        embedded frame's own score for that name."""
        own = track.frame_match
        if own is None:
            return face
        shown = track.shown
        if self.config.tracker.decide == "frame" or shown is None:
            return own.apply(face)
        if own.identity == shown.identity:
            return own.apply(face)
        closest = own.identity if own.known else own.runner_up
        if not shown.known:  # the track is unknown although this frame alone passed
            return Match(UNKNOWN, own.similarity, closest, own.similarity).apply(face)
        similarity = float(track.scores[self.names.index(shown.identity)])  # type: ignore[index]
        return Match(shown.identity, similarity, closest, own.similarity).apply(face)

    def reset(self) -> None:
        """Forget tracks and cuts (call between videos)."""
        self.tracker.reset()
        self.cuts.reset()
        self._frame = 0
        self._detected = -(10**9)
        self.cut_frames = []


#: The name video code has always used.
Recognizer = VideoRecognizer
