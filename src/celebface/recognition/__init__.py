"""Face embedders (dlib ResNet, FaceNet, SFace, fusions, trained models) and dataset
embedding; an embedder is built from its :class:`EmbedderSpec` (``EmbedderSpec("dlib",
"flip").build("cpu")``)."""

from __future__ import annotations

from celebface.recognition.base import Embedder, l2_normalize
from celebface.recognition.dataset import EmbedConfig, Embeddings, embed_dataset, load_embeddings
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.registry import (
    EmbedderConfig,
    embedder_config,
    embedder_names,
    register_embedder,
)
from celebface.recognition.spec import DEFAULT_EMBEDDER, EmbedderSpec
from celebface.recognition.tta import FlipTTA, combine_views

__all__ = [
    "DEFAULT_EMBEDDER",
    "DlibConfig",
    "DlibEmbedder",
    "EmbedConfig",
    "Embedder",
    "EmbedderConfig",
    "EmbedderSpec",
    "Embeddings",
    "FlipTTA",
    "combine_views",
    "embed_dataset",
    "embedder_config",
    "embedder_names",
    "l2_normalize",
    "load_embeddings",
    "register_embedder",
]
