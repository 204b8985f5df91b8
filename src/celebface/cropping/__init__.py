"""The crop stage: photos to square (or 5-point aligned) face crops, with a manifest (the
geometry is :mod:`celebface.geometry`, the manifest's format :mod:`celebface.data.crops`)."""

from celebface.cropping.dataset import (
    POLICIES,
    CropConfig,
    CropSummary,
    crop_dataset,
    select_faces,
)

__all__ = ["POLICIES", "CropConfig", "CropSummary", "crop_dataset", "select_faces"]
