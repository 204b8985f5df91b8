"""The data layer: one item type and one way to open a labelled face dataset."""

from celebface.data.dataset import (
    KINDS,
    DatasetError,
    FaceDataset,
    FaceItem,
    crop_geometry,
    kind_of,
    list_dataset,
    open_dataset,
)

__all__ = ["KINDS", "DatasetError", "FaceDataset", "FaceItem", "crop_geometry", "kind_of",
           "list_dataset", "open_dataset"]
