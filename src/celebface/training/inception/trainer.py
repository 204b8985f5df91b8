"""Training the ``inception`` model with the shared fit loop."""

from __future__ import annotations

import functools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celebface.device import resolve_device
from celebface.errors import InputError
from celebface.io import atomic_write_json
from celebface.models.store import sha256_of
from celebface.training.chips import default_cache_dir
from celebface.training.data import ImageData, limit_rows, load_image_data
from celebface.training.inception.aligned import chip_data, trunk_maps
from celebface.training.inception.config import ALIGNMENT, InceptionConfig
from celebface.training.inception.data import FaceImages
from celebface.training.inception.model import InceptionModel
from celebface.training.inception.net import build_network, load_imagenet
from celebface.training.loop import classification_step, fit, make_optimizer, run_fingerprint
from celebface.training.registry import make_config
from celebface.validate import flat_settings

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


@dataclass
class _Rows:
    """The images a run trains on (aligned chips with ``align``) and its train and val rows."""

    images: ImageData
    train: np.ndarray
    val: np.ndarray
    chips: Any = None  #: with ``align``: the aligned chips
    cutter: Any = None  #: with ``align``: what cuts them


def _rows(data: str | Path, cfg: InceptionConfig, cache: Path, timing: dict[str, float]
          ) -> _Rows:
    """The images of ``data`` (with ``align``: their aligned chips, the seconds taken under
    ``timing["chips_s"]``), the train rows (at most ``limit_per_class`` per identity) and
    the val rows."""
    images = load_image_data(data, seed=cfg.loop.seed, val_fraction=cfg.val_fraction)
    rows = _Rows(images, images.indices("train"), images.indices("val"))
    if cfg.align:

        t0 = time.perf_counter()
        rows.images, rows.chips, rows.cutter = chip_data(images, cache, cfg.chip_padding,
                                                         cfg.loop.progress)
        rows.train, rows.val = (rows.train[rows.chips.ok[rows.train]],
                                rows.val[rows.chips.ok[rows.val]])
        timing["chips_s"] = round(time.perf_counter() - t0, 1)
    rows.train = limit_rows(rows.train, rows.images.labels, cfg.limit_per_class, cfg.loop.seed)
    if len(rows.train) == 0:
        raise InputError(f"{data}: no train rows")
    return rows


def _cached_maps(net: Any, rows: _Rows, cfg: InceptionConfig, cache: Path,
                 weights_path: Path | None, timing: dict[str, float]) -> tuple[Any, Any]:
    """Train and val data of the frozen blocks' maps of the chips (computed once, cached; the
    seconds under ``timing["maps_s"]``); ``net`` then starts after the frozen blocks."""
    from celebface.training.frozen import FrozenMaps

    t0 = time.perf_counter()
    tag = (f"imagenet{sha256_of(weights_path)[:12]}" if weights_path
           else f"random{cfg.loop.seed}")
    maps = trunk_maps(net, rows.chips, cfg.chip_padding, cfg.input_size, cfg.freeze, cache, tag,
                      resolve_device(cfg.loop.device), cfg.loop.progress)
    timing["maps_s"] = round(time.perf_counter() - t0, 1)
    net.from_block = cfg.freeze
    labels = rows.images.labels
    return (FrozenMaps(maps, rows.train, labels, cfg.augment),
            FrozenMaps(maps, rows.val, labels, False) if len(rows.val) else None)


def _optimizer(net: Any, cfg: InceptionConfig) -> Any:
    """The head at ``lr``, the trained backbone blocks at ``lr * backbone_lr``; fused: one
    kernel per step (on a CPU several times faster for the head's first layer)."""

    trunk = [p for p in net.features.parameters() if p.requires_grad]
    head = [p for m in (net.embedding, net.classifier) for p in m.parameters()]
    groups = [{"params": head, "lr": cfg.loop.lr}]
    if trunk:
        groups.append({"params": trunk, "lr": cfg.loop.lr * cfg.backbone_lr})
    return make_optimizer(groups, cfg.loop, fused=True)


def _preprocessing(rows: _Rows, cfg: InceptionConfig) -> dict[str, Any]:
    """``model.json``'s ``preprocessing``: how images become the network's input."""
    aligned = {"align": ALIGNMENT, "alignment": rows.cutter.settings(),
               "chip_padding": cfg.chip_padding} if rows.cutter else {}
    return {"fit": rows.images.fit, "tta": cfg.tta, **aligned}


def train(data: str | Path, out: str | Path, **config: Any) -> InceptionModel:
    """Train a backbone + the reference head on the face crops in ``data``; early stopping on
    the val rows' accuracy; resumable (rerun with the same ``out``). With ``align`` it trains
    on aligned chips (:mod:`celebface.training.inception.aligned`); ``model.json`` records the
    seconds of each step under ``timing``."""
    import torch


    cfg: InceptionConfig = make_config(InceptionConfig, config, "inception")
    out = Path(out)
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    timing: dict[str, float] = {}  # seconds of the one-time steps and of the fit
    rows = _rows(data, cfg, cache, timing)
    names = rows.images.label_names
    torch.manual_seed(cfg.loop.seed)
    net = build_network(len(names), cfg.input_size, cfg.backbone, cfg.freeze)
    weights_path = None
    cached = rows.chips is not None and cfg.trunk_cache and cfg.freeze > 0
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    if cfg.pretrained == "imagenet" and (cached or not resuming):  # the cache needs them
        weights_path = load_imagenet(net, cfg.weights, cfg.backbone)
    if cached:
        train_ds, val_ds = _cached_maps(net, rows, cfg, cache, weights_path, timing)
    else:
        train_ds = FaceImages(rows.images, rows.train, cfg.input_size, augment=cfg.augment)
        val_ds = FaceImages(rows.images, rows.val, cfg.input_size, augment=False) \
            if len(rows.val) else None
    log.info("inception (%s): %d train / %d val %s, %d identities, input %d px, %s%s",
             cfg.backbone, len(rows.train), len(rows.val),
             "aligned chips" if rows.chips else "images", len(names), cfg.input_size,
             "ImageNet start" if weights_path else "from scratch",
             f", blocks 1-{cfg.freeze} cached" if cached else "")
    step = functools.partial(classification_step, label_smoothing=cfg.label_smoothing)
    t0 = time.perf_counter()
    result = fit(net, train_ds, val_ds, out / "checkpoints", cfg.loop, step=step,
                 optimizer=_optimizer(net, cfg),
                 fingerprint=run_fingerprint(cfg, data, names))
    timing = whole_run_timing(out, timing, result.history,
                              round(time.perf_counter() - t0, 1), resuming)
    atomic_write_json(out / "history.json", result.history)
    net.from_block = 0
    model = InceptionModel(net, names, cfg.input_size, {
        "config": {**flat_settings(cfg),
                   "weights": str(weights_path) if weights_path else cfg.weights},
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if val_ds is not None else None,
        "trained_on": result.device,
        "train_count": len(rows.train), "val_count": len(rows.val), "timing": timing,
        "preprocessing": _preprocessing(rows, cfg),
    }, device=cfg.loop.device)
    model.save(out)
    model.model_dir = str(out)
    return model
