"""Shared by benchmarks/verify.py and cluster.py: pins105-dev photos' largest face found as
``celebface verify`` finds it (MTCNN, whole crop when none) and embedded (dlib unless told
otherwise), plain and mirrored, cached in an .npz by path so a rerun (or the other benchmark)
embeds nothing again."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from celebface.io import read_image
from celebface.recognition import EmbedderSpec, combine_views
from celebface.verification import locate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pins105-dev"


def rows(data: Path) -> list[tuple[str, str, str]]:
    """``(split, identity, path)`` of every photo in ``splits.csv``."""
    with open(data / "splits.csv", newline="", encoding="utf-8-sig") as fh:
        return [(r["split"], r["identity"], str(data / r["identity"] / r["filename"]))
                for r in csv.DictReader(fh)]


def halves(identities: list[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """The identities split in two halves, at random (seeded)."""
    order = np.random.default_rng(seed).permutation(sorted(identities))
    half = len(order) // 2
    return sorted(order[:half].tolist()), sorted(order[half:].tolist())


def sample(table: list[tuple[str, str, str]], split: str, people: list[str], per: int | None,
           seed: int = 0) -> list[tuple[str, str]]:
    """``(identity, path)`` of ``split`` rows of ``people``, at most ``per`` each (random)."""
    out = []
    for person in people:
        paths = sorted(p for s, i, p in table if s == split and i == person)
        if per is not None:  # a seeded shuffle's first ``per``: a smaller sample is a subset
            rng = np.random.default_rng([seed, sorted(people).index(person)])
            paths = sorted(np.asarray(paths)[rng.permutation(len(paths))[:per]].tolist())
        out += [(person, p) for p in paths]
    return out


def cache_for(cache: Path, embedder: str) -> Path:
    """The face cache of ``embedder``: ``cache`` for dlib (its first name), else
    ``cache``'s name with ``_EMBEDDER`` added."""
    return cache if embedder == "dlib" else cache.with_name(f"{cache.stem}_{embedder}.npz")


def embed_paths(paths: list[str], cache: Path, batch: int = 32, embedder: str = "dlib"
                ) -> dict[str, dict]:
    """``{path: {"orig", "flip", "whole", "box"}}`` by ``embedder``, computing only what its
    cache (:func:`cache_for`) lacks; a fusion ``a+b`` fuses its parts' cached views with the
    registered weights (:func:`celebface.recognition.fusion.fuse`)."""
    from tqdm import tqdm

    if "+" in embedder:
        from celebface.recognition.fusion import fuse
        from celebface.recognition.registry import embedder_config

        parts = [embed_paths(paths, cache, batch, name) for name in embedder.split("+")]
        weights = embedder_config(embedder).fusion_weights or (1.0,) * len(parts)
        return {p: {**parts[0][p], **{v: fuse([part[p][v][None] for part in parts],
                                               weights)[0] for v in ("orig", "flip")}}
                for p in paths}
    cache = cache_for(cache, embedder)

    have: dict[str, dict] = {}
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            for k, p in enumerate(z["paths"].tolist()):
                have[p] = {"orig": z["orig"][k], "flip": z["flip"][k], "whole": bool(z["whole"][k]),
                           "box": z["boxes"][k]}
    todo = [p for p in dict.fromkeys(paths) if p not in have]
    if todo:
        from celebface.detection import get_finder

        detector = get_finder(device="cpu")
        model = EmbedderSpec(embedder).build("cpu")
        for lo in tqdm(range(0, len(todo), batch), desc=f"detect+embed ({embedder})",
                       unit="batch"):
            part = todo[lo:lo + batch]
            images = [read_image(p, 1024).rgb for p in part]
            found = [f[0] for f in locate(images, detector, all_faces=False)]
            views = model.embed_views(images, [f.face for f in found], ("orig", "flip"))
            for k, (p, f) in enumerate(zip(part, found, strict=True)):
                have[p] = {"orig": views["orig"][k], "flip": views["flip"][k], "whole": f.whole,
                           "box": np.asarray(f.face.box, np.float32)}
            if (lo // batch) % 10 == 9 or lo + batch >= len(todo):
                _save(cache, have)
    return {p: have[p] for p in paths}


def _save(cache: Path, have: dict[str, dict]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    keys = list(have)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, paths=np.array(keys, dtype=np.str_),
             orig=np.stack([have[k]["orig"] for k in keys]),
             flip=np.stack([have[k]["flip"] for k in keys]),
             whole=np.array([have[k]["whole"] for k in keys]),
             boxes=np.stack([have[k]["box"] for k in keys]))
    os.replace(tmp, cache)


def vectors(found: dict[str, dict], paths: list[str], tta: str) -> np.ndarray:
    if tta == "none":
        return np.stack([found[p]["orig"] for p in paths])
    return np.stack([combine_views([found[p]["orig"][None], found[p]["flip"][None]])[0]
                     for p in paths])
