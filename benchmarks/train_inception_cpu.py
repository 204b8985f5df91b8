"""A CPU run of ``inception`` (the reference head) on pins105-dev (no GPU here): the time of
each step and the val accuracy of ``celebface evaluate``, to ``benchmarks/results/NAME.md``
and ``.json``.

    # record a model trained by `celebface train` (the README's CPU recipe): its val rows
    .venv/bin/python benchmarks/train_inception_cpu.py --trained runs/mobilenet-align \\
        --name mobilenet_cpu
    # or train here: all 105 people, aligned chips, MobileNetV2 blocks 1-4 cached
    .venv/bin/python benchmarks/train_inception_cpu.py --identities 0 --per-class 0 \\
        --backbone mobilenet_v2 --pretrained imagenet --align --input-size 96 --freeze 4 \\
        --lr 3e-4 --lr-decay 0.9 --batch-size 64 --epochs 10 --tta flip --workers 0 \\
        --cache-dir ~/.cache/celebface/chips --name mobilenet_cpu
    # a short subset run (the first N identities, at most K train photos each)
    .venv/bin/python benchmarks/train_inception_cpu.py --identities 10 --per-class 30

A subset is a temporary folder of symlinks to the first N identities (their own train/val rows
of ``splits.csv``); nothing is copied into the repository. Without ``--cache-dir`` the chips
and frozen-block maps are cut into a fresh temporary folder, so the training time includes
that one-time caching; with it they are reused when present.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"


def make_subset(dst: Path, identities: int) -> list[str]:
    names = sorted(p.name for p in PINS.iterdir() if p.is_dir())[:identities]
    for name in names:
        (dst / name).mkdir(parents=True)
        for f in (PINS / name).iterdir():
            (dst / name / f.name).symlink_to(f)
    with open(PINS / "splits.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["identity"] in names]
    with open(dst / "splits.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["split", "identity", "filename"])
        w.writeheader()
        w.writerows(rows)
    return names


class LoadSampler:
    """The 1-minute load average every ``every`` seconds, in a thread."""

    def __init__(self, every: float = 30.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, float]:
        return {"start": round(self.samples[0], 2),
                "mean": round(sum(self.samples) / len(self.samples), 2),
                "max": round(max(self.samples), 2)}


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=10, help="first N identities (0: all)")
    ap.add_argument("--per-class", type=int, default=30,
                    help="at most this many train photos per identity (0: all)")
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--patience", type=int, default=0, help="early stopping (0: off)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone", default="inception_v3", choices=("inception_v3", "mobilenet_v2"))
    ap.add_argument("--pretrained", default="none", choices=("none", "imagenet"))
    ap.add_argument("--freeze", type=int, default=0, help="first backbone blocks kept frozen")
    ap.add_argument("--align", action="store_true", help="train on dlib-aligned chips")
    ap.add_argument("--no-trunk-cache", dest="trunk_cache", action="store_false",
                    help="run the frozen blocks every step (with --align)")
    ap.add_argument("--chip-padding", type=float,
                    help="context kept around the aligned face (with --align; default the "
                         "library's)")
    ap.add_argument("--tta", default="none", choices=("none", "flip"),
                    help="the model's predictions average each photo and its mirror image")
    ap.add_argument("--cache-dir", help="chips/maps cache (default: a fresh temporary one)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay", type=float, default=0.95)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--trained", metavar="MODEL_DIR",
                    help="evaluate and record this model folder (made by `celebface train`, "
                         "with its own data and settings) instead of training one")
    ap.add_argument("--name", default="inception_cpu", help="results file name")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from celebface.evaluation import evaluate_model
    from celebface.io import atomic_write_json, atomic_write_text
    from celebface.training import train_model

    settings = {"input_size": args.input_size, "epochs": args.epochs,
                "batch_size": args.batch_size, "num_workers": args.workers, "device": "cpu",
                "pretrained": args.pretrained, "backbone": args.backbone, "freeze": args.freeze,
                "lr": args.lr, "lr_decay": args.lr_decay, "patience": args.patience,
                "tta": args.tta, "progress": False}
    if args.per_class:
        settings["limit_per_class"] = args.per_class
    if args.align:
        settings.update(align=True, trunk_cache=args.trunk_cache)
        if args.chip_padding is not None:
            settings["chip_padding"] = args.chip_padding
    with tempfile.TemporaryDirectory(dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None
                                     ) as tmp:
        load = None
        if args.trained:  # trained by `celebface train`: its own data and settings
            out = Path(args.trained)
            meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
            data, names = Path(meta["data"]), list(meta["label_names"])
            train_s, train_cpu = sum((meta.get("timing") or {}).values()), None
        else:
            if args.identities:
                data = Path(tmp) / "pins_subset"
                names = make_subset(data, args.identities)
            else:
                data, names = PINS, sorted(p.name for p in PINS.iterdir() if p.is_dir())
            if args.align:
                settings["cache_dir"] = args.cache_dir or str(Path(tmp) / "cache")
            out = Path(tmp) / "model"
            t0, c0 = time.perf_counter(), cpu_seconds()
            with LoadSampler() as sampler:
                train_model(data, "inception", out, **settings)
            train_s, train_cpu = time.perf_counter() - t0, cpu_seconds() - c0
            load = sampler.summary()
            meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
        history = json.loads((out / "history.json").read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        metrics = evaluate_model(out, data, Path(tmp) / "report", split="val", device="cpu",
                                 progress=False, plots=False)
        eval_s = time.perf_counter() - t0
    result = {
        "identities": len(names), "train_images": meta["train_count"],
        "val_images": metrics["counts"]["evaluated"], "config": meta["config"],
        "train_command": meta.get("command") if args.trained else None,
        "preprocessing": meta.get("preprocessing") or {},
        "epochs": [{k: r.get(k) for k in ("epoch", "time_s", "train_loss", "train_accuracy",
                                          "val_loss", "val_accuracy")}
                   for r in history["epochs"]],
        "best_epoch": history["best_epoch"],
        "val_accuracy": metrics["accuracy"], "val_top5": metrics.get("top5_accuracy"),
        **{f"val_{k}_weighted": metrics[f"{k}_weighted"] for k in ("precision", "recall", "f1")},
        "chance": 1 / len(names), "train_s": round(train_s, 1),
        "train_cpu_s": None if train_cpu is None else round(train_cpu, 1),
        "timing": meta.get("timing") or {}, "eval_s": round(eval_s, 1), "load": load,
        "env": {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
                "torch_threads": args.threads, "command": " ".join(sys.argv)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", result)
    atomic_write_text(RESULTS / f"{args.name}.md", report(args, result))
    print(report(args, result))
    return 0


def report(args: argparse.Namespace, r: dict) -> str:
    c, prep = r["config"], r["preprocessing"]
    start = ("ImageNet weights" if c["pretrained"] == "imagenet" else "random init") + (
        f", first {c['freeze']} blocks frozen" if c["freeze"] else "")
    cached = c.get("align") and c.get("trunk_cache") and c["freeze"]
    inputs = (f"dlib-aligned 150-px chips (padding {prep['chip_padding']:g}: their centre)"
              if c.get("align") else "the photos") + (
        f", blocks 1-{c['freeze']} run once per chip and its mirror image, cached"
        if cached else "") + ("; predictions with flip TTA" if prep.get("tta") == "flip" else "")
    per = f"at most {c['limit_per_class']}" if c.get("limit_per_class") else "all"
    t = r["timing"]
    steps = ", ".join(f"{k[:-2]} {v:.0f} s" for k, v in t.items())
    load = r["load"]
    shared = ("shared (1-min load average " f"{load['start']:.1f} at start, mean "
              f"{load['mean']:.1f}, max {load['max']:.1f})") if load else "shared"
    cpu = (f", {r['train_cpu_s'] / 60:.1f} CPU-min" if r["train_cpu_s"] is not None else "")
    lines = [
        f"# inception ({c['backbone']}) on CPU (no GPU on this machine)",
        "",
        f"{c['backbone']} + reference head, {start}, {r['identities']} pins105-dev "
        f"identities, {r['train_images']} train images ({per} per identity), evaluated by "
        f"`celebface evaluate` on their {r['val_images']} val rows; trained on {inputs}; "
        f"input {c['input_size']} px, batch {c['batch_size']}, Adam {c['lr']:g} (decay "
        f"{c['lr_decay']:g}/epoch), {r['env']['machine']}, {shared}.",
        "",
        f"Command: `python benchmarks/train_inception_cpu.py "
        f"{' '.join(r['env']['command'].split()[1:])}`" + (
            f"; the model was trained by `{r['train_command']}`" if r["train_command"] else ""),
        "",
        "| epoch | time (s) | train loss | train acc | val loss | val acc |",
        "|---|---|---|---|---|---|",
    ]
    for e in r["epochs"]:
        lines.append(f"| {e['epoch']} | {e['time_s']:.0f} | {e['train_loss']:.3f} | "
                     f"{e['train_accuracy']:.3f} | {e['val_loss']:.3f} | "
                     f"{e['val_accuracy']:.3f} |")
    lines += [
        "",
        f"**Val top-1 {r['val_accuracy']:.2%}** (best epoch {r['best_epoch']}; top-5 "
        f"{r['val_top5']:.2%}; weighted P {r['val_precision_weighted']:.4f} R "
        f"{r['val_recall_weighted']:.4f} F1 {r['val_f1_weighted']:.4f}; chance "
        f"{r['chance']:.1%}).",
        "",
        f"Training wall time {r['train_s'] / 60:.1f} min in all ({steps}){cpu}; evaluation "
        f"{r['eval_s']:.0f} s (aligns every val photo: MTCNN + 5 landmarks).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
