"""`celebface embed` with its content cache, before and after a change: cold cache, warm cache,
and a second run that adds 100 photos to a warm cache of the rest of pins105-dev.

Each case runs the ``before`` checkout and this one back to back (the machine is shared:
compare the ratios within one run). The data are folders of symlinks to pins105-dev under
``--scratch``; the warm cache is ``--seed-cache`` (a complete cache of pins105-dev for the
default pipeline, e.g. ``runs/pins_emb/.cache``) less the vectors of the 100 photos, copied for
each side, or, without a seed, built by a cold run of each side. "written" is the bytes of the
shard files that are new or changed in the cache folder after the run.

    .venv/bin/python benchmarks/embed_cache.py --before ../runs/datacache/base \\
        --seed-cache ../runs/pins_emb/.cache [--cold 5000]

Results: ``benchmarks/results/embed_cache.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"


def photos(data: Path) -> list[Path]:
    return sorted(p for p in data.glob("*/*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))


def link_folder(folder: Path, files: list[Path], data: Path) -> None:
    for f in files:
        target = folder / f.relative_to(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(f)


def shard_state(cache: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p): (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size)
            for p in cache.rglob("shard-*.npz")}


def embed(side: str, src: Path, data: Path, out: Path, cache: Path, threads: int) -> dict:
    """One ``celebface embed`` of ``data`` with the checkout whose src is ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": str(threads)}
    before = shard_state(cache)
    cmd = [sys.executable, "-c", "from celebface.cli.main import main; raise SystemExit(main())",
           "-q", "embed", str(data), "--out", str(out),
           "--cache-dir", str(cache), "--threads", str(threads)]
    t0 = time.perf_counter()
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{run.stderr[-3000:]}")
    after = shard_state(cache)
    written = sum(s[2] for p, s in after.items() if before.get(p) != s)
    print(f"  {side:>6}: {seconds:7.1f} s, {len(after)} shards, "
          f"{written:,} bytes written; {run.stdout.strip()}", flush=True)
    return {"seconds": round(seconds, 2), "written_bytes": written, "shards": len(after),
            "stdout": run.stdout.strip()}


