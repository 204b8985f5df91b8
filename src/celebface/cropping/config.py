"""Settings and summary of the crop stage, and which detected faces it keeps."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from celebface import validate
from celebface.detection.finder import drop_nested, pick_face
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.errors import InputError
from celebface.types import Face

POLICIES = ("largest", "all")
SETTINGS_FILE = "crop.json"


@dataclass
class CropConfig:
    """Settings of the crop stage.

    ``min_score`` None means the detector's registered one (MTCNN 0.9, YuNet 0.6, HOG 0.0);
    ``min_size`` is the shorter box side in source pixels; ``max_side`` shrinks huge photos
    when decoding;
    ``workers`` decode images in threads while the detector runs; ``detect_workers`` batches are
    detected at once in threads (thread-safe detectors only), each with ``torch_threads``
    intra-op threads (default: CPU cores / detect_workers; restored afterwards). ``engine``
    ``ray`` reads and detects on a Ray cluster (``address``; None: a local one or
    ``RAY_ADDRESS``), :mod:`celebface.engines.ray_engine`; this process writes the outputs.
    """

    detector: str = DEFAULT_DETECTOR
    device: str = "auto"
    faces: str = "largest"
    min_score: float | None = None
    min_size: float = 0.0
    margin: float = 0.2
    size: int = 224
    align: bool = False
    batch_size: int = 32
    workers: int = 2
    max_side: int = 2048
    jpeg_quality: int = 95
    preview: int = 0
    overwrite: bool = False
    progress: bool = True
    torch_threads: int | None = None
    detect_workers: int = 2
    detector_options: dict[str, Any] = field(default_factory=dict)
    engine: str = "local"
    address: str | None = None

    def __post_init__(self) -> None:
        v = validate
        v.optional(v.unit_float, "min_score", self.min_score)
        v.nonneg_float("min_size", self.min_size)
        v.nonneg_float("margin", self.margin)
        v.in_range("size", self.size, 8, kind=int)
        for name in ("batch_size", "workers", "max_side", "detect_workers"):
            v.positive_int(name, getattr(self, name))
        v.in_range("jpeg_quality", self.jpeg_quality, 1, 100, kind=int)
        v.nonneg_int("preview", self.preview)
        v.optional(v.positive_int, "torch_threads", self.torch_threads)


@dataclass
class CropSummary:
    """What a run did. ``skipped`` counts sources done by an earlier run."""

    dst: str
    images: int = 0
    skipped: int = 0
    processed: int = 0
    with_face: int = 0
    faces: int = 0
    no_face: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "images_per_s": round(self.images_per_s, 2)}

    def format(self) -> str:
        """A one-screen summary."""
        return "\n".join(
            [
                f"crop summary -> {self.dst}",
                f"  images      {self.images} ({self.skipped} already done, "
                f"{self.processed} processed now)",
                f"  with a face {self.with_face}",
                f"  crops       {self.faces}",
                f"  no face     {self.no_face}  (see no_faces.txt)",
                f"  errors      {self.errors}  (see errors.txt)",
                f"  time        {self.seconds:.1f} s ({self.images_per_s:.1f} images/s)",
            ]
        )


def select_faces(
    faces: list[Face], policy: str = "largest", min_score: float = 0.0, min_size: float = 0.0
) -> list[Face]:
    """Faces passing ``min_score`` and ``min_size`` (shorter side) and not nested in the head
    of a larger one (the face finder's rule, :func:`celebface.detection.finder.drop_nested`);
    ``largest`` keeps only the largest of them, ``all`` keeps them all, highest score first."""

    if policy not in POLICIES:
        raise InputError(f"unknown face policy {policy!r}: choose one of {', '.join(POLICIES)}")
    kept = drop_nested([f for f in faces
                        if f.score >= min_score and min(f.width, f.height) >= min_size])
    if policy == "largest":
        return [f] if (f := pick_face(kept)) is not None else []
    return kept
