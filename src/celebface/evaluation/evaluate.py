"""``celebface evaluate``: a trained model on a labelled dataset, and the report people read."""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data.stage import write_stage
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
    samples, unknown = _known_samples(evalset.samples, model.label_names, data, model_dir)
    probs, kept, errors, preds = predict_set(model, evalset, samples, batch_size, progress,
                                             full_predictions=hook is not None)
    index = {n: i for i, n in enumerate(model.label_names)}
    y_true = np.array([index[s.identity] for s in kept], dtype=np.int64)
    metrics, report, matrix = classification_metrics(y_true, probs, model.label_names)
    metrics = {
        **metrics,
        "counts": _counts(evalset.samples, kept, probs, y_true, errors, unknown,
                          model.num_classes),
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
    if plots:
        _plot(out, model_dir, model.label_names, matrix, y_true, probs, predictions, evalset,
              max_errors)
    atomic_write_text(out / "summary.txt", format_summary(metrics) + "\n")

    write_stage(out, "report", {"model": metrics["model"], "data": metrics["data"]},
                [str(model_dir), str(data)])
    return metrics


def _known_samples(samples: list[Any], label_names: list[str], data: str | Path,
                   model_dir: Path) -> tuple[list[Any], Counter[str]]:
    """The samples of identities the model knows, and how many of each unknown one were
    left out (logged); none known is an :class:`InputError`."""
    known = set(label_names)
    unknown = Counter(s.identity for s in samples if s.identity not in known)
    if unknown:
        log.warning("%d image(s) of %d identit%s the model does not know, left out: %s",
                    sum(unknown.values()), len(unknown), "y" if len(unknown) == 1 else "ies",
                    ", ".join(sorted(unknown)))
    kept = [s for s in samples if s.identity in known]
    if not kept:
        raise InputError(f"{data}: none of its identities is known to the model in {model_dir}")
    return kept, unknown


def _counts(samples: list[Any], kept: list[Any], probs: np.ndarray, y_true: np.ndarray,
            errors: list[Any], unknown: Counter[str], num_classes: int) -> dict[str, int]:
    """The report's ``counts``: samples seen, evaluated, correct, unreadable, unknown."""
    return {
        "samples": len(samples), "evaluated": len(kept),
        "correct": int((probs.argmax(1) == y_true).sum()) if len(kept) else 0,
        "unreadable": len(errors), "unknown_identity": sum(unknown.values()),
        "identities_in_data": len({s.identity for s in samples}),
        "identities_in_model": num_classes,
    }


def _plot(out: Path, model_dir: Path, label_names: list[str], matrix: np.ndarray,
          y_true: np.ndarray, probs: np.ndarray, predictions: list[dict[str, Any]],
          evalset: Any, max_errors: int) -> None:
    """The report's pictures: the confusion matrix of the identities present, the training
    curves (when the model folder has a history) and the ``max_errors`` surest mistakes."""
    present: np.ndarray | list[int] = (np.unique(np.concatenate([y_true, probs.argmax(1)]))
                                       if len(y_true) else [])
    if len(present):
        plot_confusion(matrix, [label_names[i] for i in present], out / "confusion_matrix.png")
    history_path = model_dir / "history.json"
    if history_path.is_file():
        plot_history(json.loads(history_path.read_text(encoding="utf-8")), out / "history.png")
    mistakes = sorted((r for r in predictions if not r["correct"]),
                      key=lambda r: -r["probability"])[:max_errors]

    def load_thumb(row: dict[str, Any]) -> np.ndarray | None:
        try:
            return evalset.image(row["sample"])
        except ImageReadError:
            return None

    plot_errors(mistakes, load_thumb, out / "errors.png")