def seed_cache(seed: Path, dest: Path, drop: Path) -> int:
    """``seed`` copied to ``dest`` as one shard a view, less the vectors of the photos in the
    folder ``drop`` (keys computed by this checkout's engine, as ``celebface embed`` does)."""
    sys.path.insert(0, str(ROOT / "src"))
    from celebface.data import open_dataset
    from celebface.recognition import EmbedConfig, EmbedderSpec
    from celebface.recognition.cache import read_shard, write_shard
    from celebface.recognition.engine import EmbeddingEngine

    engine = EmbeddingEngine(EmbedderSpec("dlib").build("cpu"), None, EmbedConfig())
    dataset = open_dataset(drop)
    gone = {engine.key(dataset, it) for it in dataset.items}
    kept = 0
    for view in seed.glob("*/*"):
        if not view.is_dir():
            continue
        out = dest / view.relative_to(seed)
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(view.parent / "settings.json", out.parent / "settings.json")
        vecs: dict[str, np.ndarray] = {}
        for shard in sorted(view.glob("shard-*.npz")):
            found = read_shard(shard)
            if found is not None:
                vecs.update(zip(*found, strict=True))
        for key in gone:
            vecs.pop(key, None)
        write_shard(out, list(vecs), np.stack(list(vecs.values())))
        kept = len(vecs)
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, required=True, help="checkout of the old code")
    ap.add_argument("--data", type=Path, default=PINS)
    ap.add_argument("--scratch", type=Path, default=ROOT.parent / "runs" / "datacache" / "bench")
    ap.add_argument("--seed-cache", type=Path, default=None)
    ap.add_argument("--cold", type=int, default=0, help="photos in the cold case (0: all)")
    ap.add_argument("--add", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    sides = {"before": args.before.resolve() / "src", "after": ROOT / "src"}
    files = photos(args.data)
    if len(files) < 2 * args.add:
        raise SystemExit(f"{args.data}: {len(files)} photos, too few")
    added = files[:: len(files) // args.add][: args.add]
    rest = [f for f in files if f not in set(added)]
    cold = files[:: max(1, len(files) // args.cold)][: args.cold] if args.cold else files
    if args.scratch.exists():
        shutil.rmtree(args.scratch)
    res: dict = {"photos": len(files), "cold_photos": len(cold), "added": len(added),
                 "threads": args.threads, "cpus": os.cpu_count(),
                 "load_before": os.getloadavg(), "machine": platform.platform(), "cases": {}}
    abba = ["before", "after", "after", "before"]  # each side once first, once second

    def case(name: str, data: Path, order: list[str], cache_of) -> None:  # type: ignore[no-untyped-def]
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for k, side in enumerate(order):
            prime(data)
            runs[side].append(embed(side, sides[side], data, args.scratch / f"{name}_out_{side}",
                                    cache_of(side, k), args.threads))
        res["cases"][name] = runs

    print(f"cold: {len(cold)} photos, fresh cache (before, after, after, before)", flush=True)
    link_folder(args.scratch / "cold", cold, args.data)
    case("cold", args.scratch / "cold", abba,
         lambda side, k: args.scratch / f"cold_cache_{side}_{k}")

    warm = args.scratch / "warm"
    link_folder(warm, rest, args.data)
    caches = {side: args.scratch / f"warm_cache_{side}" for side in sides}
    if args.seed_cache is not None:
        link_folder(args.scratch / "added", added, args.data)
        for cache in caches.values():
            res["seeded_vectors"] = seed_cache(args.seed_cache, cache, args.scratch / "added")
    print(f"warm: {len(rest)} photos, all cached", flush=True)
    case("warm", warm, abba, lambda side, k: caches[side])
    link_folder(warm, added, args.data)
    print(f"+{len(added)}: {len(files)} photos, {len(rest)} of them cached", flush=True)
    case("add", warm, ["before", "after"], lambda side, k: caches[side])
    print(f"warm again: {len(files)} photos, all cached", flush=True)
    case("warm_all", warm, abba, lambda side, k: caches[side])
    res["load_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_cache.json").write_text(json.dumps(res, indent=2) + "\n")
    (RESULTS / "embed_cache.md").write_text(report(res, args))
    print(report(res, args))


def report(res: dict, args: argparse.Namespace) -> str:
    """The results as a markdown table (seconds: each run, in order; bytes written)."""
    names = {"cold": f"cold cache, {res['cold_photos']} photos",
             "warm": f"warm cache, {res['photos'] - res['added']} photos all cached",
             "add": f"+{res['added']} photos to that warm cache ({res['photos']} photos)",
             "warm_all": f"warm again, {res['photos']} photos all cached"}
    lines = [
        "# `celebface embed` with its content cache: before / after",
        "",
        "`benchmarks/embed_cache.py --before BASE"
        + (f" --seed-cache {args.seed_cache}" if args.seed_cache else "")
        + (f" --cold {args.cold}" if args.cold else "") + f" --threads {args.threads}`; "
        f"{args.data.name} ({res['photos']} photos), {res['cpus']} cores shared with other jobs "
        f"(load average {res['load_before'][0]:.1f} at the start, "
        f"{res['load_after'][0]:.1f} at the end). Each case runs both sides back to back "
        "(before, after, after, before where it can be repeated), the photos read into the "
        "page cache before each run; seconds are wall time of the whole command.",
        "",
        "| case | before: seconds | after: seconds | before: bytes written to the cache | "
        "after: bytes written |",
        "|---|---|---|---|---|",
    ]
    def col(runs: list[dict], what: str) -> str:
        return " / ".join(f"{r[what]:,}" if what == "written_bytes" else f"{r[what]:.1f}"
                          for r in runs)

    for key, runs in res["cases"].items():
        b, a = runs["before"], runs["after"]
        lines.append(f"| {names[key]} | {col(b, 'seconds')} | {col(a, 'seconds')} "
                     f"| {col(b, 'written_bytes')} | {col(a, 'written_bytes')} |")
    return "\n".join(lines) + "\n"


def prime(folder: Path) -> None:
    """Read every photo of ``folder`` once, so both sides find them in the page cache."""
    for f in folder.rglob("*"):
        if f.is_file():
            f.read_bytes()


if __name__ == "__main__":
    main()
