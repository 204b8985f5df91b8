"""Reading images and datasets safely, writing files atomically."""

from celebface.io.atomic import (
    OutputFile,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    json_text,
    remove_leftovers,
)
from celebface.io.datasets import (
    IMAGE_EXTENSIONS,
    first_per_identity,
    is_image_file,
    read_splits,
)
from celebface.io.images import (
    ImageReadError,
    LoadedImage,
    encode_jpeg,
    read_image,
    read_image_bytes,
)
from celebface.io.paths import (
    OutputPathError,
    check_output_dir,
    check_output_file,
    check_writable,
    folder_lock,
    guarded_folder,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "LoadedImage",
    "OutputFile",
    "OutputPathError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_output_dir",
    "check_output_file",
    "check_writable",
    "encode_jpeg",
    "first_per_identity",
    "folder_lock",
    "guarded_folder",
    "is_image_file",
    "json_text",
    "read_image",
    "read_image_bytes",
    "read_splits",
    "remove_leftovers",
]
