"""Reading a ``celebface pack`` folder (the writing side is :mod:`celebface.packing`): its
rows as :class:`~celebface.data.dataset.FaceItem`\\ s of a :class:`FaceDataset` whose images
are the memory-mapped ``all_images.npy`` (:attr:`FaceDataset.images`)."""

from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

import numpy as np

from celebface.data.items import (
    DatasetError,
    FaceDataset,
    FaceItem,
    MissingDatasetError,
    crop_geometry,
)
from celebface.data.stage import folder_kind
from celebface.errors import reading
from celebface.io.atomic import TEXT_ENCODING
from celebface.io.pathlist import PATHS_FILE, has_paths, read_paths
from celebface.types import Face

PACK_FILES = ("all_images.npy", "all_labels.npy", "label_mapping.json", "paths.json",
              "splits.csv", "pack.json")  # paths.txt instead of paths.json: older packs


def read_pack(path: str | Path) -> FaceDataset:
    """Open a packed folder; images are memory-mapped, not read. Each item's ``row`` is its
    row of ``all_images.npy``; its face is known when the packed file was a (square)
    ``celebface crop`` output."""
    path = Path(path)
    missing = [f for f in PACK_FILES if not (path / f).is_file()
               and not (f == PATHS_FILE and has_paths(path))]
    if missing:
        raise MissingDatasetError(f"{path}: not a packed folder (missing {', '.join(missing)})")
    with reading(path, "packed folder"):
        images = np.load(path / "all_images.npy", mmap_mode="r")
        labels = np.load(path / "all_labels.npy")
        mapping = json.loads((path / "label_mapping.json").read_text(encoding="utf-8"))
        names = [mapping[str(i)] for i in range(len(mapping))]
        paths = read_paths(path)
        with open(path / "splits.csv", newline="", **TEXT_ENCODING) as fh:
            splits = [row["split"] or None for row in csv.DictReader(fh)]
        settings = json.loads((path / "pack.json").read_text(encoding="utf-8"))
    fit = str(settings.get("fit", "stretch"))
    if not (len(images) == len(labels) == len(paths) == len(splits)):
        raise DatasetError(f"{path}: images, labels, paths and splits.csv have different "
                           "lengths")
    size = int(images.shape[1]) if images.ndim == 4 else 0
    items = [FaceItem(names[int(label)], p, s, _packed_face(p, size), i)
             for i, (p, label, s) in enumerate(zip(paths, labels, splits, strict=True))]
    return FaceDataset(path, "pack", items, names, str(path / "all_images.npy"),
                       meta={"fit": fit})


def _packed_face(source: str, size: int) -> Face | None:
    """The face of a packed image made from a (square) ``celebface crop`` output, scaled to the
    pack's side; ``None`` when the packed file was not such a crop."""

    root = Path(source).parent.parent
    if not root.is_dir() or folder_kind(root) != "crops":
        return None
    geometry = _crop_geometry_cached(str(root))
    face = geometry.get(Path(source).relative_to(root).as_posix())
    crop_size = _crop_size(str(root))
    if face is None or not crop_size or not size:
        return None
    return face.scaled(size / crop_size)  # a square crop: stretch, pad and crop all scale it


@functools.lru_cache(maxsize=16)
def _crop_geometry_cached(root: str) -> dict[str, Face]:

    return crop_geometry(root)


@functools.lru_cache(maxsize=16)
def _crop_size(root: str) -> int:
    try:
        return int(json.loads((Path(root) / "crop.json").read_text("utf-8"))["settings"]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0
