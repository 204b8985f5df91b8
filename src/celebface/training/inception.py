"""``inception``: the reference head on an ImageNet backbone (InceptionV3, the reference's, or
MobileNetV2, whose ImageNet weights install offline), trained on face crops.

Reference head (the notebook's Keras model): Flatten of the final feature map, Dense 1024 ReLU,
Dropout 0.2, Dense 128 ELU, Dropout 0.1, Dense N. The 128-d ELU layer doubles as a face
embedder (:meth:`InceptionModel.as_embedder`). Inputs are RGB resized to ``input_size``
squared and scaled to [-1, 1] (the scaling Google's InceptionV3 was trained with, so
torchvision's ImageNet weights apply with ``transform_input=False``; MobileNetV2 converts them
to ImageNet mean/std inside the network).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from celebface.errors import InputError
from celebface.io import ImageReadError, atomic_write, atomic_write_json
from celebface.recognition.base import Embedder, l2_normalize
from celebface.training.base import TrainedModel
from celebface.training.data import ImageData, load_image_data
from celebface.training.registry import make_config, register_model_kind

if TYPE_CHECKING:
    import torch
    from torch import nn

    from celebface.types import Face

log = logging.getLogger(__name__)

WEIGHTS = "inception.pt"
EMBEDDING_DIM = 128


@dataclass
class InceptionConfig:
    """Settings of ``celebface train --model inception`` (reference defaults)."""

    input_size: int = 224
    backbone: str = "inception_v3"  # inception_v3 | mobilenet_v2
    pretrained: str = "none"  # imagenet | none
    weights: str | None = None  # ImageNet weights file (default: the model store)
    freeze: int = 0  # first backbone blocks kept frozen
    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    lr_decay: float = 0.95  # per epoch, exponential
    weight_decay: float = 0.0
    patience: int = 5
    label_smoothing: float = 0.0
    augment: bool = True
    device: str = "auto"
    amp: bool = True
    num_workers: int = 2
    seed: int = 0
    val_fraction: float = 0.15
    max_steps_per_epoch: int | None = None
    max_val_steps: int | None = None
    limit_per_class: int | None = None  # use at most this many train images per identity
    progress: bool = True


# --------------------------------------------------------------------------- network


def build_network(num_classes: int, input_size: int = 224, backbone: str = "inception_v3",
                  freeze: int = 0) -> nn.Module:
    """A backbone trunk (:mod:`celebface.training.backbones`) + the reference head, as one
    ``nn.Module`` with ``.embed(x)``; the first ``freeze`` trunk blocks are frozen."""
    import torch
    from torch import nn

    from celebface.training import backbones

    spec = backbones.spec(backbone)
    if input_size < spec.min_input:
        raise InputError(f"input size {input_size} too small for {backbone} "
                         f"(minimum {spec.min_input})")

    class ReferenceHeadNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.input_norm = backbones.input_norm(backbone)
            self.features = backbones.build_features(backbone)
            backbones.freeze_blocks(self.features, freeze)
            with torch.no_grad():
                self.features.eval()
                c, h, w = self.features(torch.zeros(1, 3, input_size, input_size)).shape[1:]
                self.features.train()
            self.feature_shape = (c, h, w)
            self.embedding = nn.Sequential(
                nn.Flatten(), nn.Linear(c * h * w, 1024), nn.ReLU(inplace=True), nn.Dropout(0.2),
                nn.Linear(1024, EMBEDDING_DIM), nn.ELU(inplace=True),
            )
            self.classifier = nn.Sequential(nn.Dropout(0.1), nn.Linear(EMBEDDING_DIM, num_classes))

        def train(self, mode: bool = True) -> ReferenceHeadNet:
            super().train(mode)
            backbones.keep_frozen_eval(self.features)
            return self

        def embed(self, x: torch.Tensor) -> torch.Tensor:
            return self.embedding(self.features(self.input_norm(x)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.embed(x))

    return ReferenceHeadNet()


def load_imagenet(net: nn.Module, weights: str | Path | None = None,
                  backbone: str = "inception_v3") -> Path:
    """Load ``backbone``'s ImageNet weights into ``net.features`` (from ``weights`` or the
    model store; never downloads; :class:`MissingWeightsError` when absent)."""
    from celebface.training.backbones import load_imagenet as load

    return load(net.features, backbone, weights)


# --------------------------------------------------------------------------- data


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """``rgb`` resized to ``size`` x ``size`` (bilinear, antialiased)."""
    from PIL import Image

    if rgb.shape[0] == size and rgb.shape[1] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))


def to_tensor(images: Sequence[np.ndarray], size: int, fit: str = "stretch") -> torch.Tensor:
    """RGB uint8 images to a normalised ``(N, 3, size, size)`` float batch in [-1, 1]; a
    non-square image is stretched, or centre-cropped/padded (``fit``, as ``celebface pack``)."""
    import torch

    from celebface.packing.pack import fit_square

    def square(im: np.ndarray) -> np.ndarray:
        im = np.asarray(im, dtype=np.uint8)
        if fit == "stretch" or im.shape[0] == im.shape[1]:
            return resize_square(im, size)
        return fit_square(im, size, fit)

    arr = np.stack([square(im) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)


class FaceImages:
    """Torch dataset over some samples of :class:`ImageData`: ``(image tensor, label)``.
    An unreadable file is logged once and replaced by the next sample."""

    def __init__(self, data: ImageData, indices: np.ndarray, size: int, augment: bool):
        self.data, self.indices, self.size, self.augment = data, np.asarray(indices), size, augment
        self._transform: Any = None
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return len(self.indices)

    def _augmenter(self) -> Any:
        if self._transform is None:
            from torchvision.transforms import v2

            self._transform = v2.Compose([
                v2.RandomResizedCrop(self.size, scale=(0.75, 1.0), ratio=(0.9, 1.1),
                                     antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02),
            ])
        return self._transform

    def __getitem__(self, pos: int) -> tuple[torch.Tensor, int]:
        import torch

        for attempt in range(len(self.indices)):
            i = int(self.indices[(pos + attempt) % len(self.indices)])
            if i in self._bad:
                continue
            try:
                rgb = resize_square(self.data.image(i), self.size)
                break
            except ImageReadError as exc:
                self._bad.add(i)
                log.warning("skipped: %s", exc)
        else:
            raise InputError("no readable image in the data")
        x = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)
        if self.augment:
            x = self._augmenter()(x)
        return x.float().div_(127.5).sub_(1.0), int(self.data.labels[i])


# --------------------------------------------------------------------------- model


class InceptionModel(TrainedModel):
    kind: ClassVar[str] = "inception"

    def __init__(self, net: nn.Module, label_names: Sequence[str], input_size: int,
                 meta: dict[str, Any] | None = None, device: str = "auto",
                 batch_size: int = 64):
        from celebface.device import resolve_device

        super().__init__(label_names, meta)
        self.input_size = input_size
        #: how training made images square (a pack's ``fit``); prediction does the same
        self.fit = str(((meta or {}).get("preprocessing") or {}).get("fit", "stretch"))
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.net = net.to(self.device).eval()

    def _forward(self, images: Sequence[np.ndarray], embed: bool) -> np.ndarray:
        import torch

        outs = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                x = to_tensor(images[start:start + self.batch_size], self.input_size, self.fit)
                x = x.to(self.device)
                y = self.net.embed(x) if embed else torch.softmax(self.net(x).double(), 1)
                outs.append(y.double().cpu().numpy())
        width = EMBEDDING_DIM if embed else self.num_classes
        return np.concatenate(outs) if outs else np.zeros((0, width))

    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        return self._forward(images, embed=False)

    def embed(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """The 128-d ELU layer's output, L2-normalised."""
        return l2_normalize(self._forward(images, embed=True))

    def as_embedder(self) -> Embedder:
        return InceptionEmbedder(self)

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        import torch

        with atomic_write(model_dir / WEIGHTS, "wb") as fh:
            torch.save({k: v.cpu() for k, v in self.net.state_dict().items()}, fh)
        return {"weights": WEIGHTS, "input_size": self.input_size,
                "backbone": getattr(self.net, "backbone", "inception_v3"),
                "preprocessing": {"resize": [self.input_size, self.input_size], "fit": self.fit,
                                  "scale": "x / 127.5 - 1", "channels": "RGB"},
                "embedding_dim": EMBEDDING_DIM}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> InceptionModel:
        import torch

        size = int(meta["input_size"])
        net = build_network(len(meta["label_names"]), size, meta.get("backbone", "inception_v3"))
        net.load_state_dict(torch.load(model_dir / meta.get("weights", WEIGHTS),
                                       map_location="cpu", weights_only=True))
        model = cls(net, meta["label_names"], size, meta, device)
        model.model_dir = str(model_dir)  # type: ignore[attr-defined]
        return model


class InceptionEmbedder(Embedder):
    """A trained ``inception`` model's 128-d ELU layer as an :class:`Embedder`. With ``faces``
    the face box is cut out first (square, 20% margin), as ``celebface crop`` does."""

    name = "inception"
    dim = EMBEDDING_DIM

    def __init__(self, model: InceptionModel, margin: float = 0.2):
        self.model = model
        self.margin = margin

    def settings(self) -> dict[str, Any]:
        return {"model": self.name, "dim": self.dim, "input_size": self.model.input_size,
                "model_dir": getattr(self.model, "model_dir", None), "margin": self.margin}

    def embed(self, images: Sequence[np.ndarray], faces: Sequence[Face | None] | None = None
              ) -> np.ndarray:
        if faces is not None and any(f is not None for f in faces):
            from celebface.cropping import crop_face

            images = [im if f is None else crop_face(im, f, margin=self.margin,
                                                     size=self.model.input_size)
                      for im, f in zip(images, faces, strict=True)]
        return self.model.embed(images).astype(np.float32)


# --------------------------------------------------------------------------- training


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


register_model_kind("inception", InceptionModel)
