"""``celebface evaluate``: a trained model on a labelled dataset, and the report people read."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from celebface.errors import InputError
from celebface.evaluation.report import (
    classification_metrics,
    format_summary,
    prediction_rows,
    write_predictions,
)
from celebface.evaluation.samples import LazyImages, load_eval_set, predict_set
from celebface.io import ImageReadError, atomic_write_json, atomic_write_text
from celebface.plots import plot_confusion, plot_errors, plot_history

log = logging.getLogger(__name__)

METRICS = "metrics.json"


def evaluate_model(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    split: str | None = None,
    *,
    device: str = "auto",
    batch_size: int = 64,
    max_errors: int = 24,
    progress: bool = True,
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` on ``data``; write the report into ``out``.

    ``data``: a folder-per-identity (its ``splits.csv`` used when ``split`` is given), a packed
    folder, an embeddings folder (for embedding models whose embedder matches) or, for models
    with ``evaluate_extra`` (multi-output), a box dataset. Identities are matched by name;
    unknown ones are counted and left out; unreadable files are listed and skipped.

    Writes ``metrics.json``, ``classification_report.txt``, ``confusion_matrix.png``,
    ``predictions.csv``, ``errors.png`` (when there are mistakes), ``history.png`` (when the
    model has a per-epoch history) and ``summary.txt`` (``plots=False``: no pictures).
    Returns the metrics.
    """
    from celebface.training import load_model

    t0 = time.perf_counter()
    model_dir, out = Path(model_dir), Path(out)
    model = load_model(model_dir, device=device)
    hook = getattr(model, "evaluate_extra", None)
    trained = model.meta.get("config") or {}
    evalset = load_eval_set(data, split, boxes=hook is not None,
                            use_embeddings=hasattr(model, "predict_embeddings"),
                            seed=int(trained.get("seed", 0)),
                            val_fraction=float(trained.get("val_fraction", 0.15)))
    index = {n: i for i, n in enumerate(model.label_names)}
    unknown = Counter(s.identity for s in evalset.samples if s.identity not in index)
    if unknown:
        log.warning("%d image(s) of %d identit%s the model does not know, left out: %s",
                    sum(unknown.values()), len(unknown), "y" if len(unknown) == 1 else "ies",
                    ", ".join(sorted(unknown)))
    samples = [s for s in evalset.samples if s.identity in index]
    if not samples:
        raise InputError(f"{data}: none of its identities is known to the model in {model_dir}")
    probs, kept, errors, preds = predict_set(model, evalset, samples, batch_size, progress,
                                             full_predictions=hook is not None)
    y_true = np.array([index[s.identity] for s in kept], dtype=np.int64)
    metrics, report, matrix = classification_metrics(y_true, probs, model.label_names)
    present = np.unique(np.concatenate([y_true, probs.argmax(1)])) if len(kept) else []
    metrics = {
        **metrics,
        "counts": {
            "samples": len(evalset.samples), "evaluated": len(kept),
            "correct": int((probs.argmax(1) == y_true).sum()) if len(kept) else 0,
            "unreadable": len(errors), "unknown_identity": sum(unknown.values()),
            "identities_in_data": len({s.identity for s in evalset.samples}),
            "identities_in_model": model.num_classes,
        },
        "unknown_identities": dict(sorted(unknown.items())),
        "unreadable_files": errors,
        "model": {"dir": str(model_dir), "kind": model.kind,
                  "embedder": model.meta.get("embedder")},
        "data": {"path": str(data), "kind": evalset.kind, "split": split},
    }
    out.mkdir(parents=True, exist_ok=True)
    predictions = prediction_rows(kept, probs, y_true, model.label_names)
    if hook is not None and len(kept):
        extra = hook(LazyImages(evalset, kept), preds, kept, out)
        if extra:
            metrics["extra"] = extra
    metrics["time_s"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / METRICS, metrics)
    atomic_write_text(out / "classification_report.txt", report)
    write_predictions(out / "predictions.csv", predictions)
    if plots and len(present):
        plot_confusion(matrix, [model.label_names[i] for i in present],
                       out / "confusion_matrix.png")
    history_path = model_dir / "history.json"
    if plots and history_path.is_file():
        plot_history(json.loads(history_path.read_text(encoding="utf-8")), out / "history.png")
    mistakes = sorted((r for r in predictions if not r["correct"]),
                      key=lambda r: -r["probability"])[:max_errors]

    def load_thumb(row: dict[str, Any]) -> np.ndarray | None:
        try:
            return evalset.image(row["sample"])
        except ImageReadError:
            return None

    if plots:
        plot_errors(mistakes, load_thumb, out / "errors.png")
    atomic_write_text(out / "summary.txt", format_summary(metrics) + "\n")
    from celebface.data.stage import write_stage

    write_stage(out, "report", {"model": metrics["model"], "data": metrics["data"]},
                [str(model_dir), str(data)])
    return metrics
