"""One way to open a labelled face dataset: a photo folder, a ``crop`` output or a ``pack``.

Every stage that reads labelled images (embed, enroll, calibrate, train, evaluate) goes through
:func:`open_dataset`. Each :class:`FaceItem` says where its image is, whose face it is, its split
and, when known, where the face is in that image (box and 5 landmarks): a folder written by
``celebface crop`` carries that geometry (its ``manifest.csv`` has each face in source pixels
and ``crop.json`` the crop settings, so the face in crop pixels follows exactly), and a pack of
such crops carries it too. For other folders the face is unknown and the embedder's
alignment rule decides (:func:`celebface.recognition.align.locate_faces`).
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from celebface.errors import CelebfaceError
from celebface.io import list_dataset, read_image, read_splits
from celebface.types import Face

log = logging.getLogger(__name__)

KINDS = ("photos", "crops", "pack")


class DatasetError(CelebfaceError, ValueError):
    """A dataset folder that cannot be used; the message names it and the reason."""


@dataclass(frozen=True)
class FaceItem:
    """One labelled image. ``face`` is the face's box and landmarks in this image's pixels
    (``None``: not known); ``row`` is its row in a pack's ``all_images.npy`` (else ``None``,
    and ``path`` is the image file)."""

    identity: str
    path: str
    split: str | None = None
    face: Face | None = field(default=None, compare=False)
    row: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """``(identity, filename)``, the key of ``splits.csv``."""
        return (self.identity, Path(self.path).name)


@dataclass
class FaceDataset:
    """The items of a dataset, in a stable order, with their label order (sorted names)."""

    root: Path
    kind: str
    items: list[FaceItem]
    names: list[str]
    array: str | None = None  # a pack's all_images.npy

    def __len__(self) -> int:
        return len(self.items)

    @property
    def labels(self) -> np.ndarray:
        index = {n: i for i, n in enumerate(self.names)}
        return np.asarray([index[it.identity] for it in self.items], dtype=np.int64)

    def split(self, name: str | None) -> FaceDataset:
        """Only the items of split ``name`` (all for ``None``); label order unchanged."""
        if name is None:
            return self
        kept = [it for it in self.items if it.split == name]
        if not kept:
            have = sorted({str(it.split) for it in self.items})
            raise DatasetError(f"{self.root}: no images in split {name!r} (splits: "
                               f"{', '.join(have)}; a folder's splits come from its splits.csv)")
        return replace(self, items=kept)

    def load(self, item: FaceItem) -> np.ndarray:
        """The item's RGB uint8 image (``ImageReadError`` for a bad file)."""
        if item.row is not None and self.array is not None:
            return np.ascontiguousarray(_memmap(self.array)[item.row])
        return read_image(item.path).rgb


@functools.lru_cache(maxsize=8)
def _memmap_cached(path: str, mtime_ns: int) -> np.ndarray:
    return np.load(path, mmap_mode="r")


def _memmap(path: str) -> np.ndarray:
    return _memmap_cached(path, Path(path).stat().st_mtime_ns)


def kind_of(path: str | Path) -> str:
    """``crops`` (a ``celebface crop`` output), ``pack`` or ``photos`` (any other folder of
    people), by the stage protocol (:func:`celebface.data.stage.folder_kind`)."""
    from celebface.data.stage import folder_kind

    kind = folder_kind(path)
    if kind in ("pack", "crops"):
        return kind
    if kind in ("embeddings", "gallery", "model", "report"):
        raise DatasetError(f"{path}: a {kind} folder, not images of people")
    return "photos"


def open_dataset(path: str | Path, split: str | None = None) -> FaceDataset:
    """Open a folder-per-identity photo folder, a crop folder or a pack (see module doc)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: no such folder")
    kind = kind_of(path)
    if kind == "pack":
        return _open_pack(path).split(split)
    found = list_dataset(path)
    if not found:
        raise DatasetError(f"{path}: no images found (expected {path}/<person>/<image>)")
    splits = read_splits(path / "splits.csv") if (path / "splits.csv").is_file() else {}
    geometry = crop_geometry(path) if kind == "crops" else {}
    items = [
        FaceItem(it.identity, str(it.path), splits.get(it.key),
                 geometry.get(it.path.relative_to(path).as_posix()))
        for it in found
    ]
    names = sorted({it.identity for it in items})
    return FaceDataset(path, kind, items, names).split(split)


def crop_geometry(crops: str | Path) -> dict[str, Face]:
    """``{output (relative path): face in crop pixels}`` of a ``celebface crop`` folder."""
    from celebface.cropping.crop import crop_matrix, map_face
    from celebface.cropping.records import face_from_row, read_manifest

    crops = Path(crops)
    try:
        settings = json.loads((crops / "crop.json").read_text(encoding="utf-8"))["settings"]
        margin, size = float(settings["margin"]), int(settings["size"])
        align = bool(settings.get("align", False))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: crop.json unreadable (%s); faces will be located afresh", crops, exc)
        return {}
    out = {}
    for row in read_manifest(crops):
        try:
            face = face_from_row(row)
            out[row["output"]] = map_face(face, crop_matrix(face, margin, size, align))
        except (ValueError, KeyError) as exc:
            log.warning("%s: manifest row for %s unusable (%s)", crops, row.get("output"), exc)
    return out


def _open_pack(path: Path) -> FaceDataset:
    from celebface.packing import load_packed

    packed = load_packed(path)
    size = int(packed.images.shape[1]) if packed.images.ndim == 4 else 0
    items = []
    for i, (p, label, s) in enumerate(zip(packed.paths, packed.labels, packed.splits,
                                          strict=True)):
        items.append(FaceItem(packed.label_names[int(label)], p, s,
                              _packed_face(p, size, packed.fit), i))
    return FaceDataset(path, "pack", items, list(packed.label_names),
                       str(path / "all_images.npy"))


def _packed_face(source: str, size: int, fit: str) -> Face | None:
    """The face of a packed image made from a (square) ``celebface crop`` output, scaled to the
    pack's side; ``None`` when the packed file was not such a crop."""
    from celebface.data.stage import folder_kind

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
