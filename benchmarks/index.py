"""Vector-index benchmark: a gallery of N identities searched with FAISS (flat, HNSW, IVF).

The database: N - R random unit 128-d vectors (synthetic identities) plus R real pins105-dev
identities (the average dlib vector of their first ``--enroll`` photos). Queries:
  real:      the pins identities' other photos (``--probe`` each): their exact nearest
             neighbour is the person's own vector in almost every case;
  synthetic: noisy copies (cosine ~0.9) of random database vectors.
Per index kind and size: build time, memory (the index's serialized size, about its size
in memory, and the process's peak RSS), single-query latency p50/p99, recall@1 against exact
search (the flat index's answer). The pins vectors are embedded once (``embed_dataset``, cached).

    nice -n 10 .venv/bin/python benchmarks/index.py --sizes 100000 1000000 --threads 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from celebface.data import list_dataset
from celebface.gallery.index import IndexConfig, VectorIndex
from celebface.io import atomic_write_json, atomic_write_text
from celebface.recognition import embed_dataset, l2_normalize

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
DIM = 128


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (data, index, queries, Python)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pins_vectors(enroll: int, probe: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(R enrolled unit vectors, probe vectors with their row in the enrolled set)."""
    items = list_dataset(PINS)
    by_id: dict[str, list[Path]] = {}
    for it in items:
        by_id.setdefault(it.identity, []).append(Path(it.path))
    with tempfile.TemporaryDirectory() as tmp:  # a slice, as links (no copies of the photos)
        for name, paths in by_id.items():
            (Path(tmp) / name).mkdir()
            for p in sorted(paths)[: enroll + probe]:
                (Path(tmp) / name / p.name).symlink_to(p)
        emb = embed_dataset(tmp, cache / "out", cache_dir=str(cache / ".cache"), progress=False)
    enrolled, probes, truth = [], [], []
    for label in range(len(emb.label_names)):
        rows = np.flatnonzero(emb.labels == label)
        enrolled.append(emb.embeddings[rows[:enroll]].mean(0))
        probes.append(emb.embeddings[rows[enroll:]])
        truth += [label] * len(rows[enroll:])
    return l2_normalize(np.stack(enrolled)).astype(np.float32), (
        np.concatenate(probes).astype(np.float32), np.array(truth))


