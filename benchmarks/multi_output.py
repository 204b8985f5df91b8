"""Multi-output model benchmark: composites from pins105-dev, trained from scratch.

1. ``synthesize`` composites of the first ``--identities`` identities of pins105-dev (their
   ``train`` rows for training, ``val`` rows for evaluation; splits carried over);
2. ``train_model(..., "multi-output")`` from scratch (no ImageNet weights here);
3. ``evaluate_model`` on the val composites: accuracy, mean IoU, IoU >= 0.5 / 0.75 shares,
   accuracy given a good box;
4. MTCNN (``get_detector("mtcnn")``) on the same val composites: its top face box against the
   same true boxes.

The true box is the pasted photo's bounding box: a Pins photo is a face crop with some margin
(hair, neck, background), while MTCNN boxes the face tightly, so MTCNN's IoU is capped well
below 1 even when it finds the right face; ``centre_in_true_box`` (the predicted box's centre
lies inside the true box) shows whether the right face was found at all.

Short CPU defaults; ``benchmarks/multi_output_gpu.sh`` runs the full-size version on a GPU.
Results: ``benchmarks/results/<name>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from celebface.data import open_dataset
from celebface.evaluation import evaluate_model
from celebface.io import atomic_write_json, atomic_write_text, read_image
from celebface.synth import SynthConfig, synthesize
from celebface.synth.boxeval import box_metrics
from celebface.training import load_model, train_model
from celebface.training.multi_output.config import IDENTITY_FROM, MultiOutputConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("benchmark.multi_output")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pins105-dev"))
    p.add_argument("--work", default=str(ROOT / "runs" / "bench_multi_output"))
    p.add_argument("--name", default="multi_output", help="results file name")
    p.add_argument("--identities", type=int, default=10)
    p.add_argument("--per-identity", type=int, default=32, help="photos per identity (all "
                   "splits, in file-name order; 0 = all)")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--size", type=int, default=128, help="composite side")
    p.add_argument("--input-size", type=int, default=75)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="synth threads / loader workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backbone", default="inception_v3", choices=("inception_v3", "mobilenet_v2"))
    p.add_argument("--pretrained", default="none", choices=("none", "imagenet"))
    p.add_argument("--freeze", type=int, default=0, help="first backbone blocks kept frozen")
    p.add_argument("--identity-from", default=MultiOutputConfig.identity_from,
                   choices=IDENTITY_FROM,
                   help="the identity head reads the whole scene or the face box's region")
    p.add_argument("--roi-jitter", type=float, default=MultiOutputConfig.roi_jitter,
                   help="training moves each true-box edge by up to this share of its side")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: the cores free now, 1 on a busy machine)")
    p.add_argument("--face-freeze", type=int, default=MultiOutputConfig.face_freeze,
                   help="--identity-from face: dlib ResNet levels kept as dlib's (5: only its "
                        "128-d layer trains)")
    p.add_argument("--tta", default="none", choices=("none", "flip"),
                   help="identity predictions averaged over the image and its mirror image")
    p.add_argument("--landmark-head", default=MultiOutputConfig.landmark_head,
                   choices=("heatmap", "regress"), help="--identity-from face: landmark head")
    return p.parse_args()


def mtcnn_boxes(paths: list[Path], device: str) -> tuple[list, float]:
    """MTCNN's highest-scoring face box per image (None when it finds none), and seconds."""
    from celebface.detection import get_detector

    detector = get_detector("mtcnn", device=device)
    boxes: list = []
    t0 = time.perf_counter()
    for start in range(0, len(paths), 32):
        images = [read_image(p).rgb for p in paths[start:start + 32]]
        for faces in detector.detect_batch(images):
            boxes.append(faces[0].box if faces else None)
    return boxes, time.perf_counter() - t0


