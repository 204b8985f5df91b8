"""`synthesize`: a folder of face photos to composites with the true face box recorded."""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import logging
import os
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from celebface import validate
from celebface.data import FaceItem, open_dataset
from celebface.data.stage import write_stage
from celebface.errors import InputError, reading
from celebface.io import (
    ImageReadError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    encode_jpeg,
    read_image,
)
from celebface.io.datasets import first_per_identity, is_image_file
from celebface.io.pathlist import csv_text
from celebface.synth.compose import (
    BACKGROUNDS,
    jitter_colors,
    paste_face,
    photo_background,
)

log = logging.getLogger(__name__)

MANIFEST = "manifest.csv"
SETTINGS = "synth.json"
_JOURNAL = ".synth_journal.csv"

#: Manifest columns. ``x1..y2`` is the face box in the composite (``output``) of size
#: ``width x height``; ``src_width/src_height`` is the pasted face photo's size.
COLUMNS = (
    "source", "output", "identity", "x1", "y1", "x2", "y2", "score", "face_index",
    "width", "height", "src_width", "src_height", "angle", "face_scale", "background", "split",
)


@dataclass
class SynthConfig:
    """How composites are made. Every composite is a pure function of ``seed`` and its source."""

    size: int = 256  #: composite side in pixels (square)
    copies: int = 1  #: composites per source photo
    min_scale: float = 0.22  #: face's longer side as a share of the composite side, lower bound
    max_scale: float = 0.6  #: upper bound
    max_rotation: float = 15.0  #: degrees, uniform in [-max, +max]
    backgrounds: tuple[str, ...] = ("photo", "gradient", "noise")
    background_dir: str | None = None  #: optional folder of face-free background photos
    color_jitter: float = 0.15  #: brightness/contrast jitter of the pasted face
    max_identities: int | None = None  #: first N identities (sorted by name)
    max_per_identity: int | None = None  #: first N photos of each identity (sorted by name)
    splits: tuple[str, ...] | None = None  #: keep only these splits of the source splits.csv
    quality: int = 92  #: JPEG quality
    seed: int = 0
    workers: int = 1  #: threads (output does not depend on it)

    def __post_init__(self) -> None:
        self.backgrounds = tuple(self.backgrounds)
        if self.splits is not None:
            self.splits = tuple(self.splits)
        known = {"photo", *BACKGROUNDS}
        bad = [b for b in self.backgrounds if b not in known]
        if bad or not self.backgrounds:
            raise InputError(f"unknown background kind(s) {bad}: choose from {sorted(known)}")
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise InputError("need 0 < min_scale <= max_scale <= 1")
        if self.size < 32:
            raise InputError("size must be at least 32 pixels")
        v = validate
        v.positive_int("copies", self.copies)
        v.positive_int("workers", self.workers)
        v.in_range("max_rotation", self.max_rotation, 0, 180)
        v.nonneg_float("color_jitter", self.color_jitter)
        v.in_range("quality", self.quality, 1, 100, kind=int)
        v.optional(v.positive_int, "max_identities", self.max_identities)
        v.optional(v.positive_int, "max_per_identity", self.max_per_identity)


@dataclass
class SynthSummary:
    dst: Path
    written: int = 0
    resumed: int = 0
    failed: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.written + self.resumed


def _item_rng(seed: int, item: FaceItem, copy: int) -> np.random.Generator:
    key = zlib.crc32("/".join(item.key).encode("utf-8", "surrogateescape"))
    return np.random.default_rng([seed, key, copy])


def _select_items(data: Path, config: SynthConfig) -> tuple[list[FaceItem], bool]:
    """The source photos to compose (through :func:`open_dataset`), and whether the source
    records splits."""
    items = open_dataset(data).items
    has_splits = any(it.split is not None for it in items)
    if config.splits is not None:
        if not has_splits:
            raise InputError(f"{data}: --splits given but there is no splits.csv")
        items = [it for it in items if it.split in config.splits]
    if config.max_identities is not None:
        keep = set(sorted({it.identity for it in items})[: config.max_identities])
        items = [it for it in items if it.identity in keep]
    if config.max_per_identity is not None:
        items = first_per_identity(items, config.max_per_identity)
    return items, has_splits


