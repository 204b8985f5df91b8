"""Where frames come from: image files, folders, video files, cameras and stream URLs.

Every source emits events (:func:`events`): for each video, camera or stream a :class:`Start`
(its name, size and frame rate), its :class:`Frame` objects (RGB uint8) and an :class:`End`;
each still image is the same with one frame. Unreadable images are reported and skipped; a
video, camera or stream that cannot be opened raises :class:`SourceError` (one line); a camera
or stream that stops delivering frames is reopened at most ``reconnects`` times, with
open/read timeouts, and then ends with an error - it never hangs.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.errors import CelebfaceError, MissingFileError
from celebface.io import IMAGE_EXTENSIONS, ImageReadError, read_image, read_image_bytes
from celebface.io.datasets import report_unsupported

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts",
     ".y4m"}
)


class SourceError(CelebfaceError, RuntimeError):
    """A video, camera or stream that cannot be used; ``str()`` is one line."""


@dataclass(frozen=True)
class Frame:
    """One picture to recognise. ``index`` counts frames within the source."""

    source: str
    index: int
    rgb: np.ndarray
    time_s: float | None = None
    is_video: bool = False
    relpath: str | None = None  # for images inside a folder: the path below the folder


@dataclass(frozen=True)
class Start:
    """A video, camera or stream begins (or a still image: ``is_video`` False). ``source``: the
    :attr:`Frame.source` of its frames; ``name``: what its outputs are called below an output
    folder, with the input's suffix (``clip.avi``, ``photos/a.png``, ``camera0``)."""

    source: str
    name: str
    size: tuple[int, int]  # width, height of its first frame
    fps: float = 0.0  # a video file's frame rate; 0 when unknown (cameras, streams, stills)
    is_video: bool = False


@dataclass(frozen=True)
class End:
    """The frames since the last :class:`Start` are over (``frames`` of them)."""

    source: str
    frames: int


#: What a source emits.
Event = Start | Frame | End


@dataclass(frozen=True)
class StreamConfig:
    """Limits for cameras and streams."""

    reconnects: int = 3
    reconnect_delay_s: float = 1.0
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    max_frames: int | None = None
    max_side: int | None = None  # shrink still images to this longer side when decoding

    def __post_init__(self) -> None:
        validate.nonneg_int("reconnects", self.reconnects)
        validate.nonneg_float("reconnect_delay_s", self.reconnect_delay_s)
        validate.positive_float("open_timeout_s", self.open_timeout_s)
        validate.positive_float("read_timeout_s", self.read_timeout_s)
        validate.optional(validate.positive_int, "max_frames", self.max_frames)
        validate.optional(validate.image_side, "max_side", self.max_side)


@dataclass(frozen=True)
class Source:
    """One input named on the command line."""

    kind: str  # image, folder, video, camera, stream
    target: str

    @property
    def is_video(self) -> bool:
        return self.kind in ("video", "camera", "stream")

    @property
    def label(self) -> str:
        return f"camera {self.target}" if self.kind == "camera" else self.target


#: The most bytes read from a URL that serves a still image.
MAX_URL_IMAGE_BYTES = 64 << 20


