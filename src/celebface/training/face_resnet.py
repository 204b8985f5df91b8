"""``face-resnet``: dlib's face ResNet fine-tuned on aligned 150-px chips, with a softmax or
margin (CosFace, ArcFace) classification head on its 128-d layer.

The network is :mod:`celebface.recognition.dlib_torch` built ``trainable``; the stem and the
first ``freeze`` residual levels stay as dlib trained them. Chips are cut once
(:mod:`celebface.training.chips`). With ``trunk_cache`` (the CPU path) the frozen levels' maps
of every chip and of its mirror image are computed once and cached too, so an epoch only runs
the trained levels; augmentation is then the flip. Without it, every step runs the whole
network on chips with flip, crop and colour augmentation. The fine-tuned 128-d layer is an
embedder (:meth:`FaceResNetModel.as_embedder`: ``embed --embedder MODEL_DIR``, ``enroll``).

Measured on pins105-dev (``benchmarks/results/face_resnet.md``): CosFace beats the plain softmax
head (the default), and a network fine-tuned on 80 people separates 25 people it never saw
worse than dlib's original one, so galleries of new people should keep ``--embedder dlib``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from celebface.errors import InputError
from celebface.io import atomic_write, atomic_write_json
from celebface.models.store import dlib_model_path
from celebface.recognition.base import Embedder
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.dlib_torch import build_model, freeze_levels
from celebface.training.base import TrainedModel
from celebface.training.chips import aligned_chips, cached_array
from celebface.training.data import load_image_data
from celebface.training.loop import LoopConfig, classification_metrics, fit, run_fingerprint
from celebface.training.registry import make_config, register_model_kind

log = logging.getLogger(__name__)

KIND = "face-resnet"
WEIGHTS = "face_resnet.pt"
HEADS = ("softmax", "cosface", "arcface")
DEFAULT_MARGIN = {"softmax": 0.0, "cosface": 0.35, "arcface": 0.5}


@dataclass
class FaceResNetConfig:
    """Settings of ``celebface train --model face-resnet``."""

    head: str = "cosface"  #: softmax | cosface | arcface
    scale: float = 30.0  #: margin heads: logit scale s
    margin: float | None = None  #: margin heads: m (cosface 0.35, arcface 0.5)
    init_head: str = "centroids"  #: centroids (train chips' mean vectors) | random
    freeze: int = 4  #: stem + first N residual levels (0-5) kept as dlib's
    trunk_cache: bool = True  #: cache the frozen levels' maps (flip is then the augmentation)
    cache_flip: bool = True  #: also cache the mirror images' maps (False: half the time)
    pretrained: str = "dlib"  #: dlib | none (random initialisation: for tests)
    augment: bool = True
    cache_dir: str | None = None  #: chips/trunk cache (default ~/.cache/celebface/chips)
    limit_per_class: int | None = None
    identities: list[str] | None = None  #: train on these identities only (held-out studies)
    val_fraction: float = 0.15
    # fit loop
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3  #: head learning rate
    backbone_lr: float = 0.1  #: trained levels' learning rate, as a share of ``lr``
    lr_decay: float = 0.9
    weight_decay: float = 5e-4
    patience: int = 5
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    seed: int = 0
    max_steps_per_epoch: int | None = None
    max_val_steps: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"--head must be one of {', '.join(HEADS)}, not {self.head!r}")
        if self.pretrained not in ("dlib", "none"):
            raise InputError(f"face-resnet starts from dlib's weights or none, not "
                             f"{self.pretrained!r}")
        if not 0 <= self.freeze <= 5:
            raise InputError(f"--freeze for face-resnet is a level 0-5, not {self.freeze}")

    def head_settings(self) -> dict[str, Any]:
        m = DEFAULT_MARGIN[self.head] if self.margin is None else self.margin
        return {"head": self.head, "scale": self.scale, "margin": m}


# --------------------------------------------------------------------------- network


class ClassHead(nn.Module):
    """Identity logits from 128-d vectors: ``softmax`` is a linear layer on the raw vector;
    ``cosface`` (s * (cos - m)) and ``arcface`` (s * cos(theta + m)) use unit vectors and unit
    class weights, the margin only on the true class while training."""

    def __init__(self, num_classes: int, head: str = "cosface", scale: float = 30.0,
                 margin: float = 0.35, dim: int = 128):
        super().__init__()
        self.head, self.scale, self.margin = head, scale, margin
        self.weight = nn.Parameter(torch.randn(num_classes, dim) * 0.01)
        self.bias = nn.Parameter(torch.zeros(num_classes)) if head == "softmax" else None

    def init_from_centroids(self, centroids: torch.Tensor) -> None:
        """Class weights = the classes' mean vectors (a nearest-centroid start)."""
        with torch.no_grad():
            if self.head == "softmax":  # logits ~ s * cos with unit-ish rows
                self.weight.copy_(self.scale * F.normalize(centroids) /
                                  centroids.norm(dim=1).mean().clamp(min=1e-6))
            else:
                self.weight.copy_(F.normalize(centroids))

    def forward(self, emb: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.head == "softmax":
            return F.linear(emb, self.weight, self.bias)
        cos = F.linear(F.normalize(emb.float()), F.normalize(self.weight.float()))
        if labels is None or self.margin == 0:
            return self.scale * cos
        onehot = F.one_hot(labels, cos.shape[1]).bool()
        if self.head == "cosface":
            target = cos - self.margin
        else:
            theta = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6))
            # past pi - m cos(theta + m) is no longer monotonic: CosFace's fallback there
            target = torch.where(theta + self.margin < math.pi, torch.cos(theta + self.margin),
                                 cos - self.margin * math.sin(self.margin))
        return self.scale * torch.where(onehot, target, cos)


