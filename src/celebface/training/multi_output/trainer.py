"""Training the multi-output model on a box dataset with the shared fit loop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from celebface.data import DatasetError, open_dataset
from celebface.data.boxes import is_box_dataset
from celebface.errors import InputError
from celebface.io import atomic_write_json, first_per_identity
from celebface.training.loop import fit, run_fingerprint
from celebface.training.multi_output.config import MultiOutputConfig
from celebface.training.multi_output.data import (
    BoxArrays,
    BoxTensorDataset,
    face_landmarks,
    load_box_arrays,
    normalise,
    split_items,
)
from celebface.training.multi_output.losses import make_step, multi_output_metrics
from celebface.training.multi_output.model import MultiOutputModel
from celebface.training.multi_output.net import MultiOutputNet, build_net
from celebface.training.registry import make_config
from celebface.validate import flat_settings

log = logging.getLogger(__name__)


def train(data: str | Path, out: str | Path, **config: Any) -> MultiOutputModel:
    """Train the multi-output model on the box dataset ``data``; save it in ``out``.

    A rerun with the same ``out`` resumes the fit loop from its last checkpoint."""

    cfg: MultiOutputConfig = make_config(MultiOutputConfig, config, "multi-output")
    if not is_box_dataset(data):
        raise DatasetError(
            f"{data}: the multi-output model needs a box-and-identity dataset, the output "
            "folder of `celebface synth` or `celebface crop` (with its manifest.csv)")
    dataset = open_dataset(data, boxes=True)
    train_items, val_items = split_items(dataset, cfg.val_fraction, cfg.loop.seed)
    if cfg.limit_per_class:
        train_items = first_per_identity(train_items, cfg.limit_per_class)
    label_names = sorted({it.identity for it in train_items})
    unseen = sorted({it.identity for it in val_items} - set(label_names))
    if unseen:
        log.warning("validation identities absent from training are left out: %s",
                    ", ".join(unseen))
    log.info("multi-output: %d train / %d val images, %d identities",
             len(train_items), len(val_items), len(label_names))
    train_arr = load_box_arrays(train_items, label_names, cfg.input_size, cfg.loop.progress)
    val_arr = load_box_arrays(val_items, label_names, cfg.input_size, cfg.loop.progress)
    if len(train_arr.labels) == 0:
        raise InputError(f"{data}: no readable training images")
    if cfg.identity_from == "face":  # landmark targets: dlib's 5-point alignment in the box
        for arr in (train_arr, val_arr):
            arr.landmarks = face_landmarks(arr.images, arr.boxes, cfg.loop.progress)
    val_ds = BoxTensorDataset(val_arr) if len(val_arr.labels) else None

    torch.manual_seed(cfg.loop.seed)
    out = Path(out)
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    net = build_net(len(label_names), cfg.network(), cfg.weights, load_pretrained=not resuming,
                    freeze=cfg.freeze)
    if cfg.identity_from == "face" and not resuming:
        init_face_head(net, train_arr, len(label_names), cfg.loop.batch_size)
    result = fit(net, BoxTensorDataset(train_arr, augment=cfg.augment), val_ds,
                 out / "checkpoints", cfg.loop, step=make_step(cfg),
                 metrics=multi_output_metrics,
                 fingerprint=run_fingerprint(cfg, data, label_names))
    atomic_write_json(out / "history.json", result.history)
    meta = {
        "config": {k: v for k, v in flat_settings(cfg).items() if k != "progress"},
        "data": str(Path(data).resolve()),
        "data_kind": f"box dataset ({dataset.kind})",
        "train_count": len(train_arr.labels), "val_count": len(val_arr.labels),
        "best_epoch": result.best_epoch, "monitor": result.history["monitor"],
        "best": result.best if val_ds is not None else None, "trained_on": result.device,
    }
    model = MultiOutputModel(label_names, net.cpu(), cfg.network(), meta,
                             batch_size=cfg.loop.batch_size, tta=cfg.tta)
    model.save(out)
    return model


def init_face_head(net: MultiOutputNet, data: BoxArrays, num_classes: int,
                   batch_size: int = 64) -> None:
    """Start a ``face`` network's identity head at the classes' mean dlib vectors of the
    training faces, cut at their true landmarks (a nearest-centroid start)."""

    if data.landmarks is None:
        raise InputError("a face identity head starts from the training faces' landmarks")
    sums = torch.zeros(num_classes, 128)
    net.eval()
    with torch.no_grad():
        for start in range(0, len(data.labels), batch_size):
            x = normalise(torch.from_numpy(data.images[start:start + batch_size]))
            lm = torch.from_numpy(data.landmarks[start:start + batch_size])
            emb = torch.nn.functional.normalize(net.face_embeddings(x, lm).float())
            sums.index_add_(0, torch.from_numpy(data.labels[start:start + batch_size]), emb)
    net.face_head.init_from_centroids(sums)
