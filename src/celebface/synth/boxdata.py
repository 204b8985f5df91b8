"""Box-and-identity datasets: a synth output or a crop-stage output, read the same way."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
_BOX_COLUMNS = {"identity", "x1", "y1", "x2", "y2"}


@dataclass(frozen=True)
class BoxItem:
    """One image with the true face box ``(x1, y1, x2, y2)`` in its own (upright) pixels."""

    path: Path
    identity: str
    box: tuple[float, float, float, float]
    size: tuple[int, int] | None  # (width, height) of the image the box refers to
    split: str | None = None


@dataclass
class BoxDataset:
    root: Path
    kind: str  # "synth" or "crop"
    items: list[BoxItem]

    @property
    def label_names(self) -> list[str]:
        return sorted({it.identity for it in self.items})

    def split(self, name: str) -> list[BoxItem]:
        return [it for it in self.items if it.split == name]

    def __len__(self) -> int:
        return len(self.items)


def is_box_dataset(path: str | Path) -> bool:
    """Whether ``path`` is a folder with a ``manifest.csv`` that has face boxes."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        return False
    with open(manifest, newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), [])
    return set(header) >= _BOX_COLUMNS and ("output" in header or "source" in header)


def _crop_source_root(root: Path) -> Path | None:
    """The crop run's source folder, as its ``crop.json`` records it (absolute)."""
    from celebface.cropping.dataset import SETTINGS_FILE

    try:
        meta = json.loads((root / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = meta.get("source") if isinstance(meta, dict) else None
    return Path(value) if isinstance(value, str) and Path(value).is_dir() else None


def _read_splits(path: Path) -> dict[tuple[str, str], str]:
    from celebface.io import read_splits

    return read_splits(path) if path.is_file() else {}


def load_box_dataset(path: str | Path, one_face_only: bool = True) -> BoxDataset:
    """Read a box-and-identity dataset.

    - a ``celebface synth`` output: images are the composites (``output`` column), boxes are in
      composite pixels, the split comes from the manifest's ``split`` column;
    - a ``celebface crop`` output: images are the source photos (``source`` column, relative to
      the crop's source folder recorded in its settings file, or absolute), boxes are the
      detector's boxes in source pixels. Photos with several detected faces are left out when
      ``one_face_only`` (which face is the named person is unknown); else the first is kept.
      Splits come from the source's ``splits.csv`` (by photo) or the crop folder's (by crop).
    """
    root = Path(path)
    if not is_box_dataset(root):
        raise ValueError(f"{root}: not a box dataset (needs a manifest.csv with "
                         "identity,x1,y1,x2,y2 columns, as synth and crop write)")
    with open(root / MANIFEST, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        text = fh.read()
    if not text.endswith("\n"):  # a torn last row of a killed run: not a finished photo
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(io.StringIO(text)))
    if (root / "synth.json").is_file():
        return BoxDataset(root, "synth", [_synth_item(root, r) for r in rows])

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
        identity = row["identity"]
        size = None
        if row.get("src_width") and row.get("src_height"):
            size = (int(float(row["src_width"])), int(float(row["src_height"])))
        split = src_splits.get((identity, src.name)) or crop_splits.get(
            (identity, Path(row.get("output") or "").name))
        items.append(BoxItem(src, identity, _box(row), size, split))
    for reason, n in skipped.items():
        log.info("%s: %d photo(s) left out (%s)", root, n, reason)
    if not items:
        raise ValueError(f"{root}: no usable rows in {MANIFEST}")
    return BoxDataset(root, "crop", items)


def _box(row: dict[str, str]) -> tuple[float, float, float, float]:
    return (float(row["x1"]), float(row["y1"]), float(row["x2"]), float(row["y2"]))


def _synth_item(root: Path, row: dict[str, str]) -> BoxItem:
    size = (int(row["width"]), int(row["height"])) if row.get("width") else None
    return BoxItem(root / row["output"], row["identity"], _box(row), size,
                   row.get("split") or None)