class FaceResNetNet(nn.Module):
    """dlib's ResNet + :class:`ClassHead`. ``forward(x, labels)`` takes chips
    ``(N, 150, 150, 3)`` uint8 or, with ``from_level`` > 0, the map after that many levels."""

    def __init__(self, net: nn.Module, head: ClassHead, from_level: int = 0):
        super().__init__()
        self.net, self.head, self.from_level = net, head, from_level

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.from_level:
            return self.net.head(x, self.from_level)
        return self.net(x)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.embed(x), labels)


def build_dlib_net(pretrained: str = "dlib", trainable: bool = True, seed: int = 0
                   ) -> nn.Module:
    """dlib's network with its weights (``pretrained="dlib"``) or randomly re-initialised."""
    net = build_model(dlib_model_path("resnet"), trainable=trainable)
    if pretrained == "none":
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in net.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(1.0)
                elif name.endswith(("beta", "bias")):
                    p.zero_()
                else:
                    fan_in = p[0].numel()
                    p.copy_(torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in))
    return net


def step_fn(model: nn.Module, batch: Sequence[torch.Tensor]
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cross-entropy on margin logits while training; plain logits for validation metrics."""
    x, y = batch[0], batch[1]
    logits = model(x, y if model.training else None).float()
    return F.cross_entropy(logits, y), {"logits": logits, "targets": y}


# --------------------------------------------------------------------------- data


class ChipData(Dataset):
    """Chips (HWC uint8) of some rows with flip, crop and colour augmentation."""

    def __init__(self, chips: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool):
        self.chips, self.rows, self.labels, self.augment = chips, rows, labels, augment
        self._tf: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        x = torch.from_numpy(np.array(self.chips[r]))
        if self.augment:
            if self._tf is None:
                from torchvision.transforms import v2

                self._tf = v2.Compose([
                    v2.RandomHorizontalFlip(),
                    v2.RandomResizedCrop(150, scale=(0.85, 1.0), ratio=(0.95, 1.05),
                                         antialias=True),
                    v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
                ])
            x = self._tf(x.permute(2, 0, 1)).permute(1, 2, 0).contiguous()
        return x, int(self.labels[r])


class TrunkData(Dataset):
    """Cached frozen-trunk maps ``(N, V, C, H, W)`` (view 0 the chip, 1 its mirror image when
    cached); with ``augment`` a random view per item, else the chip's."""

    def __init__(self, maps: np.ndarray, rows: np.ndarray, labels: np.ndarray, augment: bool):
        self.maps, self.rows, self.labels, self.augment = maps, rows, labels, augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        r = int(self.rows[i])
        views = self.maps.shape[1]
        view = int(torch.randint(views, ())) if self.augment and views > 1 else 0
        return torch.from_numpy(np.array(self.maps[r, view], np.float32)), int(self.labels[r])


def trunk_maps(net: nn.Module, chips: np.ndarray, levels: int, path: Path, device: str,
               progress: bool = True, flip: bool = True) -> np.ndarray:
    """The maps after the first ``levels`` levels of every chip (and, with ``flip``, of its
    mirror image), float16, cached at ``path``."""
    with torch.inference_mode():
        shape = net.trunk(torch.zeros(1, 150, 150, 3, dtype=torch.uint8), levels).shape[1:]

    def fill(start: int, stop: int) -> np.ndarray:
        x = torch.from_numpy(np.array(chips[start:stop])).to(device)
        with torch.inference_mode():
            views = [net.trunk(x, levels)] + ([net.trunk(x.flip(2), levels)] if flip else [])
        return torch.stack(views, 1).half().cpu().numpy()

    return cached_array(path, (len(chips), 2 if flip else 1, *shape), np.float16, fill,
                        f"cache levels 1-{levels}", progress)


# --------------------------------------------------------------------------- model


class FaceResNetModel(TrainedModel):
    """A fine-tuned dlib ResNet with its classification head; predicts on face crops (each
    image is the face) or, through :meth:`as_embedder`, embeds located faces."""

    kind: ClassVar[str] = KIND

    def __init__(self, net: FaceResNetNet, label_names: Sequence[str],
                 meta: dict[str, Any] | None = None, device: str = "auto",
                 batch_size: int = 64):
        from celebface.device import resolve_device

        super().__init__(label_names, meta)
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.net.from_level = 0
        self.batch_size = batch_size
        alignment = dict((meta or {}).get("alignment") or {})
        self._aligner = FaceResNetEmbedder(self, alignment)

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        from celebface.recognition.align import locate_faces

        located = locate_faces(images, faces, "auto")
        chips = [self._aligner.chip(im, f) for im, f in zip(images, located, strict=True)]
        outs = []
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                x = torch.from_numpy(np.stack(chips[start:start + self.batch_size]))
                outs.append(torch.softmax(self.net(x.to(self.device)).double(), 1).cpu().numpy())
        return np.concatenate(outs) if outs else np.zeros((0, self.num_classes))

    def as_embedder(self) -> Embedder:
        return self._aligner

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save({k: v.detach().cpu() for k, v in self.net.state_dict().items()}, fh)
        return {"weights": WEIGHTS, "embedding_dim": 128,
                "preprocessing": {"chips": "dlib 5-point alignment, 150 px",
                                  "scale": "(x - dlib RGB mean) / 256"}}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto"
             ) -> FaceResNetModel:
        path = Path(model_dir) / meta.get("weights", WEIGHTS)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: weights file missing")
        h = meta["head"]
        net = FaceResNetNet(build_dlib_net(trainable=False),
                            ClassHead(len(meta["label_names"]), h["head"], h["scale"],
                                      h["margin"]))
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model = cls(net, meta["label_names"], meta, device)
        model.model_dir = str(model_dir)  # type: ignore[attr-defined]
        return model


