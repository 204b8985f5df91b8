"""Training ``face-resnet`` with the shared fit loop."""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from celebface.errors import InputError
from celebface.io import atomic_write_json
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.recognition.dlib_torch import freeze_levels
from celebface.training.chips import aligned_chips
from celebface.training.data import load_image_data
from celebface.training.face_resnet.config import KIND, FaceResNetConfig
from celebface.training.face_resnet.data import ChipData, trunk_maps
from celebface.training.face_resnet.model import FaceResNetModel
from celebface.training.face_resnet.net import ClassHead, FaceResNetNet, build_dlib_net, step_fn
from celebface.training.frozen import FrozenMaps
from celebface.training.loop import LoopConfig, classification_metrics, fit, run_fingerprint
from celebface.training.registry import make_config

log = logging.getLogger(__name__)


def _centroids(model: FaceResNetNet, data: Dataset, num_classes: int, device: str,
               batch_size: int) -> torch.Tensor:
    """Per-class mean of the 128-d vectors over ``data`` (unit vectors for margin heads)."""
    from torch.utils.data import DataLoader

    sums = torch.zeros(num_classes, 128)
    counts = torch.zeros(num_classes)
    model.eval()
    with torch.inference_mode():
        for x, y in DataLoader(data, batch_size=batch_size):
            e = model.embed(x.to(device)).float().cpu()
            if model.head.head != "softmax":
                e = F.normalize(e)
            sums.index_add_(0, y, e)
            counts.index_add_(0, y, torch.ones(len(y)))
    return sums / counts.clamp(min=1)[:, None]


def train(data: str | Path, out: str | Path, **config: Any) -> FaceResNetModel:
    """Fine-tune dlib's ResNet on the face crops in ``data`` (folder or pack); resumable."""
    from celebface.device import resolve_device
    from celebface.training.chips import default_cache_dir

    cfg: FaceResNetConfig = make_config(FaceResNetConfig, config, KIND)
    out = Path(out)
    images = load_image_data(data, seed=cfg.seed, val_fraction=cfg.val_fraction)
    aligner = DlibEmbedder()
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    chips = aligned_chips(images.paths, aligner, cache, progress=cfg.progress)
    names, labels = list(images.label_names), images.labels
    keep = chips.ok.copy()
    if cfg.identities is not None:
        unknown = sorted(set(cfg.identities) - set(names))
        if unknown:
            raise InputError(f"{data}: no identity {unknown[0]!r}")
        # the chips and maps stay those of the whole folder: only the rows change
        names = sorted(cfg.identities)
        old = np.array([names.index(n) if n in names else -1 for n in images.label_names])
        labels = old[images.labels]
        keep &= labels >= 0
    tr, va = images.indices("train"), images.indices("val")
    tr, va = tr[keep[tr]], va[keep[va]]
    if cfg.limit_per_class:
        rng = np.random.default_rng(cfg.seed)
        tr = np.sort(np.concatenate([rng.permutation(tr[labels[tr] == c])[:cfg.limit_per_class]
                                     for c in np.unique(labels[tr])]))
    if len(tr) == 0:
        raise InputError(f"{data}: no train rows")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    base = build_dlib_net(cfg.pretrained, trainable=True, seed=cfg.seed)
    freeze_levels(base, cfg.freeze)
    hs = cfg.head_settings()
    head = ClassHead(len(names), hs["head"], hs["scale"], hs["margin"])
    cached = cfg.trunk_cache and cfg.freeze > 0
    # --tta flip: the fit loop's val accuracy (and so the best epoch) is that of the chip and
    # its mirror image together (when the mirror is at hand), what predict_proba then reports
    val_flip = cfg.tta == "flip" and (cfg.cache_flip or not cached)
    if cached:
        tag = "dlib" if cfg.pretrained == "dlib" else f"random{cfg.seed}"
        views = 2 if cfg.cache_flip else 1
        maps = trunk_maps(base.to(device), chips.images, cfg.freeze,
                          cache / f"trunk-{chips.key}-L{cfg.freeze}-{tag}-v{views}.npy", device,
                          cfg.progress, cfg.cache_flip)
        train_ds: Dataset = FrozenMaps(maps, tr, labels, cfg.augment)
        val_ds: Dataset | None = FrozenMaps(maps, va, labels, False,
                                            all_views=val_flip) if len(va) else None
        plain_train: Dataset = FrozenMaps(maps, tr, labels, False)
    else:
        train_ds = ChipData(chips.images, tr, labels, cfg.augment)
        val_ds = ChipData(chips.images, va, labels, False, all_views=val_flip) if len(va) else None
        plain_train = ChipData(chips.images, tr, labels, False)
    net = FaceResNetNet(base, head, cfg.freeze if cached else 0).to(device)
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    if cfg.init_head == "centroids" and not resuming:
        head.init_from_centroids(_centroids(net, plain_train, len(names), device,
                                            cfg.batch_size))
    log.info("face-resnet: %d train / %d val chips, %d identities, %s head, levels 1-%d "
             "frozen%s", len(tr), len(va), len(names), cfg.head, cfg.freeze,
             " (cached)" if cached else "")
    trained = [p for p in base.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [{"params": list(head.parameters()), "lr": cfg.lr},
         {"params": trained, "lr": cfg.lr * cfg.backbone_lr}],
        weight_decay=cfg.weight_decay)
    loop = LoopConfig(
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, lr_decay=cfg.lr_decay,
        weight_decay=cfg.weight_decay, patience=cfg.patience, device=cfg.device, amp=cfg.amp,
        num_workers=cfg.num_workers, seed=cfg.seed, max_steps_per_epoch=cfg.max_steps_per_epoch,
        max_val_steps=cfg.max_val_steps, progress=cfg.progress)
    step = functools.partial(step_fn, label_smoothing=cfg.label_smoothing)
    fingerprint = run_fingerprint(cfg, data, names)
    if val_flip:  # tta may change on resuming, but not how the best epoch was chosen
        fingerprint["validation"] = "flip"
    result = fit(net, train_ds, val_ds, out / "checkpoints", loop, step=step,
                 metrics=classification_metrics, optimizer=optimizer,
                 fingerprint=fingerprint)
    atomic_write_json(out / "history.json", result.history)
    from celebface.plots import plot_history

    plot_history(result.history, out / "curves.png")
    model = FaceResNetModel(net.cpu(), names, {
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "head": hs, "alignment": aligner.settings(),
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if val_ds is not None else None,
        "trained_on": result.device, "train_count": len(tr), "val_count": len(va),
        "preprocessing": {"tta": cfg.tta},
    }, device=cfg.device)
    model.save(out)
    model.model_dir = str(out)  # type: ignore[attr-defined]
    return model
