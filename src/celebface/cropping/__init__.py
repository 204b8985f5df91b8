"""The crop stage: photos to square (or 5-point aligned) face crops, with a manifest."""

from celebface.cropping.crop import crop_face, square_box
from celebface.cropping.dataset import (
    POLICIES,
    CropConfig,
    CropSummary,
    crop_dataset,
    select_faces,
)

__all__ = ["POLICIES", "CropConfig", "CropSummary", "crop_dataset", "crop_face", "select_faces",
           "square_box"]
