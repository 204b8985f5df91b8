"""face-resnet on pins105-dev: softmax vs margin head (all 105 people), and whether
fine-tuning helps or hurts people the network never saw (identities held out).

    .venv/bin/python benchmarks/face_resnet.py [--epochs 12] [--heads cosface softmax]

1. ``train --model face-resnet`` on all 105 identities with each ``--heads`` head; val top-1
   (nearest class centroid of dlib's own vectors is epoch 0 of the centroid-initialised head).
2. Held-out study: fine-tune on ``--train-ids`` identities (seeded choice), then for the other
   people compare dlib's original network with the fine-tuned one on their vectors:
   nearest-centroid top-1 (gallery = their train photos, queries = their val photos) and
   verification over all val pairs (ROC AUC, TAR at FAR 1e-3, EER).
Chips and the frozen levels' maps are cached (first run: tens of minutes on 2 shared cores).
Results: ``benchmarks/results/face_resnet.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def verification(vecs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """ROC AUC, TAR at FAR 1e-3 and EER of cosine similarity over all pairs."""
    from sklearn.metrics import roc_auc_score, roc_curve

    sims = vecs @ vecs.T
    iu = np.triu_indices(len(vecs), 1)
    s, same = sims[iu], (labels[:, None] == labels[None, :])[iu]
    fpr, tpr, _ = roc_curve(same, s)
    eer_i = int(np.argmin(np.abs(fpr - (1 - tpr))))
    return {"roc_auc": float(roc_auc_score(same, s)),
            "tar_at_far_1e-3": float(np.interp(1e-3, fpr, tpr)),
            "eer": float((fpr[eer_i] + 1 - tpr[eer_i]) / 2),
            "pairs": len(s), "genuine_pairs": int(same.sum())}


def centroid_accuracy(vecs: np.ndarray, labels: np.ndarray, gallery: np.ndarray,
                      queries: np.ndarray) -> float:
    classes = np.unique(labels[gallery])
    cents = np.stack([vecs[gallery][labels[gallery] == c].mean(0) for c in classes])
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    pred = classes[np.argmax(vecs[queries] @ cents.T, axis=1)]
    return float((pred == labels[queries]).mean())


def open_set_vectors(model_dir: Path | None, maps: np.ndarray, rows: np.ndarray,
                     levels: int) -> np.ndarray:
    """Unit 128-d vectors of ``rows`` from their cached maps: dlib's original network
    (``model_dir`` None) or a fine-tuned model's."""
    import torch

    from celebface.training.face_resnet import build_dlib_net

    net = build_dlib_net(trainable=False)
    if model_dir is not None:
        state = torch.load(model_dir / "face_resnet.pt", map_location="cpu", weights_only=True)
        net.load_state_dict({k[len("net."):]: v for k, v in state.items()
                             if k.startswith("net.")})
    out = []
    with torch.inference_mode():
        for start in range(0, len(rows), 256):
            x = torch.from_numpy(np.asarray(maps[rows[start:start + 256], 0], np.float32))
            out.append(torch.nn.functional.normalize(net.head(x, levels)).numpy())
    return np.concatenate(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "pins105-dev"))
    ap.add_argument("--work", default=str(ROOT / "runs" / "bench_face_resnet"))
    ap.add_argument("--heads", nargs="+", default=["cosface", "softmax"])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--patience", type=int, default=4)
    ap.add_argument("--freeze", type=int, default=4)
    ap.add_argument("--cache-flip", action="store_true", help="also cache mirror images")
    ap.add_argument("--train-ids", type=int, default=80)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    from celebface.io import atomic_write_json, atomic_write_text
    from celebface.recognition import DlibEmbedder
    from celebface.training import train_model
    from celebface.training.chips import aligned_chips, default_cache_dir
    from celebface.training.data import load_image_data

    work = Path(args.work)
    common: dict[str, Any] = {"freeze": args.freeze, "cache_flip": args.cache_flip,
                              "epochs": args.epochs, "patience": args.patience,
                              "device": "cpu", "progress": False}
    runs: dict[str, Any] = {}
    for head in args.heads:
        t0 = time.perf_counter()
        model = train_model(args.data, "face-resnet", work / head, head=head, **common)
        hist = json.loads((work / head / "history.json").read_text(encoding="utf-8"))
        runs[head] = {"val_accuracy": model.meta["best_val_accuracy"],
                      "best_epoch": model.meta["best_epoch"], "epochs": len(hist["epochs"]),
                      "train_s": round(time.perf_counter() - t0, 1),
                      "epoch_s": [r["time_s"] for r in hist["epochs"]],
                      "val_curve": [round(r["val_accuracy"], 4) for r in hist["epochs"]]}
        logging.info("%s: %s", head, runs[head])
    best_head = max(runs, key=lambda h: runs[h]["val_accuracy"])

    # baselines on the same chips: dlib's original vectors, nearest centroid and logreg
    images = load_image_data(args.data)
    names = list(images.label_names)
    chips = aligned_chips(images.paths, DlibEmbedder(), progress=False)
    views = 2 if args.cache_flip else 1
    maps = np.load(default_cache_dir() / f"trunk-{chips.key}-L{args.freeze}-dlib-v{views}.npy",
                   mmap_mode="r")
    ok = np.flatnonzero(chips.ok)
    vecs = open_set_vectors(None, maps, ok, args.freeze)
    lab, spl = images.labels[ok], images.splits[ok]
    tr_i, va_i = np.flatnonzero(spl == "train"), np.flatnonzero(spl == "val")
    from sklearn.linear_model import LogisticRegression

    logreg = LogisticRegression(C=10.0, max_iter=300).fit(vecs[tr_i], lab[tr_i])
    baselines = {"dlib nearest centroid": centroid_accuracy(vecs, lab, tr_i, va_i),
                 "dlib + logreg (C=10, no TTA)": float(logreg.score(vecs[va_i], lab[va_i]))}
    logging.info("baselines: %s", baselines)

    # held-out identities
    rng = np.random.default_rng(0)
    seen = sorted(rng.permutation(names)[:args.train_ids].tolist())
    unseen_ids = [i for i, n in enumerate(names) if n not in seen]
    t0 = time.perf_counter()
    train_model(args.data, "face-resnet", work / f"{best_head}_{args.train_ids}ids",
                head=best_head, identities=seen, **common)
    held_train_s = round(time.perf_counter() - t0, 1)
    rows = np.flatnonzero(np.isin(images.labels, unseen_ids) & chips.ok)
    labels = images.labels[rows]
    gallery = np.flatnonzero(images.splits[rows] == "train")
    queries = np.flatnonzero(images.splits[rows] == "val")
    held: dict[str, Any] = {"train_identities": len(seen), "held_out_identities":
                            len(unseen_ids), "gallery_photos": len(gallery),
                            "query_photos": len(queries), "train_s": held_train_s}
    for name, model_dir in (("dlib (original)", None),
                            (f"fine-tuned on {len(seen)} ({best_head})",
                             work / f"{best_head}_{args.train_ids}ids")):
        vecs = open_set_vectors(model_dir, maps, rows, args.freeze)
        held[name] = {"centroid_top1": centroid_accuracy(vecs, labels, gallery, queries),
                      **verification(vecs[queries], labels[queries])}
        logging.info("held out, %s: %s", name, held[name])

    result = {"data": args.data, "settings": {**common, "heads": args.heads},
              "closed_set": runs, "baselines": baselines, "best_head": best_head, "held_out": held,
              "machine": f"{platform.machine()}, 2 shared cores (busy), torch threads "
                         f"{args.threads}",
              "command": "python benchmarks/face_resnet.py " + " ".join(
                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                  if k in ("epochs", "freeze", "train_ids"))}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "face_resnet.json", result)
    lines = ["# face-resnet on pins105-dev (val, 2,632 photos)", "",
             f"Command: `{result['command']}`; {result['machine']}.", "",
             "| head | val top-1 | best epoch | epochs run | training time |",
             "|---|---|---|---|---|"]
    lines += [f"| {h} | {r['val_accuracy']:.4f} | {r['best_epoch']} | {r['epochs']} | "
              f"{r['train_s']:.0f} s |" for h, r in runs.items()]
    lines += [f"| baseline: {name} | {acc:.4f} | | | |" for name, acc in baselines.items()]
    lines += ["", f"Held-out study: fine-tuned on {len(seen)} identities, tested on the other "
              f"{len(unseen_ids)} (gallery = their {len(gallery)} train photos, queries = their "
              f"{len(queries)} val photos).", "",
              "| network | nearest-centroid top-1 | ROC AUC | TAR @ FAR 1e-3 | EER |",
              "|---|---|---|---|---|"]
    for name, m in held.items():
        if isinstance(m, dict):
            lines.append(f"| {name} | {m['centroid_top1']:.4f} | {m['roc_auc']:.4f} | "
                         f"{m['tar_at_far_1e-3']:.4f} | {m['eer']:.4f} |")
    atomic_write_text(RESULTS / "face_resnet.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
