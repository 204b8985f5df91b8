"""Training ``face-resnet`` with the shared fit loop."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from celebface.device import resolve_device
from celebface.errors import InputError
from celebface.io import atomic_write_json
from celebface.plots import plot_history
from celebface.recognition.dlib_resnet import DlibEmbedder
from celebface.recognition.dlib_torch import freeze_levels
from celebface.recognition.dlib_torch_net import DlibFaceResNet
from celebface.training.chips import aligned_chips, default_cache_dir
from celebface.training.data import ImageData, limit_rows, load_image_data
from celebface.training.face_resnet.config import KIND, FaceResNetConfig
from celebface.training.face_resnet.data import ChipData, trunk_maps
from celebface.training.face_resnet.model import FaceResNetModel
from celebface.training.face_resnet.net import ClassHead, FaceResNetNet, build_dlib_net, step_fn
from celebface.training.frozen import FrozenMaps
from celebface.training.loop import classification_metrics, fit, run_fingerprint
from celebface.training.registry import make_config
from celebface.validate import flat_settings

log = logging.getLogger(__name__)


def _centroids(model: FaceResNetNet, data: Dataset, num_classes: int, device: str,
               batch_size: int) -> torch.Tensor:
    """Per-class mean of the 128-d vectors over ``data`` (unit vectors for margin heads)."""

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


@dataclass
class _Rows:
    """The identities a run trains on, each chip's label among them and the rows it uses."""

    names: list[str]
    labels: np.ndarray
    train: np.ndarray
    val: np.ndarray


def _rows(images: ImageData, usable: np.ndarray, cfg: FaceResNetConfig, data: str | Path
          ) -> _Rows:
    """The train and val rows with a usable chip, of ``cfg.identities`` only when given (the
    chips and maps stay those of the whole folder: only the rows change), at most
    ``cfg.limit_per_class`` train rows per identity."""
    names, labels = list(images.label_names), images.labels
    keep = usable.copy()
    if cfg.identities is not None:
        unknown = sorted(set(cfg.identities) - set(names))
        if unknown:
            raise InputError(f"{data}: no identity {unknown[0]!r}")
        names = sorted(cfg.identities)
        old = np.array([names.index(n) if n in names else -1 for n in images.label_names])
        labels = old[images.labels]
        keep &= labels >= 0
    tr, va = images.indices("train"), images.indices("val")
    tr, va = tr[keep[tr]], va[keep[va]]
    tr = limit_rows(tr, labels, cfg.limit_per_class, cfg.loop.seed)
    if len(tr) == 0:
        raise InputError(f"{data}: no train rows")
    return _Rows(names, labels, tr, va)


@dataclass
class _Datasets:
    train: Dataset
    val: Dataset | None
    plain_train: Dataset  #: the train rows without augmentation (the head's centroids)
    cached: bool  #: the frozen levels' maps are cached: the network starts after them


def _datasets(base: DlibFaceResNet, chips: Any, rows: _Rows, cache: Path, cfg: FaceResNetConfig,
              device: str) -> _Datasets:
    """The train and val data: the frozen levels' cached maps (``trunk_cache`` with frozen
    levels) or the chips. With ``--tta flip`` the val rows hold both views (when the mirror
    is at hand), so the best epoch is chosen on what ``predict_proba`` then reports."""
    cached = cfg.trunk_cache and cfg.freeze > 0
    val_flip = _val_flip(cfg)
    tr, va, labels = rows.train, rows.val, rows.labels
    if not cached:
        return _Datasets(ChipData(chips.images, tr, labels, cfg.augment),
                         ChipData(chips.images, va, labels, False, all_views=val_flip)
                         if len(va) else None,
                         ChipData(chips.images, tr, labels, False), cached)
    tag = "dlib" if cfg.pretrained == "dlib" else f"random{cfg.loop.seed}"
    views = 2 if cfg.cache_flip else 1
    maps = trunk_maps(base.to(device), chips.images, cfg.freeze,
                      cache / f"trunk-{chips.key}-L{cfg.freeze}-{tag}-v{views}.npy", device,
                      cfg.loop.progress, cfg.cache_flip)
    return _Datasets(FrozenMaps(maps, tr, labels, cfg.augment),
                     FrozenMaps(maps, va, labels, False, all_views=val_flip) if len(va) else None,
                     FrozenMaps(maps, tr, labels, False), cached)


