"""Packing face crops into memory-mappable arrays for training (reading a pack:
:func:`celebface.data.open_dataset`)."""

from celebface.packing.pack import PACK_FILES, PackConfig, PackSummary, fit_square, pack_dataset

__all__ = ["PACK_FILES", "PackConfig", "PackSummary", "fit_square", "pack_dataset"]
