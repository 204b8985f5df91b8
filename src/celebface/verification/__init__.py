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
from celebface.verification.thresholds import (
    NoThresholdError,
    cluster_threshold,
    embedder_key,
    gallery_pair_threshold,
    measured_pair_threshold,
    pair_threshold,
    rerank_cut,
)

__all__ = [
    "FoundFace",
    "ImageInputError",
    "NoFaceError",
    "NoThresholdError",
    "Verification",
    "as_rgb",
    "cluster_threshold",
    "cosine",
    "embed_found",
    "embedder_key",
    "find_and_embed",
    "gallery_pair_threshold",
    "gallery_settings",
    "locate",
    "measured_pair_threshold",
    "pair_threshold",
    "rerank_cut",
    "verify",
    "whole_face",
]
