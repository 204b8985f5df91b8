"""``celebface evaluate``: a trained model on a labelled dataset, and the report people read."""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from celebface.data import DatasetError, FaceDataset, FaceItem, open_dataset
from celebface.errors import InputError
from celebface.evaluation.plots import display_name, plot_confusion, plot_errors, plot_history
from celebface.io import ImageReadError, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

METRICS = "metrics.json"


@dataclass
class EvalSet:
    """What to evaluate: the items of a dataset (:func:`celebface.data.open_dataset`) as
    ``samples``, with the dataset giving their pixels or stored embeddings."""

    dataset: FaceDataset
    kind: str  # folder | packed | embeddings | box
    samples: list[FaceItem]

    @property
    def root(self) -> Path:
        return self.dataset.root

    @property
    def embeddings(self) -> np.ndarray | None:
        return self.dataset.vectors

    @property
    def embedder(self) -> dict[str, Any]:
        return self.dataset.meta if self.kind == "embeddings" else {}

    def image(self, s: FaceItem) -> np.ndarray:
        return self.dataset.load(s)


class LazyImages(Sequence):
    """Images of some samples, decoded when indexed (for hooks that want pixels)."""

    def __init__(self, data: EvalSet, samples: Sequence[FaceItem]):
        self.data, self.samples = data, list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.data.image(self.samples[i])


def load_eval_set(data: str | Path, split: str | None = None, *, boxes: bool = False,
                  use_embeddings: bool = False, seed: int = 0,
                  val_fraction: float = 0.15) -> EvalSet:
    """The samples of ``data`` (folder, packed, embeddings or, with ``boxes``, a box dataset),
    restricted to ``split`` when given. Rows of a pack or an embeddings folder without a
    stored split get the stratified split of ``seed`` and ``val_fraction`` (pass the model's,
    so its val rows are the ones held out in training); a folder's split is its splits.csv's."""
    from celebface.synth import is_box_dataset
    from celebface.training.data import data_kind

    root = Path(data)
    kind = data_kind(root)
    if boxes and is_box_dataset(root):
        dataset = open_dataset(root, boxes=True)
        return EvalSet(dataset, "box", dataset.split(split).items)
    if kind == "embeddings" and not use_embeddings:
        raise DatasetError(f"{root}: holds embeddings; this model needs face images")
    dataset = open_dataset(root)
    if kind != "folder":
        dataset = dataset.with_splits(seed, val_fraction)
    return EvalSet(dataset, kind, dataset.split(split).items)


def _batches(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _same_embedder(model_spec: dict[str, Any], data_meta: dict[str, Any]) -> bool:
    from celebface.recognition.spec import EmbedderSpec

    return EmbedderSpec.from_dict(model_spec).same_vectors(
        EmbedderSpec.from_dict(data_meta.get("embedder") or data_meta))


def predict_set(
    model: Any, data: EvalSet, samples: Sequence[FaceItem], batch_size: int = 64,
    progress: bool = True, full_predictions: bool = False,
) -> tuple[np.ndarray, list[FaceItem], list[str], list[Any]]:
    """Probabilities for the readable samples: ``(probs, kept samples, errors, predictions)``.
    With ``full_predictions`` the model's own :class:`Prediction` objects (e.g. with boxes)
    are kept too, from the same forward pass."""
    from tqdm.auto import tqdm

    from celebface.training.base import predictions_from_probs

    if data.kind == "embeddings":
        if not hasattr(model, "predict_embeddings"):
            raise InputError(f"{data.root}: holds embeddings, but a {model.kind} model works "
                             "on images")
        if not _same_embedder(model.meta.get("embedder", {}), data.embedder):
            raise InputError(f"{data.root}: embeddings made with {data.embedder.get('model')} "
                             f"(tta {data.embedder.get('tta')}), but the model expects "
                             f"{model.meta.get('embedder')}")
        probs = model.predict_embeddings(data.dataset.vectors_of(list(samples)))
        return probs, list(samples), [], predictions_from_probs(probs, model.label_names)
    probs, kept, errors, preds = [], [], [], []
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress)
    for chunk in _batches(samples, batch_size):
        images, ok, faces = [], [], []
        for s in chunk:
            try:
                images.append(data.image(s))
                ok.append(s)
                faces.append(s.face)
            except ImageReadError as exc:
                errors.append(str(exc))
                log.warning("skipped: %s", exc)
        if images and full_predictions:
            batch_preds = model.predict(images, top_k=model.num_classes, faces=faces)
            index = {n: i for i, n in enumerate(model.label_names)}
            p = np.zeros((len(images), model.num_classes))
            for row, pred in zip(p, batch_preds, strict=True):
                for name, prob in pred.top_k:
                    row[index[name]] = prob
            probs.append(p)
            preds.extend(batch_preds)
            kept.extend(ok)
        elif images:
            probs.append(model.proba(images, faces))
            kept.extend(ok)
        bar.update(len(chunk))
    bar.close()
    width = model.num_classes
    probs_arr = np.concatenate(probs) if probs else np.zeros((0, width))
    if not full_predictions:
        preds = []
    return probs_arr, kept, errors, preds


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
    predictions = _prediction_rows(kept, probs, y_true, model.label_names)
    if hook is not None and len(kept):
        extra = hook(LazyImages(evalset, kept), preds, kept, out)
        if extra:
            metrics["extra"] = extra
    metrics["time_s"] = round(time.perf_counter() - t0, 2)
    atomic_write_json(out / METRICS, metrics)
    atomic_write_text(out / "classification_report.txt", report)
    _write_predictions(out / "predictions.csv", predictions)
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


def _prediction_rows(samples: Sequence[FaceItem], probs: np.ndarray, y_true: np.ndarray,
                     names: Sequence[str]) -> list[dict[str, Any]]:
    rows = []
    for s, p, t in zip(samples, probs, y_true, strict=True):
        j = int(p.argmax())
        rows.append({"sample": s, "path": s.path, "true": names[t], "predicted": names[j],
                     "probability": float(p[j]), "true_probability": float(p[t]),
                     "correct": j == t})
    return rows


def _write_predictions(path: Path, rows: Sequence[dict[str, Any]]) -> None:
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
