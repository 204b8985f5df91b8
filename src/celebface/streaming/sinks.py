"""Where recognised frames go: JSON Lines, annotated pictures and videos, timelines, a window,
a progress bar. Each is a sink: it gets a source's events (:mod:`celebface.streaming.sources`)
with the faces named in each frame, and implements only the methods it needs (:class:`Sink`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from celebface.io import check_output_file
from celebface.streaming.output import (
    Display,
    JsonlWriter,
    VideoOut,
    annotate,
    frame_record,
    write_image,
)
from celebface.streaming.sources import End, Frame, Source, Start
from celebface.streaming.timeline import (
    Appearance,
    TimelineBuilder,
    write_timeline,
)
from celebface.types import Face

log = logging.getLogger(__name__)


class StopRun(Exception):
    """Raised by a sink's :meth:`~Sink.on_frame` to end the run after this frame (the user
    closed the window)."""


@dataclass
class Recognised:
    """One frame and the faces named in it; ``fps``: the rate the run processes frames at."""

    frame: Frame
    faces: list[Face]
    fps: float | None = None

    @cached_property
    def bgr(self) -> np.ndarray:
        """The frame annotated (:func:`annotate`; the rate on video frames), made once."""
        return annotate(self.frame.rgb, self.faces, self.fps if self.frame.is_video else None)


class Sink(Protocol):
    """What the run hands events to. :class:`BaseSink` does nothing at each, so a sink
    overrides only the ones it needs. ``outputs``: the files and folders it wrote."""

    outputs: list[str]

    def on_start(self, start: Start) -> None: ...

    def on_frame(self, result: Recognised) -> None: ...

    def on_end(self, end: End) -> None: ...

    def close(self) -> None: ...


class BaseSink:
    """A sink that does nothing (subclass it and override what you need)."""

    def __init__(self) -> None:
        self.outputs: list[str] = []

    def on_start(self, start: Start) -> None:
        """A video, camera, stream or still image begins."""

    def on_frame(self, result: Recognised) -> None:
        """A frame was recognised."""

    def on_end(self, end: End) -> None:
        """The frames since the last start are over (also when its source failed)."""

    def close(self) -> None:
        """The run is over (also when it failed)."""


class Names:
    """Unique output names inside an output folder (``a.jpg``, ``a-2.jpg``, ...)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def __call__(self, rel: str) -> str:
        base, n = rel, 2
        while rel in self.used:
            stem, dot, ext = base.rpartition(".")
            rel = f"{stem}-{n}.{ext}" if dot else f"{base}-{n}"
            n += 1
        self.used.add(rel)
        return rel


def renamed(name: str, suffix: str) -> str:
    """An output's name: ``name`` (:attr:`Start.name`) with ``suffix``."""
    return str(Path(name).with_suffix(suffix))


