"""The fit loop itself (:func:`fit`; see :mod:`celebface.training.loop`)."""

from __future__ import annotations

import json
import logging
import pickle
import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from celebface.device import resolve_device
from celebface.errors import InputError, UnknownNameError
from celebface.io import atomic_write_json
from celebface.io.checksum import checksum_matches, sha256_file
from celebface.training.loop.config import (
    BEST,
    CHECKPOINT,
    CHECKSUMS,
    HISTORY,
    FitResult,
    LoopConfig,
    MetricsFn,
    StepFn,
    check_fingerprint,
)
from celebface.training.loop.parts import (
    classification_metrics,
    classification_step,
    improved,
    make_loader,
    make_optimizer,
    make_scheduler,
    run_epoch,
    save_torch,
    seed_everything,
)

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

log = logging.getLogger(__name__)


@dataclass
class _Parts:
    """What one run trains with, on its device."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    device: str
    out_dir: Path  #: where the checkpoint, best weights and history go

    @property
    def cuda(self) -> bool:
        return self.device.startswith("cuda")


@dataclass
class _State:
    """Where a run is: its history, epochs done and epochs without improvement (what a
    checkpoint restores)."""

    history: dict[str, Any]
    epoch: int = 0
    bad_epochs: int = 0


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
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
    seed_everything(config.seed)
    model.to(device)
    monitor = _monitored(config.monitor, has_val=val_data is not None)
    train_loader = make_loader(train_data, config, device, train=True)
    val_loader = make_loader(val_data, config, device, train=False) if val_data is not None \
        else None
    if optimizer is None:
        optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], config)
    parts = _Parts(model, optimizer, make_scheduler(optimizer, config),
                   torch.amp.GradScaler("cuda", enabled=device.startswith("cuda") and config.amp),
                   device, out_dir)
    state = _State(_new_history(monitor, config))
    if resume and (out_dir / CHECKPOINT).is_file():
        state = _resume(parts, fingerprint, config)
    while not state.history["finished"] and state.epoch < config.epochs:
        record = _train_epoch(parts, train_loader, val_loader, step, metrics, config, state.epoch)
        _end_epoch(parts, state, record, monitor, config)
        _save_state(parts, state, fingerprint)
        if on_epoch_end is not None:
            on_epoch_end(record)
    return _finish(parts, state, monitor, config)


def _monitored(monitor: str, has_val: bool) -> str:
    """The history key early stopping watches: a ``val_`` metric becomes its ``train_`` one
    when there is no validation data."""
    if has_val or not monitor.startswith("val_"):
        return monitor
    log.info("no validation data: monitoring %s instead", "train_" + monitor[4:])
    return "train_" + monitor[4:]


def _new_history(monitor: str, config: LoopConfig) -> dict[str, Any]:
    return {"monitor": monitor, "mode": config.mode, "best_epoch": None, "best": None,
            "stopped_early": False, "finished": False, "config": config.to_dict(), "epochs": []}


def _resume(parts: _Parts, fingerprint: dict[str, Any] | None, config: LoopConfig) -> _State:
    """Restore the run saved in ``out_dir``'s checkpoint (weights, optimizer, scheduler,
    scaler, RNGs) and return where it stood; a finished run that ran out of epochs goes on
    when more are asked for now."""
    import torch

    # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest
    saved = load_checkpoint(parts.out_dir / CHECKPOINT)
    check_fingerprint(saved.get("fingerprint"), fingerprint, parts.out_dir)
    parts.model.load_state_dict(saved["model"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    if parts.scheduler is not None and saved.get("scheduler") is not None:
        parts.scheduler.load_state_dict(saved["scheduler"])
    if saved.get("scaler") is not None:
        parts.scaler.load_state_dict(saved["scaler"])
    state = _State(saved["history"], saved["epoch"], saved["bad_epochs"])
    torch.set_rng_state(saved["rng"]["torch"])
    np.random.set_state(_numpy_state(saved["rng"]["numpy"]))
    random.setstate(saved["rng"]["python"])
    if parts.cuda and saved["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    history = state.history
    if history["finished"] and not history["stopped_early"] and state.epoch < config.epochs:
        history["finished"] = False  # ran out of epochs before; more were asked for now
    log.info("resuming %s after epoch %d", parts.out_dir, state.epoch)
    return state


def _train_epoch(parts: _Parts, train_loader: DataLoader, val_loader: DataLoader | None,
                step: StepFn, metrics: MetricsFn, config: LoopConfig, epoch: int
                ) -> dict[str, Any]:
    """Train one epoch (number ``epoch``, from 0), validate; the epoch's record."""
    t0 = time.perf_counter()
    lr = parts.optimizer.param_groups[0]["lr"]
    if hasattr(train_loader, "generator") and train_loader.generator is not None:
        train_loader.generator.manual_seed(config.seed + epoch)
    tr = run_epoch(parts.model, train_loader, step, metrics, parts.device, config,
                   optimizer=parts.optimizer, scaler=parts.scaler,
                   desc=f"epoch {epoch + 1}/{config.epochs}")
    record: dict[str, Any] = {"epoch": epoch + 1, "lr": lr}
    record.update({f"train_{k}": v for k, v in tr.items()})
    if val_loader is not None:
        va = run_epoch(parts.model, val_loader, step, metrics, parts.device, config,
                       optimizer=None, scaler=None, desc="validate")
        record.update({f"val_{k}": v for k, v in va.items()})
    record["time_s"] = round(time.perf_counter() - t0, 3)
    return record


