"""Settings of the ``face-resnet`` model (head, frozen levels, caches, fit loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celebface.errors import InputError
from celebface.recognition.spec import DEFAULT_TTA, check_tta
from celebface.training.loop import LOOP, LoopConfig

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
    label_smoothing: float = 0.0
    tta: str = DEFAULT_TTA  #: none | flip: predictions average the chip's and its mirror's
    cache_dir: str | None = None  #: chips/trunk cache (default ~/.cache/celebface/chips)
    limit_per_class: int | None = None
    identities: list[str] | None = None  #: train on these identities only (held-out studies)
    val_fraction: float = 0.15
    backbone_lr: float = 0.1  #: trained levels' learning rate, as a share of ``lr`` (the head's)
    #: fit loop: device, amp, workers, seed, epochs, batch size, lr, decay... (flat settings)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(
        epochs=30, batch_size=64, lr_decay=0.9, weight_decay=5e-4), metadata=LOOP)

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InputError(f"--head must be one of {', '.join(HEADS)}, not {self.head!r}")
        if self.pretrained not in ("dlib", "none"):
            raise InputError(f"face-resnet starts from dlib's weights or none, not "
                             f"{self.pretrained!r}")
        if not 0 <= self.freeze <= 5:
            raise InputError(f"--freeze for face-resnet is a level 0-5, not {self.freeze}")
        check_tta(self.tta)

    def head_settings(self) -> dict[str, Any]:
        m = DEFAULT_MARGIN[self.head] if self.margin is None else self.margin
        return {"head": self.head, "scale": self.scale, "margin": m}
