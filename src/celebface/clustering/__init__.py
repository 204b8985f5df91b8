"""Grouping the faces of unlabelled photos into people (``celebface cluster``)."""

from celebface.clustering.group import (
    LARGE,
    METHODS,
    NEIGHBOURS,
    SINGLETON,
    average_linkage,
    bcubed,
    centre_similarity,
    cluster_vectors,
    reranked_distances,
)
from celebface.clustering.run import (
    ClusterConfig,
    ClusterError,
    ClusterSummary,
    cluster_photos,
    list_photos,
)

__all__ = [
    "LARGE",
    "METHODS",
    "NEIGHBOURS",
    "SINGLETON",
    "ClusterConfig",
    "ClusterError",
    "ClusterSummary",
    "average_linkage",
    "bcubed",
    "centre_similarity",
    "cluster_photos",
    "cluster_vectors",
    "list_photos",
    "reranked_distances",
]
