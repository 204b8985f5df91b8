"""The numbers and files of an evaluation report: metrics, predictions, the summary."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data import FaceItem
from celebface.io import atomic_write_text
from celebface.plots import display_name


def classification_metrics(y_true: np.ndarray, probs: np.ndarray, names: Sequence[str]
                           ) -> tuple[dict[str, Any], str, np.ndarray]:
    """Accuracy, top-5, weighted and macro P/R/F1; the per-class report; the confusion
    matrix over the classes present in the data or predictions."""
    from sklearn.metrics import classification_report, confusion_matrix
    from sklearn.metrics import precision_recall_fscore_support as prfs

    y_pred = probs.argmax(1) if len(probs) else np.zeros(0, dtype=np.int64)
    k = min(5, probs.shape[1]) if probs.ndim == 2 else 1
    topk = np.argsort(-probs, axis=1)[:, :k] if len(probs) else np.zeros((0, k), dtype=int)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    out: dict[str, Any] = {
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else float("nan"),
        f"top{k}_accuracy": float((topk == y_true[:, None]).any(1).mean()) if len(y_true)
        else float("nan"),
    }
    if k != 5:
        out["top5_accuracy"] = out[f"top{k}_accuracy"]
    for avg in ("weighted", "macro"):
        p, r, f, _ = prfs(y_true, y_pred, labels=np.unique(y_true), average=avg, zero_division=0)
        out[f"precision_{avg}"], out[f"recall_{avg}"], out[f"f1_{avg}"] = (
            float(p), float(r), float(f))
    report = classification_report(
        y_true, y_pred, labels=labels, target_names=[names[i] for i in labels],
        digits=4, zero_division=0,
    )
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    return out, report, matrix


def prediction_rows(samples: Sequence[FaceItem], probs: np.ndarray, y_true: np.ndarray,
                     names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for s, p, t in zip(samples, probs, y_true, strict=True):
        j = int(p.argmax())
        rows.append({"sample": s, "path": s.path, "true": names[t], "predicted": names[j],
                     "probability": float(p[j]), "true_probability": float(p[t]),
                     "correct": j == t})
    return rows


def write_predictions(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    cols = ["path", "true", "predicted", "probability", "true_probability", "correct"]
    writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "probability": f"{r['probability']:.6f}",
                         "true_probability": f"{r['true_probability']:.6f}"})
    atomic_write_text(path, buf.getvalue())


def format_summary(metrics: dict[str, Any]) -> str:
    """A one-screen text summary of :func:`evaluate_model`'s metrics."""
    c = metrics["counts"]
    lines = [
        f"model      {metrics['model']['dir']} ({metrics['model']['kind']})",
        f"data       {metrics['data']['path']}"
        + (f" [split {metrics['data']['split']}]" if metrics["data"]["split"] else ""),
        f"images     {c['evaluated']} evaluated of {c['samples']}"
        f" ({c['unreadable']} unreadable, {c['unknown_identity']} of unknown identities)",
        f"accuracy   {metrics['accuracy']:.4f}   top-5 {metrics['top5_accuracy']:.4f}",
        f"weighted   P {metrics['precision_weighted']:.4f}  R {metrics['recall_weighted']:.4f}"
        f"  F1 {metrics['f1_weighted']:.4f}",
        f"macro      P {metrics['precision_macro']:.4f}  R {metrics['recall_macro']:.4f}"
        f"  F1 {metrics['f1_macro']:.4f}",
    ]
    if metrics.get("unknown_identities"):
        names = ", ".join(display_name(n) for n in metrics["unknown_identities"])
        lines.append(f"unknown    {names}")
    for key, value in (metrics.get("extra") or {}).items():
        if isinstance(value, float):
            lines.append(f"{key:<10} {value:.4f}")
        elif isinstance(value, int):
            lines.append(f"{key:<10} {value}")
    return "\n".join(lines)
