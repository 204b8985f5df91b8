"""Reading images and datasets safely, writing files atomically."""

from celebface.io.atomic import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from celebface.io.datasets import (
    IMAGE_EXTENSIONS,
    DatasetItem,
    first_per_identity,
    is_image_file,
    list_dataset,
    read_splits,
)
from celebface.io.images import (
    ImageReadError,
    LoadedImage,
    encode_jpeg,
    read_image,
    read_image_bytes,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetItem",
    "ImageReadError",
    "LoadedImage",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "encode_jpeg",
    "first_per_identity",
    "is_image_file",
    "list_dataset",
    "read_image",
    "read_image_bytes",
    "read_splits",
]
