"""Turning one photo's detections into crops and manifest rows (:func:`plan_crops`, run
anywhere: here or on a Ray worker), and writing them in input order (:class:`Writer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from celebface.cropping.config import CropConfig, CropSummary, select_faces
from celebface.data import FaceItem
from celebface.data import crops as rec
from celebface.geometry import crop_face
from celebface.io import LoadedImage, atomic_write_bytes, encode_jpeg
from celebface.types import Face


@dataclass
class Writer:
    """Turns detections into crops and records (in the main thread, in input order)."""

    config: CropConfig
    min_score: float
    rel: dict[str, str]
    names: dict[str, str]
    dst: Path
    records: rec.Records
    summary: CropSummary

    def error(self, source: str, reason: str) -> None:
        self.records.add_error(source, reason)
        self.summary.errors += 1

    def write(
        self, batch: list[tuple[FaceItem, LoadedImage]], results: list[list[Face] | Exception]
    ) -> None:
        rows: list[list[str]] = []
        for (item, loaded), found in zip(batch, results, strict=True):
            plan = plan_crops(self.config, self.min_score, self.rel[item.path], item.identity,
                              self.names[item.path], loaded, found)
            self.apply(self.rel[item.path], plan, rows)
        self.records.add_faces(rows)
        self.records.commit()

    def apply(self, source: str, plan: CropPlan, rows: list[list[str]]) -> None:
        """Write one source's crops and count it; its manifest rows go to ``rows``."""
        if not plan.chosen:
            if plan.error is not None:
                self.error(source, plan.error)
            else:
                self.records.add_no_face(source)
                self.summary.no_face += 1
            return
        self.summary.with_face += 1
        for out, data, row in plan.crops:
            try:
                atomic_write_bytes(self.dst / out, data)
            except OSError as exc:
                self.error(source, f"cannot write crop {out}: {exc}")
                return
            rows.append(row)
            self.summary.faces += 1
        if plan.error is not None:
            self.error(source, plan.error)


@dataclass
class CropPlan:
    """One source's result, computed (anywhere) before anything is written: ``chosen`` faces
    kept, their crops as (output path, JPEG bytes, manifest row), and an error (detection
    failed, or a crop could not be made)."""

    chosen: int = 0
    crops: list[tuple[str, bytes, list[str]]] = field(default_factory=list)
    error: str | None = None


def plan_crops(
    config: CropConfig, min_score: float, source: str, identity: str, stem: str,
    loaded: LoadedImage, found: list[Face] | Exception,
) -> CropPlan:
    """The crops of one decoded source from its detections (no file is written)."""
    if isinstance(found, Exception):
        return CropPlan(error=f"detection failed: {type(found).__name__}: {found}")
    # min_size is in source pixels; faces are in decoded pixels (source / scale).
    chosen = select_faces(found, config.faces, min_score, config.min_size / loaded.scale)
    plan = CropPlan(chosen=len(chosen))
    for k, face in enumerate(chosen, 1):
        out = f"{identity}/{stem}" + (f"_{k}" if config.faces == "all" else "") + ".jpg"
        try:
            crop = crop_face(loaded.rgb, face, config.margin, config.size, config.align)
            data = encode_jpeg(crop, config.jpeg_quality)
        except (OSError, ValueError) as exc:
            plan.error = f"cannot write crop {out}: {exc}"
            break
        plan.crops.append((out, data, rec.manifest_row(
            source, out, identity, face.scaled(loaded.scale), k - 1, loaded.source_size)))
    return plan
