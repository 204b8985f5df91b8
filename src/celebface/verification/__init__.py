"""Face verification (same person or not), and the face finding it shares with clustering and
auditing."""

from celebface.io.images import ImageInputError, as_rgb
from celebface.types import Verification
from celebface.verification.compare import NoFaceError, cosine, gallery_settings, verify
from celebface.verification.faces import (
    FoundFace,
    embed_found,
    find_and_embed,
    locate,
    whole_face,
)

__all__ = [
    "FoundFace",
    "ImageInputError",
    "NoFaceError",
    "Verification",
    "as_rgb",
    "cosine",
    "embed_found",
    "find_and_embed",
    "gallery_settings",
    "locate",
    "verify",
    "whole_face",
]
