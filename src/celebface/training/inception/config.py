"""Settings of the ``inception`` model (backbone, head, fit loop)."""

from __future__ import annotations

from dataclasses import dataclass

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
