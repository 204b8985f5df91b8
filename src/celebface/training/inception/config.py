"""Settings of the ``inception`` model (backbone, head, fit loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from celebface.errors import InputError
from celebface.recognition.spec import check_tta
from celebface.training.loop import LOOP, LoopConfig

WEIGHTS = "inception.pt"
EMBEDDING_DIM = 128
#: The context around the face in dlib's chips (``DlibConfig.padding``'s default): the most
#: ``chip_padding`` can keep, and what a model folder without one was trained on.
DLIB_PADDING = 0.25
#: What ``model.json`` says under ``preprocessing.align`` for a model trained on chips.
ALIGNMENT = "dlib-5-point"
#: A pretrained backbone's defaults: the measured recipe, (backbone, pretrained) -> settings
#: used when not given. MobileNetV2 + ImageNet is README "Networks on a CPU" (85.64% val on all
#: 105 pins105-dev people, benchmarks/results/mobilenet_cpu.md).
RECIPES: dict[tuple[str, str], dict[str, Any]] = {
    ("mobilenet_v2", "imagenet"): {"align": True, "input_size": 96, "freeze": 4, "lr": 3e-4,
                                   "lr_decay": 0.9, "batch_size": 64, "tta": "flip"},
}


@dataclass
class InceptionConfig:
    """Settings of ``celebface train --model inception`` (reference defaults)."""

    input_size: int = 224
    backbone: str = "inception_v3"  # inception_v3 | mobilenet_v2
    pretrained: str = "none"  # imagenet | none
    weights: str | None = None  # ImageNet weights file (default: the model store)
    freeze: int = 0  # first backbone blocks kept frozen
    align: bool = False  # train and predict on dlib-aligned chips (inception.aligned)
    #: with align: context kept around the face (dlib's chip has 0.25; less is its centre)
    chip_padding: float = 0.1
    trunk_cache: bool = True  # with align and freeze: cache the frozen blocks' maps (+ mirror)
    cache_dir: str | None = None  # chips/maps cache (default ~/.cache/celebface/chips)
    backbone_lr: float = 1.0  # trained backbone blocks' learning rate, as a share of lr
    label_smoothing: float = 0.0
    tta: str = "none"  # none | flip: predictions average the image's and its mirror's
    augment: bool = True
    val_fraction: float = 0.15
    limit_per_class: int | None = None  # use at most this many train images per identity
    #: fit loop (reference: Adam, batch 128, 100 epochs, lr 1e-3 decayed by 0.95 per epoch)
    loop: LoopConfig = field(default_factory=lambda: LoopConfig(num_workers=2), metadata=LOOP)
    recipes: ClassVar[dict[tuple[str, str], dict[str, Any]]] = RECIPES

    @classmethod
    def recipe(cls, given: dict[str, Any]) -> dict[str, Any]:
        """The measured defaults (:data:`RECIPES`) of the backbone and weights ``given``
        (empty when none was measured); settings given win over them."""
        return dict(cls.recipes.get((given.get("backbone", cls.backbone),
                                 given.get("pretrained", cls.pretrained)), {}))

    def __post_init__(self) -> None:
        if self.pretrained not in ("imagenet", "none"):
            raise InputError(f"--pretrained must be imagenet or none, not {self.pretrained!r}")
        check_tta(self.tta)
        if not 0 <= self.chip_padding <= DLIB_PADDING:
            raise InputError(f"--chip-padding {self.chip_padding} outside 0..{DLIB_PADDING}")
