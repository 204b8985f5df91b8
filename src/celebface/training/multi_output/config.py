"""Settings of the multi-output model (network, losses and fit loop)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from celebface.errors import InputError
from celebface.recognition.spec import DEFAULT_TTA, check_tta
from celebface.training.backbones import spec
from celebface.training.loop import RUN_SETTINGS, SCHEDULE_SETTINGS, LoopConfig
from celebface.validate import settings_group

KIND = "multi-output"
#: what the identity head reads: the face box's region (RoIAlign of a stride-8 map or of the
#: image; the true box in training, the predicted one otherwise), the face aligned by 5
#: predicted landmarks and run through dlib's face ResNet (``face``), or the whole scene's
#: last map
IDENTITY_FROM = ("box", "crop", "face", "scene")


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
    #: ``face`` (aligned by predicted landmarks, dlib ResNet), ``box`` / ``crop`` (the face
    #: region of the stride-8 map / of the image) or ``scene``
    identity_from: str = "face"
    roi_size: int = 14  #: region grid side on the stride-8 map (``crop``: 8x this in pixels)
    roi_margin: float = 0.1  #: the region is the box widened by this share of its side per edge
    roi_jitter: float = 0.05  #: training moves each true-box edge by up to this share of its side
    #: ``face``: dlib ResNet levels kept as dlib's (5: only its 128-d layer trains)
    face_freeze: int = 5
    #: ``face``: training moves each true landmark by up to this share of the box side
    landmark_jitter: float = 0.03
    landmark_weight: float = 5.0  #: ``face``: smooth-L1 landmark loss weight (box-side units)
    face_head: str = "cosface"  #: ``face``: identity head on the 128-d vector (softmax | cosface)
    #: ``face``: landmarks from heatmaps of the region's stride-8/16 maps (soft-argmax) or
    #: regressed from its pooled last map (``regress``)
    landmark_head: str = "heatmap"
    augment: bool = True  #: flips, box-keeping crops, brightness/contrast
    tta: str = DEFAULT_TTA  #: ``flip``: predictions average the image's and its mirror image's
    val_fraction: float = 0.15  #: used when the data has no splits
    limit_per_class: int | None = None  #: at most this many train images per identity
    #: fit loop; it monitors ``val_score``, the mean of accuracy and mean IoU (``mode`` follows
    #: ``monitor``: min for a loss, else max)
    loop: LoopConfig = field(
        default_factory=lambda: LoopConfig(epochs=30, batch_size=32, monitor="val_score"),
        metadata=settings_group(RUN_SETTINGS + SCHEDULE_SETTINGS + ("optimizer", "monitor")))

    def __post_init__(self) -> None:

        minimum = spec(self.backbone).min_input
        if self.input_size < minimum:
            raise InputError(f"input_size must be at least {minimum} ({self.backbone})")
        if self.pretrained not in ("imagenet", "none"):
            raise InputError(f"pretrained must be imagenet or none, got {self.pretrained!r}")
        if self.identity_from not in IDENTITY_FROM:
            raise InputError(f"identity_from must be {' or '.join(IDENTITY_FROM)}, "
                             f"got {self.identity_from!r}")
        check_tta(self.tta)
        if not 0 <= self.face_freeze <= 5:
            raise InputError(f"face_freeze is a dlib ResNet level 0-5, not {self.face_freeze}")
        if self.landmark_head not in ("heatmap", "regress"):
            raise InputError(f"landmark_head must be heatmap or regress, not "
                             f"{self.landmark_head!r}")
        if self.face_head not in ("softmax", "cosface"):
            raise InputError(f"face_head must be softmax or cosface, not {self.face_head!r}")
        self.loop = dataclasses.replace(
            self.loop, mode="min" if self.loop.monitor.endswith("loss") else "max")

    def network(self) -> dict[str, Any]:
        """What rebuilds the network and its preprocessing (saved in ``model.json``)."""
        return {"input_size": self.input_size, "hidden": self.hidden, "dropout": self.dropout,
                "pretrained": self.pretrained, "backbone": self.backbone,
                "identity_from": self.identity_from, "roi_size": self.roi_size,
                "roi_margin": self.roi_margin, "roi_jitter": self.roi_jitter,
                **({"face_freeze": self.face_freeze, "landmark_jitter": self.landmark_jitter,
                    "face_head": self.face_head, "landmark_head": self.landmark_head}
                   if self.identity_from == "face" else {})}
