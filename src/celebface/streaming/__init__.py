"""Recognising faces in videos, cameras and streams (still images: :mod:`celebface.recognizer`).

Names resolve lazily, so importing a submodule (e.g. the tracker) loads nothing else.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "VideoTracker": "celebface.streaming.recognizer",
    "RecognizerConfig": "celebface.recognizer",
    "StageStats": "celebface.recognizer",
    "RunSummary": "celebface.streaming.run",
    "run_inputs": "celebface.streaming.run",
    "Frame": "celebface.streaming.sources",
    "Source": "celebface.streaming.sources",
    "SourceError": "celebface.streaming.sources",
    "StreamConfig": "celebface.streaming.sources",
    "classify": "celebface.streaming.sources",
    "iter_frames": "celebface.streaming.sources",
    "events": "celebface.streaming.sources",
    "Start": "celebface.streaming.sources",
    "End": "celebface.streaming.sources",
    "Sink": "celebface.streaming.sinks",
    "BaseSink": "celebface.streaming.sinks",
    "output_sinks": "celebface.streaming.sinks",
    "Recognised": "celebface.streaming.sinks",
    "StopRun": "celebface.streaming.sinks",
    "video_timeline": "celebface.streaming.run",
    "IoUTracker": "celebface.streaming.tracker",
    "TrackerConfig": "celebface.recognizer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'celebface.streaming' has no attribute {name!r}")
