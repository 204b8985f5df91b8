"""Naming the faces of video frames: :class:`VideoRecognizer` adds speed and stability to the
still-image :class:`~celebface.recognizer.Recognizer`: detection runs on a downscaled frame,
an IoU tracker follows faces from frame to frame, a face is embedded only when it is new,
moved enough, or every few frames, and its name is voted over its track.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from celebface.recognizer import Recognizer as StillRecognizer
from celebface.recognizer import RecognizerConfig, StageStats
from celebface.streaming.tracker import IoUTracker
from celebface.types import Face

__all__ = ["Recognizer", "RecognizerConfig", "StageStats", "VideoRecognizer"]


class VideoRecognizer(StillRecognizer):
    """A :class:`~celebface.recognizer.Recognizer` that also follows faces through video."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = IoUTracker(self.config.tracker)
        self._frame = 0

    def process_frame(self, frame: np.ndarray) -> list[Face]:
        """One video frame: detect, track, embed what needs it, vote the names."""
        faces = self.detect(frame, self.config.video_detect_side)
        out = self._tracked(frame, faces) if self.config.track else self._name_all(frame, faces)
        self._frame += 1
        self.stats.frames += 1
        self.stats.faces += len(out)
        return out

    def _tracked(self, frame: np.ndarray, faces: list[Face]) -> list[Face]:
        with self.stats.time("track"):
            tracks = self.tracker.update(faces)
            need = [i for i, t in enumerate(tracks)
                    if t.needs_embedding(self._frame, self.config.tracker)]
        embedded: dict[int, np.ndarray] = {}
        if need:
            emb = self.embed(frame, [faces[i] for i in need])
            for i, e, d in zip(need, emb, self.name(emb), strict=True):
                tracks[i].record(d, self._frame, self.config.tracker.vote_window)
                embedded[i] = e
        out = []
        for i, (face, track) in enumerate(zip(faces, tracks, strict=True)):
            decision = track.decision()
            face = face.with_(track_id=track.id, embedding=embedded.get(i))
            out.append(decision.apply(face) if decision else face)
        return out

    def reset(self) -> None:
        """Forget tracks (call between videos)."""
        self.tracker.reset()
        self._frame = 0


#: The name video code has always used.
Recognizer = VideoRecognizer
