"""``crop_dataset``: a folder-per-identity photo collection to a folder of face crops."""

from __future__ import annotations

import collections
import json
import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from celebface.cropping.config import (
    POLICIES,
    SETTINGS_FILE,
    CropConfig,
    CropSummary,
    select_faces,
)
from celebface.cropping.local import crop_local
from celebface.cropping.plan import Writer
from celebface.cropping.preview import write_preview
from celebface.data import FaceItem, open_dataset
from celebface.data import crops as rec
from celebface.data.stage import write_stage
from celebface.detection import get_detector, min_score
from celebface.errors import InputError
from celebface.io import (
    atomic_write_json,
    atomic_write_text,
    check_output_dir,
    folder_lock,
    read_splits,
    remove_leftovers,
)
from celebface.io.pathlist import csv_text
from celebface.plugins import LOCAL, engine_runner

log = logging.getLogger(__name__)

__all__ = ["POLICIES", "SETTINGS_FILE", "CropConfig", "CropSummary", "crop_dataset",
           "output_names", "select_faces"]


def output_names(items: list[FaceItem]) -> dict[str, str]:
    """Crop file stem per source: the source stem, plus its extension when two sources of one
    identity share a stem (``a.jpg``, ``a.png`` -> ``a_jpg``, ``a_png``), plus ``_2``, ``_3``
    ... while a name is still taken (``a.jpg``/``a.JPG``; names compare case-insensitively)."""
    counts = collections.Counter((it.identity, Path(it.path).stem.lower()) for it in items)
    used: set[tuple[str, str]] = set()
    names = {}
    for it in sorted(items, key=lambda it: it.path):
        base = Path(it.path).stem
        if counts[(it.identity, base.lower())] > 1:
            base = f"{base}_{Path(it.path).suffix.lstrip('.').lower()}"
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
    items = open_dataset(src).items  # clear error when src is missing or holds no images
    check_output_dir(dst, [src], flag="DST")
    with folder_lock(dst, "crop output"):  # one run at a time per DST (the next resumes)
        return _crop(src, dst, items, config, detector)


def _crop(
    src: Path, dst: Path, items: list[FaceItem], config: CropConfig, detector
) -> CropSummary:

    given = detector  # a detector built in code: the Ray engine ships it to its workers
    if detector is None:
        detector = get_detector(config.detector, config.device, **config.detector_options)
    floor = config.min_score if config.min_score is not None else min_score(detector.name)
    det_settings = detector.settings() if hasattr(detector, "settings") else {"detector": "?"}
    settings = _settings(config, det_settings, floor)
    dst.mkdir(parents=True, exist_ok=True)
    _check_settings(dst, settings, config.overwrite)
    remove_leftovers(dst)  # a killed run's half-written crops (the lock is held: none live)
    atomic_write_json(dst / SETTINGS_FILE, {"source": str(src.resolve()), "settings": settings})

    done = rec.done_sources(dst)
    rel = {it.path: Path(it.path).relative_to(src).as_posix() for it in items}
    todo = [it for it in items if rel[it.path] not in done]
    names = output_names(items)
    summary = CropSummary(dst=str(dst), images=len(items), skipped=len(items) - len(todo))
    log.info("%d images in %s, %d already done, %d to do", len(items), src, summary.skipped,
             len(todo))


    writer = Writer(config, floor, rel, names, dst, rec.Records(dst), summary)
    bar = tqdm(total=len(todo), unit="img", desc="crop", disable=not config.progress,
               dynamic_ncols=True)
    start = time.perf_counter()
    try:
        if config.engine == LOCAL:
            crop_local(todo, config, detector, writer, bar)
        else:  # e.g. ray: :mod:`celebface.engines.ray_engine`'s ``crop_on_ray``
            engine_runner("crop", config.engine)(todo, config, writer, bar, given)
        summary.processed = len(todo)
    finally:
        summary.seconds = time.perf_counter() - start
        bar.close()
        writer.records.close()
    _write_splits(src, dst)
    if config.preview:

        write_preview(src, dst, config.preview)
    atomic_write_json(
        dst / SETTINGS_FILE,
        {"source": str(src.resolve()), "settings": settings, "last_run": summary.to_dict()},
    )

    write_stage(dst, "crops", settings, [str(src)])
    return summary


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
