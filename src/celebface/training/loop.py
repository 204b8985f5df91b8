"""A generic, resumable torch fit loop shared by every network trained in celebface.

The loop knows nothing about the task. Two hooks make it one:

- ``step(model, batch) -> (loss, outputs)``: runs the model on one batch (already on the
  device) and returns the scalar loss plus a dict of tensors to keep for the epoch's metrics
  (e.g. ``{"logits": ..., "targets": ...}``). It is called under autocast on CUDA.
- ``metrics(outputs) -> dict[str, float]``: gets those tensors concatenated over the epoch (on
  the CPU) and returns named metrics (e.g. ``{"accuracy": 0.93}``).

Per epoch it logs and appends to ``history.json`` (written atomically) the record
``{"epoch", "lr", "time_s", "train_loss", "train_<metric>"..., "val_loss", "val_<metric>"...}``.
``history.json`` is ``{"monitor", "mode", "best_epoch", "best", "stopped_early", "finished",
"epochs": [record, ...]}``.

Files in ``out_dir``: ``checkpoint.pt`` (last epoch: model, optimizer, scheduler, scaler,
early-stopping state, RNG; for resuming), ``best.pt`` (the best model ``state_dict``) and
``history.json``. A rerun of :func:`fit` with the same ``out_dir`` resumes after the last
finished epoch. When training ends the best weights are loaded back into ``model``.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.device import resolve_device
from celebface.errors import InputError
from celebface.io import atomic_write, atomic_write_json

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.json"

StepFn = Callable[["nn.Module", Any], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]
MetricsFn = Callable[[Mapping[str, "torch.Tensor"]], dict[str, float]]


@dataclass
class LoopConfig:
    """Settings of :func:`fit`. Defaults follow the reference notebook (Adam, batch 128, up to
    100 epochs, exponential LR decay, early stopping on validation accuracy with patience 5)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 1e-3
    #: ``exponential`` (lr * lr_decay**epoch), ``plateau`` (reduce-on-plateau on the monitored
    #: metric by ``plateau_factor`` after ``plateau_patience`` bad epochs) or ``none``.
    scheduler: str = "exponential"
    lr_decay: float = 0.95
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-6
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    grad_clip: float | None = None
    #: early stopping: ``patience`` epochs without improvement of ``monitor`` stop training
    #: (0 disables it). ``monitor`` is a history key such as ``val_accuracy`` or ``val_loss``.
    patience: int = 5
    monitor: str = "val_accuracy"
    mode: str = "max"  # max | min
    min_delta: float = 0.0
    device: str = "auto"
    amp: bool = True  # mixed precision, CUDA only
    num_workers: int = 0
    seed: int = 0
    max_steps_per_epoch: int | None = None  # for tests and quick runs
    max_val_steps: int | None = None
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitResult:
    """What :func:`fit` returns; ``history`` is the content of ``history.json``."""

    history: dict[str, Any]
    best_epoch: int
    best: float
    epochs_run: int
    stopped_early: bool
    device: str
    extra: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- default hooks


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


# --------------------------------------------------------------------------- helpers


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
    n = len(data)  # type: ignore[arg-type]
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


def _make_optimizer(params: Any, config: LoopConfig) -> torch.optim.Optimizer:
    import torch

    name = config.optimizer.lower()
    if name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=True)
    raise InputError(f"unknown optimizer {config.optimizer!r}: choose adam, adamw or sgd")


def _make_scheduler(optimizer: torch.optim.Optimizer, config: LoopConfig) -> Any:
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


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


#: Settings that may change between a run and its resumption.
RESUMABLE_FIELDS = frozenset({"epochs", "patience", "progress", "device", "num_workers", "amp",
                              "max_steps_per_epoch",
                              "max_val_steps"})


def run_fingerprint(config: Any, data: str | Path, label_names: Sequence[str]) -> dict[str, Any]:
    """What identifies a training run (data, classes, settings but :data:`RESUMABLE_FIELDS`),
    as JSON-plain values; :func:`fit` refuses to resume a checkpoint with another one."""
    import json

    settings = {k: v for k, v in asdict(config).items() if k not in RESUMABLE_FIELDS}
    return json.loads(json.dumps({"data": str(Path(data).resolve()), "labels": list(label_names),
                                  "settings": settings}, default=str))


def _check_fingerprint(saved: dict[str, Any] | None, wanted: dict[str, Any] | None,
                       out_dir: Path) -> None:
    if saved is None or wanted is None or saved == wanted:
        return
    keys = sorted(k for k in {**saved, **wanted} if saved.get(k) != wanted.get(k))
    if keys == ["settings"]:
        a, b = saved["settings"], wanted["settings"]
        keys = sorted(k for k in {**a, **b} if a.get(k) != b.get(k))
    raise InputError(f"{out_dir}: its checkpoint is from another run (different "
                     f"{', '.join(keys)}); use a new --out folder or delete {out_dir}")


def _save_torch(obj: Any, path: Path) -> None:
    import torch

    with atomic_write(path, "wb") as fh:
        torch.save(obj, fh)


