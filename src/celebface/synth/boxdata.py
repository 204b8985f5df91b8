"""Box-and-identity datasets as :class:`BoxItem` s: a view of the data layer's box datasets
(:func:`celebface.data.open_dataset` with ``boxes=True``; :mod:`celebface.data.boxes`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from celebface.data import FaceItem, open_dataset
from celebface.data.stage import folder_kind


@dataclass(frozen=True)
class BoxItem:
    """One image with the true face box ``(x1, y1, x2, y2)`` in its own (upright) pixels."""

    path: Path
    identity: str
    box: tuple[float, float, float, float]
    size: tuple[int, int] | None  # (width, height) of the image the box refers to
    split: str | None = None

    @classmethod
    def of(cls, item: FaceItem) -> BoxItem:
        assert item.box is not None
        return cls(Path(item.path), item.identity, item.box, item.size, item.split)


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
    """Whether ``path`` is a synth output or a crop output (a box dataset)."""
    return Path(path).is_dir() and folder_kind(path) in ("synth", "crops")


def load_box_dataset(path: str | Path, one_face_only: bool = True) -> BoxDataset:
    """Read a box-and-identity dataset (:mod:`celebface.data.boxes`): a synth output's
    composites, or a crop output's source photos (``one_face_only``: photos with several
    detected faces left out)."""
    dataset = open_dataset(path, boxes=True, one_face_only=one_face_only)
    return BoxDataset(dataset.root, "synth" if dataset.kind == "synth" else "crop",
                      [BoxItem.of(it) for it in dataset.items])
