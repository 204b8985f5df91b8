"""The ``auto`` face rule before and after its large-face first pass, on pins105-dev, same run.

pins105-dev photos are tight face crops of unknown origin: ``auto`` looks for the face in each
(:meth:`celebface.detection.finder.FaceFinder.locate`). ``before``: one MTCNN pass as
``get_detector("mtcnn")`` makes it (pyramid from 20-px faces), largest confident face, else the
whole image. ``after`` (the rule now): first MTCNN on a copy resized to a shorter side of
``LARGE_SIDE`` px looking for faces of ``LARGE_FACE`` x that side or more; only images where
that finds nothing get the ``before`` pass. Both locate the same photos in alternating chunks
(the box is shared with other jobs), then dlib's ResNet embeds each chip (flip TTA off and on);
nearest-centroid, 1-NN and logistic-regression val accuracy (fitted on the ``train`` rows of
splits.csv) for each, the paired difference of each val photo's centroid margin (more
sensitive than accuracy), and how far the landmarks moved (in inter-ocular distances).

    .venv/bin/python benchmarks/locate.py [--identities 20] [--every 1] [--chunk 64]

Results: ``benchmarks/results/locate.md``/``.json``.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from celebface.data import list_dataset
from celebface.io import atomic_write_json, atomic_write_text, read_image

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("locate")


def locate_before(images: list[np.ndarray]) -> list:
    """``auto`` without its first pass: ``detect`` (one full MTCNN pass), else the whole image."""
    from celebface.detection import get_finder
    from celebface.detection.finder import whole_face

    faces = get_finder(device="cpu").locate(images, None, "detect")
    return [f if f is not None else whole_face(im) for im, f in zip(images, faces, strict=True)]


def accuracy(vec: np.ndarray, ids: np.ndarray, split: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

    tr, va = split == "train", split == "val"
    models = {"nearest centroid": NearestCentroid(),
              "1-NN (cosine)": KNeighborsClassifier(1, metric="cosine"),
              "logistic regression (C=10)": LogisticRegression(C=10, max_iter=2000)}
    return {name: round(float((m.fit(vec[tr], ids[tr]).predict(vec[va]) == ids[va]).mean()), 4)
            for name, m in models.items()}


def margins(vec: np.ndarray, ids: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Per val photo: cosine to its person's train centroid minus the best other centroid's
    (a continuous, paired measure of how well each chip embeds)."""
    from celebface.recognition.base import l2_normalize

    tr, va = split == "train", split == "val"
    names = sorted(set(ids[tr]))
    cent = l2_normalize(np.stack([vec[tr & (ids == n)].mean(0) for n in names]))
    sims = vec[va] @ cent.T
    own = np.array([names.index(i) for i in ids[va]])
    mine = sims[np.arange(len(own)), own]
    sims[np.arange(len(own)), own] = -np.inf
    return mine - sims.max(1)


def paired(before: np.ndarray, after: np.ndarray) -> dict:
    """Mean margins, their paired difference with its standard error, and how many val photos
    the nearest centroid gets right in only one of the two."""
    d = after - before
    return {"before": round(float(before.mean()), 4), "after": round(float(after.mean()), 4),
            "diff": round(float(d.mean()), 5),
            "stderr": round(float(d.std(ddof=1) / np.sqrt(len(d))), 5),
            "right_before_only": int(((before > 0) & (after <= 0)).sum()),
            "right_after_only": int(((after > 0) & (before <= 0)).sum())}