def _cat_outputs(chunks: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    import torch

    if not chunks:
        return {}
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def _run_epoch(
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
    from tqdm.auto import tqdm

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
            if train:
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
    result.update(metrics(_cat_outputs(kept)))
    return result


# --------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train_data: Dataset | DataLoader,
    val_data: Dataset | DataLoader | None,
    out_dir: str | Path,
    config: LoopConfig | None = None,
    *,
    step: StepFn = classification_step,
    metrics: MetricsFn = classification_metrics,
    optimizer: torch.optim.Optimizer | None = None,
    resume: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> FitResult:
    """Train ``model`` on ``train_data``, validate on ``val_data`` each epoch, keep the best.

    ``train_data``/``val_data`` are datasets (a DataLoader is built from ``config``) or ready
    DataLoaders. ``optimizer`` defaults to one built from ``config`` over the parameters that
    require gradients. With ``resume`` and a ``checkpoint.pt`` in ``out_dir``, training goes on
    from it (a finished run returns at once) unless its ``fingerprint`` (see
    :func:`run_fingerprint`) differs, which is a ``ValueError``. ``on_epoch_end(record)`` is
    called after each epoch's record is written. On return ``model`` holds the best weights,
    on the CPU if ``config.device`` resolved to cpu, else on the GPU.
    """
    import torch

    config = config or LoopConfig()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config.device)
    cuda = device.startswith("cuda")
    if cuda:
        torch.backends.cudnn.benchmark = True
    seed_everything(config.seed)
    model.to(device)

    monitor, mode = config.monitor, config.mode
    if val_data is None and monitor.startswith("val_"):
        monitor = "train_" + monitor[4:]
        log.info("no validation data: monitoring %s instead", monitor)

    train_loader = make_loader(train_data, config, device, train=True)
    val_loader = make_loader(val_data, config, device, train=False) if val_data is not None \
        else None
    if optimizer is None:
        optimizer = _make_optimizer([p for p in model.parameters() if p.requires_grad], config)
    scheduler = _make_scheduler(optimizer, config)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and config.amp)

    history: dict[str, Any] = {
        "monitor": monitor, "mode": mode, "best_epoch": None, "best": None,
        "stopped_early": False, "finished": False, "config": config.to_dict(), "epochs": [],
    }
    start_epoch, bad_epochs = 0, 0
    ckpt_path, best_path, hist_path = out_dir / CHECKPOINT, out_dir / BEST, out_dir / HISTORY
    if resume and ckpt_path.is_file():
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        _check_fingerprint(state.get("fingerprint"), fingerprint, out_dir)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        history = state["history"]
        start_epoch, bad_epochs = state["epoch"], state["bad_epochs"]
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])
        if cuda and state["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if history["finished"] and not history["stopped_early"] and start_epoch < config.epochs:
            history["finished"] = False  # ran out of epochs before; more were asked for now
        log.info("resuming %s after epoch %d", out_dir, start_epoch)

    epoch = start_epoch
    while not history["finished"] and epoch < config.epochs:
        t0 = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        if hasattr(train_loader, "generator") and train_loader.generator is not None:
            train_loader.generator.manual_seed(config.seed + epoch)
        tr = _run_epoch(model, train_loader, step, metrics, device, config, optimizer=optimizer,
                        scaler=scaler, desc=f"epoch {epoch + 1}/{config.epochs}")
        record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
        record.update({f"train_{k}": v for k, v in tr.items()})
        if val_loader is not None:
            va = _run_epoch(model, val_loader, step, metrics, device, config, optimizer=None,
                            scaler=None, desc="validate")
            record.update({f"val_{k}": v for k, v in va.items()})
        record["time_s"] = round(time.perf_counter() - t0, 3)
        if monitor not in record:
            raise KeyError(f"monitored metric {monitor!r} not among {sorted(record)}")
        value = record[monitor]
        epoch += 1
        if _improved(value, history["best"], mode, config.min_delta):
            history["best"], history["best_epoch"], bad_epochs = value, epoch, 0
            _save_torch(model.state_dict(), best_path)
        else:
            bad_epochs += 1
        if scheduler is not None:
            if config.scheduler == "plateau":
                scheduler.step(value)
            else:
                scheduler.step()
        history["epochs"].append(record)
        stop = config.patience > 0 and bad_epochs >= config.patience
        if stop or epoch >= config.epochs:
            history["finished"] = True
            history["stopped_early"] = stop and epoch < config.epochs
        log.info(
            "epoch %d/%d  %s  lr %.2e  %.1fs%s", epoch, config.epochs,
            "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                      if k.startswith(("train_", "val_"))),
            lr, record["time_s"], "  (best)" if history["best_epoch"] == epoch else "",
        )
        _save_torch({
            "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "scaler": scaler.state_dict(), "epoch": epoch, "bad_epochs": bad_epochs,
            "history": history, "fingerprint": fingerprint,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                    "python": random.getstate(),
                    "cuda": torch.cuda.get_rng_state_all() if cuda else None},
        }, ckpt_path)
        atomic_write_json(hist_path, history)
        if on_epoch_end is not None:
            on_epoch_end(record)
    if not history["finished"]:  # resumed at or past config.epochs (epochs lowered)
        history["finished"] = True
        atomic_write_json(hist_path, history)
    if history["stopped_early"]:
        log.info("early stop: no %s improvement for %d epochs", monitor, config.patience)
    if best_path.is_file():
        model.load_state_dict(torch.load(best_path, map_location=device, weights_only=True))
    best = history["best"]
    log.info("best %s %s at epoch %s", monitor, "n/a" if best is None else f"{best:.4f}",
             history["best_epoch"])
    return FitResult(
        history=history, best_epoch=history["best_epoch"] or 0, best=history["best"] or 0.0,
        epochs_run=len(history["epochs"]), stopped_early=history["stopped_early"], device=device,
    )
