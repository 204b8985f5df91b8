"""The multi-output model: backbone features (InceptionV3 or MobileNetV2, see
:mod:`celebface.training.backbones`) shared by a face-box head and an identity head.

Trained on a box-and-identity dataset (``celebface synth`` or ``celebface crop`` output, read by
:func:`celebface.data.open_dataset` with ``boxes=True``) with the shared fit loop
(:func:`celebface.training.loop.fit`). Boxes are predicted as normalised ``(x1, y1, x2, y2)``
in ``[0, 1]`` of the input image (the image is resized to a square, so normalised coordinates
map back to any aspect ratio); :meth:`MultiOutputModel.predict` returns them in the input
image's pixels. This module imports torch: it is only imported when the model is used.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from celebface.data import DatasetError, FaceDataset, FaceItem, open_dataset
from celebface.errors import InputError
from celebface.io import (
    ImageReadError,
    atomic_write,
    atomic_write_json,
    first_per_identity,
    read_image,
)
from celebface.training.base import Prediction, TrainedModel, predictions_from_probs
from celebface.training.loop import LoopConfig, fit, run_fingerprint
from celebface.training.registry import make_config, register_model_kind

log = logging.getLogger(__name__)

KIND = "multi-output"
WEIGHTS = "model.pt"


@dataclass
class MultiOutputConfig:
    """Settings of ``celebface train --model multi-output`` (network, losses and fit loop)."""

    input_size: int = 224  #: square input side (InceptionV3 needs at least 75)
    backbone: str = "inception_v3"  #: ``inception_v3`` or ``mobilenet_v2``
    pretrained: str = "none"  #: ``imagenet`` (model store or ``weights``) or ``none``
    weights: str | None = None  #: path of torchvision's ImageNet weights of the backbone
    freeze: int = 0  #: first backbone blocks kept frozen
    box_weight: float = 5.0  #: smooth-L1 box loss weight (normalised coordinates)
    giou_weight: float = 1.0  #: generalised-IoU box loss weight (0 = off)
    class_weight: float = 1.0  #: identity cross-entropy weight
    smooth_l1_beta: float = 0.02
    label_smoothing: float = 0.0
    dropout: float = 0.2  #: before the identity layer
    hidden: int = 256  #: box head hidden units
    augment: bool = True  #: flips, box-keeping crops, brightness/contrast
    val_fraction: float = 0.15  #: used when the data has no splits
    limit_per_class: int | None = None  #: at most this many train images per identity
    # fit loop (see celebface.training.loop.LoopConfig)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    lr_decay: float = 0.95
    optimizer: str = "adam"
    weight_decay: float = 0.0
    patience: int = 5
    monitor: str = "val_score"  #: ``score`` = mean of accuracy and mean IoU
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    seed: int = 0
    max_steps_per_epoch: int | None = None
    max_val_steps: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        from celebface.training.backbones import spec

        minimum = spec(self.backbone).min_input
        if self.input_size < minimum:
            raise InputError(f"input_size must be at least {minimum} ({self.backbone})")
        if self.pretrained not in ("imagenet", "none"):
            raise InputError(f"pretrained must be imagenet or none, got {self.pretrained!r}")

    def loop_config(self) -> LoopConfig:
        names = {f.name for f in dataclasses.fields(LoopConfig)}
        values = {k: v for k, v in dataclasses.asdict(self).items() if k in names}
        return LoopConfig(mode="min" if self.monitor.endswith("loss") else "max", **values)

    def network(self) -> dict[str, Any]:
        """What rebuilds the network and its preprocessing (saved in ``model.json``)."""
        return {"input_size": self.input_size, "hidden": self.hidden, "dropout": self.dropout,
                "pretrained": self.pretrained, "backbone": self.backbone}


# --------------------------------------------------------------------------- network

class MultiOutputNet(nn.Module):
    """A backbone trunk; the identity head reads the pooled last map, the box head a mid-level
    (stride 16) map, reduced and pooled to 8x8, plus the pooled features.

    Input ``(N, 3, S, S)`` in ``[-1, 1]``; output ``(boxes (N, 4), logits (N, C))`` with boxes
    as normalised ``x1, y1, x2, y2`` (a sigmoid centre and size, so always a valid box)."""

    def __init__(self, num_classes: int, hidden: int = 256, dropout: float = 0.2,
                 backbone: str = "inception_v3", freeze: int = 0):
        super().__init__()
        from celebface.training import backbones

        spec = backbones.spec(backbone)
        self.input_norm = backbones.input_norm(backbone)
        self.features = backbones.build_features(backbone)
        backbones.freeze_blocks(self.features, freeze)
        self._mid = spec.mid_index
        self.box_reduce = nn.Sequential(
            nn.Conv2d(spec.mid_channels, 32, 1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(8), nn.Flatten(),
        )
        self.box_head = nn.Sequential(
            nn.Linear(32 * 64 + spec.out_channels, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, 4),
        )
        self.class_head = nn.Sequential(nn.Dropout(dropout),
                                        nn.Linear(spec.out_channels, num_classes))

    def train(self, mode: bool = True) -> MultiOutputNet:
        from celebface.training.backbones import keep_frozen_eval

        super().train(mode)
        keep_frozen_eval(self.features)
        return self

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input_norm(x)
        mid = x
        for i, block in enumerate(self.features):
            x = block(x)
            if i == self._mid:
                mid = x
        pooled = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        raw = self.box_head(torch.cat([self.box_reduce(mid), pooled], 1)).float()
        centre, size = torch.sigmoid(raw[:, :2]), torch.sigmoid(raw[:, 2:])
        boxes = torch.cat([centre - size / 2, centre + size / 2], 1).clamp(0.0, 1.0)
        return boxes, self.class_head(pooled)


def build_net(num_classes: int, network: Mapping[str, Any], weights: str | None = None,
              load_pretrained: bool = True, freeze: int = 0) -> MultiOutputNet:
    """The network for ``num_classes`` identities (``network`` as
    :meth:`MultiOutputConfig.network`; no ``backbone`` means InceptionV3). With
    ``load_pretrained`` and ``pretrained: imagenet`` the trunk gets its ImageNet weights from
    the model store (local files only; :class:`~celebface.models.store.MissingWeightsError`
    when absent)."""
    backbone = str(network.get("backbone", "inception_v3"))
    net = MultiOutputNet(num_classes, int(network["hidden"]), float(network["dropout"]),
                         backbone, freeze)
    if load_pretrained and network["pretrained"] == "imagenet":
        from celebface.training.backbones import load_imagenet

        load_imagenet(net.features, backbone, weights)
    return net


# --------------------------------------------------------------------------- losses, metrics


def box_area(b: torch.Tensor) -> torch.Tensor:
    return (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)


def paired_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise IoU of two ``(N, 4)`` x1y1x2y2 box tensors."""
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    return inter / (box_area(a) + box_area(b) - inter).clamp(min=1e-9)


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - GIoU`` of row-wise box pairs (Rezatofighi et al., 2019)."""
    iw = (torch.minimum(pred[:, 2], target[:, 2]) - torch.maximum(pred[:, 0], target[:, 0]))
    ih = (torch.minimum(pred[:, 3], target[:, 3]) - torch.maximum(pred[:, 1], target[:, 1]))
    inter = iw.clamp(min=0) * ih.clamp(min=0)
    union = (box_area(pred) + box_area(target) - inter).clamp(min=1e-9)
    hw = torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0])
    hh = torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])
    hull = (hw * hh).clamp(min=1e-9)
    giou = inter / union - (hull - union) / hull
    return (1.0 - giou).mean()


def make_step(config: MultiOutputConfig) -> Any:
    """The fit loop's ``step``: weighted cross-entropy + smooth-L1 + GIoU box losses."""

    def step(model: nn.Module, batch: Sequence[torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, boxes, labels = batch
        pred_boxes, logits = model(images)
        logits = logits.float()
        loss = config.class_weight * F.cross_entropy(
            logits, labels, label_smoothing=config.label_smoothing)
        loss = loss + config.box_weight * F.smooth_l1_loss(
            pred_boxes, boxes, beta=config.smooth_l1_beta)
        if config.giou_weight > 0:
            loss = loss + config.giou_weight * giou_loss(pred_boxes, boxes)
        return loss, {"logits": logits, "targets": labels, "boxes": pred_boxes,
                      "true_boxes": boxes}

    return step


def multi_output_metrics(outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``accuracy``, ``miou``, ``iou50`` (share with IoU >= 0.5) and ``score`` (mean of
    accuracy and mean IoU, the default early-stopping monitor)."""
    if not outputs or len(outputs["targets"]) == 0:
        return {}
    correct = (outputs["logits"].argmax(1) == outputs["targets"]).float()
    iou = paired_iou(outputs["boxes"].float(), outputs["true_boxes"].float())
    acc, miou = float(correct.mean()), float(iou.mean())
    return {"accuracy": acc, "miou": miou, "iou50": float((iou >= 0.5).float().mean()),
            "score": (acc + miou) / 2}


# --------------------------------------------------------------------------- data


def to_input(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """RGB uint8 images, each resized (stretched) to ``size x size``: ``(N, S, S, 3)`` uint8."""
    import cv2

    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, img in enumerate(images):
        interp = cv2.INTER_AREA if max(img.shape[:2]) > size else cv2.INTER_LINEAR
        out[i] = cv2.resize(np.ascontiguousarray(img), (size, size), interpolation=interp)
    return out


def normalise(batch: torch.Tensor) -> torch.Tensor:
    """``(N, S, S, 3)`` uint8 to ``(N, 3, S, S)`` float in ``[-1, 1]``."""
    return batch.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


@dataclass
class BoxArrays:
    """Decoded, resized images with normalised true boxes and label indices."""

    images: np.ndarray  # (N, S, S, 3) uint8
    boxes: np.ndarray  # (N, 4) float32 in [0, 1]
    labels: np.ndarray  # (N,) int64
    items: list[FaceItem]


def load_box_arrays(items: Sequence[FaceItem], label_names: Sequence[str], size: int,
                    progress: bool = True, workers: int = 4) -> BoxArrays:
    """Decode and resize the images of ``items`` (identities not in ``label_names`` are left
    out); unreadable files are skipped with a one-line warning."""
    from tqdm.auto import tqdm

    index = {n: i for i, n in enumerate(label_names)}
    items = [it for it in items if it.identity in index]

    def load(item: FaceItem) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            img = read_image(item.path, max_side=max(2 * size, 512))
        except ImageReadError as exc:
            log.warning("%s", exc)
            return None
        w, h = img.source_size
        box = np.asarray(item.box, np.float32) / np.array([w, h, w, h], np.float32)
        return to_input([img.rgb], size)[0], np.clip(box, 0.0, 1.0)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(tqdm(pool.map(load, items), total=len(items), desc="load images",
                            unit="img", disable=not progress, leave=False))
    keep = [(it, r) for it, r in zip(items, results, strict=True) if r is not None]
    if not keep:
        return BoxArrays(np.zeros((0, size, size, 3), np.uint8), np.zeros((0, 4), np.float32),
                         np.zeros(0, np.int64), [])
    return BoxArrays(
        np.stack([r[0] for _, r in keep]),
        np.stack([r[1] for _, r in keep]).astype(np.float32),
        np.array([index[it.identity] for it, _ in keep], np.int64),
        [it for it, _ in keep],
    )


class BoxTensorDataset(Dataset):
    """Preloaded images, normalised boxes and labels; optional box-aware augmentation.
    Items are ``(image (3, S, S) float in [-1, 1], box (4,), label)``."""

    def __init__(self, data: BoxArrays, augment: bool = False):
        self.images = torch.from_numpy(data.images)
        self.boxes = torch.from_numpy(data.boxes)
        self.labels = torch.from_numpy(data.labels)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        img = normalise(self.images[i : i + 1])[0]
        box = self.boxes[i].clone()
        if self.augment:
            img, box = augment(img, box)
        return img, box, self.labels[i]


def augment(img: torch.Tensor, box: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A random flip, a random crop that keeps the whole box (resized back) and a brightness/
    contrast change. ``img`` is ``(3, S, S)`` in ``[-1, 1]``, ``box`` normalised x1y1x2y2."""
    size = img.shape[-1]
    if torch.rand(()) < 0.5:
        img = img.flip(-1)
        box = torch.stack([1 - box[2], box[1], 1 - box[0], box[3]])
    if torch.rand(()) < 0.5:
        r = torch.rand(4).tolist()
        x1, y1, x2, y2 = box.tolist()
        side_x = max(x2 - x1, 0.6 + 0.4 * r[0])
        side_y = max(y2 - y1, 0.6 + 0.4 * r[1])
        lo_x, hi_x = max(0.0, x2 - side_x), min(x1, 1.0 - side_x)
        lo_y, hi_y = max(0.0, y2 - side_y), min(y1, 1.0 - side_y)
        if hi_x >= lo_x and hi_y >= lo_y:
            cx0 = round((lo_x + (hi_x - lo_x) * r[2]) * size)
            cy0 = round((lo_y + (hi_y - lo_y) * r[3]) * size)
            cx1 = min(size, max(cx0 + 2, round(cx0 + side_x * size)))
            cy1 = min(size, max(cy0 + 2, round(cy0 + side_y * size)))
            crop = img[:, cy0:cy1, cx0:cx1]
            img = F.interpolate(crop[None], size=(size, size), mode="bilinear",
                                align_corners=False)[0]
            sx, sy = (cx1 - cx0) / size, (cy1 - cy0) / size
            ox, oy = cx0 / size, cy0 / size
            box = torch.tensor([(x1 - ox) / sx, (y1 - oy) / sy, (x2 - ox) / sx,
                                (y2 - oy) / sy]).clamp(0.0, 1.0)
    gain = 1.0 + (float(torch.rand(())) - 0.5) * 0.4
    bias = (float(torch.rand(())) - 0.5) * 0.2
    mean = img.mean()
    return ((img - mean) * gain + mean + bias).clamp(-1.0, 1.0), box


def split_items(dataset: FaceDataset, val_fraction: float, seed: int
                ) -> tuple[list[FaceItem], list[FaceItem]]:
    """``train``/``val`` items: the dataset's splits when it has a train split, else a
    stratified split with ``seed`` (:meth:`FaceDataset.with_splits`)."""
    items = dataset.items
    if not any(it.split == "train" for it in items):
        unsplit = replace(dataset, items=[replace(it, split=None) for it in items])
        items = unsplit.with_splits(seed, val_fraction).items
    return ([it for it in items if it.split == "train"], [it for it in items if it.split == "val"])


# --------------------------------------------------------------------------- trained model


class MultiOutputModel(TrainedModel):
    """A trained multi-output network: ``predict`` gives identity, probability and box."""

    kind: ClassVar[str] = KIND

    def __init__(self, label_names: Sequence[str], net: MultiOutputNet,
                 network: Mapping[str, Any], meta: dict[str, Any] | None = None,
                 device: str = "cpu", batch_size: int = 32):
        super().__init__(label_names, meta)
        self.net = net.to(device).eval()
        self.network = dict(network)
        self.device = device
        self.batch_size = batch_size

    @property
    def input_size(self) -> int:
        return int(self.network["input_size"])

    def predict_outputs(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(probabilities (N, C), boxes (N, 4) as x1, y1, x2, y2 in each image's pixels)``."""
        probs, boxes = [], []
        self.net.eval()
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                x = normalise(torch.from_numpy(to_input(chunk, self.input_size)))
                b, logits = self.net(x.to(self.device))
                probs.append(torch.softmax(logits.float(), 1).cpu().numpy())
                wh = np.array([[im.shape[1], im.shape[0]] * 2 for im in chunk], np.float32)
                boxes.append(b.float().cpu().numpy() * wh)
        if not probs:
            return np.zeros((0, self.num_classes), np.float32), np.zeros((0, 4), np.float32)
        return np.concatenate(probs), np.concatenate(boxes)

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self.predict_outputs(images)[0]

    def predict(
        self, images: Sequence[np.ndarray], top_k: int = 5, faces: Sequence[Any] | None = None
    ) -> list[Prediction]:
        if len(images) == 0:
            return []
        probs, boxes = self.predict_outputs(images)
        preds = predictions_from_probs(probs, self.label_names, top_k)
        for p, b in zip(preds, boxes, strict=True):
            p.box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        return preds

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save(state, fh)
        return {"weights": WEIGHTS, "network": self.network,
                "preprocessing": {"resize": [self.input_size, self.input_size],
                                  "keep_aspect": False, "scale": "x / 127.5 - 1"}}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto"
             ) -> MultiOutputModel:
        from celebface.device import resolve_device

        path = Path(model_dir) / meta.get("weights", WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file missing")
        net = build_net(len(meta["label_names"]), meta["network"], load_pretrained=False)
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return cls(meta["label_names"], net, meta["network"], meta,
                   device=resolve_device(device))

    def evaluate_extra(self, images: Sequence[np.ndarray], predictions: Sequence[Prediction],
                       items: Sequence[Any], out_dir: str | Path) -> dict[str, Any]:
        """Box metrics against the items' true boxes (``item.box`` in the image's pixels, as a
        box dataset's :class:`celebface.data.FaceItem` has) and ``box_samples.png``; ``{}``
        without boxes."""
        from celebface.synth.boxeval import box_report

        return box_report(images, predictions, items, out_dir)


register_model_kind(KIND, MultiOutputModel)


# --------------------------------------------------------------------------- training


def train(data: str | Path, out: str | Path, **config: Any) -> MultiOutputModel:
    """Train the multi-output model on the box dataset ``data``; save it in ``out``.

    A rerun with the same ``out`` resumes the fit loop from its last checkpoint."""
    from celebface.synth import is_box_dataset

    cfg: MultiOutputConfig = make_config(MultiOutputConfig, config, "multi-output")
    if not is_box_dataset(data):
        raise DatasetError(
            f"{data}: the multi-output model needs a box-and-identity dataset, the output "
            "folder of `celebface synth` or `celebface crop` (with its manifest.csv)")
    dataset = open_dataset(data, boxes=True)
    train_items, val_items = split_items(dataset, cfg.val_fraction, cfg.seed)
    if cfg.limit_per_class:
        train_items = first_per_identity(train_items, cfg.limit_per_class)
    label_names = sorted({it.identity for it in train_items})
    unseen = sorted({it.identity for it in val_items} - set(label_names))
    if unseen:
        log.warning("validation identities absent from training are left out: %s",
                    ", ".join(unseen))
    log.info("multi-output: %d train / %d val images, %d identities",
             len(train_items), len(val_items), len(label_names))
    train_arr = load_box_arrays(train_items, label_names, cfg.input_size, cfg.progress)
    val_arr = load_box_arrays(val_items, label_names, cfg.input_size, cfg.progress)
    if len(train_arr.labels) == 0:
        raise InputError(f"{data}: no readable training images")
    val_ds = BoxTensorDataset(val_arr) if len(val_arr.labels) else None

    torch.manual_seed(cfg.seed)
    out = Path(out)
    resuming = (out / "checkpoints" / "checkpoint.pt").is_file()
    net = build_net(len(label_names), cfg.network(), cfg.weights, load_pretrained=not resuming,
                    freeze=cfg.freeze)
    result = fit(net, BoxTensorDataset(train_arr, augment=cfg.augment), val_ds,
                 out / "checkpoints", cfg.loop_config(), step=make_step(cfg),
                 metrics=multi_output_metrics,
                 fingerprint=run_fingerprint(cfg, data, label_names))
    atomic_write_json(out / "history.json", result.history)
    meta = {
        "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "progress"},
        "data": str(Path(data).resolve()),
        "data_kind": f"box dataset ({dataset.kind})",
        "train_count": len(train_arr.labels), "val_count": len(val_arr.labels),
        "best_epoch": result.best_epoch, "monitor": result.history["monitor"],
        "best": result.best if val_ds is not None else None, "trained_on": result.device,
    }
    model = MultiOutputModel(label_names, net.cpu(), cfg.network(), meta,
                             batch_size=cfg.batch_size)
    model.save(out)
    return model