def _val_flip(cfg: FaceResNetConfig) -> bool:
    """Whether validation averages each chip with its mirror image (``--tta flip``, when the
    mirror's maps are cached or the chips are used)."""
    return cfg.tta == "flip" and (cfg.cache_flip or not (cfg.trunk_cache and cfg.freeze > 0))


def _optimizer(net: FaceResNetNet, cfg: FaceResNetConfig) -> torch.optim.Optimizer:
    """AdamW: the head at ``lr``, the trained levels at ``lr * backbone_lr``."""
    trained = [p for p in net.net.parameters() if p.requires_grad]
    return torch.optim.AdamW(
        [{"params": list(net.head.parameters()), "lr": cfg.loop.lr},
         {"params": trained, "lr": cfg.loop.lr * cfg.backbone_lr}],
        weight_decay=cfg.loop.weight_decay)


def train(data: str | Path, out: str | Path, **config: Any) -> FaceResNetModel:
    """Fine-tune dlib's ResNet on the face crops in ``data`` (folder or pack); resumable."""

    cfg: FaceResNetConfig = make_config(FaceResNetConfig, config, KIND)
    out = Path(out)
    images = load_image_data(data, seed=cfg.loop.seed, val_fraction=cfg.val_fraction)
    aligner = DlibEmbedder()
    cache = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    chips = aligned_chips(images.paths, aligner, cache, progress=cfg.loop.progress)
    rows = _rows(images, chips.ok, cfg, data)
    device = resolve_device(cfg.loop.device)
    torch.manual_seed(cfg.loop.seed)
    base = build_dlib_net(cfg.pretrained, trainable=True, seed=cfg.loop.seed)
    freeze_levels(base, cfg.freeze)
    hs = cfg.head_settings()
    head = ClassHead(len(rows.names), hs["head"], hs["scale"], hs["margin"])
    sets = _datasets(base, chips, rows, cache, cfg, device)
    net = FaceResNetNet(base, head, cfg.freeze if sets.cached else 0).to(device)
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    if cfg.init_head == "centroids" and not resuming:
        head.init_from_centroids(_centroids(net, sets.plain_train, len(rows.names), device,
                                            cfg.loop.batch_size))
    log.info("face-resnet: %d train / %d val chips, %d identities, %s head, levels 1-%d "
             "frozen%s", len(rows.train), len(rows.val), len(rows.names), cfg.head, cfg.freeze,
             " (cached)" if sets.cached else "")
    fingerprint = run_fingerprint(cfg, data, rows.names)
    if _val_flip(cfg):  # tta may change on resuming, but not how the best epoch was chosen
        fingerprint["validation"] = "flip"
    result = fit(net, sets.train, sets.val, out / "checkpoints", cfg.loop,
                 step=functools.partial(step_fn, label_smoothing=cfg.label_smoothing),
                 metrics=classification_metrics, optimizer=_optimizer(net, cfg),
                 fingerprint=fingerprint)
    atomic_write_json(out / "history.json", result.history)

    plot_history(result.history, out / "curves.png")
    model = FaceResNetModel(net.cpu(), rows.names, {
        "config": {k: v for k, v in flat_settings(cfg).items() if k != "progress"},
        "head": hs, "alignment": aligner.settings(),
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if sets.val is not None else None,
        "trained_on": result.device, "train_count": len(rows.train),
        "val_count": len(rows.val), "preprocessing": {"tta": cfg.tta},
    }, device=cfg.loop.device)
    model.save(out)
    model.model_dir = str(out)
    return model
