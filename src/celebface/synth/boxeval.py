"""Box quality against true boxes: IoU metrics and a picture of sample predictions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.io import atomic_write
from celebface.plots import subplots
from celebface.types import box_iou

log = logging.getLogger(__name__)

SAMPLES_PNG = "box_samples.png"


def box_metrics(
    pred: Sequence[Sequence[float] | None],
    true: Sequence[Sequence[float]],
    correct: Sequence[bool] | None = None,
) -> dict[str, Any]:
    """IoU statistics of predicted vs true ``(x1, y1, x2, y2)`` boxes, row by row.

    A ``None`` prediction (e.g. a detector that found nothing) counts as IoU 0 and is counted in
    ``missed``. ``correct`` (identity right, per row) adds the accuracy given a good box
    (IoU >= 0.5) and given a poor one.
    """
    ious = np.array([0.0 if p is None else box_iou(tuple(p), tuple(t))
                     for p, t in zip(pred, true, strict=True)])
    n = len(ious)
    nan = float("nan")
    out: dict[str, Any] = {
        "count": n,
        "missed": sum(p is None for p in pred),
        "mean_iou": float(ious.mean()) if n else nan,
        "median_iou": float(np.median(ious)) if n else nan,
        "iou_ge_0.5": float((ious >= 0.5).mean()) if n else nan,
        "iou_ge_0.75": float((ious >= 0.75).mean()) if n else nan,
    }
    if correct is not None:
        ok = np.asarray(correct, dtype=bool)
        good = ious >= 0.5
        out["accuracy"] = float(ok.mean()) if n else nan
        out["accuracy_given_iou_ge_0.5"] = float(ok[good].mean()) if good.any() else nan
        out["accuracy_given_iou_lt_0.5"] = float(ok[~good].mean()) if (~good).any() else nan
    return out


def draw_samples(
    images: Sequence[np.ndarray],
    pred_boxes: Sequence[Sequence[float] | None],
    true_boxes: Sequence[Sequence[float]],
    titles: Sequence[str],
    path: str | Path,
    columns: int = 6,
) -> Path:
    """A grid of images with the true box (green) and the predicted one (red), saved as PNG."""
    from matplotlib.patches import Rectangle


    n = len(images)
    cols = max(1, min(columns, n))
    rows = max(1, -(-n // cols))
    fig, axes = subplots(rows, cols, figsize=(2.6 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, p, t, title in zip(axes.ravel(), images, pred_boxes, true_boxes, titles,
                                    strict=False):
        ax.imshow(img)
        for box, colour in ((t, "lime"), (p, "red")):
            if box is not None:
                ax.add_patch(Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                       fill=False, edgecolor=colour, linewidth=1.8))
        ax.set_title(title, fontsize=7)
    fig.suptitle("true box green, predicted red", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=90)
    return path


def box_report(
    images: Sequence[np.ndarray],
    predictions: Sequence[Any],
    items: Sequence[Any],
    out_dir: str | Path,
    samples: int = 24,
    seed: int = 0,
) -> dict[str, Any]:
    """Box metrics of ``predictions`` (each with ``.box`` and ``.identity``) against ``items``
    (each with ``.box`` in the same image's pixels and ``.identity``), and ``box_samples.png``
    in ``out_dir`` (a random sample, worst IoU first). The result is flat (``mean_iou``,
    ``iou_ge_0.5``, ...; see :func:`box_metrics`) so that a report can list it as is; ``{}``
    when the items have no boxes."""
    rows = [i for i, it in enumerate(items) if getattr(it, "box", None) is not None]
    if not rows:
        return {}
    pred = [predictions[i].box for i in rows]
    true = [items[i].box for i in rows]
    correct = [predictions[i].identity == items[i].identity for i in rows]
    metrics = box_metrics(pred, true, correct)
    metrics.pop("accuracy")  # the report has it already
    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(rows), size=min(samples, len(rows)), replace=False).tolist(),
                  key=lambda k: 0.0 if pred[k] is None else box_iou(pred[k], true[k]))
    titles = []
    for k in pick:
        p = predictions[rows[k]]
        iou = 0.0 if pred[k] is None else box_iou(pred[k], true[k])
        mark = "ok" if correct[k] else f"true: {_short(items[rows[k]].identity)}"
        titles.append(f"{_short(p.identity)} {p.probability:.2f} | IoU {iou:.2f}\n{mark}")
    path = draw_samples([images[rows[k]] for k in pick], [pred[k] for k in pick],
                        [true[k] for k in pick], titles, Path(out_dir) / SAMPLES_PNG)
    metrics["samples_picture"] = path.name
    return metrics


def _short(name: str) -> str:
    return name.removeprefix("pins_")[:22]
