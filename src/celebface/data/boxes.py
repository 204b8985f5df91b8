"""Box datasets: images whose face box is known in their own pixels.

Two stage outputs are read this way, both from their ``manifest.csv``:

- a ``celebface synth`` output: the composites (``output`` column), boxes in composite pixels,
  the split from the manifest's ``split`` column;
- a ``celebface crop`` output, read for its sources: the photos it cropped (``source`` column,
  relative to the source folder its ``crop.json`` records, or absolute) with the detector's
  boxes in source pixels. A photo with several detected faces is left out when
  ``one_face_only`` (which face is the named person is unknown), else its first face is kept.
  Splits come from the source's ``splits.csv`` (by photo) or the crop folder's (by crop).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

from celebface.data.crops import read_manifest
from celebface.data.items import FaceItem
from celebface.data.stage import MANIFEST, folder_kind
from celebface.errors import reading
from celebface.io import read_splits
from celebface.types import Face

log = logging.getLogger(__name__)


#: the stage kinds read as box datasets
BOX_KINDS = ("synth", "crops")


def is_box_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a synth output or a crop output (a box dataset)."""

    return Path(path).is_dir() and folder_kind(path) in BOX_KINDS


def read_box_items(root: Path, kind: str, one_face_only: bool = True) -> list:
    """The :class:`~celebface.data.FaceItem` s of a ``synth`` or ``crops`` folder (module doc);
    ``[]`` when its manifest has no usable row."""
    with reading(root / MANIFEST, "manifest"):
        return _read_box_items(root, kind, one_face_only)


def _read_box_items(root: Path, kind: str, one_face_only: bool) -> list:

    rows = read_manifest(root)
    if kind == "synth":
        return [_item(root / r["output"], r, _size(r, "width", "height"), r.get("split") or None)
                for r in rows]
    source_root = _crop_source_root(root)
    # the source's splits.csv names source photos; the crop folder's names crop files
    src_splits = _read_splits(source_root / "splits.csv") if source_root else {}
    crop_splits = _read_splits(root / "splits.csv")
    faces: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        faces[row["source"]].append(row)
    items, skipped = [], Counter[str]()
    for source, group in faces.items():
        if len(group) > 1 and one_face_only:
            skipped["several faces"] += 1
            continue
        row = min(group, key=lambda r: int(r.get("face_index") or 0))
        src = Path(source)
        if not src.is_absolute():
            src = (source_root or root) / src
        if not src.is_file():
            skipped["source photo missing"] += 1
            continue
        split = src_splits.get((row["identity"], src.name)) or crop_splits.get(
            (row["identity"], Path(row.get("output") or "").name))
        items.append(_item(src, row, _size(row, "src_width", "src_height"), split))
    for reason, n in skipped.items():
        log.info("%s: %d photo(s) left out (%s)", root, n, reason)
    return items


def _item(path: Path, row: dict[str, str], size: tuple[int, int] | None, split: str | None):

    box = (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))
    face = Face(box=box, score=float(row.get("score") or 1.0))
    return FaceItem(row["identity"], str(path), split, face, size=size)


def _size(row: dict[str, str], width: str, height: str) -> tuple[int, int] | None:
    if row.get(width) and row.get(height):
        return (int(float(row[width])), int(float(row[height])))
    return None


def _crop_source_root(root: Path) -> Path | None:
    """The crop run's source folder, as its ``crop.json`` records it (absolute)."""
    try:
        meta = json.loads((root / "crop.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = meta.get("source") if isinstance(meta, dict) else None
    return Path(value) if isinstance(value, str) and Path(value).is_dir() else None


def _read_splits(path: Path) -> dict[tuple[str, str], str]:

    return read_splits(path) if path.is_file() else {}