def classify(inp: str, timeout_s: float = 10.0) -> Source:
    """What kind of input ``inp`` is (raises :class:`MissingFileError` for a missing path).
    An http(s) URL whose reply is an image (``Content-Type: image/...``) is an image, not a
    stream (a stream would reopen it for ever); any other URL is a stream."""
    if "://" in inp:
        return Source("image" if _serves_image(inp, timeout_s) else "stream", inp)
    path = Path(inp)
    if path.is_dir():
        return Source("folder", inp)
    if not path.exists():
        raise MissingFileError(f"{inp}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return Source("video", inp)
    return Source("image", inp)


def _serves_image(url: str, timeout_s: float) -> bool:
    """Whether an http(s) ``url`` answers with an image (headers only; False when it cannot
    be asked: the stream reader then reports what is wrong)."""

    if not url.lower().startswith(("http://", "https://")):
        return False
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            kind: str = reply.headers.get_content_type()
            return kind.startswith("image/")
    except (OSError, ValueError, urllib.error.URLError):
        return False


def _url_image(url: str, timeout_s: float, max_side: int | None) -> np.ndarray:
    """The still image at ``url`` as RGB (at most :data:`MAX_URL_IMAGE_BYTES`)."""

    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as reply:
            data = reply.read(MAX_URL_IMAGE_BYTES + 1)
    except (OSError, ValueError) as exc:
        raise SourceError(f"{url}: cannot fetch the image ({exc})") from None
    if len(data) > MAX_URL_IMAGE_BYTES:
        raise SourceError(f"{url}: image larger than {MAX_URL_IMAGE_BYTES >> 20} MB")
    return read_image_bytes(data, url, max_side).rgb


def folder_files(folder: Path) -> list[Path]:
    """Images and videos anywhere below ``folder`` (hidden files skipped), sorted."""
    known = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
    found = [p for p in folder.rglob("*")
             if not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    report_unsupported(folder, found)
    return sorted(p for p in found if p.is_file() and p.suffix.lower() in known)


def events(source: Source, config: StreamConfig | None = None, number: int = 0
           ) -> Generator[Event, None, None]:
    """The events of ``source``, the ``number``-th of a run (which names a stream's outputs).
    Bad images and videos inside a folder are logged and skipped."""
    config = config or StreamConfig()
    if source.kind == "image" and "://" in source.target:
        name = Path(source.target.split("?", 1)[0]).name or "url"
        yield from _segment(name, 0.0, _url_frame(source, config, name))
    elif source.kind == "image":
        name = Path(source.target).name
        yield from _segment(name, 0.0, _image_frame(source.target, config.max_side, name))
    elif source.kind == "folder":
        yield from _folder_events(Path(source.target), config)
    elif source.kind == "video":
        yield from _video_events(source, config, Path(source.target).name)
    else:
        name = f"camera{source.target}" if source.kind == "camera" else f"stream{number}"
        yield from _segment(name, 0.0, _live_frames(source, config))


def iter_frames(source: Source, config: StreamConfig | None = None) -> Iterator[Frame]:
    """The frames of ``source`` (its :func:`events` without the starts and ends)."""
    return (e for e in events(source, config) if isinstance(e, Frame))


def _segment(name: str, fps: float, frames: Iterable[Frame]) -> Iterator[Event]:
    """``frames`` between a :class:`Start` and an :class:`End`; nothing when there are none.
    A :class:`SourceError` after the first frame still ends them, then propagates."""
    count, start = 0, None
    try:
        for frame in frames:
            if start is None:
                h, w = frame.rgb.shape[:2]
                start = Start(frame.source, name, (w, h), fps, frame.is_video)
                yield start
            yield frame
            count += 1
    except SourceError:
        if start is not None:
            yield End(start.source, count)
        raise
    if start is not None:
        yield End(start.source, count)


def _url_frame(source: Source, config: StreamConfig, name: str) -> Iterator[Frame]:
    rgb = _url_image(source.target, config.open_timeout_s, config.max_side)
    yield Frame(source.target, 0, rgb, relpath=name)


def _image_frame(path: str | Path, max_side: int | None, relpath: str, index: int = 0
                 ) -> Iterator[Frame]:
    loaded = read_image(path, max_side)  # ImageReadError propagates
    yield Frame(str(path), index, loaded.rgb, relpath=relpath)


def _folder_events(root: Path, config: StreamConfig) -> Iterator[Event]:
    """Every image and video below ``root``, named below the folder's own name."""
    files = folder_files(root)
    if not files:
        log.warning("%s: no images or videos inside", root)
    for i, path in enumerate(files):
        rel = str(path.relative_to(root))
        name = str(Path(root.name) / rel)
        try:
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                yield from _video_events(Source("video", str(path)), config, name)
            else:
                yield from _segment(name, 0.0, _image_frame(path, config.max_side, rel, i))
        except (SourceError, ImageReadError) as exc:
            log.error("%s (skipped)", exc)


def camera_index(target: str | int) -> int:
    """A camera number (>= 0). OpenCV crashes the interpreter on some negative ones."""
    try:
        index = int(target)
    except ValueError:
        raise SourceError(f"camera {target!r}: not a camera number") from None
    if index < 0:
        raise SourceError(f"camera {index}: camera numbers start at 0")
    return index


def _open_capture(source: Source, config: StreamConfig) -> Any:
    import cv2

    if source.kind == "camera":
        cap = cv2.VideoCapture(camera_index(source.target))
    elif source.kind == "stream":
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(config.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(config.read_timeout_s * 1000),
        ]
        cap = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, params)
    else:
        cap = cv2.VideoCapture(source.target)
    if not cap.isOpened():
        cap.release()
        what = {"camera": "camera", "stream": "stream", "video": "video"}[source.kind]
        hint = {
            "camera": "no such camera, or it is in use / not permitted",
            "stream": "unreachable, refused, timed out or not a video stream",
            "video": "unreadable or unsupported video (codec?)",
        }[source.kind]
        raise SourceError(f"{source.label}: cannot open {what}: {hint}")
    return cap


def _video_events(source: Source, config: StreamConfig, name: str) -> Iterator[Event]:
    """A video file's events; its frame rate (0 when unknown) comes with its start."""
    import cv2

    cap = _open_capture(source, config)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        yield from _segment(name, fps, _video_frames(cap, source, config, fps))
    finally:
        cap.release()


def _video_frames(cap: Any, source: Source, config: StreamConfig, fps: float
                  ) -> Iterator[Frame]:
    import cv2

    index = 0
    while config.max_frames is None or index < config.max_frames:
        ok, bgr = cap.read()
        if not ok or bgr is None:
            break
        t = index / fps if fps > 0 else None
        yield Frame(source.target, index, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), t,
                    is_video=True)
        index += 1
    if index == 0:
        raise SourceError(f"{source.label}: video has no readable frames")


def _live_frames(source: Source, config: StreamConfig) -> Iterator[Frame]:
    """A camera or stream, reopened at most ``config.reconnects`` times when it drops."""
    import cv2

    index, failures = 0, 0
    start = time.monotonic()
    cap = _open_capture(source, config)
    try:
        while config.max_frames is None or index < config.max_frames:
            ok, bgr = cap.read()
            if ok and bgr is not None:
                failures = 0
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                yield Frame(source.label, index, rgb, time.monotonic() - start, is_video=True)
                index += 1
                continue
            cap.release()
            if failures >= config.reconnects:
                raise SourceError(
                    f"{source.label}: stopped delivering frames after frame {index}; gave up "
                    f"after {config.reconnects} reconnect attempt(s)"
                )
            failures += 1
            log.warning("%s: no frame; reconnecting (%d/%d)", source.label, failures,
                        config.reconnects)
            time.sleep(config.reconnect_delay_s)
            try:
                cap = _open_capture(source, config)
            except SourceError as exc:
                log.warning("%s", exc)
                cap = _ClosedCapture()
    finally:
        cap.release()


class _ClosedCapture:
    """Stands in for a capture that could not be reopened (its read fails)."""

    def read(self) -> tuple[bool, None]:
        return False, None

    def release(self) -> None:
        pass
