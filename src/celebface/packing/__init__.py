"""Packing face crops into memory-mappable arrays for training."""

from celebface.packing.pack import (
    PACK_FILES,
    PackConfig,
    Packed,
    PackSummary,
    fit_square,
    load_packed,
    pack_dataset,
    stratified_splits,
)

__all__ = [
    "PACK_FILES",
    "PackConfig",
    "PackSummary",
    "Packed",
    "fit_square",
    "load_packed",
    "pack_dataset",
    "stratified_splits",
]
