"""The detector interface."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from celebface import validate
from celebface.detection.prepare import PAD_MODES, pad_on_miss
from celebface.errors import InputError, OptionError
from celebface.types import Face


def apply_options(config: Any, options: dict[str, Any], what: str) -> Any:
    """Set ``options`` on the dataclass ``config``; an unknown key is a ``TypeError``."""
    for key, value in options.items():
        if not hasattr(config, key):
            raise OptionError(f"unknown {what} option {key!r}")
        setattr(config, key, value)
    if hasattr(config, "__post_init__"):
        config.__post_init__()  # validate the final settings
    return config


class Detector(ABC):
    """Finds faces in RGB uint8 images (H x W x 3). Boxes are in the input image's pixels."""

    name: str = "detector"

    @abstractmethod
    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces of each image, highest score first."""

    def detect(self, image: np.ndarray) -> list[Face]:
        return self.detect_batch([image])[0]


@dataclass
class PaddingConfig:
    """Settings every :class:`PaddingDetector` has: ``max_side`` shrinks bigger images first;
    ``short_side`` (None or 0: off) first resizes every image, up or down, so its shorter side
    is that many pixels (a face filling much of the image then has a known size range; see
    :mod:`celebface.recognition.align`); ``pad`` is the border added on each side, as a
    fraction of the longer side, filled as ``pad_mode`` says (``constant``, ``replicate`` or
    ``reflect``); with ``pad_on_miss`` only images without a face scoring ``miss_score`` get
    it, in a second pass, else all do."""

    max_side: int | None = 1024
    short_side: int | None = None
    pad: float = 0.15
    pad_mode: str = "constant"
    pad_on_miss: bool = True
    miss_score: float = 0.0

    def __post_init__(self) -> None:

        validate.optional(validate.image_side, "short_side", self.short_side)
        if self.pad_mode not in PAD_MODES:
            raise InputError(f"unknown pad mode {self.pad_mode!r}: choose one of "
                             f"{', '.join(PAD_MODES)}")


class PaddingDetector(Detector):
    """A detector that pads images (``config.pad``) so faces filling the frame are found;
    with ``config.pad_on_miss`` only images without a face scoring ``config.miss_score``
    are retried padded."""

    config: PaddingConfig
    #: Config fields that do not change the results (left out of :meth:`settings`).
    runtime_fields: tuple[str, ...] = ()
    #: Fields added later, left out of :meth:`settings` while off (None), so settings
    #: recorded before them (e.g. a crop folder's) still match.
    optional_fields: tuple[str, ...] = ("short_side",)

    def settings(self) -> dict[str, Any]:
        """The detector's name and every result-changing setting, as JSON-plain values."""

        values = {k: v for k, v in asdict(self.config).items() if k not in self.runtime_fields
                  and not (k in self.optional_fields and v is None)}
        return {"detector": self.name, **json.loads(json.dumps(values))}

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:

        c = self.config
        if c.pad_on_miss:
            return pad_on_miss(self._detect_padded, images, c.pad, c.miss_score)
        return self._detect_padded(images, c.pad)

    @abstractmethod
    def _detect_padded(self, images: Sequence[np.ndarray], pad: float) -> list[list[Face]]:
        """Faces of each image, each padded by ``pad`` before detection."""