def landmark_shift(before: list, after: list) -> dict:
    """Largest landmark move per photo, in inter-ocular distances (both found a face)."""
    shifts = [float(np.abs(a.landmarks - b.landmarks).max()
                    / np.linalg.norm(a.landmarks[0] - a.landmarks[1]))
              for a, b in zip(before, after, strict=True)
              if a.landmarks is not None and b.landmarks is not None]
    q = np.percentile(shifts, [50, 95, 99]) if shifts else [np.nan] * 3
    return {"photos": len(shifts), "median": round(float(q[0]), 3),
            "p95": round(float(q[1]), 3), "p99": round(float(q[2]), 3),
            "max": round(max(shifts, default=float("nan")), 3),
            "whole_before": sum(f.landmarks is None for f in before),
            "whole_after": sum(f.landmarks is None for f in after)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=20,
                    help="every k-th identity of the 105, this many (all their photos)")
    ap.add_argument("--every", type=int, default=1,
                    help="every k-th photo of each of those people (1: all)")
    ap.add_argument("--chunk", type=int, default=64, help="photos per locate call")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from celebface.detection import get_finder
    from celebface.detection.finder import LARGE_FACE, LARGE_SIDE
    from celebface.device import set_torch_threads
    from celebface.io import read_splits
    from celebface.recognition import DlibEmbedder
    from celebface.recognition.tta import combine_views

    items = list_dataset(PINS)
    names = sorted({it.identity for it in items})
    keep = set(names[:: max(1, len(names) // args.identities)][: args.identities])
    items = [it for it in items if it.identity in keep][:: args.every]
    splits = read_splits(PINS / "splits.csv")
    ids = np.array([it.identity for it in items], dtype=object)
    split = np.array([splits.get(it.key) for it in items], dtype=object)
    images = [read_image(it.path).rgb for it in items]
    log.info("%d photos of %d people", len(images), len(keep))

    set_torch_threads()  # as the CLI does: the cores free now (1 on a busy box)
    locate_faces = get_finder(device="cpu", rule="auto").locate
    locate_faces(images[:4])  # build both detectors before timing
    locate_before(images[:4])
    faces: dict[str, list] = {"before": [], "after": []}
    secs = {"before": 0.0, "after": 0.0}
    for n, lo in enumerate(range(0, len(images), args.chunk)):
        part = images[lo:lo + args.chunk]
        order = ("before", "after") if n % 2 == 0 else ("after", "before")
        for name in order:  # alternate which goes first: load on the box hits both alike
            t = time.perf_counter()
            got = locate_before(part) if name == "before" else locate_faces(part)
            secs[name] += time.perf_counter() - t
            faces[name] += got
    emb = DlibEmbedder(device="cpu")
    rows: dict = {}
    vecs: dict = {}
    for name in ("before", "after"):
        views = {"orig": [], "flip": []}
        for lo in range(0, len(images), 256):
            out = emb.embed_views(images[lo:lo + 256], faces[name][lo:lo + 256],
                                  ("orig", "flip"))
            for v in views:
                views[v].append(out[v])
        orig = np.concatenate(views["orig"])
        flip = combine_views([orig, np.concatenate(views["flip"])])
        vecs[name] = {"none": orig, "flip": flip}
        rows[name] = {"locate_seconds": round(secs[name], 1),
                      "ms_per_photo": round(1000 * secs[name] / len(images), 1),
                      "none": accuracy(orig, ids, split), "flip": accuracy(flip, ids, split)}
        log.info("%s: %s", name, rows[name])
    shift = landmark_shift(faces["before"], faces["after"])
    margin = {tta: paired(margins(vecs["before"][tta], ids, split),
                          margins(vecs["after"][tta], ids, split)) for tta in ("none", "flip")}
    doc = {"photos": len(images), "identities": len(keep),
           "train": int((split == "train").sum()), "val": int((split == "val").sum()),
           "large_side": LARGE_SIDE, "large_face": LARGE_FACE,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
           "load": round(os.getloadavg()[0], 1), "threads": torch.get_num_threads(),
           "every": args.every, "rows": rows, "landmark_shift": shift, "margin": margin}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "locate.json", doc)
    b, a = rows["before"], rows["after"]
    which = "all their photos" if args.every == 1 else f"1 in {args.every} of their photos"
    lines = ["# The `auto` face rule: large-face first pass (pins105-dev, same run)", "",
             f"{doc['photos']} photos of {doc['identities']} people ({doc['train']} train / "
             f"{doc['val']} val), {which}. `before`: one MTCNN pass (faces from "
             f"20 px); `after`: first MTCNN on a copy with a {LARGE_SIDE}-px shorter side, faces "
             f"from {LARGE_FACE:g} of it, the `before` pass only where that finds nothing. "
             f"Command: `.venv/bin/python benchmarks/locate.py {' '.join(sys.argv[1:])}` "
             f"({doc['machine']}, 1-minute load {doc['load']} at the end: compare within "
             f"the run; torch threads as the CLI picks them: {doc['threads']}).", "",
             "| | before | after |", "|---|---|---|",
             f"| locate, ms per photo | {b['ms_per_photo']} | {a['ms_per_photo']} "
             f"({b['locate_seconds'] / a['locate_seconds']:.1f}x faster) |",
             f"| whole image (no face found) | {shift['whole_before']} | "
             f"{shift['whole_after']} |"]
    for tta in ("none", "flip"):
        for m in b[tta]:
            lines.append(f"| {m}, val{' (flip TTA)' if tta == 'flip' else ''} | "
                         f"{b[tta][m]:.2%} | {a[tta][m]:.2%} |")
    for tta, m in margin.items():
        lines.append(f"| mean centroid margin{' (flip TTA)' if tta == 'flip' else ''} | "
                     f"{m['before']:.4f} | {m['after']:.4f} (paired diff {m['diff']:+.4f} "
                     f"± {m['stderr']:.4f}) |")
    lines += ["", "Centroid margin: a val photo's cosine to its person's train centroid minus "
              "the best other centroid's. Val photos the nearest centroid names right with one "
              "rule only: " + "; ".join(
                  f"{tta}: {m['right_before_only']} before only, {m['right_after_only']} after "
                  "only" for tta, m in margin.items()) + "."]
    lines += ["", f"Landmarks, after vs before ({shift['photos']} photos, largest of the 5 "
              f"points' moves in inter-ocular distances): median {shift['median']}, 95th "
              f"percentile {shift['p95']}, 99th {shift['p99']}, max {shift['max']}.", ""]
    atomic_write_text(RESULTS / "locate.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
