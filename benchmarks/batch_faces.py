"""Does a photo's face depend on the photos batched with it? The ``auto`` rule on pins105-dev.

Each sampled photo is located by :meth:`celebface.detection.finder.FaceFinder.locate` (``auto``)
twice: in batches of ``--batch`` (the photos in a shuffled order, so each batch mixes sizes)
and alone; the largest box difference tells how far batching moved its face. ``--ref GIT_REF``
also runs MTCNN as ``src/celebface/detection/mtcnn.py`` was at that commit, in the same run
(before/after): speed of the batched calls (best of ``--repeat``) and agreement.

    .venv/bin/python benchmarks/batch_faces.py [--photos 256] [--batch 64] [--ref 33833f8]

Results: ``benchmarks/results/batch_faces.md``/``.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import numpy as np

from celebface.data import list_dataset
from celebface.io import atomic_write_json, atomic_write_text, read_image

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("batch_faces")


def mtcnn_at(ref: str) -> ModuleType:
    """``celebface.detection.mtcnn`` as it was at git ``ref``, imported under another name."""
    src = subprocess.run(["git", "show", f"{ref}:src/celebface/detection/mtcnn.py"], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "mtcnn_ref.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("mtcnn_ref", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mtcnn_ref"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def box_gap(a: list, b: list) -> np.ndarray:
    """Per photo, the largest coordinate difference of two face lists' boxes (px)."""
    return np.array([np.abs(np.subtract(x.box, y.box)).max() for x, y in zip(a, b, strict=True)])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64, help="photos per locate call")
    ap.add_argument("--repeat", type=int, default=3, help="batched timings (best is kept)")
    ap.add_argument("--ref", help="git ref whose MTCNN runs as 'before' in the same run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from celebface.detection import mtcnn
    from celebface.detection.finder import LARGE_FACE, LARGE_SIDE, FaceFinder
    from celebface.device import set_torch_threads

    items = list_dataset(PINS)
    random.Random(args.seed).shuffle(items)
    images = [read_image(it.path).rgb for it in items[: args.photos]]
    set_torch_threads()  # as the CLI does
    modules = {"before": mtcnn_at(args.ref)} if args.ref else {}
    modules["now"] = mtcnn
    large = {"short_side": LARGE_SIDE, "min_face_size": round(LARGE_FACE * LARGE_SIDE)}
    rows, alone_faces = {}, {}
    for name, module in modules.items():
        det, big = module.MTCNNDetector("cpu"), module.MTCNNDetector("cpu", **large)

        def locate(ims: list, det=det, big=big) -> list:
            return FaceFinder(detector=det, large_detector=big).locate(ims, None, "auto")

        locate(images[:4])  # warm-up
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            batched = [f for i in range(0, len(images), args.batch)
                       for f in locate(images[i : i + args.batch])]
            times.append(time.perf_counter() - t)
        alone = alone_faces[name] = [locate([im])[0] for im in images]
        gap = box_gap(batched, alone)
        rows[name] = {"batched_s": round(min(times), 3),
                      "ms_per_photo": round(1000 * min(times) / len(images), 2),
                      "differ_1e-3px": int((gap > 1e-3).sum()), "differ_1px": int((gap > 1).sum()),
                      "differ_5px": int((gap > 5).sum()), "max_px": float(gap.max())}
        log.info("%s: %s", name, rows[name])
    doc = {"photos": len(images), "batch": args.batch, "ref": args.ref, "rows": rows,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
           "load": round(os.getloadavg()[0], 1), "threads": torch.get_num_threads()}
    if args.ref:
        gap = box_gap(alone_faces["before"], alone_faces["now"])
        doc["alone_before_vs_now_differ_1e-3px"] = int((gap > 1e-3).sum())
        doc["speed_ratio_now_over_before"] = round(
            rows["now"]["batched_s"] / rows["before"]["batched_s"], 3)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "batch_faces.json", doc)
    lines = [f"# auto-rule faces batched ({args.batch}) vs alone, {len(images)} pins105-dev photos",
             "", f"{doc['machine']}, load {doc['load']}, torch threads {doc['threads']}.", "",
             f"| MTCNN | batched s (best of {args.repeat}) | ms/photo | differ >1e-3 px | >1 px"
             " | >5 px | max px |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        label = f"{name} ({args.ref})" if name == "before" else name
        lines.append(f"| {label} | {r['batched_s']} | {r['ms_per_photo']} | {r['differ_1e-3px']}"
                     f" | {r['differ_1px']} | {r['differ_5px']} | {r['max_px']:.3g} |")
    if args.ref:
        lines += ["", f"Batched time now / before: {doc['speed_ratio_now_over_before']}. "
                  f"Photos whose face found alone moved between the two (> 1e-3 px; "
                  f"ties of saturated scores, now broken by candidate order): "
                  f"{doc['alone_before_vs_now_differ_1e-3px']}."]
    atomic_write_text(RESULTS / "batch_faces.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