def latency(index: VectorIndex, queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    """p50, p99 (ms) of one query at a time, and the top-1 ids."""
    times, top = [], []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = index.search(q[None], 1)
        times.append(time.perf_counter() - t0)
        top.append(ids[0, 0])
    ms = np.array(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), np.array(top)


def run(args: argparse.Namespace) -> list[dict]:
    rng = np.random.default_rng(0)
    real, (real_q, real_truth) = pins_vectors(args.enroll, args.probe, args.cache)
    rows = []
    for n in args.sizes:
        synth = l2_normalize(rng.normal(size=(n - len(real), DIM))).astype(np.float32)
        data = np.concatenate([real, synth])  # real identities are rows 0..R-1
        src = rng.integers(len(real), n, args.queries)
        noisy = data[src] + 0.45 * rng.normal(size=(args.queries, DIM)).astype(np.float32) / DIM**.5
        queries = {"real": real_q, "synthetic": l2_normalize(noisy).astype(np.float32)}
        flat = VectorIndex.build(data, "flat")  # the exact answers, searched in one batch
        exact = {name: flat.search(q, 1)[1][:, 0] for name, q in queries.items()}
        del flat
        for kind in args.kinds:
            config = IndexConfig(hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                                 ef_search=args.ef_search, ivf_nprobe=args.nprobe,
                                 threads=args.threads)
            t0 = time.perf_counter()
            index = VectorIndex.build(data, kind, config)
            build_s = time.perf_counter() - t0
            size_mb = len(index.to_bytes()) / 2**20
            for qname, q in queries.items():
                p50, p99, top = latency(index, q)
                row = {
                    "n": n, "kind": kind, "params": params(kind, config), "queries": qname,
                    "build_s": round(build_s, 1),
                    "index_mb": round(size_mb), "peak_rss_mb": round(peak_rss_mb()),
                    "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                    "recall_at_1": round(float((top == exact[qname]).mean()), 4),
                    "top1_is_truth": round(float((top == (real_truth if qname == "real"
                                                          else src)).mean()), 4),
                }
                rows.append(row)
                logging.info("%s", row)
            del index
        save(args, rows)  # after each size: a long run keeps what it measured
    return rows


def params(kind: str, config: IndexConfig) -> str:
    if kind == "hnsw":
        return f"M={config.hnsw_m} efC={config.ef_construction} efS={config.ef_search}"
    return f"nprobe={config.ivf_nprobe}" if kind == "ivf" else "exact"


def command(args: argparse.Namespace) -> str:
    return (f"nice -n 10 python benchmarks/index.py --sizes {' '.join(map(str, args.sizes))} "
            f"--kinds {' '.join(args.kinds)} --threads {args.threads}"
            + (" --append" if args.append else ""))


def save(args: argparse.Namespace, rows: list[dict]) -> None:
    """Write results/index.{json,md}; ``--append`` keeps an earlier run's other rows."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores (shared, busy), faiss threads " \
              f"{args.threads}"
    commands, old = [command(args)], []
    if args.append and (RESULTS / "index.json").is_file():
        before = json.loads((RESULTS / "index.json").read_text())
        new = {(r["n"], r["kind"], r["params"]) for r in rows}
        old = [r for r in before["rows"] if (r["n"], r["kind"], r["params"]) not in new]
        commands = [*before.get("commands", []), *commands]
    rows = sorted([*old, *rows], key=lambda r: (r["n"], r["kind"], r["params"], r["queries"]))
    atomic_write_json(RESULTS / "index.json", {"machine": machine, "commands": commands,
                                               "rows": rows})
    lines = [
        "# Gallery vector index (FAISS)", "",
        f"Machine: {machine}. Commands: " + "; ".join(f"`{c}`" for c in commands)
        + " (IVF: nlist = 4 sqrt(N) cells, nprobe of them searched).",
        "",
        "Database: N-105 random unit 128-d vectors + 105 real pins105-dev identities (mean "
        f"dlib vector of {args.enroll} photos). Queries, one at a time: *real* = "
        f"{args.probe} other photos per pins identity; *synthetic* = {args.queries} noisy "
        "copies of random database vectors. recall@1 = same top-1 as exact search (flat); "
        "top-1 correct = the person's own vector. Latency is wall time on a machine shared "
        "with other jobs (load ~15-20 on 2 cores): p99 mostly measures waiting for a core.",
        "",
        "| N | index | settings | queries | build s | index MB | peak RSS MB | p50 ms | "
        "p99 ms | recall@1 | top-1 correct |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [f"| {r['n']:,} | {r['kind']} | {r['params']} | {r['queries']} | {r['build_s']} | "
              f"{r['index_mb']} | {r['peak_rss_mb']} | {r['p50_ms']} | {r['p99_ms']} | "
              f"{r['recall_at_1']} | {r['top1_is_truth']} |" for r in rows]
    atomic_write_text(RESULTS / "index.md", "\n".join(lines) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--kinds", nargs="+", default=["flat", "hnsw", "ivf"])
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--enroll", type=int, default=5, help="pins photos averaged per identity")
    p.add_argument("--probe", type=int, default=5, help="pins query photos per identity")
    p.add_argument("--threads", type=int, default=IndexConfig.threads)
    p.add_argument("--hnsw-m", type=int, default=IndexConfig.hnsw_m)
    p.add_argument("--ef-construction", type=int, default=IndexConfig.ef_construction)
    p.add_argument("--ef-search", type=int, default=IndexConfig.ef_search)
    p.add_argument("--nprobe", type=int, default=IndexConfig.ivf_nprobe)
    p.add_argument("--append", action="store_true",
                   help="keep the rows of an earlier run (other sizes or kinds)")
    p.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench_index")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    run(args)
    print((RESULTS / "index.md").read_text())


if __name__ == "__main__":
    main()