def _background(
    rng: np.random.Generator,
    config: SynthConfig,
    pool: list[Path],
    own: FaceItem,
) -> tuple[np.ndarray, str]:
    kind = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    size = config.size
    if kind == "photo" and pool:
        for _ in range(3):
            path = pool[int(rng.integers(len(pool)))]
            if path == Path(own.path):
                continue
            try:
                photo = read_image(path, max_side=2 * size).rgb
            except ImageReadError as exc:
                log.debug("background skipped: %s", exc)
                continue
            user_dir = config.background_dir is not None
            return photo_background(rng, photo, size, size, shuffle=not user_dir), "photo"
        kind = "gradient"
    if kind == "photo":
        kind = "gradient"
    return BACKGROUNDS[kind](rng, size, size), kind


def compose_one(
    face: np.ndarray, rng: np.random.Generator, config: SynthConfig, background: np.ndarray
) -> tuple[np.ndarray, tuple[float, float, float, float], float, float]:
    """Paste ``face`` on ``background`` at a random place, scale and angle.

    Returns the composite, the face box, the angle and the scale (longer side / canvas side).
    """
    size = config.size
    face = jitter_colors(rng, face, config.color_jitter)
    scale = float(rng.uniform(config.min_scale, config.max_scale))
    h, w = face.shape[:2]
    longer = scale * size
    fw = max(4, round(longer * w / max(w, h)))
    fh = max(4, round(longer * h / max(w, h)))
    angle = float(rng.uniform(-config.max_rotation, config.max_rotation))
    # Place the rotated face fully inside the canvas.
    rad = np.radians(angle)
    bw = fw * abs(np.cos(rad)) + fh * abs(np.sin(rad))
    bh = fw * abs(np.sin(rad)) + fh * abs(np.cos(rad))
    if bw > size or bh > size:  # shrink to fit
        shrink = size / max(bw, bh)
        fw, fh = max(4, int(fw * shrink)), max(4, int(fh * shrink))
        bw, bh = bw * shrink, bh * shrink
    cx = float(rng.uniform(bw / 2, size - bw / 2))
    cy = float(rng.uniform(bh / 2, size - bh / 2))
    image, box = paste_face(background, face, (cx, cy), (fw, fh), angle)
    return image, box, angle, scale


def _read_done(dst: Path) -> dict[str, dict[str, str]]:
    """Rows of an earlier (finished or interrupted) run whose output file exists."""
    done: dict[str, dict[str, str]] = {}
    for path in (dst / MANIFEST, dst / _JOURNAL):
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            for row in csv.DictReader(fh):
                if None in row or any(row.get(c) is None for c in COLUMNS):
                    continue  # a torn last line
                if (dst / row["output"]).is_file():
                    done[row["output"]] = row
    return done


def synthesize(
    data: str | Path, dst: str | Path, config: SynthConfig | None = None, progress: bool = True
) -> SynthSummary:
    """Composite every face photo of ``data`` (folder per identity) onto a background.

    Writes ``dst/<identity>/<stem>_s<k>.jpg``, ``dst/manifest.csv`` (true boxes, see
    :data:`COLUMNS`), ``dst/splits.csv`` (the source's split carried over, when it has one) and
    ``dst/synth.json`` (settings). Re-running with the same settings resumes: finished
    composites are kept (they are reproducible from the seed anyway).
    """
    config = config or SynthConfig()
    data, dst = Path(data), Path(dst)
    items, has_splits = _select_items(data, config)
    if not items:
        raise InputError(f"{data}: no face photos found (expected DATA/<identity>/*.jpg)")
    settings = _run_settings(data, config)
    _claim(dst, settings)
    summary = SynthSummary(dst=dst)
    rows = _composite_all(items, data, dst, config, _background_pool(items, config), summary,
                          progress)
    _write_csv(dst / MANIFEST, COLUMNS, rows)
    if has_splits:
        split_rows = [
            {"split": r["split"], "identity": r["identity"],
             "filename": Path(r["output"]).name}
            for r in rows if r["split"]
        ]
        _write_csv(dst / "splits.csv", ("split", "identity", "filename"), split_rows)
    os.unlink(dst / _JOURNAL)

    write_stage(dst, "synth", settings, [str(data)])
    log.info("synth: %d composites written, %d kept from an earlier run, %d failed, in %s",
             summary.written, summary.resumed, len(summary.failed), dst)
    return summary


def _run_settings(data: Path, config: SynthConfig) -> dict[str, Any]:
    """What ``synth.json`` records: the source and every setting that shapes the composites
    (not ``workers``), as JSON values."""
    settings = {"kind": "synth", "source": str(data.resolve()), **dataclasses.asdict(config)}
    settings.pop("workers")
    return {k: json_ready(v) for k, v in settings.items()}


