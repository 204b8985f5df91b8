"""``celebface recognize`` speed by torch thread count, on this (possibly busy) machine.

Three settings, run one after the other (interleaved over ``--rounds``) on the same photos:
``--threads CORES`` (torch's own default before celebface chose: one thread per core), the
default (no flag: :func:`celebface.device.pick_threads`, the cores free now) and ``--threads 1``.

    .venv/bin/python benchmarks/threads.py [--photos 200] [--rounds 1]

A gallery of 5 pins105-dev people (4 crops each) is enrolled first; the photos are other pins
crops (symlinked into a temporary folder). Results: ``benchmarks/results/threads.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
CLI = [sys.executable, "-m", "celebface.cli.main", "-q"]
LINE = re.compile(r"recognize: (\d+) frame\(s\), (\d+) face\(s\) in ([\d.]+) s")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT / "src")
    return env


def _prepare(tmp: Path, n_photos: int) -> tuple[Path, Path]:
    sys.path.insert(0, str(ROOT / "src"))
    from celebface.data import list_dataset

    items = list_dataset(PINS)
    people = sorted({it.identity for it in items})
    for person in people[:5]:
        (tmp / "train" / person).mkdir(parents=True)
        for it in [it for it in items if it.identity == person][:4]:
            (tmp / "train" / person / Path(it.path).name).symlink_to(it.path)
    rest = [it for it in items if it.identity not in people[:5]]
    step = max(1, len(rest) // n_photos)
    (tmp / "photos").mkdir()
    for k, it in enumerate(rest[::step][:n_photos]):
        (tmp / "photos" / f"{k:04d}{Path(it.path).suffix}").symlink_to(it.path)
    subprocess.run([*CLI, "enroll", str(tmp / "train"), "--out", str(tmp / "g"), "--detector",
                    "none", "--device", "cpu"], env=_env(), check=True)
    return tmp / "g", tmp / "photos"


def _run(gallery: Path, photos: Path, threads: int | None) -> dict[str, float]:
    flag = [] if threads is None else ["--threads", str(threads)]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    out = subprocess.run([*CLI, "recognize", str(photos), "--gallery", str(gallery), "--jsonl",
                          os.devnull, "--device", "cpu", *flag], env=_env(), check=True,
                         capture_output=True, text=True).stdout
    wall = time.perf_counter() - t0
    m = LINE.search(out)
    assert m, out
    frames, faces, seconds = int(m[1]), int(m[2]), float(m[3])
    return {"frames": frames, "faces": faces, "seconds": seconds, "wall_s": round(wall, 1),
            "faces_per_s": round(faces / seconds, 2), "load_before": round(load, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from celebface.device import available_cpus, pick_threads

    cores = available_cpus()
    settings = {f"--threads {cores} (torch default)": cores, "default (auto)": None,
                "--threads 1": 1}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in settings}
    with tempfile.TemporaryDirectory() as tmp:
        gallery, photos = _prepare(Path(tmp), args.photos)
        for _ in range(args.rounds):
            for name, threads in settings.items():
                auto = pick_threads() if threads is None else threads
                r = _run(gallery, photos, threads)
                r["threads"] = auto
                runs[name].append(r)
                print(name, r, flush=True)
    best = {k: max(r["faces_per_s"] for r in v) for k, v in runs.items()}
    one = best["--threads 1"]
    lines = [
        "# recognize speed by torch thread count",
        "",
        f"`.venv/bin/python benchmarks/threads.py --photos {args.photos} --rounds {args.rounds}`"
        f" on {platform.machine()}, {cores} usable cores, shared with other jobs (1-min load "
        "average before each run in the table). Faces/s counts recognition only (detect + "
        "embed + match), not model loading.",
        "",
        "| setting | threads used | faces/s | faces | load before | ratio to --threads 1 |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in runs.items():
        for r in rs:
            lines.append(f"| {name} | {r['threads']} | {r['faces_per_s']:.2f} | {r['faces']} | "
                         f"{r['load_before']:.2f} | {r['faces_per_s'] / one:.2f} |")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "threads.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (RESULTS / "threads.json").write_text(json.dumps({"cores": cores, "runs": runs}, indent=2)
                                          + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
