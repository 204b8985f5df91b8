"""Tune and measure ``celebface cluster`` on pins105-dev.

Tuning (half A of the identities, TRAIN photos, up to 10 per person, faces cached by
benchmarks/face_cache.py): --rounds random groups of 20 people; for each method and link
threshold, the mean BCubed F1; the best pair is kept. Measuring (half B, never tuned on): the
VAL photos of 20 random people, renamed and shuffled together in one folder, clustered end to end
by ``cluster_photos`` (detection, embedding, grouping, output folder). Writes
benchmarks/results/cluster.md/.json.

    python benchmarks/cluster.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from celebface.clustering import METHODS, ClusterConfig, bcubed, cluster_photos, cluster_vectors
from celebface.io import atomic_write_text
from face_cache import DATA, ROOT, embed_paths, halves, rows, sample, vectors

GRID = np.round(np.arange(0.85, 0.9801, 0.0025), 4)


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def tune(table: list, people: list[str], rounds: int, cache: Path, seed: int) -> dict:
    items = sample(table, "train", people, 10, seed)
    found = embed_paths([p for _, p in items], cache)
    vecs = vectors(found, [p for _, p in items], "none")
    ids = np.asarray([i for i, _ in items])
    rng = np.random.default_rng(seed + 1)
    groups = [rng.choice(people, 20, replace=False) for _ in range(rounds)]
    scores: dict[str, dict[float, list]] = {m: {float(t): [] for t in GRID} for m in METHODS}
    for group in groups:
        keep = np.isin(ids, group)
        for m in METHODS:
            for t in GRID:
                labels = cluster_vectors(vecs[keep], float(t), m)
                p, r = bcubed(ids[keep], labels)
                scores[m][float(t)].append((p, r, int(labels.max() + 1)))
    table_out = {m: {t: {"precision": float(np.mean([s[0] for s in v])),
                         "recall": float(np.mean([s[1] for s in v])),
                         "clusters": float(np.mean([s[2] for s in v]))}
                     for t, v in per.items()} for m, per in scores.items()}
    best = max(((m, t) for m in METHODS for t in table_out[m]),
               key=lambda mt: f1(table_out[mt[0]][mt[1]]["precision"],
                                 table_out[mt[0]][mt[1]]["recall"]))
    return {"method": best[0], "threshold": best[1], "photos": len(items),
            "people": len(people), "rounds": rounds, "grid": table_out}


def measure(table: list, people: list[str], config: ClusterConfig, seed: int) -> dict:
    rng = np.random.default_rng(seed + 2)
    chosen = sorted(rng.choice(people, 20, replace=False).tolist())
    items = sample(table, "val", chosen, None, seed)
    order = rng.permutation(len(items))
    with tempfile.TemporaryDirectory() as tmp:
        photos, truth = Path(tmp) / "photos", {}
        photos.mkdir()
        for k, j in enumerate(order):
            identity, path = items[j]
            name = f"photo_{k:04d}{Path(path).suffix}"
            os.symlink(path, photos / name)
            truth[name] = identity
        out = ROOT / "runs" / "cluster_bench"
        if out.exists():
            import shutil

            shutil.rmtree(out)
        t0 = time.perf_counter()
        summary = cluster_photos(photos, out, config)
        seconds = time.perf_counter() - t0
    with open(out / "clusters.csv", newline="", encoding="utf-8") as fh:
        got = list(csv.DictReader(fh))
    names = {c: k for k, c in enumerate(sorted({r["cluster"] for r in got} - {"singleton"}))}
    labels = np.asarray([names.get(r["cluster"], -1) for r in got])
    p, r = bcubed([truth[row["photo"]] for row in got], labels)
    return {"people": chosen, "photos": len(items), "faces": summary.faces,
            "photos_with_several_faces": len({row["photo"] for row in got if row["face"] != "0"}),
            "whole_image_faces": summary.whole_images,
            "clusters": summary.clusters, "singletons": summary.singletons,
            "bcubed_precision": round(p, 4), "bcubed_recall": round(r, 4),
            "bcubed_f1": round(f1(p, r), 4), "seconds": round(seconds, 1),
            "output": str(out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench_faces.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, help="skip tuning: measure at this threshold")
    ap.add_argument("--method", choices=METHODS)
    args = ap.parse_args()
    table = rows(args.data)
    half_a, half_b = halves(sorted({i for _, i, _ in table}), args.seed)
    tuned = tune(table, half_a, args.rounds, args.cache, args.seed)
    method = args.method or tuned["method"]
    threshold = args.threshold if args.threshold is not None else tuned["threshold"]
    if args.method and args.threshold is None:
        grid = tuned["grid"][method]
        threshold = max(grid, key=lambda t: f1(grid[t]["precision"], grid[t]["recall"]))
    config = ClusterConfig(threshold=threshold, method=method, device="cpu")
    result = {"tuning": tuned, "method": method, "threshold": threshold,
              "test": measure(table, half_b, config, args.seed),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared, busy)"}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "cluster.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "cluster.md", report(result))
    print(report(result))


def report(r: dict) -> str:
    t, tu = r["test"], r["tuning"]
    lines = [
        "# Clustering (dlib, pins105-dev)", "",
        f"Tuned on {tu['rounds']} random groups of 20 of {tu['people']} people (half A, TRAIN "
        f"photos, up to 10 each): best mean BCubed F1 with **{r['method']}** at link cosine "
        f"**{r['threshold']:.4f}**. Measured end to end (`cluster_photos`) on the VAL photos "
        f"of 20 other people (half B) shuffled in one folder. Machine: {r['machine']}.", "",
        "| photos | faces | clusters found (true 20) | singletons | BCubed precision | "
        "BCubed recall | F1 | seconds |", "|---|---|---|---|---|---|---|---|",
        f"| {t['photos']} | {t['faces']} | {t['clusters']} | {t['singletons']} | "
        f"{t['bcubed_precision']:.4f} | {t['bcubed_recall']:.4f} | {t['bcubed_f1']:.4f} | "
        f"{t['seconds']} |", "",
        "Tuning (half A train, mean over the groups), around the chosen threshold:", "",
        "| method | threshold | precision | recall | clusters (true 20) |",
        "|---|---|---|---|---|",
    ]
    for m, grid in tu["grid"].items():
        for th, v in grid.items():
            if abs(float(th) - r["threshold"]) <= 0.0101:
                lines.append(f"| {m} | {float(th):.4f} | {v['precision']:.4f} | "
                             f"{v['recall']:.4f} | {v['clusters']:.1f} |")
    lines += ["", "Reproduce: `python benchmarks/verify.py && python benchmarks/cluster.py` "
              "(contact sheets of the measured run land in runs/cluster_bench/sheets/).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
