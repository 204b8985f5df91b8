"""``crop_dataset``: a folder-per-identity photo collection to a folder of face crops."""

from __future__ import annotations

import collections
import json
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from celebface import validate
from celebface.cropping import records as rec
from celebface.cropping.crop import crop_face
from celebface.errors import InputError
from celebface.io import (
    DatasetItem,
    ImageReadError,
    LoadedImage,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    encode_jpeg,
    folder_lock,
    list_dataset,
    read_image,
    read_splits,
)
from celebface.io.pathlist import csv_text
from celebface.types import Face

log = logging.getLogger(__name__)

POLICIES = ("largest", "all")
SETTINGS_FILE = "crop.json"


@dataclass
class CropConfig:
    """Settings of the crop stage.

    ``min_score`` None means the detector's default (MTCNN 0.9, HOG 0.0); ``min_size`` is the
    shorter box side in source pixels; ``max_side`` shrinks huge photos when decoding;
    ``workers`` decode images in threads while the detector runs; ``detect_workers`` batches are
    detected at once in threads (thread-safe detectors only), each with ``torch_threads``
    intra-op threads (default: CPU cores / detect_workers; restored afterwards). ``engine``
    ``ray`` reads and detects on a Ray cluster (``address``; None: a local one or
    ``RAY_ADDRESS``), :mod:`celebface.engines.ray_engine`; this process writes the outputs.
    """

    detector: str = "mtcnn"
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
    """Faces passing ``min_score`` and ``min_size`` (shorter side); ``largest`` keeps only the
    largest of them, ``all`` keeps them all, highest score first."""
    if policy not in POLICIES:
        raise InputError(f"unknown face policy {policy!r}: choose one of {', '.join(POLICIES)}")
    kept = [f for f in faces if f.score >= min_score and min(f.width, f.height) >= min_size]
    if policy == "largest":
        return [max(kept, key=lambda f: f.area)] if kept else []
    return sorted(kept, key=lambda f: -f.score)


def output_names(items: list[DatasetItem]) -> dict[Path, str]:
    """Crop file stem per source: the source stem, plus its extension when two sources of one
    identity share a stem (``a.jpg``, ``a.png`` -> ``a_jpg``, ``a_png``), plus ``_2``, ``_3``
    ... while a name is still taken (``a.jpg``/``a.JPG``; names compare case-insensitively)."""
    counts = collections.Counter((it.identity, it.path.stem.lower()) for it in items)
    used: set[tuple[str, str]] = set()
    names = {}
    for it in sorted(items, key=lambda it: str(it.path)):
        base = it.path.stem
        if counts[(it.identity, base.lower())] > 1:
            base = f"{base}_{it.path.suffix.lstrip('.').lower()}"
        name, n = base, 1
        while (it.identity, name.lower()) in used:
            n += 1
            name = f"{base}_{n}"
        used.add((it.identity, name.lower()))
        names[it.path] = name
    return names


def _settings(config: CropConfig, detector_settings: dict[str, Any], min_score: float) -> dict:
    return {
        "detector": detector_settings,
        "faces": config.faces,
        "min_score": min_score,
        "min_size": config.min_size,
        "margin": config.margin,
        "size": config.size,
        "align": config.align,
    }


def _check_settings(dst: Path, settings: dict, overwrite: bool) -> None:
    """Refuse to resume into a DST made with other settings (unless ``overwrite``)."""
    path = dst / SETTINGS_FILE
    if overwrite:
        for name in (rec.MANIFEST, rec.NO_FACES, rec.ERRORS):
            (dst / name).unlink(missing_ok=True)
    elif path.exists() and (dst / rec.MANIFEST).exists():
        old = json.loads(path.read_text(encoding="utf-8")).get("settings")
        if old is not None and old != json.loads(json.dumps(settings)):
            changed = sorted(k for k in settings if old.get(k) != settings[k])
            raise InputError(
                f"{dst}: was cropped with other settings ({', '.join(changed)}); "
                "pass --overwrite to redo it, or choose another DST"
            )