def _claim(dst: Path, settings: dict[str, Any]) -> None:
    """Make ``dst`` and write ``settings`` into it, unless it holds a run with others."""
    prev_path = dst / SETTINGS
    if prev_path.is_file():

        with reading(prev_path, "settings file"):
            previous = json.loads(prev_path.read_text(encoding="utf-8"))
        if previous != settings:
            raise InputError(
                f"{dst}: made with other settings (see {prev_path}); use a new folder"
            )
    dst.mkdir(parents=True, exist_ok=True)
    atomic_write_json(prev_path, settings)


def _background_pool(items: list[FaceItem], config: SynthConfig) -> list[Path]:
    """The photos backgrounds are cut from: ``background_dir``'s, else the source photos."""
    if config.background_dir is None:
        return [Path(it.path) for it in items]
    bg_root = Path(config.background_dir)
    pool = sorted(p for p in bg_root.rglob("*") if is_image_file(p))
    if not pool:
        raise InputError(f"{bg_root}: no background photos found")
    return pool


def _composite_all(items: list[FaceItem], data: Path, dst: Path, config: SynthConfig,
                   pool: list[Path], summary: SynthSummary, progress: bool
                   ) -> list[dict[str, str]]:
    """Make every item's composites (``config.workers`` threads), each new row journalled as
    it comes (a rerun keeps them); the manifest rows, counted in ``summary``."""

    journal_path = dst / _JOURNAL
    done = _read_done(dst)
    rows: list[dict[str, str]] = []
    new_journal = not journal_path.is_file()
    work = functools.partial(_composite_copies, done=done, data=data, dst=dst, config=config,
                             pool=pool)
    with open(journal_path, "w" if new_journal else "a", newline="", encoding="utf-8",
              errors="surrogateescape") as jf:
        writer = csv.DictWriter(jf, fieldnames=COLUMNS)
        if new_journal:
            writer.writeheader()
        with ThreadPoolExecutor(max_workers=max(1, config.workers)) as executor:
            results = executor.map(work, items)
            for result in tqdm(results, total=len(items), desc="synth", unit="photo",
                               disable=not progress):
                if isinstance(result, str):
                    log.warning("%s", result)
                    summary.failed.append(result)
                    continue
                for row, new in result:
                    rows.append(row)
                    if new:
                        writer.writerow(row)
                        summary.written += 1
                    else:
                        summary.resumed += 1
                jf.flush()
    return rows


def _composite_copies(item: FaceItem, *, done: dict[str, dict[str, str]], data: Path,
                      dst: Path, config: SynthConfig, pool: list[Path]
                      ) -> list[tuple[dict[str, str], bool]] | str:
    """``[(row, new?)]`` for the copies of ``item`` (those ``done`` kept), or the read
    error."""
    stem = Path(item.path).stem
    outputs = [f"{item.identity}/{stem}_s{k}.jpg" for k in range(config.copies)]
    if all(o in done for o in outputs):
        return [(done[o], False) for o in outputs]
    try:
        face = read_image(item.path).rgb
    except ImageReadError as exc:
        return str(exc)
    return [
        (done[o], False) if o in done else
        (_make_one(face, item, k, o, data, dst, config, pool, item.split or ""), True)
        for k, o in enumerate(outputs)
    ]


def _make_one(
    face: np.ndarray, item: FaceItem, k: int, output: str, data: Path, dst: Path,
    config: SynthConfig, pool: list[Path], split: str,
) -> dict[str, str]:
    """Compose copy ``k`` of ``item``'s face, write it, return its manifest row."""
    rng = _item_rng(config.seed, item, k)
    background, kind = _background(rng, config, pool, item)
    image, box, angle, scale = compose_one(face, rng, config, background)
    atomic_write_bytes(dst / output, encode_jpeg(image, config.quality))
    return {
        "source": str(Path(item.path).relative_to(data)),
        "output": output,
        "identity": item.identity,
        "x1": f"{box[0]:.2f}", "y1": f"{box[1]:.2f}",
        "x2": f"{box[2]:.2f}", "y2": f"{box[3]:.2f}",
        "score": "1.0", "face_index": "0",
        "width": str(config.size), "height": str(config.size),
        "src_width": str(face.shape[1]), "src_height": str(face.shape[0]),
        "angle": f"{angle:.2f}", "face_scale": f"{scale:.4f}",
        "background": kind, "split": split,
    }


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    atomic_write_text(path, csv_text([columns, *([r.get(c, "") for c in columns] for r in rows)]))


def json_ready(obj: object) -> object:
    """Tuples to lists, recursively (what a JSON round trip gives back)."""
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v) for v in obj]
    return obj
