"""Settings of the ``inception`` model (backbone, head, fit loop)."""

from __future__ import annotations

from dataclasses import dataclass

from celebface.training.loop import RunSettings

WEIGHTS = "inception.pt"
EMBEDDING_DIM = 128


@dataclass
class InceptionConfig(RunSettings):
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
    num_workers: int = 2
    val_fraction: float = 0.15
    limit_per_class: int | None = None  # use at most this many train images per identity
