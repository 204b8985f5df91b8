"""Embedding benchmark: speed against a face_recognition-style loop, and quality on pins105-dev.

Speed: the same N pins faces (default 1,000, every k-th image), in one run, fresh caches:
  (a) the way ``face_recognition.face_encodings(img, known_face_locations=[whole image])``
      does it: one image at a time, 5-point shape predictor,
      ``compute_face_descriptor(img, shape, num_jitters=1)``, one process;
  (b) ``celebface embed`` on the ``celebface crop`` output of those photos (the usual path:
      the crops carry their face, chips come straight from its 5 landmarks, batched torch);
  (c) ``celebface embed`` on the photos themselves, default rule (MTCNN looks for the face in
      each tight crop first);
  (d) ``faces="whole", aligner="predictor"``: exactly (a)'s vectors, batched in torch;
  (e) as (d) with dlib's own network in worker processes (``--workers``).
Max abs difference against (a) for (d) and (e) (the others align differently by design).
Each celebface run uses the torch CPU threads ``celebface embed`` would
(:func:`celebface.device.set_torch_threads`: the cores free at its start, 1 on a busy box;
the ``threads`` column); (a) is one thread by design.

Quality: embeddings of all of pins105-dev (none / flip TTA); nearest-centroid, k-NN and
logistic regression fitted on the ``train`` rows of its splits.csv, accuracy on ``val`` rows.

    .venv/bin/python benchmarks/embed.py [--faces 1000] [--cache-dir runs/pins_emb/.cache]
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
from celebface.io import atomic_write_json, atomic_write_text, read_image
from celebface.recognition import DlibEmbedder, embed_dataset, l2_normalize

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"


def face_recognition_style(paths: list[Path]) -> np.ndarray:
    """What face_recognition.face_encodings does, per image, whole image as the face."""
    import dlib
    from PIL import Image

    from celebface.models.store import dlib_model_path

    box = DlibEmbedder()._rect  # the face box celebface uses, so both see the same face
    sp = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5")))
    net = dlib.face_recognition_model_v1(str(dlib_model_path("resnet")))
    out = []
    for p in paths:
        img = np.array(Image.open(p).convert("RGB"))  # face_recognition.load_image_file
        rect = box(img, None)  # the whole image: known_face_locations=[(0, w-1, h-1, 0)]
        shape = sp(img, rect)
        out.append(np.array(net.compute_face_descriptor(img, shape, 1)))
    return np.asarray(out, dtype=np.float32)


def speed(n_faces: int, workers: int) -> dict:
    items = list_dataset(PINS)
    step = max(1, len(items) // n_faces)
    chosen = items[::step][:n_faces]
    # the subset as a folder of links, ordered like embed_dataset orders it
    tmp = Path(tempfile.mkdtemp(prefix="embed_bench_"))
    for it in chosen:
        (tmp / "data" / it.identity).mkdir(parents=True, exist_ok=True)
        (tmp / "data" / it.identity / Path(it.path).name).symlink_to(it.path)
    chosen = sorted(chosen, key=lambda it: (it.identity, Path(it.path).name))
    for it in chosen:  # warm the file cache for everybody alike
        read_image(it.path)

    t = time.perf_counter()
    ref = face_recognition_style([it.path for it in chosen])
    t_ref = time.perf_counter() - t

    from celebface.cropping import CropConfig, crop_dataset

    t = time.perf_counter()
    crop_dataset(tmp / "data", tmp / "crops", CropConfig(progress=False, device="cpu"))
    crop_s = time.perf_counter() - t
    same = {"faces": "whole", "options": {"aligner": "predictor"}}
    variants = (
        ("celebface default, on `celebface crop` output", "crops", {}),
        ("celebface default, on the tight crops (MTCNN finds the face first)", "data", {}),
        ("celebface, face_recognition's alignment (torch, batched)", "data", same),
        (f"celebface, face_recognition's alignment (dlib, {workers} processes)", "data",
         {**same, "options": {"aligner": "predictor", "backend": "dlib"}, "workers": workers}),
    )
    import torch

    from celebface.device import set_torch_threads

    runs = {}
    for name, folder, opts in variants:
        out = tmp / f"out_{len(runs)}"
        old_threads = set_torch_threads()  # as the `celebface embed` command does
        threads = torch.get_num_threads()
        t = time.perf_counter()
        res = embed_dataset(tmp / folder, out, device="cpu", progress=False, **opts)
        secs = time.perf_counter() - t
        diff = (float(np.abs(res.embeddings - l2_normalize(ref)).max())
                if opts and len(res) == len(chosen) else None)
        runs[name] = {"seconds": round(secs, 2), "faces": len(res),
                      "faces_per_s": round(len(res) / secs, 2),
                      "speedup": round((len(res) / secs) / (len(chosen) / t_ref), 2),
                      "max_abs_diff": diff, "threads": threads}
        t = time.perf_counter()
        again = embed_dataset(tmp / folder, out, device="cpu", progress=False, **opts)
        runs[name]["rerun_seconds"] = round(time.perf_counter() - t, 2)
        runs[name]["rerun_computed"] = again.meta["computed"]
        torch.set_num_threads(old_threads)
    return {
        "faces": len(chosen),
        "baseline": {"name": "face_recognition-style loop (dlib, 1 process)",
                     "seconds": round(t_ref, 2), "faces_per_s": round(len(chosen) / t_ref, 2)},
        "runs": runs,
        "crop_seconds": round(crop_s, 2),
    }


def quality(cache_dir: str | None) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier, NearestCentroid

    out = {}
    for tta in ("none", "flip"):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            emb = embed_dataset(PINS, tmp, tta=tta, cache_dir=cache_dir, progress=False)
            secs = time.perf_counter() - t
        splits = np.asarray(emb.splits)
        tr, va = splits == "train", splits == "val"
        x, y = emb.embeddings, emb.labels
        row = {"train": int(tr.sum()), "val": int(va.sum()), "embed_seconds": round(secs, 1),
               "computed": emb.meta["computed"]}
        models = {
            "nearest centroid": NearestCentroid(),
            "1-NN (cosine)": KNeighborsClassifier(1, metric="cosine"),
            "10-NN (cosine, distance-weighted)": KNeighborsClassifier(
                10, metric="cosine", weights="distance"),
            "logistic regression (C=10)": LogisticRegression(C=10, max_iter=2000),
        }
        for name, model in models.items():
            model.fit(x[tr], y[tr])
            row[name] = round(float((model.predict(x[va]) == y[va]).mean()), 4)
        out[tta] = row
    return out


SETTINGS = {
    "default (padding 0.25, whole image box)": {},
    "padding 0.4": {"padding": 0.4},
    "box shrunk 5% per side": {"box_shrink": 0.05},
    "box shrunk 10% per side": {"box_shrink": 0.1},
    "box grown 10% per side": {"box_shrink": -0.1},
}


def explore(step: int, cache_dir: str | None) -> dict:
    """Chip settings compared by a linear classifier on every ``step``-th pins image."""
    from sklearn.linear_model import LogisticRegression

    items = list_dataset(PINS)[::step]
    tmp = Path(tempfile.mkdtemp(prefix="embed_explore_"))
    for it in items:
        (tmp / it.identity).mkdir(exist_ok=True)
        (tmp / it.identity / Path(it.path).name).symlink_to(it.path)
    (tmp / "splits.csv").symlink_to(PINS / "splits.csv")
    out = {"images": len(items), "step": step, "rows": {}}
    for name, opts in SETTINGS.items():
        row = {}
        for tta in ("none", "flip"):
            emb = embed_dataset(tmp, tmp / "out", tta=tta, options=opts, cache_dir=cache_dir,
                                progress=False)
            splits = np.asarray(emb.splits)
            tr, va = splits == "train", splits == "val"
            model = LogisticRegression(C=10, max_iter=2000).fit(emb.embeddings[tr], emb.labels[tr])
            row[tta] = round(float((model.predict(emb.embeddings[va]) == emb.labels[va]).mean()), 4)
        row["settings"] = opts
        out["rows"][name] = row
        logging.warning("%s: %s", name, row)
    out["train"], out["val"] = int(tr.sum()), int(va.sum())
    return out


def write(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "embed.json", results)
    lines = ["# Embedding benchmark", "",
             f"Machine: {results['machine']}. {results['note']}", ""]
    if "speed" in results:
        s = results["speed"]
        b = s["baseline"]
        lines += [f"## Speed: {s['faces']} pins105-dev faces, same run", "",
                  "| method | torch threads | seconds | faces/s | speed-up | "
                  "max abs diff vs baseline | rerun (cached) |", "|---|---|---|---|---|---|---|",
                  f"| {b['name']} | - | {b['seconds']} | {b['faces_per_s']} | 1.00x | - | - |"]
        for name, r in s["runs"].items():
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
            lines.append(f"| {name} | {r.get('threads', '?')} | {r['seconds']} | "
                         f"{r['faces_per_s']} | {r['speedup']}x | "
                         f"{diff} | {r['rerun_seconds']} s, {r['rerun_computed']} computed |")
        lines += ["", f"(`celebface crop` of the same photos, timed apart: "
                  f"{s.get('crop_seconds')} s.)", ""]
    if "quality" in results:
        q = results["quality"]
        names = [k for k in q["none"] if k not in ("train", "val", "embed_seconds", "computed")]
        lines += ["## Quality: pins105-dev, fitted on `train` rows, accuracy on `val` rows", "",
                  f"{q['none']['train']} train / {q['none']['val']} val images, 105 identities.",
                  "", "| classifier | dlib | dlib + flip TTA |", "|---|---|---|"]
        lines += [f"| {n} | {q['none'][n]:.2%} | {q['flip'][n]:.2%} |" for n in names]
        lines.append("")
    if "settings" in results:
        e = results["settings"]
        lines += ["## Chip settings (quick check)", "",
                  f"Every {e['step']}th pins105-dev image ({e['images']} images: {e['train']} "
                  f"train / {e['val']} val); logistic regression (C=10) on the embeddings, "
                  "val accuracy.", "", "| setting | no TTA | flip TTA |", "|---|---|---|"]
        lines += [f"| {n} | {r['none']:.2%} | {r['flip']:.2%} |" for n, r in e["rows"].items()]
        lines.append("")
    atomic_write_text(RESULTS / "embed.md", "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--cache-dir", default=None,
                    help="embedding cache for the quality part (reuses earlier runs)")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--explore", type=int, default=0, metavar="STEP",
                    help="also compare chip settings on every STEP-th image")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if not PINS.is_dir():
        raise SystemExit(f"{PINS} not present")
    previous = RESULTS / "embed.json"
    results: dict = json.loads(previous.read_text()) if previous.is_file() else {}
    results |= {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores",
        "note": f"1-minute load average {os.getloadavg()[0]:.1f} at the start (other jobs on "
                "the box); compare ratios within this run, not absolute numbers.",
    }
    if not args.skip_speed:
        results["speed"] = speed(args.faces, args.workers)
        write(results)
    if not args.skip_quality:
        results["quality"] = quality(args.cache_dir)
        write(results)
    if args.explore:
        results["settings"] = explore(args.explore, args.cache_dir)
    write(results)
    print((RESULTS / "embed.md").read_text())


if __name__ == "__main__":
    main()
