"""Recognising faces in photos, videos, cameras and streams."""

from celebface.streaming.recognizer import Recognizer, RecognizerConfig, StageStats
from celebface.streaming.run import RunSummary, run_inputs
from celebface.streaming.sources import (
    Frame,
    Source,
    SourceError,
    StreamConfig,
    classify,
    iter_frames,
)
from celebface.streaming.tracker import IoUTracker, TrackerConfig

__all__ = [
    "Frame",
    "IoUTracker",
    "Recognizer",
    "RecognizerConfig",
    "RunSummary",
    "Source",
    "SourceError",
    "StageStats",
    "StreamConfig",
    "TrackerConfig",
    "classify",
    "iter_frames",
    "run_inputs",
]
