"""One way to open a labelled face dataset: a photo folder, a ``crop`` output, a ``pack``, an
embeddings folder (``embed``) or a box dataset (``synth``; a ``crop`` output read for its
source photos).

Every stage that reads labelled data (embed, enroll, calibrate, train, evaluate) goes through
:func:`open_dataset`, which routes by the folder's stage manifest ``kind``
(:func:`celebface.data.stage.folder_kind`). Each :class:`FaceItem` says where its image is,
whose face it is, its split and, when known, where the face is in that image (box and 5
landmarks): a folder written by
``celebface crop`` carries that geometry (its ``manifest.csv`` has each face in source pixels
and ``crop.json`` the crop settings, so the face in crop pixels follows exactly), and a pack of
such crops carries it too. For other folders the face is unknown and the embedder's
alignment rule decides (:meth:`celebface.detection.finder.FaceFinder.locate`). An embeddings
folder's items are its rows (``row``), their vectors in :attr:`FaceDataset.vectors`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from celebface.data.boxes import BOX_KINDS, read_box_items
from celebface.data.embeddings import missing_files, read_embeddings
from celebface.data.items import (
    KINDS,
    DatasetError,
    FaceDataset,
    FaceItem,
    MissingDatasetError,
    NotAFolderError,
    crop_geometry,
    list_dataset,
)
from celebface.data.pack import read_pack
from celebface.data.stage import folder_kind
from celebface.io import read_splits
from celebface.types import Face

log = logging.getLogger(__name__)

__all__ = ["KINDS", "DatasetError", "FaceDataset", "FaceItem", "MissingDatasetError",
           "NotAFolderError", "crop_geometry", "kind_of", "list_dataset", "open_dataset"]


def kind_of(path: str | Path) -> str:
    """``crops`` (a ``celebface crop`` output), ``pack``, ``embeddings``, ``synth`` or
    ``photos`` (any other folder of people), by the stage protocol
    (:func:`celebface.data.stage.folder_kind`): the one vocabulary of dataset kinds."""

    path = Path(path)
    if not path.exists():
        raise MissingDatasetError(f"{path}: no such folder")
    if not path.is_dir():
        raise NotAFolderError(f"{path}: not a folder")
    kind = folder_kind(path)
    if kind in KINDS:
        return kind
    if kind in ("gallery", "model", "report"):
        raise DatasetError(f"{path}: a {kind} folder, not a dataset of people")
    return "photos"


def open_dataset(
    path: str | Path, split: str | None = None, *, boxes: bool = False,
    one_face_only: bool = True,
) -> FaceDataset:
    """Open a dataset folder of any kind (see module doc), optionally one ``split`` of it.

    ``boxes``: a box dataset is wanted (images whose face box is known in their own pixels):
    a synth output, or a crop output read for its source photos (``one_face_only``: photos
    with several detected faces left out); another kind is a :class:`DatasetError`."""
    path = Path(path)
    if not path.exists():
        raise MissingDatasetError(f"{path}: no such folder")
    kind = kind_of(path)
    if boxes:
        return _open_boxes(path, kind, one_face_only).split(split)
    if kind == "pack":

        return read_pack(path).split(split)
    if kind == "embeddings":
        return _open_embeddings(path).split(split)
    found = list_dataset(path)
    if not found:
        raise DatasetError(f"{path}: no images found (expected {path}/<person>/<image>)")
    splits = read_splits(path / "splits.csv") if (path / "splits.csv").is_file() else {}
    if splits and not any(it.key in splits for it in found):
        log.warning("%s: matches none of the images", path / "splits.csv")
    geometry: Mapping[str, Face | None]
    if kind == "synth":
        geometry = {Path(it.path).relative_to(path).as_posix(): it.face
                    for it in _open_boxes(path, kind, False).items}
    else:
        geometry = crop_geometry(path) if kind == "crops" else {}
    items = [replace(it, split=splits.get(it.key),
                     face=geometry.get(Path(it.path).relative_to(path).as_posix()))
             for it in found]
    names = sorted({it.identity for it in items})
    return FaceDataset(path, kind, items, names).split(split)


def _open_boxes(path: Path, kind: str, one_face_only: bool) -> FaceDataset:

    if kind not in BOX_KINDS:
        raise DatasetError(f"{path}: not a box dataset (a {kind} folder; needs a manifest.csv "
                           "with identity,x1,y1,x2,y2 columns, as synth and crop write)")
    items = read_box_items(path, kind, one_face_only)
    if not items:
        raise DatasetError(f"{path}: no usable rows in manifest.csv")
    return FaceDataset(path, kind, items, sorted({it.identity for it in items}))


def _open_embeddings(path: Path) -> FaceDataset:

    missing = missing_files(path)
    if missing:
        raise MissingDatasetError(
            f"{path}: not an embeddings folder (missing {', '.join(missing)})")
    vectors, labels, paths, names, meta, splits = read_embeddings(path)
    items = [FaceItem(names[int(lab)], p, s, row=i)
             for i, (p, lab, s) in enumerate(zip(paths, labels, splits, strict=True))]
    return FaceDataset(path, "embeddings", items, names, vectors=vectors, meta=meta)
