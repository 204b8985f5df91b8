"""Recognise every input of a run and write the outputs (the engine of ``celebface recognize``)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from celebface.io import ImageReadError, check_output_file
from celebface.streaming.output import (
    Display,
    JsonlWriter,
    VideoOut,
    annotate,
    frame_record,
    write_image,
)
from celebface.streaming.recognizer import VideoTracker
from celebface.streaming.sources import (
    Frame,
    Source,
    SourceError,
    StreamConfig,
    iter_frames,
    source_fps,
)
from celebface.streaming.timeline import TimelineBuilder, write_timeline
from celebface.types import UNKNOWN

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


class _Names:
    """Unique output names inside the output folder."""

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


def _fps_meter(alpha: float = 0.1):  # type: ignore[no-untyped-def]
    last = [time.perf_counter(), None]

    def tick() -> float:
        now = time.perf_counter()
        inst = 1.0 / max(now - last[0], 1e-6)
        last[0] = now
        last[1] = inst if last[1] is None else (1 - alpha) * last[1] + alpha * inst
        return float(last[1])

    return tick


def run_inputs(
    recognizer: VideoTracker,
    sources: list[Source],
    *,
    jsonl: str | Path | None = None,
    out: str | Path | None = None,
    show: bool = False,
    stream: StreamConfig | None = None,
    progress: bool = True,
    timeline: str | Path | None = None,
) -> RunSummary:
    """Recognise every frame of every source; write JSON Lines, annotated images/videos and
    (``timeline``) each video's appearances (:mod:`celebface.streaming.timeline`): in
    ``timeline`` itself for a single video, in a sub-folder per video otherwise."""
    from tqdm import tqdm

    stream = stream or StreamConfig()
    summary = RunSummary()
    out_dir = Path(out) if out else None
    names = _Names()
    display = Display() if show else None
    if display is not None and not display.available:
        log.warning("--show: no display available (this OpenCV build is headless or no "
                    "DISPLAY is set); continuing without a window")
        display = None
    inputs = [s.target for s in sources if s.kind in ("image", "folder", "video")]
    writer = JsonlWriter(jsonl) if jsonl else None
    one_video = len(sources) == 1 and sources[0].kind != "folder"
    timelines = _Timelines(Path(timeline), one_video) if timeline else None
    start = time.perf_counter()
    bar = tqdm(desc="recognize", unit="frame", disable=not progress, leave=False)
    stop = False
    try:
        for n_source, source in enumerate(sources):
            if stop:
                break
            recognizer.reset()
            tick = _fps_meter()
            video: VideoOut | None = None
            video_source: str | None = None
            prefix = Path(source.target).name if source.kind == "folder" else ""
            try:
                for frame in iter_frames(source, stream):
                    if frame.is_video and frame.source != video_source:
                        # a new video (several can sit in one folder): fresh tracks and output
                        if video_source is not None:
                            recognizer.reset()
                        video_source = frame.source
                        _close_video(video, summary)
                        video = None
                        if timelines is not None:
                            timelines.start(source, frame, source_fps(source, frame.source),
                                            summary, prefix, n_source)
                        if out_dir is not None:
                            target = out_dir / names(_video_name(source, frame, prefix,
                                                                 n_source))
                            check_output_file(target, inputs, flag="--out")
                            video = VideoOut(target, source_fps(source, frame.source))
                    if frame.is_video:
                        faces = recognizer.process_frame(frame.rgb)
                    else:
                        recognizer.reset()
                        faces = recognizer.recognize(frame.rgb)
                    fps = tick()
                    summary.frames += 1
                    summary.faces += len(faces)
                    summary.identities.update(f.identity or UNKNOWN for f in faces)
                    bar.update(1)
                    if writer is not None:
                        writer.write(frame_record(frame.source, frame.index, frame.time_s, faces))
                    if timelines is not None and frame.is_video:
                        timelines.add(frame, faces)
                    if out_dir is None and display is None:
                        continue
                    bgr = annotate(frame.rgb, faces, fps if frame.is_video else None)
                    if video is not None and frame.is_video:
                        video.write(bgr)
                    elif out_dir is not None and not frame.is_video:
                        rel = str(Path(prefix) / (frame.relpath or Path(frame.source).name))
                        target = out_dir / names(str(Path(rel).with_suffix(".jpg")))
                        check_output_file(target, inputs, flag="--out")
                        write_image(target, bgr)
                        summary.outputs.append(str(target))
                    if display is not None and not display.show(bgr):
                        stop = True
                        break
                summary.sources_ok += 1
            except (SourceError, ImageReadError, FileNotFoundError) as exc:
                log.error("%s (skipped)", exc)
                summary.errors.append(str(exc))
            finally:
                _close_video(video, summary)
                if timelines is not None:
                    timelines.finish(summary)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        if display is not None:
            display.close()
        summary.seconds = time.perf_counter() - start
    return summary


class _Timelines:
    """The timeline of each video of a run (:mod:`celebface.streaming.timeline`)."""

    def __init__(self, folder: Path, one_video: bool) -> None:
        self.folder, self.one_video, self.names = folder, one_video, _Names()
        self.builder: TimelineBuilder | None = None
        self.target: Path | None = None
        self.source = ""

    def start(self, source: Source, frame: Frame, fps: float, summary: RunSummary,
              prefix: str, n_source: int) -> None:
        self.finish(summary)
        self.builder, self.source = TimelineBuilder(fps), frame.source
        if self.one_video:
            self.target = self.folder
        else:
            rel = self.names(_video_name(source, frame, prefix, n_source))
            self.target = self.folder / Path(rel).with_suffix("")

    def add(self, frame: Frame, faces: list) -> None:
        if self.builder is not None:
            self.builder.add(frame.index, frame.time_s, frame.rgb, faces)

    def finish(self, summary: RunSummary) -> None:
        if self.builder is None or self.target is None:
            return
        appearances, thumbs = self.builder.appearances()
        write_timeline(self.target, appearances, thumbs,
                       self.builder.last_s + 1.0 / self.builder.fps, self.source)
        summary.outputs.append(str(self.target))
        summary.appearances += len(appearances)
        self.builder = None


def _video_name(source: Source, frame: Frame, prefix: str, n_source: int) -> str:
    """Output name of a video: camera/stream by number, files by their path (in a folder)."""
    if source.kind == "camera":
        return f"camera{source.target}.mp4"
    if source.kind == "stream":
        return f"stream{n_source}.mp4"
    if source.kind == "folder":
        rel = Path(frame.source).relative_to(source.target)
        return str((Path(prefix) / rel).with_suffix(".mp4"))
    return f"{Path(frame.source).stem}.mp4"


def _close_video(video: VideoOut | None, summary: RunSummary) -> None:
    if video is not None:
        video.close()
        if video.path.exists():
            summary.outputs.append(str(video.path))