class FaceResNetEmbedder(DlibEmbedder):
    """A fine-tuned ``face-resnet`` model's 128-d layer on dlib-aligned chips."""

    name = "face-resnet"

    def __init__(self, model: FaceResNetModel, alignment: dict[str, Any] | None = None):
        fields = {"padding", "box_shrink"}
        config = DlibConfig(**{k: v for k, v in (alignment or {}).items() if k in fields})
        super().__init__(config, device=model.device, net=model.net.net)
        self.model = model

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "alignment": "dlib-5-point",
                "model_dir": getattr(self.model, "model_dir", None)}


register_model_kind(KIND, FaceResNetModel)


# --------------------------------------------------------------------------- training


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
    if cached:
        tag = "dlib" if cfg.pretrained == "dlib" else f"random{cfg.seed}"
        views = 2 if cfg.cache_flip else 1
        maps = trunk_maps(base.to(device), chips.images, cfg.freeze,
                          cache / f"trunk-{chips.key}-L{cfg.freeze}-{tag}-v{views}.npy", device,
                          cfg.progress, cfg.cache_flip)
        train_ds: Dataset = TrunkData(maps, tr, labels, cfg.augment)
        val_ds: Dataset | None = TrunkData(maps, va, labels, False) if len(va) else None
        plain_train: Dataset = TrunkData(maps, tr, labels, False)
    else:
        train_ds = ChipData(chips.images, tr, labels, cfg.augment)
        val_ds = ChipData(chips.images, va, labels, False) if len(va) else None
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
    result = fit(net, train_ds, val_ds, out / "checkpoints", loop, step=step_fn,
                 metrics=classification_metrics, optimizer=optimizer,
                 fingerprint=run_fingerprint(cfg, data, names))
    atomic_write_json(out / "history.json", result.history)
    from celebface.evaluation.plots import plot_history

    plot_history(result.history, out / "curves.png")
    model = FaceResNetModel(net.cpu(), names, {
        "config": {k: v for k, v in asdict(cfg).items() if k != "progress"},
        "head": hs, "alignment": aligner.settings(),
        "data": str(Path(data).resolve()),
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best if val_ds is not None else None,
        "trained_on": result.device, "train_count": len(tr), "val_count": len(va),
    }, device=cfg.device)
    model.save(out)
    model.model_dir = str(out)  # type: ignore[attr-defined]
    return model
