"""A short CPU run of ``inception`` from scratch on a small pins105-dev subset (no GPU here):
epoch time and val accuracy, to ``benchmarks/results/inception_cpu.md``/``.json``.

    .venv/bin/python benchmarks/train_inception_cpu.py [--identities 10] [--per-class 30]

The subset is a temporary folder of symlinks to the first N identities (their own train/val
rows of ``splits.csv``); nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import sys
import tempfile
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backbone", default="inception_v3", choices=("inception_v3", "mobilenet_v2"))
    ap.add_argument("--pretrained", default="none", choices=("none", "imagenet"))
    ap.add_argument("--freeze", type=int, default=0, help="first backbone blocks kept frozen")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--name", default="inception_cpu", help="results file name")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from celebface.evaluation import evaluate_model
    from celebface.io import atomic_write_json, atomic_write_text
    from celebface.training import train_model

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "pins_subset"
        names = make_subset(data, args.identities)
        out = Path(tmp) / "model"
        t0 = time.perf_counter()
        model = train_model(data, "inception", out, input_size=args.input_size,
                            epochs=args.epochs, batch_size=32, limit_per_class=args.per_class,
                            num_workers=1, device="cpu", pretrained=args.pretrained,
                            backbone=args.backbone, freeze=args.freeze, lr=args.lr, patience=0,
                            progress=False)
        train_s = time.perf_counter() - t0
        history = json.loads((out / "history.json").read_text(encoding="utf-8"))
        t0 = time.perf_counter()
        metrics = evaluate_model(out, data, Path(tmp) / "report", split="val", device="cpu",
                                 progress=False)
        eval_s = time.perf_counter() - t0
    result = {
        "identities": len(names), "train_images": model.meta["train_count"],
        "val_images": metrics["counts"]["evaluated"], "input_size": args.input_size,
        "epochs": [{k: r[k] for k in ("epoch", "time_s", "train_loss", "train_accuracy",
                                      "val_loss", "val_accuracy")} for r in history["epochs"]],
        "best_epoch": history["best_epoch"], "val_accuracy": metrics["accuracy"],
        "chance": 1 / len(names), "train_s": round(train_s, 1), "eval_s": round(eval_s, 1),
        "env": {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (load "
                           f"{os.getloadavg()[0]:.1f} at start)", "torch_threads": args.threads,
                "command": " ".join(sys.argv)},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", result)
    start = ("ImageNet weights" if args.pretrained == "imagenet" else "random init") + (
        f", first {args.freeze} blocks frozen" if args.freeze else "")
    lines = [
        f"# inception ({args.backbone}) on CPU: a short run (no GPU on this machine)",
        "",
        f"{args.backbone} + reference head, {start}, {result['identities']} pins105-dev "
        f"identities, {result['train_images']} train images (at most {args.per_class} per "
        f"identity), evaluated on their {result['val_images']} val rows; input "
        f"{args.input_size} px, batch 32, Adam {args.lr:g}, {args.threads} torch threads, "
        f"{result['env']['machine']}.",
        "",
        "| epoch | time (s) | train loss | train acc | val loss | val acc |",
        "|---|---|---|---|---|---|",
    ]
    for r in result["epochs"]:
        lines.append(f"| {r['epoch']} | {r['time_s']:.0f} | {r['train_loss']:.3f} | "
                     f"{r['train_accuracy']:.3f} | {r['val_loss']:.3f} | "
                     f"{r['val_accuracy']:.3f} |")
    lines += ["", f"Val accuracy of the best epoch ({result['best_epoch']}): "
              f"{result['val_accuracy']:.1%} (chance {result['chance']:.0%}). A few CPU epochs "
              "are far from converged; this run shows the pipeline works on CPU and what an "
              "epoch costs. The real runs are `benchmarks/train_inception_gpu.sh` and "
              "`benchmarks/train_mobilenet_gpu.sh`.", ""]
    atomic_write_text(RESULTS / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
