"""Grouping the faces of unlabelled photos into people (``celebface cluster``)."""

from celebface.clustering.group import (
    METHODS,
    SINGLETON,
    bcubed,
    centre_similarity,
    cluster_vectors,
)
from celebface.clustering.run import (
    ClusterConfig,
    ClusterError,
    ClusterSummary,
    cluster_photos,
    list_photos,
)

__all__ = [
    "METHODS",
    "SINGLETON",
    "ClusterConfig",
    "ClusterError",
    "ClusterSummary",
    "bcubed",
    "centre_similarity",
    "cluster_photos",
    "cluster_vectors",
    "list_photos",
]
