"""``cluster_photos``: every face of a folder of unlabelled photos, grouped into people.

Output folder::

    OUT/clusters.csv              photo, face, box, cluster, similarity (to the cluster centre)...
    OUT/people/cluster_000/*.jpg  face crops of each cluster, largest cluster first
    OUT/singletons/*.jpg          faces that joined no cluster
    OUT/sheets/cluster_000.png    a contact sheet per cluster (and singletons.png)

Rename the folders of ``OUT/people`` to the people's names and ``celebface enroll OUT/people``
builds a gallery from them (``singletons`` and ``sheets`` stay outside it).
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from celebface.clustering.group import METHODS, SINGLETON, centre_similarity, cluster_vectors
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.errors import CelebfaceError
from celebface.gallery.policy import cluster_threshold, rerank_cut
from celebface.geometry import crop_face
from celebface.io import (
    ImageReadError,
    atomic_write_bytes,
    atomic_write_text,
    encode_jpeg,
    read_image,
)
from celebface.io.datasets import is_image_file, report_unsupported
from celebface.io.paths import check_output_dir
from celebface.plots import plot_grid
from celebface.recognition.spec import DEFAULT_EMBEDDER, DEFAULT_TTA, EmbedderSpec
from celebface.verification import find_and_embed
from celebface.verification.compare import face_finder

log = logging.getLogger(__name__)

CSV_FIELDS = ("photo", "face", "box", "cluster", "similarity", "crop", "whole_image")


class ClusterError(CelebfaceError, ValueError):
    """Bad cluster input or output folder."""


@dataclass(frozen=True)
class ClusterConfig:
    """``method``: ``rerank`` (average linkage on k-reciprocal re-ranked distances, small
    groups also held to a mean cosine), ``agglomerative`` (average linkage on cosine) or
    ``chinese_whispers``; see :mod:`celebface.clustering.group` and benchmarks/cluster.py.
    ``threshold`` None: the embedder's measured cluster cosine for the method. ``cut``
    (``rerank``) None: the embedder's measured re-ranked distance cut; with none measured,
    ``rerank`` falls back to ``agglomerative``. ``min_size``: smaller groups are singletons.
    ``crop_margin``/``crop_size``: the saved face crops (a margin lets a detector find the
    face again when the crops are enrolled). ``sheet_max``: faces per contact sheet."""

    detector: str = DEFAULT_DETECTOR
    embedder: str = DEFAULT_EMBEDDER
    tta: str = DEFAULT_TTA
    device: str = "auto"
    threshold: float | None = None
    method: str = "rerank"
    cut: float | None = None
    min_size: int = 2
    max_side: int = 1024
    batch_size: int = 16
    crop_margin: float = 0.2
    crop_size: int = 160
    sheet_max: int = 48

    @property
    def spec(self) -> EmbedderSpec:
        """The embedder these settings describe."""
        return EmbedderSpec.from_config(self)


@dataclass
class ClusterSummary:
    out: Path
    photos: int = 0
    faces: int = 0
    clusters: int = 0
    singletons: int = 0
    threshold: float = 0.0
    method: str = ""
    cut: float | None = None
    whole_images: int = 0
    unreadable: list[str] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)  # photos without a detected face


def list_photos(root: str | Path) -> list[Path]:
    """Image files under ``root`` (recursive, hidden names skipped), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise ClusterError(f"{root}: not a folder of photos")
    found = [p for p in root.rglob("*")
             if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    report_unsupported(root, found)
    return sorted(p for p in found if is_image_file(p))


@dataclass
class _Face:
    photo: str
    index: int
    box: tuple[float, float, float, float]
    whole: bool
    vector: np.ndarray
    crop: bytes


def _faces(photos: list[Path], root: Path, config: ClusterConfig, summary: ClusterSummary,
           progress: bool) -> list[_Face]:


    finder = face_finder(config.detector, config.device)
    embedder = config.spec.build(config.device)
    out: list[_Face] = []
    bar = tqdm(total=len(photos), desc="cluster: detect+embed", unit="photo",
               disable=not progress)
    for lo in range(0, len(photos), config.batch_size):
        batch, images = [], []
        for p in photos[lo:lo + config.batch_size]:
            try:
                images.append(read_image(p, config.max_side).rgb)
                batch.append(p)
            except ImageReadError as exc:
                log.warning("%s (skipped)", exc)
                summary.unreadable.append(str(p))
        for p, img, found in zip(batch, images,
                                 find_and_embed(images, finder, embedder, all_faces=True),
                                 strict=True):
            if finder is not None and all(f.whole for f in found):
                # faces only: a photo where the detector finds none is not a person
                log.warning("%s: no face found (skipped)", p)
                summary.no_face.append(str(p))
                continue
            for j, f in enumerate(found):
                crop = crop_face(img, f.face, config.crop_margin, config.crop_size)
                out.append(_Face(str(p.relative_to(root)), j, f.face.box, f.whole,
                                 f.face.embedding, encode_jpeg(crop, 92)))  # type: ignore[arg-type]
        bar.update(len(photos[lo:lo + config.batch_size]))
    bar.close()
    return out


def cluster_photos(photos: str | Path, out: str | Path, config: ClusterConfig | None = None,
                   progress: bool = True) -> ClusterSummary:
    """Find, embed and group every face under ``photos``; write ``out`` (see module doc)."""

    config = config or ClusterConfig()
    root, out = Path(photos), Path(out)
    check_output_dir(out, [root], flag="cluster output folder")
    if out.exists() and any(out.iterdir()):
        raise ClusterError(f"{out}: output folder is not empty; choose a new --out")
    files = list_photos(root)
    if not files:
        raise ClusterError(f"{root}: no photos found")
    method, threshold, cut = config.method, config.threshold, config.cut
    if method not in METHODS:
        raise ClusterError(f"unknown clustering method {method!r}: choose {', '.join(METHODS)}")
    if method == "rerank" and cut is None:
        cut = rerank_cut(config.spec.build(config.device))
        if cut is None:
            log.warning("no measured re-ranking cut for embedder %s: clustering by average "
                        "linkage; give a cut to re-rank", config.spec.describe())
            method = "agglomerative"
    if threshold is None:
        threshold = cluster_threshold(config.spec.build(config.device), method)
    summary = ClusterSummary(out, photos=len(files), threshold=float(threshold), method=method,
                             cut=cut if method == "rerank" else None)
    faces = _faces(files, root, config, summary, progress)
    summary.faces = len(faces)
    summary.whole_images = sum(f.whole for f in faces)
    if not faces:
        raise ClusterError(f"{root}: no faces found" if summary.no_face
                           else f"{root}: no readable photos")
    vectors = np.stack([f.vector for f in faces])
    labels = cluster_vectors(vectors, threshold, method, config.min_size, cut=summary.cut)
    sims = centre_similarity(vectors, labels)
    summary.clusters = int(labels.max(initial=-1) + 1)
    summary.singletons = int((labels == SINGLETON).sum())
    _write(out, faces, labels, sims, config)
    return summary


def _folder(label: int) -> str:
    return "singletons" if label == SINGLETON else f"people/cluster_{label:03d}"


def _write(out: Path, faces: list[_Face], labels: np.ndarray, sims: np.ndarray,
           config: ClusterConfig) -> None:

    rows: list[dict[str, Any]] = []
    by_label: dict[int, list[tuple[float, _Face, str]]] = {}
    for k, (f, label, sim) in enumerate(zip(faces, labels.tolist(), sims.tolist(),
                                            strict=True)):
        stem = Path(f.photo).stem[:60]
        crop = f"{_folder(label)}/{k:05d}_{stem}_{f.index}.jpg"
        atomic_write_bytes(out / crop, f.crop)
        by_label.setdefault(label, []).append((sim, f, crop))
        rows.append({"photo": f.photo, "face": f.index,
                     "box": " ".join(f"{v:.1f}" for v in f.box),
                     "cluster": "singleton" if label == SINGLETON else f"cluster_{label:03d}",
                     "similarity": f"{sim:.4f}", "crop": crop, "whole_image": int(f.whole)})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, quoting=csv.QUOTE_MINIMAL)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "clusters.csv", buf.getvalue())

    for label, members in sorted(by_label.items()):
        members.sort(key=lambda m: -m[0])  # most typical first
        shown = members[: config.sheet_max]
        images = [np.asarray(Image.open(io.BytesIO(m[1].crop))) for m in shown]
        captions = [f"{Path(m[1].photo).name[:22]}\n{m[0]:.3f}" for m in shown]
        name = "singletons" if label == SINGLETON else f"cluster_{label:03d}"
        title = f"{name}: {len(members)} faces" + (
            f" (first {len(shown)})" if len(shown) < len(members) else "")
        plot_grid(images, captions, out / "sheets" / f"{name}.png", title, columns=8)
