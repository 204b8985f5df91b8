"""A small IoU tracker: follows faces across video frames and keeps their names stable.

Each detection continues the track whose last box overlaps it most (IoU at least
``match_iou``, greedy, best pairs first); unmatched detections open new tracks, tracks unseen
for more than ``max_missed`` frames close. A track asks for a new embedding when it is new,
when its box moved or resized enough since its last embedding (IoU below ``reembed_iou``), or
every ``reembed_every`` frames. Its name is the most frequent decision of its last
``vote_window`` embeddings (ties: the higher summed similarity), so one bad frame does not
flip it.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from celebface import validate
from celebface.types import UNKNOWN, Face, Match, box_iou


@dataclass(frozen=True)
class TrackerConfig:
    match_iou: float = 0.3
    reembed_iou: float = 0.6
    reembed_every: int = 10
    max_missed: int = 5
    vote_window: int = 7

    def __post_init__(self) -> None:
        validate.unit_float("match_iou", self.match_iou)
        validate.unit_float("reembed_iou", self.reembed_iou)
        validate.positive_int("reembed_every", self.reembed_every)
        validate.nonneg_int("max_missed", self.max_missed)
        validate.positive_int("vote_window", self.vote_window)


@dataclass
class Track:
    id: int
    box: tuple[float, float, float, float]
    embed_box: tuple[float, float, float, float] | None = None
    embed_frame: int = -(10**9)
    missed: int = 0
    age: int = 0
    votes: deque[Match] = field(default_factory=deque)

    def needs_embedding(self, frame: int, config: TrackerConfig) -> bool:
        if self.embed_box is None:
            return True
        if frame - self.embed_frame >= config.reembed_every:
            return True
        return box_iou(self.box, self.embed_box) < config.reembed_iou

    def record(self, decision: Match, frame: int, window: int) -> None:
        self.votes.append(decision)
        while len(self.votes) > window:
            self.votes.popleft()
        self.embed_box, self.embed_frame = self.box, frame

    def decision(self) -> Match | None:
        """The voted name, its mean similarity, and the latest runner-up."""
        if not self.votes:
            return None
        counts = Counter(v.identity for v in self.votes)
        total: Counter[str] = Counter()
        for v in self.votes:
            total[v.identity] += v.similarity
        name = max(counts, key=lambda n: (counts[n], total[n]))
        mine = [v for v in self.votes if v.identity == name]
        latest = self.votes[-1]
        if latest.identity == name:
            runner, runner_sim = latest.runner_up, latest.runner_up_similarity
        else:  # the latest frame disagreed: it is the natural runner-up
            runner, runner_sim = latest.identity, latest.similarity
            if latest.identity == UNKNOWN:
                runner, runner_sim = latest.runner_up, latest.runner_up_similarity
        return Match(name, sum(v.similarity for v in mine) / len(mine), runner, runner_sim)


class IoUTracker:
    """Assigns track ids to each frame's detections; see the module docstring."""

    def __init__(self, config: TrackerConfig | None = None):
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 1

    def reset(self) -> None:
        self.tracks.clear()
        self._next_id = 1

    def update(self, faces: list[Face]) -> list[Track]:
        """Match ``faces`` to tracks; returns the track of each face (same order)."""
        pairs = sorted(
            (
                (box_iou(t.box, f.box), ti, fi)
                for ti, t in enumerate(self.tracks)
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
        for ti, track in enumerate(self.tracks):
            track.missed = 0 if ti in used else track.missed + 1
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed]
        out = []
        for fi, face in enumerate(faces):
            track = face_track.get(fi)
            if track is None:
                track = Track(self._next_id, face.box)
                self._next_id += 1
                self.tracks.append(track)
            track.box = face.box
            track.age += 1
            out.append(track)
        return out