def _prefetch(
    items: list[DatasetItem], workers: int, max_side: int, depth: int
) -> Iterator[tuple[DatasetItem, LoadedImage | ImageReadError]]:
    """Decode images in a thread pool, ``depth`` ahead, yielding in order."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    pending: collections.deque[tuple[DatasetItem, Future]] = collections.deque()
    it = iter(items)

    def fill() -> None:
        while len(pending) < depth:
            item = next(it, None)
            if item is None:
                return
            pending.append((item, pool.submit(read_image, item.path, max_side)))

    try:
        fill()
        while pending:
            item, fut = pending.popleft()
            fill()
            try:
                yield item, fut.result()
            except ImageReadError as exc:
                yield item, exc
            except Exception as exc:  # never stop the run on one file
                yield item, ImageReadError(item.path, f"{type(exc).__name__}: {exc}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _detect(detector, images: list[np.ndarray]) -> list[list[Face] | Exception]:
    """Batched detection; if the batch fails, per image, so one bad image costs only itself."""
    try:
        return list(detector.detect_batch(images))
    except Exception as exc:
        log.debug("batch detection failed (%s); retrying image by image", exc)
    out: list[list[Face] | Exception] = []
    for im in images:
        try:
            out.append(detector.detect(im))
        except Exception as exc:
            out.append(exc)
    return out


def crop_dataset(
    src: str | Path, dst: str | Path, config: CropConfig | None = None, detector=None
) -> CropSummary:
    """Find faces in every image of ``src/<identity>/*``, write crops to
    ``dst/<identity>/<name>.jpg`` plus ``manifest.csv``, ``no_faces.txt``, ``errors.txt``,
    ``crop.json`` (settings, last summary), ``splits.csv`` (when ``src`` has one) and, with
    ``config.preview``, ``preview.png``. Resumable: sources already recorded are skipped.
    Refuses a ``dst`` that is, holds or lies inside ``src``; runs into one ``dst`` take turns.
    """
    config = config or CropConfig()
    src, dst = Path(src), Path(dst)
    if config.faces not in POLICIES:
        raise InputError(f"unknown face policy {config.faces!r}: choose one of {POLICIES}")
    items = list_dataset(src)  # clear error when src is missing
    check_output_dir(dst, [src], flag="DST")
    with folder_lock(dst, "crop output"):  # one run at a time per DST (the next resumes)
        return _crop(src, dst, items, config, detector)


def _crop(
    src: Path, dst: Path, items: list[DatasetItem], config: CropConfig, detector
) -> CropSummary:
    from celebface.detection import DEFAULT_MIN_SCORE, get_detector

    given = detector  # a detector built in code: the Ray engine ships it to its workers
    if detector is None:
        detector = get_detector(config.detector, config.device, **config.detector_options)
    min_score = (
        config.min_score
        if config.min_score is not None
        else DEFAULT_MIN_SCORE.get(detector.name, 0.0)
    )
    det_settings = detector.settings() if hasattr(detector, "settings") else {"detector": "?"}
    settings = _settings(config, det_settings, min_score)
    dst.mkdir(parents=True, exist_ok=True)
    _check_settings(dst, settings, config.overwrite)
    atomic_write_json(dst / SETTINGS_FILE, {"source": str(src.resolve()), "settings": settings})

    done = rec.done_sources(dst)
    rel = {it.path: it.path.relative_to(src).as_posix() for it in items}
    todo = [it for it in items if rel[it.path] not in done]
    names = output_names(items)
    summary = CropSummary(dst=str(dst), images=len(items), skipped=len(items) - len(todo))
    log.info("%d images in %s, %d already done, %d to do", len(items), src, summary.skipped,
             len(todo))

    from tqdm import tqdm

    writer = _Writer(config, min_score, rel, names, dst, rec.Records(dst), summary)
    bar = tqdm(total=len(todo), unit="img", desc="crop", disable=not config.progress,
               dynamic_ncols=True)
    start = time.perf_counter()
    try:
        if config.engine == "ray":
            from celebface.engines.ray_engine import crop_on_ray

            crop_on_ray(todo, config, writer, bar, given)
        elif config.engine == "local":
            _crop_local(todo, config, detector, writer, bar)
        else:
            raise InputError(f"unknown engine {config.engine!r}: choose local or ray")
        summary.processed = len(todo)
    finally:
        summary.seconds = time.perf_counter() - start
        bar.close()
        writer.records.close()
    _write_splits(src, dst)
    if config.preview:
        from celebface.cropping.preview import write_preview

        write_preview(src, dst, config.preview)
    atomic_write_json(
        dst / SETTINGS_FILE,
        {"source": str(src.resolve()), "settings": settings, "last_run": summary.to_dict()},
    )
    from celebface.data.stage import write_stage

    write_stage(dst, "crops", settings, [str(src)])
    return summary


def _crop_local(todo: list[DatasetItem], config: CropConfig, detector, writer: _Writer,
                bar) -> None:
    """Decode in threads, detect batches of ``config.batch_size`` sources (less the
    unreadable ones) in threads, write in input order."""
    workers = max(1, config.detect_workers) if getattr(detector, "thread_safe", False) else 1
    restore = _limit_torch_threads(config.torch_threads, workers, config.device)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detect")
    inflight: collections.deque[tuple[list, Future]] = collections.deque()

    def drain(keep: int) -> None:
        while len(inflight) > keep:
            done_batch, fut = inflight.popleft()
            writer.write(done_batch, fut.result())
            bar.update(len(done_batch))

    try:
        batch: list[tuple[DatasetItem, LoadedImage]] = []
        stream = _prefetch(todo, config.workers, config.max_side, config.batch_size * 2)
        for n, (item, loaded) in enumerate(stream, 1):
            if isinstance(loaded, ImageReadError):
                writer.error(writer.rel[item.path], loaded.reason)
                log.warning("%s", loaded)
                bar.update(1)
            else:
                batch.append((item, loaded))
            # batches are fixed slices of the sources, so every engine detects the same sets
            if (n % config.batch_size == 0 or n == len(todo)) and batch:
                images = [im.rgb for _, im in batch]
                inflight.append((batch, pool.submit(_detect, detector, images)))
                batch = []
                drain(workers - 1)
        drain(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        restore()


def _limit_torch_threads(threads: int | None, workers: int, device: str):
    """Set torch's CPU threads per detection worker (``threads``, else the free cores shared
    by the workers: :func:`celebface.device.pick_threads`); returns a function restoring the
    old value."""
    import torch

    from celebface.device import set_torch_threads

    if threads is None and device not in ("auto", "cpu"):
        return lambda: None
    old = set_torch_threads(threads, workers)
    return lambda: torch.set_num_threads(old)


@dataclass
class _Writer:
    """Turns detections into crops and records (in the main thread, in input order)."""

    config: CropConfig
    min_score: float
    rel: dict[Path, str]
    names: dict[Path, str]
    dst: Path
    records: rec.Records
    summary: CropSummary

    def error(self, source: str, reason: str) -> None:
        self.records.add_error(source, reason)
        self.summary.errors += 1

    def write(
        self, batch: list[tuple[DatasetItem, LoadedImage]], results: list[list[Face] | Exception]
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


def _write_splits(src: Path, dst: Path) -> None:
    """``dst/splits.csv`` for the crops, from ``src/splits.csv`` (when present)."""
    path = src / "splits.csv"
    if not path.exists():
        return
    try:
        splits = read_splits(path)
    except (OSError, ValueError) as exc:
        log.warning("%s: not used (%s)", path, exc)
        return
    rows: list[list[str]] = [["split", "identity", "filename"]]
    for row in rec.read_manifest(dst):
        split = splits.get((row["identity"], Path(row["source"]).name))
        if split is not None:
            rows.append([split, row["identity"], Path(row["output"]).name])
    atomic_write_text(dst / "splits.csv", csv_text(rows))
