"""Uncalibrated unknown thresholds that hold for any gallery size and photos per person.

A stranger is accepted when their best score over the gallery's N people passes the threshold,
so the false-accept rate grows with N: FAR(t) ~ sum over the people of p_i(t), with p_i(t) the
chance that ONE enrolled person scores a stranger at least t. p_i depends on how many photos
person i has: a one-photo "centroid" is a single noisy vector, a many-photo centroid an average.
This script measures p(t) (the upper tail of one-person impostor scores) for each match method
and each photos-per-person bucket of :data:`celebface.gallery.policy.PHOTO_BUCKETS` (1 photo,
3 photos for 2-4, all ~116 train photos for 5+; the 1- and 3-photo tails pool several random
draws of the enrolled photos) on half of the pins105-dev identities (A). It then checks the
default thresholds on the other half (B), which it never saw: galleries of 5 to 40 B people
enrolled from 1, 3, 10 or all of their train rows, strangers = the remaining B people's val
rows, genuine = the enrolled people's val rows. A person with one photo is enrolled as the
average of it and its mirror image (``celebface.gallery.enroll.MIRROR_SINGLE_PHOTOS``): with
``--flip-emb`` (a ``celebface embed --tta flip`` output of the same photos) the one-photo
galleries take their vectors from it, probes stay single views. One-photo people's scores carry
the mean-face offset (``celebface.gallery.policy.person_offsets``); the mean face is measured
here first, on half A's train rows, and used for the tails.

    .venv/bin/python benchmarks/thresholds.py --emb runs/pins_emb/dlib \
        --flip-emb runs/pins_emb/dlib_flip

Writes the tails and the mean face into the library's package data
(``src/celebface/recognition/measured/<embedder>_<tta>.json``, read by
``celebface.recognition.registry.measured``) and the check into
``benchmarks/results/thresholds_<EMB folder name>.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MEASURED = ROOT / "src" / "celebface" / "recognition" / "measured"
P_GRID = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5)
SIZES = (5, 10, 20, 40)
METHODS = ("centroid", "knn", "topk")
#: photos enrolled per person for each bucket's tail (None: all train rows)
BUCKET_PHOTOS = {"1": 1, "2-4": 3, "5+": None}
#: photos per person of the checked galleries (10 checks the 5+ table below "all")
CHECK_PHOTOS = (1, 3, 10, None)
#: random draws of the enrolled photos pooled into a 1- or 3-photo tail
TAIL_DRAWS = 8


def enrolled_rows(ids, split, people, photos: int | None, rng) -> np.ndarray:
    """Mask of ``photos`` random train rows of each of ``people`` (all of them for None)."""
    mask = np.isin(ids, people) & (split == "train")
    if photos is None:
        return mask
    out = np.zeros_like(mask)
    for person in people:
        rows = np.flatnonzero(mask & (ids == person))
        out[rng.choice(rows, min(photos, len(rows)), replace=False)] = True
    return out


def gallery_of(vec, ids, rows, embedder: dict | None = None):
    """A gallery of ``rows``, recording ``embedder`` (``{"name", "tta"}``; default dlib)."""
    from celebface.gallery.store import Gallery

    g = Gallery()
    g.add(vec[rows], list(ids[rows]), [str(i) for i in np.flatnonzero(rows)])
    g.embedder = dict(embedder or {})
    return g


def mean_face(vec, single_vec, ids, split, people) -> tuple[float, list[float]]:
    """``(reference, mean face)`` (an embedder's measured ``mean_face``): the unit mean of
    ``people``'s train rows of ``vec``, and the median of its dot product with their one-photo
    vectors (``single_vec``)."""
    rows = np.isin(ids, people) & (split == "train")
    face = vec[rows].mean(0)
    face = face / np.linalg.norm(face)
    return round(float(np.median(single_vec[rows] @ face)), 4), \
        [round(float(x), 5) for x in face]


def impostor_scores(method: str, vec, ids, split, people, photos: int | None = None,
                    rng=None, k: int = 5, enrol_vec=None, embedder=None) -> np.ndarray:
    """Scores of each val row of ``people`` against every OTHER person of ``people``, each
    enrolled from ``photos`` random train rows (all for None) of ``enrol_vec`` (default
    ``vec``)."""
    from celebface.gallery.matching import GalleryMatcher

    enrol_vec = vec if enrol_vec is None else enrol_vec
    g = gallery_of(enrol_vec, ids, enrolled_rows(ids, split, people, photos, rng), embedder)
    m = GalleryMatcher(g, method, k)
    probes = np.isin(ids, people) & (split == "val")
    s = m.scores(vec[probes])
    own = np.array([g.names.index(i) for i in ids[probes]])
    mask = np.ones_like(s, bool)
    mask[np.arange(len(own)), own] = False
    return s[mask]


def tail(scores: np.ndarray) -> list[tuple[float, float]]:
    return [(p, round(float(np.quantile(scores, 1 - p)), 4)) for p in P_GRID
            if p * len(scores) >= 3]


def measure_tails(vec, ids, split, people, single_vec=None, embedder=None
                  ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{method: {bucket: tail}}`` measured on ``people``; one-photo galleries enrolled from
    ``single_vec`` (default ``vec``)."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for method in METHODS:
        out[method] = {}
        for bucket, photos in BUCKET_PHOTOS.items():
            draws = 1 if photos is None else TAIL_DRAWS
            rng = np.random.default_rng(99)
            enrol = single_vec if photos == 1 else None
            scores = np.concatenate([impostor_scores(method, vec, ids, split, people, photos,
                                                     rng, enrol_vec=enrol,
                                                     embedder=embedder)
                                     for _ in range(draws)])
            out[method][bucket] = tail(scores)
            logging.info("%s %s: %d impostor scores", method, bucket, len(scores))
    return out


def flip_vectors(flip_emb: Path, e) -> np.ndarray:
    """The vectors of a ``--tta flip`` embed output, checked to hold ``e``'s photos in order."""
    from embeddings import load

    f, vec, _, tta = load(flip_emb)
    if [Path(x).parts[-2:] for x in f.paths] != [Path(x).parts[-2:] for x in e.paths] \
            or tta != "flip":
        raise SystemExit(f"{flip_emb}: not a --tta flip embed of the same photos")
    return vec


def halves(names: list[str]) -> tuple[list[str], list[str]]:
    """The people the tails are measured on (A) and the held-out ones (B)."""
    order = np.random.default_rng(1234).permutation(names)
    return list(order[: len(names) // 2]), list(order[len(names) // 2:])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, required=True)
    p.add_argument("--flip-emb", type=Path,
                   help="a --tta flip embed output of the same photos: one-photo people's "
                        "vectors (their photo and its mirror), as enroll makes them")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--far", type=float, default=None,
                   help="the FAR the checked thresholds aim at (default: the library's, "
                        "celebface.gallery.policy.DEFAULT_FAR)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from celebface.gallery.calibration import open_set_rates, truth_indices
    from celebface.gallery.matching import GalleryMatcher
    from celebface.gallery.policy import DEFAULT_FAR, gallery_threshold
    from embeddings import labels_of, load

    far = DEFAULT_FAR if args.far is None else args.far
    e, vec, model, tta = load(args.emb)
    names, ids, split = labels_of(e)
    half_a, half_b = halves(names)
    single_vec = vec if args.flip_emb is None else flip_vectors(args.flip_emb, e)
    embedder = {"name": model, "tta": tta}
    faces = mean_face(vec, single_vec, ids, split, half_a)
    # the offsets of the tails and checks below use the mean face just measured
    write_measured(model, tta, mean_face={"reference": faces[0], "vector": faces[1]})
    tails = measure_tails(vec, ids, split, half_a, single_vec, embedder)
    write_measured(model, tta, impostor_tails=tails)
    checks = []
    for method, tabs in tails.items():
        for photos in CHECK_PHOTOS:
            for n in SIZES:
                for seed in range(args.seeds):
                    rng = np.random.default_rng(seed)
                    known = list(rng.choice(half_b, n, replace=False))
                    strangers = [x for x in half_b if x not in known]
                    g = gallery_of(single_vec if photos == 1 else vec, ids,
                                   enrolled_rows(ids, split, known, photos, rng), embedder)
                    m = GalleryMatcher(g, method, 5)
                    gen = np.isin(ids, known) & (split == "val")
                    strange = np.isin(ids, strangers) & (split == "val")
                    thr = gallery_threshold(tabs, list(g.counts().values()), far)
                    r = open_set_rates(
                        np.concatenate([m.scores(vec[gen]), m.scores(vec[strange])]),
                        np.concatenate([truth_indices(list(ids[gen]), g.names),
                                        -np.ones(strange.sum(), np.int64)]), thr)
                    checks.append({"method": method, "photos": photos, "people": n,
                                   "seed": seed, "threshold": thr, "tar": r.tar, "far": r.far})
    rows = []
    for method in tails:
        for photos in CHECK_PHOTOS:
            for n in SIZES:
                c = [x for x in checks
                     if x["method"] == method and x["people"] == n and x["photos"] == photos]
                rows.append({"method": method, "photos": photos or "all", "people": n,
                             "threshold": float(np.mean([x["threshold"] for x in c])),
                             "tar": float(np.mean([x["tar"] for x in c])),
                             "far": float(np.mean([x["far"] for x in c])),
                             "far_max": float(np.max([x["far"] for x in c]))})
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "+".join(Path(part).name for part in str(args.emb).split("+"))
    meta = {"embeddings": str(args.emb), "flip_embeddings": str(args.flip_emb or ""),
            "embedder": f"{model}, tta {tta}",
            "far": far, "mean_face": faces, "tails": tails, "checks": rows}
    (RESULTS / f"thresholds_{tag}.json").write_text(json.dumps(meta, indent=1))
    lines = ["# Uncalibrated thresholds by gallery size and photos per person", "",
             f"Embeddings `{args.emb}` ({model}, tta {tta}). Tails measured on "
             f"{len(half_a)} pins105-dev people per photos-per-person bucket (1, 2-4 from 3 "
             f"photos, 5+ from all train photos); checked on the other {len(half_b)} "
             f"({args.seeds} random galleries per row; thresholds aim at FAR {far:g}, the "
             f"library's default {DEFAULT_FAR:g}). Photos: enrolled per person (train rows); "
             "strangers: the val rows of the B people not enrolled. One-photo people: "
             + ("their photo and its mirror image, averaged (as enroll makes them; "
                f"`{args.flip_emb}`)." if args.flip_emb else "their photo alone."), "",
             "| method | photos per person | people enrolled | threshold | TAR | FAR (mean) "
             "| FAR (worst) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['photos']} | {r['people']} | {r['threshold']:.3f} "
                     f"| {100 * r['tar']:.1f}% | {100 * r['far']:.2f}% | "
                     f"{100 * r['far_max']:.2f}% |")
    (RESULTS / f"thresholds_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {MEASURED / f'{model}_{tta}.json'}")
    return 0


def write_measured(model: str, tta: str, **tables) -> None:
    """Merge ``tables`` into the package data file the library reads the embedder's measured
    tables from (:func:`celebface.recognition.registry.measured`)."""
    from celebface.recognition.registry import measured

    path = MEASURED / f"{model}_{tta}.json"
    data = json.loads(path.read_text("utf-8")) if path.is_file() else {
        "embedder": model, "tta": tta,
        "source": "benchmarks/thresholds.py (benchmarks/results/thresholds_*.md)"}
    data.update({k: v for k, v in tables.items()})
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    measured.cache_clear()


if __name__ == "__main__":
    raise SystemExit(main())
