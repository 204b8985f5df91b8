"""Training the ``inception`` model with the shared fit loop."""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.io import atomic_write_json
from celebface.training.data import load_image_data
from celebface.training.inception.config import ALIGNMENT, InceptionConfig
from celebface.training.inception.data import FaceImages
from celebface.training.inception.model import InceptionModel
from celebface.training.inception.net import build_network, load_imagenet
from celebface.training.registry import make_config

log = logging.getLogger(__name__)

def whole_run_timing(out: Path, timing: dict[str, float], history: dict[str, Any],
                     fit_s: float, resuming: bool) -> dict[str, float]:
    """The seconds of a whole run, resumed ones included: ``fit_s`` is the sum of every
    epoch's time in ``history`` (this call's ``fit_s`` when it has none) and the one-time steps
    of the call that ``resuming`` continues (its ``model.json``) are added to this call's."""
    epochs = sum(float(e.get("time_s", 0)) for e in history.get("epochs", []))
    timing = {**timing, "fit_s": round(epochs, 1) if epochs else fit_s}
    if not resuming:
        return timing
    try:
        before = json.loads((out / "model.json").read_text(encoding="utf-8")).get("timing")
    except (OSError, ValueError):
        return timing
    for key, value in (before or {}).items():
        if key != "fit_s" and isinstance(value, (int, float)):
            timing[key] = round(timing.get(key, 0.0) + value, 1)
    return timing


def train(data: str | Path, out: str | Path, **config: Any) -> InceptionModel:
    """Train a backbone + the reference head on the face crops in ``data``; early stopping on
    the val rows' accuracy; resumable (rerun with the same ``out``). With ``align`` it trains
    on aligned chips (:mod:`celebface.training.inception.aligned`); ``model.json`` records the
    seconds of each step under ``timing``."""
    import torch

    from celebface.device import resolve_device
    from celebface.training.loop import (
        LoopConfig,
        classification_step,
        fit,
        make_optimizer,
        run_fingerprint,
    )

    cfg: InceptionConfig = make_config(InceptionConfig, config, "inception")
    out = Path(out)
    images = load_image_data(data, seed=cfg.seed, val_fraction=cfg.val_fraction)
    tr, va = images.indices("train"), images.indices("val")
    chips = cutter = None
    timing: dict[str, float] = {}  # seconds of the one-time steps and of the fit
    if cfg.align:
        from celebface.training.chips import default_cache_dir
        from celebface.training.inception.aligned import chip_data

        t0 = time.perf_counter()
        cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        images, chips, cutter = chip_data(images, cache, cfg.chip_padding, cfg.progress)
        tr, va = tr[chips.ok[tr]], va[chips.ok[va]]
        timing["chips_s"] = round(time.perf_counter() - t0, 1)
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
    cached = chips is not None and cfg.trunk_cache and cfg.freeze > 0
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    if cfg.pretrained == "imagenet" and (cached or not resuming):  # the cache needs them
        weights_path = load_imagenet(net, cfg.weights, cfg.backbone)
    if cached:
        from celebface.models.store import sha256_of
        from celebface.training.frozen import FrozenMaps
        from celebface.training.inception.aligned import trunk_maps

        t0 = time.perf_counter()
        tag = f"imagenet{sha256_of(weights_path)[:12]}" if weights_path else f"random{cfg.seed}"
        maps = trunk_maps(net, chips, cfg.chip_padding, cfg.input_size, cfg.freeze, cache, tag,
                          resolve_device(cfg.device), cfg.progress)
        timing["maps_s"] = round(time.perf_counter() - t0, 1)
        net.from_block = cfg.freeze
        train_ds: Any = FrozenMaps(maps, tr, images.labels, cfg.augment)
        val_ds: Any = FrozenMaps(maps, va, images.labels, False) if len(va) else None
    else:
        train_ds = FaceImages(images, tr, cfg.input_size, augment=cfg.augment)
        val_ds = FaceImages(images, va, cfg.input_size, augment=False) if len(va) else None
    log.info("inception (%s): %d train / %d val %s, %d identities, input %d px, %s%s",
             cfg.backbone, len(tr), len(va), "aligned chips" if chips else "images",
             len(images.label_names), cfg.input_size,
             "ImageNet start" if weights_path else "from scratch",
             f", blocks 1-{cfg.freeze} cached" if cached else "")
    loop = LoopConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_decay=cfg.lr_decay,
        weight_decay=cfg.weight_decay, patience=cfg.patience, device=cfg.device, amp=cfg.amp,
        num_workers=cfg.num_workers, seed=cfg.seed, max_steps_per_epoch=cfg.max_steps_per_epoch,
        max_val_steps=cfg.max_val_steps, progress=cfg.progress,
    )
    step = functools.partial(classification_step, label_smoothing=cfg.label_smoothing)
    trunk = [p for p in net.features.parameters() if p.requires_grad]
    head = [p for m in (net.embedding, net.classifier) for p in m.parameters()]
    groups = [{"params": head, "lr": cfg.lr}]
    if trunk:
        groups.append({"params": trunk, "lr": cfg.lr * cfg.backbone_lr})
    # fused: one kernel per step; on a CPU several times faster for the head's first layer
    optimizer = make_optimizer(groups, loop, fused=True)
    t0 = time.perf_counter()
    result = fit(net, train_ds, val_ds, out / "checkpoints", loop, step=step,
                 optimizer=optimizer, fingerprint=run_fingerprint(cfg, data, images.label_names))
    timing = whole_run_timing(out, timing, result.history,
                              round(time.perf_counter() - t0, 1), resuming)
    atomic_write_json(out / "history.json", result.history)
    net.from_block = 0
    model = InceptionModel(net, images.label_names, cfg.input_size, {
        "config": {**asdict(cfg), "weights": str(weights_path) if weights_path else cfg.weights},
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if val_ds is not None else None,
        "trained_on": result.device,
        "train_count": len(tr), "val_count": len(va), "timing": timing,
        "preprocessing": {"fit": images.fit, "tta": cfg.tta, **({
            "align": ALIGNMENT, "alignment": cutter.settings(),
            "chip_padding": cfg.chip_padding} if cutter else {})},
    }, device=cfg.device)
    model.save(out)
    model.model_dir = str(out)  # type: ignore[attr-defined]
    return model
