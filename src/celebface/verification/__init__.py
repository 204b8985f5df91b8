"""Face verification (same person or not), and the face finding it shares with clustering and
auditing."""

# NoThresholdError, gallery_pair_threshold: kept only for serve/service.py (_pair_threshold)
# until it imports them from celebface.gallery.policy, where the thresholds of pairs live
from celebface.gallery.policy import NoThresholdError, gallery_pair_threshold
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
    "NoThresholdError",
    "Verification",
    "as_rgb",
    "cosine",
    "embed_found",
    "find_and_embed",
    "gallery_pair_threshold",
    "gallery_settings",
    "locate",
    "verify",
    "whole_face",
]
