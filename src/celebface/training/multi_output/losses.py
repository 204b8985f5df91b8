"""The multi-output model's losses (cross-entropy, smooth-L1, GIoU) and validation metrics;
IoU itself is :func:`celebface.types.paired_iou`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from celebface.training.multi_output.config import MultiOutputConfig
from celebface.training.multi_output.net import MultiOutputNet
from celebface.types import box_overlap, paired_iou


def giou_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - GIoU`` of row-wise box pairs (Rezatofighi et al., 2019)."""
    inter, union = box_overlap(pred, target)
    union = union.clamp(min=1e-9)
    hw = torch.maximum(pred[:, 2], target[:, 2]) - torch.minimum(pred[:, 0], target[:, 0])
    hh = torch.maximum(pred[:, 3], target[:, 3]) - torch.minimum(pred[:, 1], target[:, 1])
    hull = (hw * hh).clamp(min=1e-9)
    giou = inter / union - (hull - union) / hull
    return (1.0 - giou).mean()


def make_step(config: MultiOutputConfig) -> Any:
    """The fit loop's ``step``: weighted cross-entropy + smooth-L1 + GIoU box losses, and for a
    ``face`` network a smooth-L1 landmark loss in units of the box side. In training the
    identity head reads the true boxes and landmarks (teacher forcing); in validation the
    predicted ones, as at inference."""

    def step(model: nn.Module, batch: Sequence[torch.Tensor]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images, boxes, labels, *rest = batch
        points = rest[0] if rest else None
        given = (boxes, points, labels) if model.training else (None, None, None)
        # the loop hands any nn.Module to a step (StepFn): this one is only given a MultiOutputNet
        out = cast(MultiOutputNet, model).outputs(images, *given)
        logits = out.logits.float()
        loss = config.class_weight * F.cross_entropy(
            logits, labels, label_smoothing=config.label_smoothing)
        loss = loss + config.box_weight * F.smooth_l1_loss(
            out.boxes, boxes, beta=config.smooth_l1_beta)
        if config.giou_weight > 0:
            loss = loss + config.giou_weight * giou_loss(out.boxes, boxes)
        extra: dict[str, torch.Tensor] = {}
        if out.landmarks is not None and points is not None:
            side = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-3)[:, None, None]
            loss = loss + config.landmark_weight * F.smooth_l1_loss(
                out.landmarks / side, points / side, beta=config.smooth_l1_beta)
            extra = {"landmarks": out.landmarks, "true_landmarks": points}
        return loss, {"logits": logits, "targets": labels, "boxes": out.boxes,
                      "true_boxes": boxes, **extra}

    return step


def multi_output_metrics(outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """``accuracy``, ``miou``, ``iou50`` (share with IoU >= 0.5), ``score`` (mean of
    accuracy and mean IoU, the default early-stopping monitor) and, with landmarks, ``nme``
    (their mean distance from the true ones over the true box's width)."""
    if not outputs or len(outputs["targets"]) == 0:
        return {}
    correct = (outputs["logits"].argmax(1) == outputs["targets"]).float()
    iou = paired_iou(outputs["boxes"].float(), outputs["true_boxes"].float())
    acc, miou = float(correct.mean()), float(iou.mean())
    out = {"accuracy": acc, "miou": miou, "iou50": float((iou >= 0.5).float().mean()),
           "score": (acc + miou) / 2}
    if "landmarks" in outputs:
        true = outputs["true_landmarks"].float()
        width = (outputs["true_boxes"][:, 2] - outputs["true_boxes"][:, 0]).float()
        dist = (outputs["landmarks"].float() - true).norm(dim=-1).mean(-1)
        out["nme"] = float((dist / width.clamp(min=1e-6)).mean())
    return out
