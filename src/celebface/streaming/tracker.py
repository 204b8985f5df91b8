"""A small IoU tracker that names a face once per track, not once per frame, and checks who
it follows.

Each detection continues the track whose (predicted) box overlaps it most (IoU at least
``match_iou``, greedy, best pairs first); unmatched detections open new tracks, tracks unseen
for more than ``max_missed`` detection rounds close. Between detections (every
``detect_every`` frames) a track's box moves on at its last measured velocity. (A maintained
tracker was considered for this motion part: supervision (ByteTrack) pulls in
``opencv-python``, which clashes with the ``opencv-python-headless`` this project installs,
and its association is motion only; norfair's distance function could carry embeddings, but
only if every detection were embedded before association, where here only the faces that need
it are embedded after it, and its Kalman filter and initialisation delay would change when
tracks start and what the timeline reports; the motion part here is a hundred lines.)

A track asks for a new embedding when it is new, when its box moved or resized enough since
its last embedding (IoU below ``reembed_iou``), every ``reembed_every`` frames, or when the
inside of its box changed at once (:class:`~celebface.streaming.cuts.BoxChange`, tested on
every frame: the recogniser then detects on that frame). **Appearance gate** (DeepSORT-style):
an embedded detection stays on its track only when its cosine with one of the track's
:data:`RECENT` latest views (the mean of each) reaches the gate (the embedder's measured
``track_gate``, ``benchmarks/track_gate.py``, one per number of views compared); otherwise
the track is split: it ends and the detection starts a new one, so a new person never
inherits an old track's views or name (unless the view earns that name by itself:
:meth:`VideoTracker.leaves <celebface.streaming.recognizer.VideoTracker.leaves>`). A
shot cut (:mod:`celebface.streaming.cuts`) ends every track.

Its embeddings are grouped into *views*: one that is a near-duplicate of a view seen before
(cosine at least the embedder's near-duplicate bound, given by the caller) joins it, any other
opens a new one (at most :data:`MAX_VIEWS`). Its identity is the decision on the mean over its
views of each view's mean score for each enrolled person (the mean similarity, not the
similarity of the mean vector: averaged face vectors drift towards the average face and would
name strangers), so a face held still for a hundred frames weighs as one view, and the
recogniser lowers the threshold for a track seen in several distinct views by the embedder's
measured offsets (benchmarks/track_tails.py). A track is decided after each embedding; a name
replaces ``unknown`` at once, but the name it shows changes to another one or back to
``unknown`` only after ``switch_after`` decisions in a row agree (hysteresis), except that a
view that does not earn the track's name (:meth:`VideoTracker.contradicts
<celebface.streaming.recognizer.VideoTracker.contradicts>`) splits the track at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from celebface.recognizer import TrackerConfig
from celebface.streaming.cuts import BoxChange
from celebface.types import Face, Match, box_iou

Box = tuple[float, float, float, float]
#: The most views a track keeps apart; later new ones join their nearest.
MAX_VIEWS = 16
#: How many of a track's latest views a new embedding is compared with (the appearance gate).
RECENT = 4


@dataclass
class View:
    """Near-duplicate embeddings of one track: the sum of their unit vectors and of their
    scores (``scored`` of them came with scores)."""

    total: np.ndarray
    score_sum: np.ndarray | None = None
    scored: int = 0
    last: int = 0  # the frame of its latest embedding

    def add(self, unit: np.ndarray, scores: np.ndarray | None, frame: int = 0) -> None:
        self.total = self.total + unit
        self.last = frame
        if scores is not None:
            self.score_sum = scores.copy() if self.score_sum is None else self.score_sum + scores
            self.scored += 1

    def similarity(self, unit: np.ndarray) -> float:
        return float(self.total @ unit / max(float(np.linalg.norm(self.total)), 1e-12))


@dataclass
class Track:
    id: int
    box: Box
    det_box: Box | None = None
    det_frame: int = 0
    velocity: tuple[float, float] = (0.0, 0.0)
    embed_box: Box | None = None
    embed_frame: int = -(10**9)
    missed: int = 0
    age: int = 0
    views: list[View] = field(default_factory=list)
    scores: np.ndarray | None = None  # the latest embedding's scores
    count: int = 0
    shown: Match | None = None  # the decision the track shows
    pending: str | None = None  # another name the mean has chosen ...
    streak: int = 0  # ... this many times in a row
    frame_match: Match | None = None  # the latest embedding's own decision
    changed: bool = False  # the inside of its box changed since its last embedding
    before: np.ndarray | None = None  # the inside of its box last frame (BoxChange.crop)

    def needs_embedding(self, frame: int, config: TrackerConfig) -> bool:
        if self.embed_box is None or self.changed:
            return True
        if frame - self.embed_frame >= config.reembed_every:
            return True
        return box_iou(self.box, self.embed_box) < config.reembed_iou

    @property
    def mean(self) -> np.ndarray | None:
        """The unit mean of the track's embeddings (``None`` before the first)."""
        if not self.views:
            return None
        total = np.sum([v.total for v in self.views], axis=0)
        return total / max(float(np.linalg.norm(total)), 1e-12)

    def similarity(self, embedding: np.ndarray) -> float:
        """Cosine of ``embedding`` to the track's mean (1 before the first embedding)."""
        mean = self.mean
        if mean is None:
            return 1.0
        e = np.asarray(embedding, np.float32)
        return float(mean @ e / max(float(np.linalg.norm(e)), 1e-12))

    def agreement(self, embedding: np.ndarray) -> float:
        """The best cosine of ``embedding`` with the track's :data:`RECENT` latest views
        (1 before the first): what the appearance gate tests."""
        if not self.views:
            return 1.0
        e = np.asarray(embedding, np.float32)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        latest = sorted(self.views, key=lambda v: v.last)[-RECENT:]
        return max(v.similarity(e) for v in latest)

    def look(self, rgb: np.ndarray, box: Box, change: BoxChange) -> bool:
        """Whether ``box`` (where the face is now) in ``rgb`` shows another image than the
        track's box last frame (:meth:`IoUTracker.remember`); then :attr:`changed` until the
        next embedding."""
        if change.changed(self.before, rgb, box):
            self.changed = True
        return self.changed

    def add(self, embedding: np.ndarray, frame: int, scores: np.ndarray | None = None,
            same_view: float = -1.0) -> None:
        """Adds one embedding (and its scores for each enrolled person) to the track: to the
        view it is most similar to when that cosine is at least ``same_view`` (default -1: one
        view, nothing counted apart), else to a new view."""
        e = np.asarray(embedding, np.float32)
        e = e / max(float(np.linalg.norm(e)), 1e-12)
        s = None if scores is None else np.asarray(scores, np.float32)
        if s is not None:
            self.scores = s
        sims = [v.similarity(e) for v in self.views]
        best = int(np.argmax(sims)) if sims else None
        if best is None or (sims[best] < same_view and len(self.views) < MAX_VIEWS):
            self.views.append(View(np.zeros_like(e)))
            best = len(self.views) - 1
        self.views[best].add(e, s, frame)
        self.count += 1
        self.embed_box, self.embed_frame = self.box, frame
        self.changed = False

    @property
    def mean_scores(self) -> np.ndarray | None:
        """The mean over the track's views of each view's mean score for each enrolled
        person (``None`` before scores)."""
        means = [v.score_sum / v.scored for v in self.views if v.score_sum is not None]
        return np.mean(means, axis=0) if means else None

    def decide(self, decision: Match, switch_after: int) -> Match:
        """Takes the mean's latest decision, with hysteresis; returns what the track shows.
        A name replaces ``unknown`` at once (the mean has passed the threshold); another name
        or ``unknown`` replaces a name only after ``switch_after`` decisions in a row."""
        if (self.shown is None or decision.identity == self.shown.identity
                or (decision.known and not self.shown.known)):
            self.shown, self.pending, self.streak = decision, None, 0
            return decision
        self.streak = self.streak + 1 if decision.identity == self.pending else 1
        self.pending = decision.identity
        if self.streak >= switch_after:
            self.shown, self.pending, self.streak = decision, None, 0
        return self.shown

    def predicted(self, frame: int) -> Box:
        """The box at ``frame``, moved on from the last detection at the last velocity."""
        if self.det_box is None:
            return self.box
        dt = frame - self.det_frame
        vx, vy = self.velocity
        x1, y1, x2, y2 = self.det_box
        return (x1 + vx * dt, y1 + vy * dt, x2 + vx * dt, y2 + vy * dt)

    def observe(self, box: Box, frame: int) -> None:
        """A detection at ``frame``: updates the box and the velocity (from a detection at
        least 2 frames before: one frame apart, the detector's jitter would be a speed)."""
        if self.det_box is not None and frame - self.det_frame == 1:
            self.box = self.det_box = box
            self.det_frame = frame
            return
        if self.det_box is not None and frame > self.det_frame:
            dt = frame - self.det_frame
            old = self.det_box
            self.velocity = ((box[0] + box[2] - old[0] - old[2]) / (2 * dt),
                             (box[1] + box[3] - old[1] - old[3]) / (2 * dt))
        self.box = self.det_box = box
        self.det_frame = frame