def centre_inside(pred: list, true: list) -> float:
    hits = []
    for p, t in zip(pred, true, strict=True):
        if p is None:
            hits.append(False)
            continue
        cx, cy = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2
        hits.append(t[0] <= cx <= t[2] and t[1] <= cy <= t[3])
    return float(np.mean(hits)) if hits else float("nan")


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    data = Path(args.data)
    if not data.is_dir():
        print(f"{data}: not found; this benchmark needs pins105-dev", file=sys.stderr)
        return 2
    work = Path(args.work)
    tag = (f"{args.identities}id_{args.per_identity}pp_c{args.copies}_s{args.size}"
           f"_seed{args.seed}")
    synth_dir = work / f"synth_{tag}"
    model_dir = work / (f"model_{tag}_{args.backbone}_{args.pretrained}_f{args.freeze}"
                        f"_in{args.input_size}_e{args.epochs}_b{args.batch_size}"
                        + ("" if args.identity_from == "scene" else f"_{args.identity_from}")
                        + (f"_j{args.roi_jitter}" if args.roi_jitter else "")
                        + (f"_ff{args.face_freeze}_{args.landmark_head}"
                           if args.identity_from == "face" else ""))
    report_dir = work / f"report_{model_dir.name}"
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    synth = synthesize(data, synth_dir, SynthConfig(
        size=args.size, copies=args.copies, max_identities=args.identities,
        max_per_identity=args.per_identity or None, splits=("train", "val"), seed=args.seed,
        workers=args.workers))
    timings["synth_s"] = time.perf_counter() - t0
    ds = open_dataset(synth_dir, boxes=True)
    val = ds.split("val").items
    log.info("%d composites (%d train, %d val), %d identities", len(ds), len(ds.split("train")),
             len(val), len(ds.names))

    from celebface.device import resolve_device, set_torch_threads

    device = resolve_device(args.device)
    set_torch_threads(args.threads)
    t0 = time.perf_counter()
    train_model(synth_dir, "multi-output", model_dir, input_size=args.input_size,
                epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                patience=args.patience, device=device, seed=args.seed,
                backbone=args.backbone, pretrained=args.pretrained, freeze=args.freeze,
                identity_from=args.identity_from, roi_jitter=args.roi_jitter,
                face_freeze=args.face_freeze, landmark_head=args.landmark_head, tta=args.tta,
                num_workers=args.workers if device != "cpu" else 0)
    timings["train_s"] = time.perf_counter() - t0
    history = json.loads((model_dir / "history.json").read_text())

    t0 = time.perf_counter()
    metrics = evaluate_model(model_dir, synth_dir, report_dir, split="val", device=device)
    timings["evaluate_s"] = time.perf_counter() - t0
    box = metrics.get("extra", {})

    mt_boxes, mt_time = mtcnn_boxes([it.path for it in val], device)
    timings["mtcnn_s"] = mt_time
    true = [it.box for it in val]
    mt = box_metrics(mt_boxes, true)
    mt["centre_in_true_box"] = centre_inside(mt_boxes, true)
    # the model's boxes on the same rows, from the evaluation's predictions
    own = {"mean_iou": box.get("mean_iou"), "median_iou": box.get("median_iou"),
           "iou_ge_0.5": box.get("iou_ge_0.5"), "iou_ge_0.75": box.get("iou_ge_0.75")}
    model_pred = load_model(model_dir, device=device).predict(
        [read_image(it.path).rgb for it in val])
    own["centre_in_true_box"] = centre_inside([p.box for p in model_pred], true)

    result = {
        "benchmark": "multi_output",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "device": device, "python": platform.python_version()},
        "note": f"{args.backbone}, "
                + ("ImageNet start" if args.pretrained == "imagenet" else "from scratch")
                + (f", first {args.freeze} blocks frozen" if args.freeze else "")
                + f"; identity head reads the {args.identity_from}"
                + ("; flip TTA" if args.tta == "flip" else "")
                + f"; 1-minute load average {os.getloadavg()[0]:.1f} at the start",
        "settings": vars(args),
        "data": {"identities": len(ds.names), "train": len(ds.split("train")),
                 "val": len(val), "composite_size": args.size},
        "model": {
            "accuracy": metrics["accuracy"], "top5_accuracy": metrics["top5_accuracy"],
            "f1_weighted": metrics["f1_weighted"], **own,
            "accuracy_given_iou_ge_0.5": box.get("accuracy_given_iou_ge_0.5"),
            "epochs_run": len(history["epochs"]), "best_epoch": history["best_epoch"],
            "chance_accuracy": 1 / max(1, len(ds.names)),
        },
        "mtcnn": mt,
        "history": [{k: r[k] for k in ("epoch", "train_loss", "val_accuracy", "val_miou", "val_nme",
                                       "time_s") if k in r} for r in history["epochs"]],
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "synth": {"written": synth.written, "kept": synth.resumed},
        "report_dir": str(report_dir),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / f"{args.name}.json", result)
    atomic_write_text(RESULTS / f"{args.name}.md", to_markdown(result))
    print(to_markdown(result))
    return 0


def _f(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else "n/a" if v is None else str(v)


def to_markdown(r: dict) -> str:
    m, t, d = r["model"], r["mtcnn"], r["data"]
    lines = [
        f"# Multi-output model ({r['machine']['device']})",
        "",
        f"{d['identities']} pins105-dev identities composited at {d['composite_size']} px: "
        f"{d['train']} train / {d['val']} val composites (val = the Pins val rows). "
        f"{r['note']}. Input {r['settings']['input_size']} px, {m['epochs_run']} epoch(s) "
        f"(best {m['best_epoch']}), batch {r['settings']['batch_size']}.",
        "",
        "| boxes on the val composites | mean IoU | median IoU | IoU >= 0.5 | IoU >= 0.75 "
        "| centre in true box |",
        "|---|---|---|---|---|---|",
        f"| multi-output model | {_f(m['mean_iou'])} | {_f(m['median_iou'])} "
        f"| {_f(m['iou_ge_0.5'])} | {_f(m['iou_ge_0.75'])} | {_f(m['centre_in_true_box'])} |",
        f"| MTCNN, top face ({t['missed']} of {t['count']} with none) | {_f(t['mean_iou'])} "
        f"| {_f(t['median_iou'])} | {_f(t['iou_ge_0.5'])} | {_f(t['iou_ge_0.75'])} "
        f"| {_f(t['centre_in_true_box'])} |",
        "",
        f"Identity: accuracy {_f(m['accuracy'])} (chance {_f(m['chance_accuracy'])}), "
        f"top-5 {_f(m['top5_accuracy'])}, weighted F1 {_f(m['f1_weighted'])}, accuracy given "
        f"IoU >= 0.5 {_f(m['accuracy_given_iou_ge_0.5'])}.",
        "",
        "The true box is the pasted photo's box (a face crop with margin); MTCNN boxes the face "
        "tightly, so its IoU is capped below 1 even on a correct detection.",
        "",
        "| epoch | train loss | val accuracy | val mean IoU | time (s) |",
        "|---|---|---|---|---|",
        *[f"| {h['epoch']} | {_f(h.get('train_loss'))} | {_f(h.get('val_accuracy'))} "
          f"| {_f(h.get('val_miou'))} | {_f(h.get('time_s'))} |" for h in r["history"]],
        "",
        "Timings (s): " + ", ".join(f"{k} {v}" for k, v in r["timings_s"].items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
