"""Training the ``inception`` model with the shared fit loop."""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.io import atomic_write_json
from celebface.training.data import load_image_data
from celebface.training.inception.config import InceptionConfig
from celebface.training.inception.data import FaceImages
from celebface.training.inception.model import InceptionModel
from celebface.training.inception.net import build_network, load_imagenet
from celebface.training.registry import make_config

log = logging.getLogger(__name__)

def train(data: str | Path, out: str | Path, **config: Any) -> InceptionModel:
    """Train a backbone + the reference head on the face crops in ``data``; early stopping on
    the val rows' accuracy; resumable (rerun with the same ``out``)."""
    import torch

    from celebface.training.loop import LoopConfig, classification_step, fit, run_fingerprint

    cfg: InceptionConfig = make_config(InceptionConfig, config, "inception")
    if cfg.pretrained not in ("imagenet", "none"):
        raise InputError(f"--pretrained must be imagenet or none, not {cfg.pretrained!r}")
    out = Path(out)
    images = load_image_data(data, seed=cfg.seed, val_fraction=cfg.val_fraction)
    tr, va = images.indices("train"), images.indices("val")
    if cfg.limit_per_class:
        rng = np.random.default_rng(cfg.seed)
        tr = np.sort(np.concatenate([
            rng.permutation(tr[images.labels[tr] == c])[:cfg.limit_per_class]
            for c in np.unique(images.labels[tr])
        ]))
    if len(tr) == 0:
        raise InputError(f"{data}: no train rows")
    torch.manual_seed(cfg.seed)
    net = build_network(len(images.label_names), cfg.input_size, cfg.backbone, cfg.freeze)
    weights_path = None
    if cfg.pretrained == "imagenet" and not (out / "checkpoints" / "checkpoint.pt").is_file():
        weights_path = load_imagenet(net, cfg.weights, cfg.backbone)
    train_ds = FaceImages(images, tr, cfg.input_size, augment=cfg.augment)
    val_ds = FaceImages(images, va, cfg.input_size, augment=False) if len(va) else None
    log.info("inception (%s): %d train / %d val images, %d identities, input %d px, %s",
             cfg.backbone, len(tr), len(va), len(images.label_names), cfg.input_size,
             "ImageNet start" if weights_path else "from scratch")
    loop = LoopConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_decay=cfg.lr_decay,
        weight_decay=cfg.weight_decay, patience=cfg.patience, device=cfg.device, amp=cfg.amp,
        num_workers=cfg.num_workers, seed=cfg.seed, max_steps_per_epoch=cfg.max_steps_per_epoch,
        max_val_steps=cfg.max_val_steps, progress=cfg.progress,
    )
    step = functools.partial(classification_step, label_smoothing=cfg.label_smoothing)
    result = fit(net, train_ds, val_ds, out / "checkpoints", loop, step=step,
                 fingerprint=run_fingerprint(cfg, data, images.label_names))
    atomic_write_json(out / "history.json", result.history)
    model = InceptionModel(net, images.label_names, cfg.input_size, {
        "config": {**asdict(cfg), "weights": str(weights_path) if weights_path else cfg.weights},
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if val_ds is not None else None,
        "trained_on": result.device,
        "train_count": len(tr), "val_count": len(va),
        "preprocessing": {"fit": images.fit},
    }, device=cfg.device)
    model.save(out)
    model.model_dir = str(out)  # type: ignore[attr-defined]
    return model