class JsonlSink(BaseSink):
    """One JSON line per frame (:class:`JsonlWriter`; ``-``: standard output)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.writer = JsonlWriter(path)

    def on_frame(self, result: Recognised) -> None:
        f = result.frame
        self.writer.write(frame_record(f.source, f.index, f.time_s, result.faces))

    def close(self) -> None:
        self.writer.close()


class AnnotatedSink(BaseSink):
    """Annotated pictures (JPEG) and videos (MP4) in ``folder``, named like the inputs below
    it; an output that would replace one of ``inputs`` is refused (:func:`check_output_file`)."""

    def __init__(self, folder: str | Path, inputs: Sequence[str] = ()) -> None:
        super().__init__()
        self.folder, self.inputs, self.names = Path(folder), list(inputs), Names()
        self.video: VideoOut | None = None
        self.start: Start | None = None

    def _target(self, name: str) -> Path:
        target = self.folder / self.names(name)
        check_output_file(target, self.inputs, flag="--out")
        return target

    def on_start(self, start: Start) -> None:
        self.start = start
        if start.is_video:
            self.video = VideoOut(self._target(renamed(start.name, ".mp4")), start.fps)

    def on_frame(self, result: Recognised) -> None:
        if self.video is not None:
            self.video.write(result.bgr)
        elif self.start is not None and not result.frame.is_video:
            target = self._target(renamed(self.start.name, ".jpg"))
            write_image(target, result.bgr)
            self.outputs.append(str(target))

    def on_end(self, end: End) -> None:
        video, self.video, self.start = self.video, None, None
        if video is not None:
            video.close()
            if video.path.exists():
                self.outputs.append(str(video.path))


class TimelineSink(BaseSink):
    """Who appears when in each video (:mod:`celebface.streaming.timeline`): in ``folder``
    itself when ``one_video``, else in a sub-folder named like the video; nothing written
    when ``folder`` is None (:attr:`found` still holds the last video's appearances)."""

    def __init__(self, folder: str | Path | None, one_video: bool = True) -> None:
        super().__init__()
        self.folder = Path(folder) if folder is not None else None
        self.one_video, self.names = one_video, Names()
        self.builder: TimelineBuilder | None = None
        self.start: Start | None = None
        self.found: list[Appearance] = []
        self.appearances = 0  # in every video

    def on_start(self, start: Start) -> None:
        if start.is_video:
            self.builder, self.start = TimelineBuilder(start.fps), start

    def on_frame(self, result: Recognised) -> None:
        f = result.frame
        if self.builder is not None and f.is_video:
            self.builder.add(f.index, f.time_s, f.rgb, result.faces)

    def on_end(self, end: End) -> None:
        builder, start, self.builder = self.builder, self.start, None
        if builder is None or start is None:
            return
        self.found, thumbs = builder.appearances()
        self.appearances += len(self.found)
        if self.folder is None:
            return
        target = self.folder
        if not self.one_video:
            target = target / Path(self.names(renamed(start.name, ".mp4"))).with_suffix("")
        write_timeline(target, self.found, thumbs, builder.last_s + 1.0 / builder.fps,
                       start.source)
        self.outputs.append(str(target))


class DisplaySink(BaseSink):
    """A live window (:class:`Display`); q or Esc ends the run (:class:`StopRun`)."""

    def __init__(self, display: Display | None = None) -> None:
        super().__init__()
        self.display = display or Display()

    def on_frame(self, result: Recognised) -> None:
        if not self.display.show(result.bgr):
            raise StopRun

    def close(self) -> None:
        self.display.close()


class ProgressSink(BaseSink):
    """A progress bar counting frames (tqdm, on standard error)."""

    def __init__(self, desc: str = "recognize", enabled: bool = True) -> None:
        super().__init__()
        self.bar: Any = tqdm(desc=desc, unit="frame", disable=not enabled, leave=False)

    def on_frame(self, result: Recognised) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


class CallbackSink(BaseSink):
    """Calls ``on_frame(n)`` after each frame, ``n`` frames done in the current video."""

    def __init__(self, on_frame: Callable[[int], None]) -> None:
        super().__init__()
        self.callback = on_frame

    def on_frame(self, result: Recognised) -> None:
        self.callback(result.frame.index + 1)


def output_sinks(sources: Sequence[Source], *, jsonl: str | Path | None = None,
                 out: str | Path | None = None, timeline: str | Path | None = None,
                 show: bool = False, progress: bool = True) -> list[Sink]:
    """The sinks of ``celebface recognize``'s options, in the order they get each frame:
    JSON Lines, timeline (one folder per video unless ``sources`` is one video, camera or
    stream), annotated outputs, window (when a display exists), progress bar."""
    sinks: list[Sink] = []
    if jsonl:
        sinks.append(JsonlSink(jsonl))
    if timeline:
        one_video = len(sources) == 1 and sources[0].kind != "folder"
        sinks.append(TimelineSink(timeline, one_video))
    if out:
        inputs = [s.target for s in sources if s.kind in ("image", "folder", "video")]
        sinks.append(AnnotatedSink(out, inputs))
    if show:
        display = Display()
        if display.available:
            sinks.append(DisplaySink(display))
        else:
            log.warning("--show: no display available (this OpenCV build is headless or no "
                        "DISPLAY is set); continuing without a window")
    sinks.append(ProgressSink("recognize", progress))
    return sinks
