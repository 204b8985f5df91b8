"""Ray engine benchmark: local vs ray on this machine, and one Ray worker's throughput.

Crop: ``--crop-photos`` raw five_celeb photos (MTCNN). Embed: ``--embed-faces`` pins105-dev
face crops (dlib, fresh cache). Each run in the same process, one after the other:
  local          the local engine, default settings (both cores);
  local-1thread  the local engine on one core (one torch thread, one detection thread): what
                 one Ray worker computes;
  ray            the ray engine on a local Ray instance (``ray.init(num_cpus=CPUS)``): one
                 actor per CPU, less one CPU for the read tasks. Wall time includes starting
                 the actors and loading their models (``ray.init`` itself is timed apart).
For the ray runs, the time until the first chunk's result (actors starting, models loading)
and the steady throughput per worker after it: compare it with ``local-1thread`` to size a
cluster (workers x steady throughput), and the start time with the whole job.

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
from celebface.data import list_dataset
from celebface.io import atomic_write_json, atomic_write_text
from celebface.recognition import EmbedConfig, embed_dataset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


def _slice(src: Path, n: int, dst: Path) -> Path:
    """Every k-th image of ``src`` (about ``n``), as links in ``dst``."""
    items = list_dataset(src)
    for it in items[:: max(1, len(items) // n)][:n]:
        (dst / it.identity).mkdir(parents=True, exist_ok=True)
        (dst / it.identity / Path(it.path).name).symlink_to(it.path)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crop-photos", type=int, default=40)
    p.add_argument("--embed-faces", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=4, help="sources per chunk (both)")
    p.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import ray

    from celebface.detection import get_detector
    from celebface.engines import ray_engine

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        photos = _slice(DATA / "five_celeb", args.crop_photos, tmp_path / "photos")
        faces = _slice(DATA / "pins105-dev", args.embed_faces, tmp_path / "faces")
        for f in [*photos.glob("*/*"), *faces.glob("*/*")]:  # warm the page cache
            f.read_bytes()
        get_detector("mtcnn")  # warm the imports, so no run pays them
        t0 = time.perf_counter()
        for attempt in range(3):  # a raylet that takes > 30 s to start (a busy machine) fails
            try:
                ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
                break
            except Exception as exc:
                if attempt == 2:
                    raise
                logging.warning("ray.init failed (%s); retrying", exc)
                ray.shutdown()
        init_s = time.perf_counter() - t0
        b = args.batch_size
        crop = {"preview": 0, "progress": False, "batch_size": b}
        stages = [
            ("crop (MTCNN, raw photos)", "local", lambda o: crop_dataset(
                photos, o, CropConfig(**crop)).images),
            ("crop (MTCNN, raw photos)", "local-1thread", lambda o: crop_dataset(
                photos, o, CropConfig(**crop, detect_workers=1, torch_threads=1,
                                      workers=1)).images),
            ("crop (MTCNN, raw photos)", "ray", lambda o: crop_dataset(
                photos, o, CropConfig(**crop, engine="ray")).images),
            ("embed (dlib, face crops)", "local", lambda o: len(embed_dataset(
                faces, o, EmbedConfig(progress=False, batch_size=b)))),
            ("embed (dlib, face crops)", "local-1thread", lambda o: _one_thread(
                lambda: len(embed_dataset(faces, o, EmbedConfig(progress=False,
                                                                batch_size=b))))),
            ("embed (dlib, face crops)", "ray", lambda o: len(embed_dataset(
                faces, o, EmbedConfig(progress=False, batch_size=b, engine="ray")))),
        ]
        for k, (stage, engine, fn) in enumerate(stages):
            ray_engine.LAST_RUN.clear()
            t0 = time.perf_counter()
            n = fn(tmp_path / f"out{k}")
            row = {"stage": stage, "engine": engine, "items": n,
                   "seconds": round(time.perf_counter() - t0, 1)}
            if engine == "ray":  # steady state: after the first chunk's result
                run = ray_engine.LAST_RUN
                row.update(workers=run["workers"], start_s=round(run["first_s"], 1),
                           steady_per_worker=round((n - b) / run["rest_s"] / run["workers"], 2))
            rows.append(row)
        ray.shutdown()
    save(args, init_s, rows)


def _one_thread(fn):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def save(args: argparse.Namespace, init_s: float, rows: list[dict]) -> None:
    machine = f"{platform.machine()}, {os.cpu_count()} cores (shared with other jobs, busy)"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "ray_engine.json", {
        "machine": machine, "args": vars(args), "ray_init_s": round(init_s, 1), "rows": rows})
    lines = [
        "# Ray engine vs local", "",
        f"Machine: {machine}. Command: `python benchmarks/ray_engine.py "
        f"--crop-photos {args.crop_photos} --embed-faces {args.embed_faces} --batch-size "
        f"{args.batch_size} --cpus {args.cpus}`. Local Ray instance with {args.cpus} CPUs; "
        f"`ray.init` took {init_s:.1f} s (not included below). *start* = until the first "
        "chunk's result (Ray starting the actors, which load their models); *steady* = "
        "items/s per worker after that.", "",
        "| stage | engine | items | seconds | items/s | ray workers | start s | "
        "steady items/s per worker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['stage']} | {r['engine']} | {r['items']} | {r['seconds']} | "
                     f"{r['items'] / r['seconds']:.2f} | {r.get('workers', '-')} | "
                     f"{r.get('start_s', '-')} | {r.get('steady_per_worker', '-')} |")
    atomic_write_text(RESULTS / "ray_engine.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
