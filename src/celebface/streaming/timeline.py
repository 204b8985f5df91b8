"""Who appears when: one appearance per track of a video, written as a CSV, JSON, thumbnails
and a Gantt-like picture (``celebface recognize VIDEO --timeline DIR``,
:func:`celebface.timeline`; written by :class:`celebface.streaming.sinks.TimelineSink`).

An appearance is a track (:mod:`celebface.streaming.tracker`): its person is the name it showed
in most of its frames, or ``unknown-N`` (numbered in order of appearance) when that was
*unknown*; its thumbnail is the face (with a margin) of its best embedded frame: the highest
score for a named track, the largest face for an unknown one. To enrol unknown people, write
their name over ``unknown-N`` in ``appearances.csv``'s ``person`` column and run
``celebface enroll --from-timeline DIR --out GALLERY --add`` (:func:`renamed_faces`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from celebface.io.images import encode_jpeg
from celebface.io.pathlist import csv_text
from celebface.types import UNKNOWN, Face, InvalidNameError, person_name

log = logging.getLogger(__name__)

FIELDS = ("person", "shown", "track", "start_s", "end_s", "first_frame", "last_frame",
          "frames", "best_score", "mean_score", "thumbnail")
#: How far the thumbnail reaches beyond the face box, as a share of its side on each side.
THUMB_MARGIN = 0.4


@dataclass
class Appearance:
    """One track. ``person``: the name to use (editable in the CSV); ``shown``: what
    recognition named it (a name or ``unknown-N``)."""

    person: str
    shown: str
    track: int
    start_s: float
    end_s: float
    first_frame: int
    last_frame: int
    frames: int
    best_score: float | None
    mean_score: float | None
    thumbnail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Track:
    first: int
    first_s: float
    last: int = 0
    last_s: float = 0.0
    frames: int = 0
    names: Counter[str] = field(default_factory=Counter)
    scores: list[float] = field(default_factory=list)
    best: tuple[float, float] | None = None  # (score or -1, face area) of the thumbnail
    thumb: np.ndarray | None = None


def thumbnail(rgb: np.ndarray, box: tuple[float, float, float, float],
              margin: float = THUMB_MARGIN) -> np.ndarray:
    """The face in ``box`` with ``margin`` of its side around it, clipped to the frame."""
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    h, w = rgb.shape[:2]
    a, b = max(0, int(x1 - mx)), max(0, int(y1 - my))
    c, d = min(w, int(np.ceil(x2 + mx))), min(h, int(np.ceil(y2 + my)))
    return np.ascontiguousarray(rgb[b:max(d, b + 1), a:max(c, a + 1)])


class TimelineBuilder:
    """Collects a video's tracked, named faces frame by frame (:meth:`add`), then
    :meth:`appearances`."""

    def __init__(self, fps: float = 25.0) -> None:
        self.fps = fps if fps and fps > 0 else 25.0
        self.tracks: dict[int, _Track] = {}
        self.last_s = 0.0

    def add(self, index: int, time_s: float | None, rgb: np.ndarray, faces: Iterable[Face]
            ) -> None:
        t = index / self.fps if time_s is None else float(time_s)
        self.last_s = max(self.last_s, t)
        for face in faces:
            if face.track_id is None:
                continue
            tr = self.tracks.setdefault(face.track_id, _Track(index, t))
            tr.last, tr.last_s = index, t
            tr.frames += 1
            tr.names[face.identity or UNKNOWN] += 1
            if face.similarity is not None and face.embedding is not None:
                tr.scores.append(float(face.similarity))
            if face.embedding is not None or tr.thumb is None:
                known = face.identity not in (None, UNKNOWN)
                rank = (float(face.similarity) if known and face.similarity is not None
                        else -1.0, face.area)
                if tr.best is None or rank > tr.best:
                    tr.best, tr.thumb = rank, thumbnail(rgb, face.box)

    def appearances(self) -> tuple[list[Appearance], dict[str, np.ndarray]]:
        """The appearances in order of their start, and their thumbnails by file name."""
        out, thumbs, unknowns = [], {}, 0
        frame_s = 1.0 / self.fps
        for tid, tr in sorted(self.tracks.items(), key=lambda kv: (kv[1].first, kv[0])):
            name = max(tr.names, key=lambda n: (tr.names[n], n != UNKNOWN))
            if name == UNKNOWN:
                unknowns += 1
                name = f"unknown-{unknowns}"
            file = f"thumbnails/track{tid:04d}.jpg"
            if tr.thumb is not None:
                thumbs[file] = tr.thumb
            out.append(Appearance(
                person=name, shown=name, track=tid, start_s=round(tr.first_s, 3),
                end_s=round(tr.last_s + frame_s, 3), first_frame=tr.first, last_frame=tr.last,
                frames=tr.frames,
                best_score=round(max(tr.scores), 4) if tr.scores else None,
                mean_score=round(float(np.mean(tr.scores)), 4) if tr.scores else None,
                thumbnail=file if tr.thumb is not None else ""))
        return out, thumbs


def write_timeline(folder: str | Path, appearances: list[Appearance],
                   thumbs: dict[str, np.ndarray], duration_s: float, source: str = "") -> Path:
    """``appearances.csv``/``.json``, ``thumbnails/`` and ``timeline.png`` in ``folder``."""
    folder = Path(folder)
    (folder / "thumbnails").mkdir(parents=True, exist_ok=True)
    for name, img in thumbs.items():
        atomic_write_bytes(folder / name, encode_jpeg(img, quality=92))
    _write_tables(folder, appearances, duration_s, source)
    plot_timeline(appearances, duration_s, folder / "timeline.png", title=Path(source).name)
    return folder


def _write_tables(folder: Path, appearances: list[Appearance], duration_s: float, source: str
                  ) -> None:
    """``appearances.csv`` and ``appearances.json``."""
    rows = [FIELDS] + [[("" if v is None else v) for v in (getattr(a, f) for f in FIELDS)]
                       for a in appearances]
    atomic_write_text(folder / "appearances.csv", csv_text(rows))
    atomic_write_json(folder / "appearances.json", {
        "source": source, "duration_s": round(duration_s, 3),
        "appearances": [a.to_dict() for a in appearances]})


def rename_track(folder: str | Path, track: int, person: str) -> Appearance:
    """Write ``person`` over track ``track``'s person in ``folder``'s ``appearances.csv`` and
    ``.json`` (what a user does by hand before ``enroll --from-timeline``); its appearance."""
    folder = Path(folder)
    data = json.loads((folder / "appearances.json").read_text(encoding="utf-8"))
    found = [Appearance(**a) for a in data["appearances"]]
    hit = next((a for a in found if a.track == track), None)
    if hit is None:
        raise InputError(f"{folder}: no track {track}")
    hit.person = person
    _write_tables(folder, found, data["duration_s"], data["source"])
    return hit


def plot_timeline(appearances: list[Appearance], duration_s: float, path: Path,
                  title: str = "") -> None:
    """People over time, one row each; a bar per appearance (grey: unknown)."""
    from matplotlib.figure import Figure

    people = list(dict.fromkeys(a.person for a in appearances))
    fig = Figure(figsize=(10, 1.2 + 0.4 * max(len(people), 1)))
    ax = fig.subplots()
    for row, person in enumerate(people):
        spans = [(a.start_s, max(a.end_s - a.start_s, 1e-3)) for a in appearances
                 if a.person == person]
        colour = "#999999" if person.startswith("unknown-") else f"C{row % 10}"
        ax.broken_barh(spans, (row - 0.4, 0.8), facecolors=colour)
    ax.set_yticks(range(len(people)), [p.removeprefix("pins_") for p in people])
    ax.set_ylim(len(people) - 0.5, -0.5)
    ax.set_xlim(0, max(duration_s, max((a.end_s for a in appearances), default=0), 1e-3))
    ax.set_xlabel("time (s)")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def is_unknown_label(name: str) -> bool:
    return not name or name == UNKNOWN or name.startswith("unknown-")


def renamed_faces(folder: str | Path) -> list[tuple[str, Path]]:
    """``(person, thumbnail)`` of each appearance whose ``person`` a user changed from what
    recognition showed to a name (not ``unknown-N``) in ``folder/appearances.csv``."""
    folder = Path(folder)
    table = folder / "appearances.csv"
    if not table.is_file():
        raise InputError(f"{table}: no such file (a 'celebface recognize --timeline' folder?)")
    try:  # utf-8-sig: a spreadsheet's byte-order mark is not part of the first column's name
        with table.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = {"person", "shown", "thumbnail"} - set(reader.fieldnames or ())
            if missing:
                raise InputError(f"{table}: no {', '.join(sorted(missing))} column")
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise InputError(f"{table}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
                         ) from None
    except csv.Error as exc:
        raise InputError(f"{table}: not a readable CSV ({exc})") from None
    out = []
    for n, row in enumerate(rows, 1):
        # a short row has no value (None) in its last columns
        person, shown = (row.get("person") or "").strip(), (row.get("shown") or "").strip()
        if person == shown or is_unknown_label(person):
            continue
        try:
            person = person_name(person)  # the one rule for a person's name
        except InvalidNameError as exc:
            log.error("%s: row %d: %s (skipped)", table, n, exc)
            continue
        thumb = folder / (row.get("thumbnail") or "")
        if not row.get("thumbnail") or not thumb.is_file():
            log.error("%s: the thumbnail of %s (track %s) is missing (skipped)", table, person,
                      row.get("track"))
            continue
        out.append((person, thumb))
    return out
