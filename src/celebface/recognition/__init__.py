"""Face embedders (dlib ResNet, FaceNet, trained models) and dataset embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celebface.errors import InputError, OptionError
from celebface.recognition.base import Embedder, l2_normalize
from celebface.recognition.dataset import EmbedConfig, Embeddings, embed_dataset, load_embeddings
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.registry import (
    EmbedderConfig,
    build_registered,
    embedder_config,
    embedder_names,
    register_embedder,
)
from celebface.recognition.spec import (
    DEFAULT_EMBEDDER,
    EmbedderSpec,
    build_embedder,
    default_embedder,
)
from celebface.recognition.tta import FlipTTA, combine_views


def get_embedder(
    name: str = DEFAULT_EMBEDDER, device: str = "auto", tta: str = "none", **options: Any
) -> Embedder:
    """An embedder by registered name (``dlib``, ``facenet``, a fusion ``dlib+facenet``; see
    :mod:`celebface.recognition.registry`) or a trained model folder (its embedding layer).
    ``tta="flip"`` averages each face with its mirror image. Options go to the embedder's
    builder (``weights=PATH`` and ``FacenetConfig`` fields for facenet, ``DlibConfig`` fields
    for dlib, ``fusion_weights`` for a fusion)."""
    from celebface.recognition.spec import builder_for, check_tta

    check_tta(tta)
    if "weights" in options and options["weights"] is None:  # no weights file given
        del options["weights"]
    embedder = build_registered(name, device, options)
    if embedder is None and Path(name).is_dir():
        if options:
            raise OptionError(f"{name}: a model folder embedder takes no options "
                            f"({', '.join(options)})")
        embedder = builder_for("model-folder")(name, device)
    if embedder is None:
        raise InputError(f"unknown embedder {name!r}: choose {', '.join(embedder_names())} "
                         "or a trained model folder")
    return FlipTTA(embedder) if tta == "flip" else embedder


__all__ = [
    "DlibConfig",
    "DlibEmbedder",
    "EmbedConfig",
    "Embedder",
    "EmbedderConfig",
    "EmbedderSpec",
    "Embeddings",
    "FlipTTA",
    "build_embedder",
    "combine_views",
    "default_embedder",
    "embed_dataset",
    "embedder_config",
    "embedder_names",
    "get_embedder",
    "l2_normalize",
    "load_embeddings",
    "register_embedder",
]
