"""The crop stage's append-only records: manifest.csv, no_faces.txt, errors.txt.

Each is appended and fsynced once per batch, so a killed run loses at most the batch in flight;
a torn last line (killed mid-write) is cut off when the file is opened again.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from celebface.io.atomic import TEXT_ENCODING
from celebface.io.pathlist import csv_text
from celebface.types import Face

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
MANIFEST_COLUMNS = (
    "source",
    "output",
    "identity",
    "x1",
    "y1",
    "x2",
    "y2",
    "score",
    *(f"{n}_{a}" for n in LANDMARK_NAMES for a in "xy"),
    "face_index",
    "src_width",
    "src_height",
)
MANIFEST = "manifest.csv"
NO_FACES = "no_faces.txt"
ERRORS = "errors.txt"


def manifest_row(
    source: str, output: str, identity: str, face: Face, index: int, size: tuple[int, int]
) -> list[str]:
    """One manifest line; ``face`` in source pixels."""
    lm = (
        [f"{v:.2f}" for v in face.landmarks.reshape(-1)]
        if face.landmarks is not None
        else [""] * 10
    )
    box = [f"{v:.2f}" for v in face.box]
    return [source, output, identity, *box, f"{face.score:.4f}", *lm, str(index),
            str(size[0]), str(size[1])]


def face_from_row(row: dict[str, str]) -> Face:
    """The face of a manifest row (source pixels)."""

    x1, y1, x2, y2 = (float(row[k]) for k in ("x1", "y1", "x2", "y2"))
    lm = None
    if row.get("left_eye_x"):
        lm = np.array(
            [[float(row[f"{n}_x"]), float(row[f"{n}_y"])] for n in LANDMARK_NAMES],
            dtype=np.float32,
        )
    return Face(box=(x1, y1, x2, y2), score=float(row["score"]), landmarks=lm)



def _repair_tail(path: Path) -> None:
    """Cut a torn last line (no trailing newline) left by a killed run."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data.endswith(b"\n"):
            return
        fh.truncate(data.rfind(b"\n") + 1)


def read_manifest(dst: Path) -> list[dict[str, str]]:
    """The finished rows of ``dst/manifest.csv`` (a crop or synth output); a torn last row
    of a killed run is left out."""
    path = dst / MANIFEST
    if not path.exists():
        return []
    with open(path, newline="", **TEXT_ENCODING) as fh:
        text = fh.read()
    text = text[: text.rfind("\n") + 1]  # a last line without its newline is torn
    return [r for r in csv.DictReader(io.StringIO(text)) if r.get("src_height")]


def read_lines(path: Path) -> list[str]:
    """One name per record of ``no_faces.txt``: a one-column CSV, so a name with a newline,
    carriage return or quote is quoted (plain names read as plain lines, as before)."""
    if not path.exists():
        return []
    with open(path, newline="", **TEXT_ENCODING) as fh:
        return [row[0] for row in csv.reader(fh) if row]


def done_sources(dst: Path) -> set[str]:
    """Sources an earlier run finished (cropped, or no face). Those in ``errors.txt`` are not:
    a rerun tries them again (the failure may have been passing: disk full, out of memory)."""
    done = {r["source"] for r in read_manifest(dst)}
    done.update(read_lines(dst / NO_FACES))
    return done


class Records:
    """Appends to the manifest and no-face records and starts ``errors.txt`` afresh (its
    sources are retried); :meth:`commit` flushes and fsyncs them."""

    def __init__(self, dst: Path):
        dst.mkdir(parents=True, exist_ok=True)
        paths = [dst / MANIFEST, dst / NO_FACES, dst / ERRORS]
        for p in paths:
            _repair_tail(p)
        new_manifest = not paths[0].exists() or paths[0].stat().st_size == 0
        self._files = [
            open(p, "w" if p.name == ERRORS else "a", newline="", **TEXT_ENCODING)  # noqa: SIM115
            for p in paths
        ]
        self.manifest, self.no_faces, self.errors = self._files
        if new_manifest:
            self.manifest.write(csv_text([MANIFEST_COLUMNS]))
            self.commit()

    def add_faces(self, rows: list[list[str]]) -> None:
        self.manifest.write(csv_text(rows))

    def add_no_face(self, source: str) -> None:
        self.no_faces.write(csv_text([[source]]))

    def add_error(self, source: str, reason: str) -> None:
        reason = " ".join(reason.split())
        source = source.replace("\t", "\\t").replace("\r", "\\r").replace("\n", "\\n")
        self.errors.write(f"{source}\t{reason}\n")

    def commit(self) -> None:
        for fh in self._files:
            try:
                fh.flush()
                os.fsync(fh.fileno())
            except OSError as exc:  # disk full, ...: name the record file
                raise OSError(exc.errno, exc.strerror, fh.name) from None

    def close(self) -> None:
        self.commit()
        for fh in self._files:
            fh.close()
