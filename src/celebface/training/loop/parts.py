"""The fit loop's parts: default classification hooks, seeding, loaders, optimiser and
scheduler, checkpoint files, and one pass over a loader."""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from celebface.errors import InputError
from celebface.io import atomic_write
from celebface.training.loop.config import LoopConfig, MetricsFn, StepFn

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset


def classification_step(
    model: nn.Module, batch: Sequence[torch.Tensor], label_smoothing: float = 0.0
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``batch = (inputs, targets)``; cross-entropy on the model's logits."""
    import torch.nn.functional as F

    inputs, targets = batch[0], batch[1]
    logits = model(inputs)
    loss = F.cross_entropy(logits.float(), targets, label_smoothing=label_smoothing)
    return loss, {"logits": logits, "targets": targets}


def classification_metrics(outputs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Top-1 (and top-5 when there are more than 5 classes) accuracy from logits/targets."""
    logits, targets = outputs["logits"].float(), outputs["targets"]
    if len(targets) == 0:
        return {}
    out = {"accuracy": float((logits.argmax(1) == targets).float().mean())}
    if logits.shape[1] > 5:
        top5 = logits.topk(5, dim=1).indices
        out["top5_accuracy"] = float((top5 == targets[:, None]).any(1).float().mean())
    return out


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: Any, device: str, non_blocking: bool = False) -> Any:
    """Move every tensor inside nested tuples/lists/dicts to ``device``."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, non_blocking) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, non_blocking) for v in batch)
    return batch


def make_loader(
    data: Dataset | DataLoader, config: LoopConfig, device: str, train: bool
) -> DataLoader:
    """A DataLoader for ``data`` (returned as is when it already is one)."""
    import torch
    from torch.utils.data import DataLoader

    if isinstance(data, DataLoader):
        return data
    if not isinstance(data, Sized):
        raise TypeError(f"a dataset without a length: {type(data).__name__}")
    n = len(data)
    generator = torch.Generator().manual_seed(config.seed)
    return DataLoader(
        data,
        batch_size=config.batch_size,
        shuffle=train,
        # a last training batch of one sample breaks BatchNorm: drop it
        drop_last=train and n > config.batch_size and n % config.batch_size == 1,
        num_workers=config.num_workers,
        pin_memory=device.startswith("cuda"),
        persistent_workers=config.num_workers > 0,
        generator=generator if train else None,
    )


def make_optimizer(params: Any, config: LoopConfig, fused: bool = False
                   ) -> torch.optim.Optimizer:
    """``config``'s optimiser over ``params`` (tensors or parameter groups, a group's ``lr``
    overriding ``config.lr``); ``fused`` (Adam, AdamW): one kernel per step, on a CPU several
    times faster for a large dense layer."""
    import torch

    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay,
                                fused=fused or None)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay,
                                 fused=fused or None)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=True)
    raise InputError(f"unknown optimizer {config.optimizer!r}: choose adam, adamw or sgd")


def make_scheduler(optimizer: torch.optim.Optimizer, config: LoopConfig) -> Any:
    import torch

    if config.scheduler == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=config.mode, factor=config.plateau_factor,
            patience=config.plateau_patience, min_lr=config.min_lr,
        )
    if config.scheduler == "none":
        return None
    raise InputError(f"unknown scheduler {config.scheduler!r}: exponential, plateau or none")


def improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def save_torch(obj: Any, path: Path) -> None:
    import torch

    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def cat_outputs(chunks: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    import torch

    if not chunks:
        return {}
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    step: StepFn,
    metrics: MetricsFn,
    device: str,
    config: LoopConfig,
    *,
    optimizer: torch.optim.Optimizer | None,
    scaler: Any,
    desc: str,
) -> dict[str, float]:
    """One pass over ``loader``; trains when ``optimizer`` is given. Returns loss + metrics."""
    import torch

    train = optimizer is not None
    model.train(train)
    cuda = device.startswith("cuda")
    use_amp = cuda and config.amp
    limit = config.max_steps_per_epoch if train else config.max_val_steps
    total = len(loader) if limit is None else min(limit, len(loader))
    loss_sum, count, kept = 0.0, 0, []
    bar = tqdm(loader, total=total, desc=desc, leave=False, disable=not config.progress,
               unit="batch")
    with torch.set_grad_enabled(train):
        for i, batch in enumerate(bar):
            if limit is not None and i >= limit:
                break
            batch = to_device(batch, device, non_blocking=cuda)
            with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
                loss, outputs = step(model, batch)
            if optimizer is not None:  # training
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if config.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
            n = len(next(iter(outputs.values()))) if outputs else 1
            loss_sum += float(loss.detach()) * n
            count += n
            kept.append({k: v.detach().float().cpu() if v.is_floating_point() else v.detach().cpu()
                         for k, v in outputs.items()})
            bar.set_postfix(loss=f"{loss_sum / max(count, 1):.4f}")
    bar.close()
    result = {"loss": loss_sum / max(count, 1)}
    result.update(metrics(cat_outputs(kept)))
    return result
