"""Tune and measure ``celebface cluster`` on pins105-dev.

Tuning (half A of the identities only; faces cached by benchmarks/face_cache.py): --rounds
random groups of each of four kinds, so that the chosen settings hold for folders unlike the
measured one:

- ``train10``: 20 people, 10 TRAIN photos each;
- ``val``: 20 people, all their VAL photos (about 25 each: shaped like the measured folder);
- ``mixed``: 20 people, 2 to 50 photos each, from their VAL and (up to 25) TRAIN photos;
- ``few``: 30 people, 1 to 8 VAL photos each.

For each method and setting (link cosine; for ``rerank`` also the re-ranked distance cut), the
mean BCubed F1 of each kind; the setting with the best mean over the kinds is kept. Measuring
(half B, never tuned on): the VAL photos of 20 random people, renamed and shuffled together in
one folder, clustered end to end by ``cluster_photos`` (detection, embedding, grouping, output
folder). Writes benchmarks/results/cluster.md/.json. The first run embeds about 2,600 tuning
photos into the face cache (about 10 minutes on 2 CPU cores); later runs take about 6 minutes.

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

from celebface.clustering import (
    METHODS,
    ClusterConfig,
    bcubed,
    cluster_photos,
    cluster_vectors,
    reranked_distances,
)
from celebface.io import atomic_write_text
from face_cache import DATA, ROOT, embed_paths, halves, rows, sample, vectors

GRIDS: dict[str, list[tuple[float, float | None]]] = {
    "rerank": [(t, c) for t in (0.9075, 0.91, 0.9125, 0.915, 0.9175)
               for c in (0.64, 0.66, 0.68, 0.70, 0.72, 0.74)],
    "agglomerative": [(t, None) for t in np.round(np.arange(0.895, 0.9301, 0.0025), 4)],
    "chinese_whispers": [(t, None) for t in np.round(np.arange(0.90, 0.9501, 0.005), 4)],
}
KINDS = ("train10", "val", "mixed", "few")
#: For an embedder other than dlib, the grids above are moved to its scale: each cosine
#: becomes ``its pair threshold + (t - dlib's pair threshold) x its impostor spread / dlib's``
#: (the spread: the std of different-person cosines of the tuning photos; dlib's: 0.037).
DLIB_PAIR, DLIB_SPREAD = 0.9153, 0.037


def scaled_grids(embedder: str, spread: float) -> dict[str, list[tuple[float, float | None]]]:
    """:data:`GRIDS` for ``embedder`` (see :data:`DLIB_PAIR`)."""
    if embedder == "dlib":
        return GRIDS
    from celebface.recognition.registry import embedder_config

    pair = embedder_config(embedder).pair_threshold["none"]
    return {m: [(round(pair + (t - DLIB_PAIR) * spread / DLIB_SPREAD, 4), c) for t, c in g]
            for m, g in GRIDS.items()}


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def setting(threshold: float, cut: float | None) -> str:
    return f"{threshold:.4f}" + ("" if cut is None else f"/{cut:.2f}")


def tuning_groups(table: list, people: list[str], rounds: int, cache: Path,
                  seed: int, embedder: str = "dlib"
                  ) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """``{kind: [(identities, vectors), ...]}`` of half-A photos (see the module doc)."""
    train10 = sample(table, "train", people, 10, seed)
    train25 = sample(table, "train", people, 25, seed)
    val = sample(table, "val", people, None, seed)
    paths = list(dict.fromkeys(p for _, p in train10 + train25 + val))
    found = embed_paths(paths, cache, embedder=embedder)
    vec = dict(zip(paths, vectors(found, paths, "none"), strict=True))
    rng = np.random.default_rng(seed + 1)

    def group(items: list[tuple[str, str]], size: int, lo: int, hi: int | None,
              pool: list[tuple[str, str]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        chosen = []
        for person in rng.choice(people, size, replace=False):
            mine = [p for i, p in items if i == person]
            if pool is not None:
                mine += [p for i, p in pool if i == person and p not in mine]
            n = len(mine) if hi is None else min(len(mine), int(rng.integers(lo, hi + 1)))
            chosen += [(person, p) for p in rng.choice(mine, n, replace=False)]
        return (np.asarray([i for i, _ in chosen]), np.stack([vec[p] for _, p in chosen]))

    return {"train10": [group(train10, 20, 0, None) for _ in range(rounds)],
            "val": [group(val, 20, 0, None) for _ in range(rounds)],
            "mixed": [group(val, 20, 2, 50, train25) for _ in range(rounds)],
            "few": [group(val, 30, 1, 8) for _ in range(rounds)]}


def tune(table: list, people: list[str], rounds: int, cache: Path, seed: int,
         embedder: str = "dlib") -> dict:
    groups = tuning_groups(table, people, rounds, cache, seed, embedder)
    ids, vecs = groups["val"][0]
    other = ids[:, None] != ids[None, :]
    spread = float(np.std((vecs @ vecs.T)[other]))
    grids = scaled_grids(embedder, spread)
    scores: dict[str, dict[str, dict[str, list]]] = {
        m: {setting(t, c): {k: [] for k in KINDS} for t, c in grids[m]} for m in METHODS}
    for kind, members in groups.items():
        for ids, vecs in members:
            dist = reranked_distances(vecs)
            for m in METHODS:
                for t, c in grids[m]:
                    labels = cluster_vectors(vecs, float(t), m, cut=c, distances=dist)
                    p, r = bcubed(ids, labels)
                    scores[m][setting(t, c)][kind].append(
                        (p, r, int(labels.max() + 1), len(set(ids.tolist()))))
    grid: dict[str, dict[str, dict]] = {}
    for m, per in scores.items():
        grid[m] = {}
        for key, kinds in per.items():
            row = {}
            for kind, s in kinds.items():
                a = np.asarray(s, float)
                row[kind] = {"precision": float(a[:, 0].mean()), "recall": float(a[:, 1].mean()),
                             "f1": float(np.mean([f1(p, r) for p, r in a[:, :2]])),
                             "clusters_minus_people": float((a[:, 2] - a[:, 3]).mean())}
            row["mean_f1"] = float(np.mean([row[k]["f1"] for k in KINDS]))
            grid[m][key] = row
    best = {m: max(grid[m], key=lambda k, m=m: grid[m][k]["mean_f1"]) for m in METHODS}
    method = max(METHODS, key=lambda m: grid[m][best[m]]["mean_f1"])
    return {"method": method, "setting": best[method], "best": best, "embedder": embedder,
            "impostor_spread": spread,
            "sizes": {k: [len(ids) for ids, _ in v] for k, v in groups.items()},
            "people": len(people), "rounds": rounds, "grid": grid}


def parse(key: str) -> tuple[float, float | None]:
    t, _, c = key.partition("/")
    return float(t), (float(c) if c else None)


def measure(table: list, people: list[str], config: ClusterConfig, seed: int) -> dict:
    """``config`` end to end on 20 half-B people's val photos (module doc)."""
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
    ap.add_argument("--method", choices=METHODS, help="measure this method's best setting")
    ap.add_argument("--embedder", default="dlib", help="a registered embedder or fusion")
    args = ap.parse_args()
    table = rows(args.data)
    half_a, half_b = halves(sorted({i for _, i, _ in table}), args.seed)
    tuned = tune(table, half_a, args.rounds, args.cache, args.seed, args.embedder)
    method = args.method or tuned["method"]
    threshold, cut = parse(tuned["best"][method])
    config = ClusterConfig(threshold=threshold, method=method, cut=cut, device="cpu",
                           embedder=args.embedder)
    result = {"tuning": tuned, "method": method, "threshold": threshold, "cut": cut,
              "test": measure(table, half_b, config, args.seed),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared, busy)"}
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cluster" if args.embedder == "dlib" else f"cluster_{args.embedder}"
    atomic_write_text(args.out / f"{name}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / f"{name}.md", report(result))
    print(report(result))


def report(r: dict) -> str:
    t, tu = r["test"], r["tuning"]
    how = f"**{r['method']}** at cosine **{r['threshold']:.4f}**" + (
        f", re-ranked distance cut **{r['cut']:.2f}**" if r["cut"] is not None else "")
    lines = [
        f"# Clustering ({tu.get('embedder', 'dlib')}, pins105-dev)", "",
        f"Tuned on half A of the identities ({tu['people']} people), {tu['rounds']} random "
        "groups of each kind: `train10` 20 people x 10 TRAIN photos; `val` 20 people x all "
        "their VAL photos (~25, like the measured folder); `mixed` 20 people x 2-50 photos; "
        f"`few` 30 people x 1-8 photos. Best mean BCubed F1 over the kinds: {how}. Measured "
        "end to end (`cluster_photos`) on the VAL photos of 20 other people (half B) shuffled "
        f"in one folder. Machine: {r['machine']}.", "",
        "| photos | faces | clusters found (true 20) | singletons | BCubed precision | "
        "BCubed recall | F1 | seconds |", "|---|---|---|---|---|---|---|---|",
        f"| {t['photos']} | {t['faces']} | {t['clusters']} | {t['singletons']} | "
        f"{t['bcubed_precision']:.4f} | {t['bcubed_recall']:.4f} | {t['bcubed_f1']:.4f} | "
        f"{t['seconds']} |", "",
        "Tuning (half A, mean over each kind's groups): precision / recall; clusters found "
        "minus true people. Each method's best setting, then the chosen method's settings "
        "near it:", "",
        "| method | cosine / cut | " + " | ".join(KINDS) + " | mean F1 |",
        "|---|---|" + "---|" * (len(KINDS) + 1),
    ]

    def row(m: str, key: str) -> str:
        g = tu["grid"][m][key]
        cells = [f"{g[k]['precision']:.3f} / {g[k]['recall']:.3f}; "
                 f"{g[k]['clusters_minus_people']:+.1f}" for k in KINDS]
        return f"| {m} | {key} | " + " | ".join(cells) + f" | {g['mean_f1']:.4f} |"

    lines += [row(m, tu["best"][m]) for m in tu["grid"]]
    lines.append("|  |  |" + " |" * (len(KINDS) + 1))
    t0, c0 = parse(tu["best"][r["method"]])
    for key in tu["grid"][r["method"]]:
        t1, c1 = parse(key)
        if abs(t1 - t0) <= 0.0026 and (c0 is None or c1 is None or abs(c1 - c0) <= 0.021):
            lines.append(row(r["method"], key))
    lines += ["", "Reproduce: `python benchmarks/verify.py && python benchmarks/cluster.py` "
              "(contact sheets of the measured run land in runs/cluster_bench/sheets/).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