def _end_epoch(parts: _Parts, state: _State, record: dict[str, Any], monitor: str,
               config: LoopConfig) -> None:
    """Count the epoch in ``state``: keep the best weights, step the scheduler, append the
    record, decide whether the run has finished, and log the epoch."""
    if monitor not in record:
        raise UnknownNameError(f"monitored metric {monitor!r} not among {sorted(record)}")
    value, history = record[monitor], state.history
    state.epoch += 1
    if improved(value, history["best"], config.mode, config.min_delta):
        history["best"], history["best_epoch"], state.bad_epochs = value, state.epoch, 0
        save_checked(parts.model.state_dict(), parts.out_dir / BEST)
    else:
        state.bad_epochs += 1
    if parts.scheduler is not None:
        if config.scheduler == "plateau":
            parts.scheduler.step(value)
        else:
            parts.scheduler.step()
    history["epochs"].append(record)
    stop = config.patience > 0 and state.bad_epochs >= config.patience
    if stop or state.epoch >= config.epochs:
        history["finished"] = True
        history["stopped_early"] = stop and state.epoch < config.epochs
    log.info(
        "epoch %d/%d  %s  lr %.2e  %.1fs%s", state.epoch, config.epochs,
        "  ".join(f"{k} {v:.4f}" for k, v in record.items()
                  if k.startswith(("train_", "val_"))),
        record["lr"], record["time_s"], "  (best)" if history["best_epoch"] == state.epoch
        else "",
    )


def _save_state(parts: _Parts, state: _State, fingerprint: dict[str, Any] | None) -> None:
    """Write the checkpoint a rerun resumes from (the RNGs' states as they are now) and the
    history."""
    import torch

    save_checked({
        "model": parts.model.state_dict(), "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict() if parts.scheduler is not None else None,
        "scaler": parts.scaler.state_dict(), "epoch": state.epoch,
        "bad_epochs": state.bad_epochs, "history": state.history, "fingerprint": fingerprint,
        "rng": {"torch": torch.get_rng_state(), "numpy": _plain_numpy_state(),
                "python": random.getstate(),
                "cuda": torch.cuda.get_rng_state_all() if parts.cuda else None},
    }, parts.out_dir / CHECKPOINT)
    atomic_write_json(parts.out_dir / HISTORY, state.history)


def _finish(parts: _Parts, state: _State, monitor: str, config: LoopConfig) -> FitResult:
    """Mark the history finished, load the best weights back into the model."""
    history = state.history
    if not history["finished"]:  # resumed at or past config.epochs (epochs lowered)
        history["finished"] = True
        atomic_write_json(parts.out_dir / HISTORY, history)
    if history["stopped_early"]:
        log.info("early stop: no %s improvement for %d epochs", monitor, config.patience)
    best_path = parts.out_dir / BEST
    if best_path.is_file():
        parts.model.load_state_dict(load_checkpoint(best_path, map_location=parts.device))
    best = history["best"]
    log.info("best %s %s at epoch %s", monitor, "n/a" if best is None else f"{best:.4f}",
             history["best_epoch"])
    return FitResult(
        history=history, best_epoch=history["best_epoch"] or 0, best=history["best"] or 0.0,
        epochs_run=len(history["epochs"]), stopped_early=history["stopped_early"],
        device=parts.device,
    )
def save_checked(obj: Any, path: Path) -> None:
    """``torch.save`` ``obj`` to ``path`` (atomically) and record its sha256 in the folder's
    :data:`CHECKSUMS` file, which :func:`load_checkpoint` checks."""
    save_torch(obj, path)
    sums_path = path.parent / CHECKSUMS
    sums = _checksums(sums_path)
    sums[path.name] = sha256_file(path)
    atomic_write_json(sums_path, sums)


def load_checkpoint(path: Path, map_location: Any = "cpu") -> Any:
    """A checkpoint or weights file loaded as data only (``weights_only``: a planted pickle
    cannot run code), after checking it against its recorded sha256 (files written before
    checksums were recorded are only loaded as data). A mismatch or a file that is not plain
    tensors and values is an :class:`InputError` naming it."""

    import torch

    expected = _checksums(path.parent / CHECKSUMS).get(path.name)
    if not checksum_matches(path, expected):
        raise InputError(f"{path}: does not match the checksum recorded in "
                         f"{path.parent / CHECKSUMS} (changed or damaged); delete the folder "
                         "or train into a new one")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it will refuse
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(f"{path}: holds objects other than tensors and plain values (not "
                         "loaded: it could run code); delete it or train into a new "
                         "folder") from None
    except (RuntimeError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise InputError(f"{path}: damaged checkpoint ({reason}); delete it or train into a "
                         "new folder") from None


def _checksums(path: Path) -> dict[str, str]:

    try:
        sums = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: damaged checksum file ({exc})") from None
    if not isinstance(sums, dict):
        raise InputError(f"{path}: damaged checksum file (not a mapping)")
    return sums


def _plain_numpy_state() -> dict[str, Any]:
    """numpy's RNG state as values ``weights_only`` loading accepts (no numpy arrays)."""
    import torch

    state = np.random.get_state()
    if isinstance(state, dict):  # not the legacy MT19937 tuple numpy's global RNG gives
        raise TypeError(f"numpy's global RNG state is not MT19937: {state.get('bit_generator')}")
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}


def _numpy_state(saved: dict[str, Any]) -> tuple[Any, ...]:
    keys = saved["keys"].numpy().astype(np.uint32)
    return saved["name"], keys, saved["pos"], saved["has_gauss"], saved["cached"]
