"""What recognition writes: JSON Lines, annotated pictures and videos, a live window."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import unicodedata
from pathlib import Path
from typing import IO, Any

import numpy as np

from celebface.io import OutputFile, atomic_write_bytes, json_text
from celebface.types import UNKNOWN, Face

log = logging.getLogger(__name__)

KNOWN_BGR = (60, 200, 60)
UNKNOWN_BGR = (40, 40, 230)


def label(face: Face) -> str:
    """The text drawn over a face, in ASCII: OpenCV's fonts draw nothing else, and a name the
    OS gave as undecodable bytes (surrogate escapes) crashed ``cv2.getTextSize``."""
    attrs = " ".join(t for t in (
        face.gender and f"{face.gender[0].upper()} {face.gender_probability or 0:.2f}",
        face.age is not None and f"age {face.age:.0f}",
        face.pose is not None and f"yaw {face.pose[0]:+.0f}") if t)
    name = face.identity or ("" if attrs else "?")
    text = f"{name} {face.similarity:.2f}" if face.similarity is not None else name
    if face.identity == UNKNOWN and face.runner_up:
        text += f" (~{face.runner_up})"
    text = f"{text} {attrs}".strip()
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return text.encode("ascii", "replace").decode("ascii")


def annotate(rgb: np.ndarray, faces: list[Face], fps: float | None = None) -> np.ndarray:
    """A BGR copy of ``rgb`` with boxes, names, similarity scores and optionally FPS."""
    import cv2

    img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    h, w = img.shape[:2]
    scale = max(0.4, min(1.2, max(h, w) / 900))
    thick = max(1, round(scale * 2))
    for face in faces:
        x1, y1, x2, y2 = (round(v) for v in face.box)
        colour = UNKNOWN_BGR if face.identity in (None, UNKNOWN) else KNOWN_BGR
        cv2.rectangle(img, (x1, y1), (x2, y2), colour, thick)
        text = label(face)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        ty = y1 - 4 if y1 - th - base - 4 >= 0 else min(h - 1, y2 + th + 4)
        cv2.rectangle(img, (x1, ty - th - base), (x1 + tw, ty + base // 2), colour, -1)
        cv2.putText(img, text, (x1, ty - base // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    if fps is not None:
        cv2.putText(img, f"{fps:.1f} fps", (8, round(24 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 255, 255), thick, cv2.LINE_AA)
    return img


def write_image(path: Path, bgr: np.ndarray, quality: int = 92) -> None:
    import cv2

    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise OSError(f"{path}: JPEG encoding failed")
    atomic_write_bytes(path, buf.tobytes())


def frame_record(source: str, index: int, time_s: float | None, faces: list[Face]
                 ) -> dict[str, Any]:
    rec: dict[str, Any] = {"source": source, "frame": index}
    if time_s is not None:
        rec["time_s"] = round(time_s, 3)
    rec["faces"] = [f.to_dict() for f in faces]
    return rec


class JsonlWriter:
    """One JSON object per line, flushed as it comes; ``-`` is standard output. A regular
    file is created beside its final name and renamed into place as soon as it is opened, then
    appended line by line, so whatever stops the run (an error, Ctrl-C, kill -9, a crash)
    leaves every finished line under the final name and no hidden temporary file; a device or
    FIFO is written in place, a symlink is replaced, not written through (see
    :class:`OutputFile`)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._out: OutputFile | None = None
        self._fh: IO[str]
        if self.path == "-":

            self._fh = sys.stdout
        else:
            self._out = OutputFile(self.path, "w")
            self._out.publish()
            self._fh = self._out.fh

    def write(self, record: dict[str, Any]) -> None:
        try:
            self._fh.write(json_text(record) + "\n")
            self._fh.flush()
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, self.path) from None

    def close(self) -> None:
        if self._out is not None:
            out, self._out = self._out, None
            out.commit()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: Codecs tried in turn for an ``.mp4``: H.264 (browsers play it) when this OpenCV's FFmpeg
#: has an encoder for it, else MPEG-4 part 2 (players do, browsers do not: the service's video
#: page then plays a WebM copy, :mod:`celebface.serve.videos`).
MP4_CODECS = ("avc1", "mp4v")
#: The codec of other containers.
CODECS = {".webm": ("VP80",), ".avi": ("MJPG",)}


def open_writer(path: Path, fps: float, size: tuple[int, int]) -> tuple[Any, str]:
    """An open ``cv2.VideoWriter`` for ``path`` and its codec: the first of the suffix's
    codecs (:data:`MP4_CODECS` for ``.mp4`` and others) that this OpenCV can write (the
    attempts that fail are silenced); OSError when none can."""
    import cv2

    codecs = CODECS.get(path.suffix.lower(), MP4_CODECS)
    logging_ = cv2.utils.logging
    level = logging_.getLogLevel()
    try:
        for i, codec in enumerate(codecs):
            last = i == len(codecs) - 1
            logging_.setLogLevel(level if last else logging_.LOG_LEVEL_SILENT)
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*codec), fps, size)
            if writer.isOpened():
                return writer, codec
    finally:
        logging_.setLogLevel(level)
    raise OSError(f"{path}: cannot write video")


class VideoOut:
    """An annotated video, written under a temporary name and renamed when finished, as
    H.264 when this OpenCV can (:func:`open_writer`)."""

    def __init__(self, path: Path, fps: float):
        self.path = path
        self.fps = fps if fps and fps > 0 else 25.0
        self._writer: Any = None
        self._tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
        self.codec: str | None = None  # the one it writes with, once it has a frame

    def write(self, bgr: np.ndarray) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            h, w = bgr.shape[:2]
            try:
                self._writer, self.codec = open_writer(self._tmp, self.fps, (w, h))
            except OSError:
                raise OSError(f"{self.path}: cannot write video") from None
            self._size = (w, h)
        if (bgr.shape[1], bgr.shape[0]) != self._size:
            bgr = _fit(bgr, self._size)
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)


def _fit(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)


class Display:
    """A live window, when this OpenCV build and the session can show one."""

    def __init__(self, title: str = "celebface"):
        self.title = title
        self.available = display_available()

    def show(self, bgr: np.ndarray) -> bool:
        """Shows a frame; returns ``False`` when the user pressed q or Esc."""
        if not self.available:
            return True
        import cv2

        cv2.imshow(self.title, bgr)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        if self.available:
            import cv2

            with contextlib.suppress(Exception):
                cv2.destroyWindow(self.title)


def display_available() -> bool:
    """True when a window can be opened (an OpenCV build with a GUI, and a display)."""
    import cv2

    info = cv2.getBuildInformation()
    gui = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                if ln.strip().startswith("GUI:")), "NONE")
    if gui.upper() == "NONE":
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
                or os.name == "nt")