class IoUTracker:
    """Assigns track ids to each detection round's faces; see the module docstring.
    Ids keep growing until :meth:`reset`, so a track that ended is never continued."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget everything (a new video): ids start at 1 again."""
        self.tracks.clear()
        self._next_id = 1

    def end_all(self) -> None:
        """End every track (a shot cut); new faces get new ids."""
        self.tracks.clear()

    def new_track(self, face: Face, frame: int = 0) -> Track:
        track = Track(self._next_id, face.box)
        self._next_id += 1
        track.observe(face.box, frame)
        self.tracks.append(track)
        return track

    def replace(self, old: Track, face: Face, frame: int) -> Track:
        """Splits ``old``: it ends, and a new track starts on ``face`` (another person, or a
        view that does not earn the old track's name)."""
        self.tracks = [t for t in self.tracks if t is not old]
        track = self.new_track(face, frame)
        track.age = 1
        return track

    def remember(self, rgb: np.ndarray) -> None:
        """Remembers, for each live track, the inside of its box in ``rgb`` (this frame), for
        :meth:`look` to compare with the next."""
        for t in self.tracks:
            t.before = BoxChange.crop(rgb, t.box) if t.missed == 0 else None

    def look(self, rgb: np.ndarray, frame: int, threshold: float) -> list[Track]:
        """The live tracks whose box, moved on to ``frame`` (:meth:`Track.predicted`), shows
        another image in ``rgb`` than it did in the frame before (:meth:`remember`): another
        face may have taken the place (:class:`~celebface.streaming.cuts.BoxChange`)."""
        if threshold <= 0:
            return []
        change = BoxChange(threshold)
        return [t for t in self.tracks
                if t.missed == 0 and t.look(rgb, t.predicted(frame), change)]

    def update(self, faces: list[Face], frame: int = 0) -> list[Track]:
        """Match ``faces`` (detected at ``frame``) to tracks; the track of each face."""
        predicted = [t.predicted(frame) for t in self.tracks]
        pairs = sorted(
            (
                (box_iou(p, f.box), ti, fi)
                for ti, p in enumerate(predicted)
                for fi, f in enumerate(faces)
            ),
            reverse=True,
        )
        face_track: dict[int, Track] = {}
        used: set[int] = set()
        for iou, ti, fi in pairs:
            if iou < self.config.match_iou:
                break
            if ti in used or fi in face_track:
                continue
            used.add(ti)
            face_track[fi] = self.tracks[ti]
        for ti, t in enumerate(self.tracks):
            t.missed = 0 if ti in used else t.missed + 1
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed]
        out = []
        for fi, face in enumerate(faces):
            track = face_track.get(fi)
            if track is None:
                track = self.new_track(face, frame)
            else:
                track.observe(face.box, frame)
            track.age += 1
            out.append(track)
        return out

    def coast(self, frame: int) -> list[Track]:
        """Tracks seen at the last detection, moved to their predicted boxes at ``frame``."""
        live = [t for t in self.tracks if t.missed == 0]
        for t in live:
            t.box = t.predicted(frame)
            t.age += 1
        return live
