"""Uncalibrated unknown thresholds that hold for any gallery size.

A stranger is accepted when their best score over the gallery's N people passes the threshold,
so the false-accept rate grows with N: FAR(t) ~ N p(t), with p(t) the chance that ONE enrolled
person scores a stranger at least t. This script measures p(t) (the upper tail of one-person
impostor scores) for each match method on half of the pins105-dev identities (A), so that the
default threshold of an N-person gallery is the score with p = FAR / N. It then checks that
rule on the other half (B), which it never saw: galleries of 5 to 40 B people enrolled from
their train rows, strangers = the remaining B people's val rows, genuine = the enrolled
people's val rows.

    .venv/bin/python benchmarks/thresholds.py --emb runs/pins_emb2/dlib

Prints the tail table for ``celebface.gallery.defaults.IMPOSTOR_TAILS`` and writes
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
P_GRID = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5)
SIZES = (5, 10, 20, 40)


def impostor_scores(method: str, vec, ids, split, people, k: int = 5) -> np.ndarray:
    """Scores of each val row of ``people`` against every OTHER person of ``people``."""
    from celebface.gallery.matching import GalleryMatcher
    from celebface.gallery.store import Gallery

    enrolled = np.isin(ids, people) & (split == "train")
    g = Gallery()
    g.add(vec[enrolled], list(ids[enrolled]), [str(i) for i in np.flatnonzero(enrolled)])
    m = GalleryMatcher(g, method, k)
    probes = np.isin(ids, people) & (split == "val")
    s = m.scores(vec[probes])
    own = np.array([g.names.index(i) for i in ids[probes]])
    mask = np.ones_like(s, bool)
    mask[np.arange(len(own)), own] = False
    return s[mask]


def tail(scores: np.ndarray) -> list[tuple[float, float]]:
    return [(p, float(np.quantile(scores, 1 - p))) for p in P_GRID if p * len(scores) >= 3]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, required=True)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--far", type=float, default=0.01)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from celebface.gallery.calibration import open_set_rates, truth_indices
    from celebface.gallery.defaults import tail_threshold
    from celebface.gallery.matching import GalleryMatcher
    from celebface.gallery.store import Gallery
    from embeddings import load

    e, vec, model, tta = load(args.emb)
    names = list(e.label_names)
    ids = np.array([names[int(i)] for i in e.labels], dtype=object)
    split = np.array(e.splits, dtype=object)
    order = np.random.default_rng(1234).permutation(names)
    half_a, half_b = list(order[: len(names) // 2]), list(order[len(names) // 2:])
    tails = {m: tail(impostor_scores(m, vec, ids, split, half_a))
             for m in ("centroid", "knn", "topk")}
    logging.info("tails (on %d people): %s", len(half_a), tails)
    checks = []
    for method, tab in tails.items():
        for n in SIZES:
            for seed in range(args.seeds):
                rng = np.random.default_rng(seed)
                known = list(rng.choice(half_b, n, replace=False))
                strangers = [x for x in half_b if x not in known]
                enrolled = np.isin(ids, known) & (split == "train")
                g = Gallery()
                g.add(vec[enrolled], list(ids[enrolled]),
                      [str(i) for i in np.flatnonzero(enrolled)])
                m = GalleryMatcher(g, method, 5)
                gen = np.isin(ids, known) & (split == "val")
                strange = np.isin(ids, strangers) & (split == "val")
                thr = tail_threshold(tab, args.far / n)
                r = open_set_rates(np.concatenate([m.scores(vec[gen]), m.scores(vec[strange])]),
                                   np.concatenate([truth_indices(list(ids[gen]), g.names),
                                                   -np.ones(strange.sum(), np.int64)]), thr)
                checks.append({"method": method, "people": n, "seed": seed, "threshold": thr,
                               "tar": r.tar, "far": r.far})
    rows = []
    for method in tails:
        for n in SIZES:
            c = [x for x in checks if x["method"] == method and x["people"] == n]
            rows.append({"method": method, "people": n,
                         "threshold": float(np.mean([x["threshold"] for x in c])),
                         "tar": float(np.mean([x["tar"] for x in c])),
                         "far": float(np.mean([x["far"] for x in c])),
                         "far_max": float(np.max([x["far"] for x in c]))})
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "+".join(Path(part).name for part in str(args.emb).split("+"))
    meta = {"embeddings": str(args.emb), "embedder": f"{model}, tta {tta}", "far": args.far,
            "tails": tails, "checks": rows}
    (RESULTS / f"thresholds_{tag}.json").write_text(json.dumps(meta, indent=1))
    lines = ["# Uncalibrated thresholds by gallery size", "",
             f"Embeddings `{args.emb}` ({model}, tta {tta}). Tails measured on "
             f"{len(half_a)} pins105-dev people; checked on the other {len(half_b)} "
             f"({args.seeds} random galleries per size; target FAR {args.far:g}).", "",
             "| method | people enrolled | threshold | TAR | FAR (mean) | FAR (worst) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['people']} | {r['threshold']:.3f} | "
                     f"{100 * r['tar']:.1f}% | {100 * r['far']:.2f}% | "
                     f"{100 * r['far_max']:.2f}% |")
    (RESULTS / f"thresholds_{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print("IMPOSTOR_TAILS entry:")
    print(json.dumps({m: [[round(p_, 6), round(t, 4)] for p_, t in tab]
                      for m, tab in tails.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
