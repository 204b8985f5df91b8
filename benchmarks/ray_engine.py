"""Ray engine benchmark: local vs ray on this machine, and one Ray worker's throughput.

Crop: ``--crop-photos`` raw five_celeb photos (MTCNN). Embed: ``--embed-faces`` pins105-dev
face crops (dlib, fresh cache). Each run in the same process, one after the other:
  local          the local engine, default settings (both cores);
  local-1thread  the local engine on one core (one torch thread, one detection thread): what
                 one Ray worker computes;
  ray            the ray engine on a local Ray instance (``ray.init(num_cpus=CPUS)``): one
                 actor per CPU, less one CPU for the read tasks. Wall time includes starting
                 the actors and loading their models (``ray.init`` itself is timed apart).
Throughput per Ray worker = items / (ray wall time) / actors; the difference from
``local-1thread`` is Ray's overhead at this size.

    nice -n 10 .venv/bin/python benchmarks/ray_engine.py [--crop-photos 40] [--embed-faces 200]
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from celebface.cropping import CropConfig, crop_dataset
from celebface.io import atomic_write_json, atomic_write_text, list_dataset
from celebface.recognition import EmbedConfig, embed_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def _slice(src: Path, n: int, dst: Path) -> Path:
    """Every k-th image of ``src`` (about ``n``), as links in ``dst``."""
    items = list_dataset(src)
    for it in items[:: max(1, len(items) // n)][:n]:
        (dst / it.identity).mkdir(parents=True, exist_ok=True)
        (dst / it.identity / it.path.name).symlink_to(it.path)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop-photos", type=int, default=40)
    p.add_argument("--embed-faces", type=int, default=200)
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photos = _slice(DATA / "five_celeb", args.crop_photos, tmp_path / "photos")
        faces = _slice(DATA / "pins105-dev", args.embed_faces, tmp_path / "faces")
        t0 = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        init_s = time.perf_counter() - t0
        actors = max(1, args.cpus - 1)
        crop = {"preview": 0, "progress": False}
        runs = {
            "local": CropConfig(**crop),
            "local-1thread": CropConfig(**crop, detect_workers=1, torch_threads=1, workers=1),
            "ray": CropConfig(**crop, engine="ray"),
        }
        for name, config in runs.items():
            t0 = time.perf_counter()
            s = crop_dataset(photos, tmp_path / f"crop-{name}", config)
            rows.append(("crop (MTCNN, raw photos)", name, s.images, time.perf_counter() - t0))
        for name, options in {"local": {}, "local-1thread": {"workers": 1},
                              "ray": {"engine": "ray"}}.items():
            if name == "local-1thread":
                import torch

                threads = torch.get_num_threads()
                torch.set_num_threads(1)
            t0 = time.perf_counter()
            e = embed_dataset(faces, tmp_path / f"emb-{name}",
                              EmbedConfig(progress=False, **options))
            rows.append(("embed (dlib, face crops)", name, len(e), time.perf_counter() - t0))
            if name == "local-1thread":
                torch.set_num_threads(threads)
        ray.shutdown()
    machine = f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs, busy)"
    out = {"machine": machine, "ray_init_s": round(init_s, 1), "actors": actors,
           "rows": [dict(zip(("stage", "engine", "items", "seconds"), r, strict=True))
                    for r in rows]}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "ray_engine.json", out)
    lines = [
        "# Ray engine vs local", "",
        f"Machine: {machine}. Command: `nice -n 10 python benchmarks/ray_engine.py "
        f"--crop-photos {args.crop_photos} --embed-faces {args.embed_faces} --cpus "
        f"{args.cpus}`. Local Ray instance, {args.cpus} CPUs, {actors} actor(s); "
        f"`ray.init` took {init_s:.1f} s (not included below).", "",
        "| stage | engine | items | seconds | items/s | items/s per worker |",
        "|---|---|---|---|---|---|",
    ]
    for stage, engine, n, sec in rows:
        workers = actors if engine == "ray" else (1 if engine == "local-1thread" else None)
        per = f"{n / sec / workers:.2f}" if workers else "-"
        lines.append(f"| {stage} | {engine} | {n} | {sec:.1f} | {n / sec:.2f} | {per} |")
    atomic_write_text(RESULTS / "ray_engine.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
