"""``audit``: what is wrong with a folder-per-person face dataset.

Writes ``OUT/findings.csv`` (kind, files, person, score, detail), ``OUT/report.md`` (counts,
class balance, the worst examples) and ``OUT/sheets/<kind>.png`` contact sheets.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from celebface.audit import checks
from celebface.audit.checks import Finding
from celebface.audit.report import write_outputs
from celebface.data import FaceItem, open_dataset
from celebface.detection.finder import pick_face
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.io import ImageReadError, check_output_dir, read_image
from celebface.recognition import EmbedConfig, embed_dataset
from celebface.recognition.cache import content_hash
from celebface.recognition.registry import embedder_config
from celebface.recognition.spec import DEFAULT_EMBEDDER, EmbedderSpec
from celebface.verification import embed_found, locate
from celebface.verification.compare import face_finder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditConfig:
    """``detector="none"``: the photos are face crops (embedded whole, cached; no face
    checks). ``near_duplicate``: cosine bound (None = the embedder's measured one).
    ``mislabel_margin``: how much closer to another person's centre a photo must be.
    ``tiny_face``: shorter face side in pixels below which a face is tiny."""

    detector: str = DEFAULT_DETECTOR
    embedder: str = DEFAULT_EMBEDDER
    device: str = "auto"
    near_duplicate: float | None = None
    mislabel_margin: float = 0.0
    tiny_face: float = 40.0
    min_photos: int = 10
    max_side: int = 1024
    batch_size: int = 16
    cache_dir: str | None = None
    sheet_max: int = 24

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder these settings describe."""
        return EmbedderSpec.from_config(self)


@dataclass
class AuditResult:
    out: Path
    photos: int
    findings: list[Finding]
    balance: dict[str, Any]
    near_duplicate: float
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Photos:
    """The readable photos, with their content hashes; ``paths`` (as given: DATA/person/file),
    ``ids`` and ``splits`` are column views of the items, as the checks take them (read once
    the list is complete)."""

    items: list[FaceItem]
    hashes: list[str]

    @cached_property
    def paths(self) -> list[str]:
        return [it.path for it in self.items]

    @cached_property
    def ids(self) -> list[str]:
        return [it.identity for it in self.items]

    @cached_property
    def splits(self) -> list[str | None]:
        return [it.split for it in self.items]


def _list(data: Path) -> tuple[_Photos, list[Finding]]:

    photos, bad = _Photos([], []), []
    for it in open_dataset(data).items:  # a clear error when DATA is missing or empty
        try:
            digest = content_hash(Path(it.path).read_bytes())
        except OSError as exc:
            bad.append(Finding("unreadable", (it.path,), it.identity, 0.0, str(exc)))
            continue
        photos.items.append(it)
        photos.hashes.append(digest)
    return photos, bad


def _embed_crops(data: Path, out: Path, photos: _Photos, config: AuditConfig,
                 progress: bool) -> tuple[np.ndarray, list[Finding]]:
    """Whole-image vectors via ``embed_dataset`` (cached by content)."""

    emb = embed_dataset(data, out / "embeddings", EmbedConfig.of_spec(
        config.spec, device=config.device, cache_dir=config.cache_dir, progress=progress))
    by_path = {p: k for k, p in enumerate(emb.paths)}
    vecs = np.full((len(photos.paths), emb.embeddings.shape[1]), np.nan, np.float32)
    bad = []
    for k, p in enumerate(photos.paths):
        row = by_path.get(str(Path(p).absolute()))
        if row is None:
            bad.append(Finding("unreadable", (p,), photos.ids[k], 0.0, "not embedded (see "
                               f"{out / 'embeddings' / 'errors.txt'})"))
        else:
            vecs[k] = emb.embeddings[row]
    return vecs, bad


def _embed_photos(photos: _Photos, config: AuditConfig, progress: bool
                  ) -> tuple[np.ndarray, list[Finding]]:
    """Largest detected face of each photo; face-count and size findings."""


    finder = face_finder(config.detector, config.device)
    embedder = config.spec.build(config.device)
    vecs = np.full((len(photos.paths), embedder.dim), np.nan, np.float32)
    found: list[Finding] = []
    for lo in tqdm(range(0, len(photos.paths), config.batch_size), desc="audit: detect+embed",
                   unit="batch", disable=not progress):
        idx, images = [], []
        for k in range(lo, min(lo + config.batch_size, len(photos.paths))):
            try:
                images.append(read_image(photos.paths[k], config.max_side).rgb)
                idx.append(k)
            except ImageReadError as exc:
                found.append(Finding("unreadable", (photos.paths[k],), photos.ids[k], 0.0,
                                     exc.reason))
        located = locate(images, finder, all_faces=True)
        keep = []
        for k, faces in zip(idx, located, strict=True):
            p, who = (photos.paths[k],), photos.ids[k]
            if faces[0].whole:
                found.append(Finding("no_face", p, who, 0.0, "no face detected"))
                continue
            if len(faces) > 1:
                found.append(Finding("several_faces", p, who, float(len(faces)),
                                     f"{len(faces)} faces"))
            big = pick_face([f.face for f in faces])
            side = min(big.width, big.height)  # type: ignore[union-attr]
            if side < config.tiny_face:
                found.append(Finding("tiny_face", p, who, float(side),
                                     f"largest face {side:.0f} px < {config.tiny_face:.0f}"))
            keep.append((k, [f for f in faces if f.face is big]))
        if keep:
            done = embed_found([images[idx.index(k)] for k, _ in keep], [f for _, f in keep],
                               embedder)
            for (k, _), faces in zip(keep, done, strict=True):
                vecs[k] = faces[0].face.embedding
    return vecs, found


def near_duplicate_bound(spec: EmbedderSpec) -> float:
    """The measured near-duplicate cosine of ``spec``'s embedder, else the fallback."""
    bound = embedder_config(spec.name).near_duplicate.get(spec.tta)
    if bound is not None:
        return bound
    log.warning("no measured near-duplicate bound for %s: using %.3f", spec.describe(),
                checks.FALLBACK_NEAR_DUPLICATE)
    return checks.FALLBACK_NEAR_DUPLICATE


def audit(data: str | Path, out: str | Path, config: AuditConfig | None = None,
          progress: bool = True) -> AuditResult:
    """Run every check on ``data`` and write the findings, report and sheets to ``out``."""
    config = config or AuditConfig()
    data, out = Path(data), Path(out)
    check_output_dir(out, [data], flag="audit output folder")
    photos, findings = _list(data)
    if config.detector == "none":
        vecs, more = _embed_crops(data, out, photos, config, progress)
    else:
        vecs, more = _embed_photos(photos, config, progress)
    findings += more
    ok = np.flatnonzero(~np.isnan(vecs).any(1))
    paths, ids = [photos.paths[k] for k in ok], [photos.ids[k] for k in ok]
    splits = [photos.splits[k] for k in ok]
    bound = config.near_duplicate if config.near_duplicate is not None \
        else near_duplicate_bound(config.spec)
    findings += checks.exact_duplicates(photos.hashes, photos.paths, photos.ids, photos.splits)
    findings += checks.near_duplicates(vecs[ok], bound, [photos.hashes[k] for k in ok],
                                       paths, ids, splits)
    findings += checks.mislabels(vecs[ok], paths, ids, config.mislabel_margin)
    findings += checks.too_few(photos.ids, config.min_photos)
    order = {k: i for i, k in enumerate(checks.KINDS)}
    findings.sort(key=lambda f: order.get(f.kind, len(order)))
    result = AuditResult(out, len(photos.paths), findings, checks.balance(photos.ids), bound,
                         dict(Counter(f.kind for f in findings)))

    write_outputs(result, data, config)
    return result
