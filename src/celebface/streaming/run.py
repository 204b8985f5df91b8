"""Recognise every input of a run and hand the results on (the engine of ``celebface recognize``).

One loop: each source's events (:func:`~celebface.streaming.sources.events`: start, frames, end)
go through the recogniser to every sink (:mod:`celebface.streaming.sinks`: JSON Lines,
annotated outputs, timelines, a window, a progress bar).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import methodcaller
from pathlib import Path

from celebface.errors import InputError
from celebface.io import ImageReadError
from celebface.streaming.recognizer import VideoTracker
from celebface.streaming.sinks import (
    CallbackSink,
    ProgressSink,
    Recognised,
    Sink,
    StopRun,
    TimelineSink,
)
from celebface.streaming.sources import (
    End,
    Event,
    Frame,
    Source,
    SourceError,
    Start,
    StreamConfig,
    classify,
    events,
)
from celebface.streaming.timeline import Appearance
from celebface.types import UNKNOWN, Face

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    frames: int = 0
    faces: int = 0
    sources_ok: int = 0
    errors: list[str] = field(default_factory=list)
    identities: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    appearances: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def add(self, faces: list[Face]) -> None:
        """Counts a recognised frame."""
        self.frames += 1
        self.faces += len(faces)
        self.identities.update(f.identity or UNKNOWN for f in faces)


class _Rate:
    """Frames per second, smoothed (an exponential moving average)."""

    def __init__(self, alpha: float = 0.1) -> None:
        self.alpha, self.last, self.value = alpha, time.perf_counter(), 0.0

    def tick(self) -> float:
        now = time.perf_counter()
        inst = 1.0 / max(now - self.last, 1e-6)
        self.last = now
        self.value = inst if not self.value else (1 - self.alpha) * self.value + self.alpha * inst
        return self.value


def _namer(recognizer: VideoTracker) -> Callable[[Start | Frame], list[Face]]:
    """The recogniser as the loop uses it (the one place that calls it): every start forgets
    the tracks; video frames are tracked, still images named alone."""

    def name(event: Start | Frame) -> list[Face]:
        if isinstance(event, Start):
            recognizer.reset()
            return []
        if event.is_video:
            return recognizer.process_frame(event.rgb)
        return recognizer.recognize(event.rgb)

    return name


def run_inputs(recognizer: VideoTracker, sources: Sequence[Source], sinks: Sequence[Sink] = (),
               *, stream: StreamConfig | None = None) -> RunSummary:
    """Recognise every frame of every source and hand it to ``sinks``
    (:func:`~celebface.streaming.sinks.output_sinks` makes those of ``celebface recognize``),
    which are closed at the end. A source that cannot be read (``SourceError``,
    ``ImageReadError``, ``FileNotFoundError``, from it or a sink) is logged, counted in
    ``errors`` and skipped. Any other error of a sink ends the run (raised) only after every
    sink got the frame, the end of its video and :meth:`~celebface.streaming.sinks.Sink.close`,
    so what the others wrote is kept; a sink that raises ``StopRun`` ends it quietly."""
    summary = RunSummary()
    name = _namer(recognizer)
    begin = time.perf_counter()
    try:
        for number, source in enumerate(sources):
            try:
                stopped = _play(source, number, stream, name, sinks, summary)
            except (SourceError, ImageReadError, FileNotFoundError) as exc:
                log.error("%s (skipped)", exc)
                summary.errors.append(str(exc))
                continue
            summary.sources_ok += 1
            if stopped:
                break
    finally:
        _hand(sinks, methodcaller("close"))
        summary.seconds = time.perf_counter() - begin
        summary.outputs = [out for sink in sinks for out in sink.outputs]
        summary.appearances = sum(s.appearances for s in sinks if isinstance(s, TimelineSink))
    return summary


def _play(source: Source, number: int, stream: StreamConfig | None,
          name: Callable[[Start | Frame], list[Face]], sinks: Sequence[Sink],
          summary: RunSummary) -> bool:
    """Hands the events of ``source`` (the ``number``-th) to ``sinks``; a video left open by
    an error or a stop still ends. True: a sink stopped the run."""
    play = _Play(name, sinks, summary)
    try:
        with contextlib.closing(events(source, stream, number)) as stream_events:
            for event in stream_events:
                if play.event(event):
                    return True
        return False
    finally:
        play.end_open()


class _Play:
    """One source's events to the sinks, each frame with its faces; remembers the open video."""

    def __init__(self, name: Callable[[Start | Frame], list[Face]], sinks: Sequence[Sink],
                 summary: RunSummary) -> None:
        self.name, self.sinks, self.summary = name, sinks, summary
        self.rate, self.frames = _Rate(), 0
        self.current: Start | None = None

    def event(self, event: Event) -> bool:
        """Hands ``event`` on; True when a sink stopped the run."""
        if isinstance(event, Start):
            self.name(event)
            self.current, self.frames = event, 0
            return _hand(self.sinks, methodcaller("on_start", event))
        if isinstance(event, End):
            self.current = None
            return _hand(self.sinks, methodcaller("on_end", event))
        faces = self.name(event)
        self.summary.add(faces)
        self.frames += 1
        return _hand(self.sinks, methodcaller("on_frame", Recognised(event, faces,
                                                                      self.rate.tick())))

    def end_open(self) -> None:
        """The end of the open video, if any (its source failed or the run stopped)."""
        current, self.current = self.current, None
        if current is not None:
            _hand(self.sinks, methodcaller("on_end", End(current.source, self.frames)))


def _hand(sinks: Sequence[Sink], call: Callable[[Sink], object]) -> bool:
    """``call`` on every sink, even after one raised: then the first error is raised once
    all had it (the others are logged). True when one raised ``StopRun``."""
    stop, error = False, None
    for sink in sinks:
        try:
            call(sink)
        except StopRun:
            stop = True
        except Exception as exc:
            if error is not None:
                log.error("%s: %s", type(sink).__name__, exc)
            error = error or exc
    if error is not None:
        raise error
    return stop


def video_timeline(recognizer: VideoTracker, video: str | Path, out: str | Path | None = None,
                   progress: bool = False, on_frame: Callable[[int], None] | None = None
                   ) -> list[Appearance]:
    """The appearances of one video file (written to ``out`` when given); ``on_frame(n)``
    after each frame (n frames done). Raises :class:`SourceError` when it cannot be read."""
    source = classify(str(video))
    if source.kind != "video":
        raise InputError(f"{video}: not a video file")
    timeline = TimelineSink(out)
    sinks: list[Sink] = [timeline, ProgressSink("timeline", progress)]
    if on_frame is not None:
        sinks.append(CallbackSink(on_frame))
    try:
        _play(source, 0, None, _namer(recognizer), sinks, RunSummary())
    finally:
        _hand(sinks, methodcaller("close"))
    return timeline.found
