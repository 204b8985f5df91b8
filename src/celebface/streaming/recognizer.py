"""Naming the faces of video frames: :class:`VideoRecognizer` adds speed and stability to the
still-image :class:`~celebface.recognizer.Recognizer`: detection runs on a downscaled copy of
every k-th frame (and at every shot cut, and on a frame where a face's box changed at once),
an IoU tracker follows faces in between, a face is embedded only when its track is new, moved
enough, changed, or every few frames, and its name is decided on the mean of its track's
views' scores with hysteresis (:mod:`celebface.streaming.tracker`), against a threshold
lowered by the embedder's measured offset once the track has several distinct views
(:meth:`VideoRecognizer.track_threshold`).

A name is earned by the face on screen: an embedding that fails the track's appearance gate
(:meth:`VideoRecognizer.gate`), or a view that does not earn the track's name
(:meth:`VideoRecognizer.contradicts`), splits the track at once, so the mean of earlier views
never carries a name onto a face that does not earn it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from celebface.gallery.matching import decide
from celebface.recognizer import Recognizer as StillRecognizer
from celebface.recognizer import RecognizerConfig, StageStats
from celebface.streaming.cuts import CutDetector
from celebface.streaming.tracker import RECENT, IoUTracker, Track
from celebface.types import UNKNOWN, Face, Match

__all__ = ["Recognizer", "RecognizerConfig", "StageStats", "VideoRecognizer"]

log = logging.getLogger(__name__)
#: Fallback gate: the share of cosines between different enrolled people's photos that may
#: reach it (for an embedder with no measured ``track_gate`` nor ``pair_threshold``).
GALLERY_GATE_RATE = 0.01


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
        #: The appearance gate (:meth:`gate`) and the name drop (:meth:`contradicts`).
        self.track_gate = self.gate()
        self.name_drop = self._name_drop()

    def _embedder_config(self) -> tuple[Any, str] | None:
        from celebface.recognition.registry import embedder_config

        if self.gallery is None or self.model is not None:
            return None
        spec = self.gallery.spec
        return embedder_config(spec.name), spec.tta

    def gate(self) -> tuple[float, ...]:
        """The cosine a tracked face's embedding must reach with one of its track's 1, 2, ...
        latest views to stay on it (the last for more): the config's ``track_gate`` when set;
        else the embedder's measured ``track_gate`` (``benchmarks/track_gate.py``: at most 1%
        of different people reach it); else the embedder's measured ``pair_threshold`` (the
        same-person cosine at a 1% false-accept rate, another point of the same two
        distributions); else the cosine that at most :data:`GALLERY_GATE_RATE` of the cosines
        between different enrolled people's photos reach; else (no gallery) -1: no gate,
        with a warning."""
        if self.config.tracker.track_gate is not None:
            return (float(self.config.tracker.track_gate),)
        known = self._embedder_config()
        if known is not None:
            cfg, tta = known
            if tta in cfg.track_gate:
                return tuple(float(g) for g in cfg.track_gate[tta])
            if tta in cfg.pair_threshold:
                return (float(cfg.pair_threshold[tta]),)
        g = self.gallery
        if g is not None and len(set(g.labels.tolist())) > 1:
            rng = np.random.default_rng(0)
            rows = rng.permutation(len(g.labels))[:1000]
            e, lab = g.embeddings[rows], g.labels[rows]
            cos = (e @ e.T)[lab[:, None] != lab[None, :]]
            if len(cos):
                gate = float(np.quantile(cos, 1 - GALLERY_GATE_RATE))
                log.info("no measured track gate for %s: %.3f, from the gallery's "
                         "different-person photos", g.spec.name, gate)
                return (gate,)
        log.warning("no track gate (no measured one, no gallery to measure one on): tracks "
                    "are not checked for a change of person")
        return (-1.0,)

    def leaves(self, track: Track, embedding: np.ndarray, scores: np.ndarray, own: Match
               ) -> bool:
        """Whether a new embedding of ``track``'s face fails the appearance gate: its best
        cosine with the track's m latest views (m up to :data:`RECENT`) is under
        :attr:`track_gate` for m, unless the view earns the name the track shows by itself
        (it names that person, or scores at least the track's threshold for that name,
        :meth:`track_threshold`): it then stays and adds its view."""
        views = min(len(track.views), RECENT)
        if views == 0 or track.agreement(embedding) >= self.track_gate[
                min(views, len(self.track_gate)) - 1]:
            return False
        shown = track.shown
        if shown is None or not shown.known:
            return True
        score = float(scores[self.names.index(shown.identity)])
        return not (own.identity == shown.identity
                    or score >= self.track_threshold(len(track.views)))

    def _name_drop(self) -> tuple[float, ...] | None:
        known = self._embedder_config()
        return None if known is None else known[0].name_drop.get(known[1])

    def drop_for(self, identity: str) -> float | None:
        """The measured name drop for a person with their enrolled photos: the one-photo
        value for one photo, else the many-photo one (None: none measured)."""
        if not self.name_drop:
            return None
        photos = self.gallery.counts().get(identity, 2) if self.gallery is not None else 2
        return self.name_drop[0 if photos == 1 else -1]

    def contradicts(self, track: Track, scores: np.ndarray, own: Match) -> bool:
        """Whether a track's new view (its ``scores`` for each enrolled person and its own
        decision ``own``) does not earn the name the track shows: it names another person,
        or it is closer to another person and under the one-view threshold for the track's
        name, or it scores more than the embedder's measured ``name_drop`` under that
        threshold (:meth:`drop_for`: one value for one-photo people, a smaller one for the
        others, whose own views spread less; none measured: this last test is skipped)."""
        shown = track.shown
        if shown is None or not shown.known:
            return False
        if own.known:
            return own.identity != shown.identity
        score = float(scores[self.names.index(shown.identity)])
        if own.runner_up != shown.identity and score < self.threshold:
            return True
        drop = self.drop_for(shown.identity)
        return drop is not None and score < self.threshold - drop

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
        """One video frame: cut test, face-box change test, detect (every k-th frame, at a
        cut or a change) or coast, embed what needs it, name each face by its track."""
        n, cfg = self._frame, self.config.tracker
        with self.stats.time("track"):
            cut = self.cuts.update(frame)
            if cut:
                self.cut_frames.append(n)
                self.tracker.end_all()
            changed = self.config.track and bool(self.tracker.look(frame, n, cfg.box_change))
        if not self.config.track:
            out = self._name_all(frame, self.detect(frame, self.config.video_detect_side))
        elif cut or changed or n - self._detected >= cfg.detect_every:
            self._detected = n
            out = self._tracked(frame, self.detect(frame, self.config.video_detect_side))
        else:
            with self.stats.time("track"):
                out = [self._show(Face(t.box, track_id=t.id), t)
                       for t in self.tracker.coast(n)]
        if self.config.track and cfg.box_change > 0:
            with self.stats.time("track"):
                self.tracker.remember(frame)
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
                t = tracks[i]
                if t.count and (self.leaves(t, e, row, own) or self.contradicts(t, row, own)):
                    tracks[i] = t = self.tracker.replace(t, faces[i], n)
                t.add(e, n, row, self.same_view)
                t.frame_match = own
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
