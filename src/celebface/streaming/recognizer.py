"""Naming the faces of video frames: :class:`VideoTracker` wraps a still-image
:class:`~celebface.recognizer.Recognizer` and adds speed and stability: detection runs on a
downscaled copy of every k-th frame (and at every shot cut, and on a frame where a face's box
changed at once), an IoU tracker follows faces in between, a face is embedded only when its
track is new, moved enough, changed, or every few frames, and its name is decided on the mean of
its track's views' scores with hysteresis (:mod:`celebface.streaming.tracker`), against the
recogniser's open-set policy's threshold for a track with that many distinct views
(:meth:`~celebface.gallery.policy.OpenSetPolicy.track_threshold`).

A name is earned by the face on screen: an embedding that fails the track's appearance gate
(:meth:`VideoTracker.gate`), or a view that does not earn the track's name
(:meth:`VideoTracker.contradicts`), splits the track at once, so the mean of earlier views
never carries a name onto a face that does not earn it.
"""

from __future__ import annotations

import logging

import numpy as np

from celebface.gallery.policy import OpenSetPolicy, measured_pair_threshold
from celebface.recognition.registry import embedder_config
from celebface.recognizer import Recognizer, RecognizerConfig, StageStats
from celebface.streaming.cuts import CutDetector
from celebface.streaming.tracker import RECENT, IoUTracker, Track
from celebface.types import UNKNOWN, Face, Match

__all__ = ["RecognizerConfig", "StageStats", "VideoTracker"]

log = logging.getLogger(__name__)
#: Fallback gate: the share of cosines between different enrolled people's photos that may
#: reach it (for an embedder with no measured ``track_gate`` nor ``pair_threshold``).
GALLERY_GATE_RATE = 0.01


class VideoTracker:
    """Follows faces through video with a :class:`~celebface.recognizer.Recognizer`
    (``recognizer``: it finds, embeds and scores the faces; its :attr:`policy` names them)."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.recognizer = recognizer
        self.config = recognizer.config
        self.tracker = IoUTracker(self.config.tracker)
        self.cuts = CutDetector(self.config.tracker.cut_threshold)
        self._frame = 0
        self._detected = -(10**9)
        #: Frames of the current video where a shot cut was found.
        self.cut_frames: list[int] = []
        #: The appearance gate (:meth:`gate`).
        self.track_gate = self.gate()

    @property
    def policy(self) -> OpenSetPolicy:
        """The recogniser's open-set policy (track thresholds, view counting, name drops)."""
        return self.recognizer.policy

    @property
    def stats(self) -> StageStats:
        return self.recognizer.stats

    @property
    def names(self) -> list[str]:
        return self.recognizer.names

    def recognize(self, image: np.ndarray) -> list[Face]:
        """Every face of one still image, named (no tracking)."""
        return self.recognizer.recognize(image)

    def gate(self) -> tuple[float, ...]:
        """The cosine a tracked face's embedding must reach with one of its track's 1, 2, ...
        latest views to stay on it (the last for more): the config's ``track_gate`` when set;
        else the embedder's measured ``track_gate`` (``benchmarks/track_gate.py``: at most 1%
        of different people reach it); else the embedder's measured pair threshold (the
        same-person cosine at a 1% false-accept rate, another point of the same two
        distributions); else the cosine that at most :data:`GALLERY_GATE_RATE` of the cosines
        between different enrolled people's photos reach; else (no gallery) -1: no gate,
        with a warning."""

        if self.config.tracker.track_gate is not None:
            return (float(self.config.tracker.track_gate),)
        g = self.recognizer.gallery
        if g is not None and self.recognizer.model is None:
            spec = g.spec
            measured = embedder_config(spec.name).track_gate
            if spec.tta in measured:
                return tuple(float(x) for x in measured[spec.tta])
            pair = measured_pair_threshold(spec.name, spec.tta)
            if pair is not None:
                return (float(pair),)
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
        :meth:`~celebface.gallery.policy.OpenSetPolicy.earns`): it then stays and adds its
        view."""
        views = min(len(track.views), RECENT)
        if views == 0 or track.agreement(embedding) >= self.track_gate[
                min(views, len(self.track_gate)) - 1]:
            return False
        shown = track.shown
        if shown is None or not shown.known:
            return True
        score = float(scores[self.names.index(shown.identity)])
        return not (own.identity == shown.identity
                    or self.policy.earns(score, len(track.views)))

    def contradicts(self, track: Track, scores: np.ndarray, own: Match) -> bool:
        """Whether a track's new view (its ``scores`` for each enrolled person and its own
        decision ``own``) does not earn the name the track shows: it names another person,
        or it is closer to another person and under the one-view threshold for the track's
        name, or it scores more than the embedder's measured ``name_drop`` under that
        threshold (:meth:`~celebface.gallery.policy.OpenSetPolicy.dropped`: one value for
        one-photo people, a smaller one for the others, whose own views spread less; none
        measured: this last test is skipped)."""
        shown = track.shown
        if shown is None or not shown.known:
            return False
        if own.known:
            return own.identity != shown.identity
        score = float(scores[self.names.index(shown.identity)])
        if own.runner_up != shown.identity and not self.policy.earns(score):
            return True
        return self.policy.dropped(score, shown.identity)

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
        rec = self.recognizer
        if not self.config.track:
            out = rec.name_faces(frame, rec.detect(frame, video=True))
        elif cut or changed or n - self._detected >= cfg.detect_every:
            self._detected = n
            out = self._tracked(frame, rec.detect(frame, video=True))
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
            emb = self.recognizer.embed(frame, [faces[i] for i in need])
            scores = self._scores(emb)
            for i, e, row, own in zip(need, emb, scores, self._decide(scores), strict=True):
                t = tracks[i]
                if t.count and (self.leaves(t, e, row, own) or self.contradicts(t, row, own)):
                    tracks[i] = t = self.tracker.replace(t, faces[i], n)
                t.add(e, n, row, self.policy.same_view)
                t.frame_match = own
                embedded[i] = e
            rows = [tracks[i].mean_scores for i in need]  # each has scores: just added
            means = np.stack([m for m in rows if m is not None])
            views = [len(tracks[i].views) for i in need]
            for i, d in zip(need, self._decide(means, views), strict=True):
                tracks[i].decide(d, cfg.switch_after)
        return [self._show(f.with_(track_id=t.id, embedding=embedded.get(i)), t)
                for i, (f, t) in enumerate(zip(faces, tracks, strict=True))]

    def _scores(self, embeddings: np.ndarray) -> np.ndarray:
        """Each embedding's score for every enrolled person (the matcher's)."""
        with self.stats.time("match"):
            return np.asarray(self.recognizer.matcher.scores(embeddings), np.float32)

    def _decide(self, scores: np.ndarray, views: list[int] | None = None) -> list[Match]:
        """The policy's decisions on score rows (``views``: each row is a track with that many
        distinct views; default: one face)."""
        with self.stats.time("match"):
            return self.policy.decide(scores, self.names, views=views)

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
