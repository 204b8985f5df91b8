"""Settings and result of the fit loop, and the fingerprint that ties a checkpoint to its run."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from celebface.errors import InputError
from celebface.validate import flat_settings, settings_group

if TYPE_CHECKING:
    import torch
    from torch import nn

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"
HISTORY = "history.json"
#: sha256 of ``checkpoint.pt`` and ``best.pt``, checked before either is loaded
CHECKSUMS = "checksums.json"

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
    mode: Literal["max", "min"] = "max"
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


#: The loop settings every network trainer's config has: how a run goes, and its schedule.
RUN_SETTINGS = ("device", "amp", "num_workers", "seed", "max_steps_per_epoch", "max_val_steps",
                "progress")
SCHEDULE_SETTINGS = ("epochs", "batch_size", "lr", "lr_decay", "weight_decay", "patience")
#: The metadata of a network trainer config's ``loop`` field
#: (``field(default_factory=lambda: LoopConfig(<the trainer's defaults>), metadata=LOOP)``):
#: these fields of its :class:`LoopConfig` are settings of the config (``epochs``, not
#: ``loop.epochs``, on the command line, in ``make_config`` and in ``model.json``); the
#: others are the trainer's fixed choices.
LOOP = settings_group(RUN_SETTINGS + SCHEDULE_SETTINGS)


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


#: Settings that may change between a run and its resumption.
RESUMABLE_FIELDS = frozenset({"epochs", "patience", "progress", "device", "num_workers", "amp",
                              "max_steps_per_epoch", "max_val_steps", "tta"})


def run_fingerprint(config: Any, data: str | Path, label_names: Sequence[str]) -> dict[str, Any]:
    """What identifies a training run (data, classes, settings but :data:`RESUMABLE_FIELDS`),
    as JSON-plain values; :func:`fit` refuses to resume a checkpoint with another one."""

    settings = {k: v for k, v in flat_settings(config).items() if k not in RESUMABLE_FIELDS}
    return json.loads(json.dumps({"data": str(Path(data).resolve()), "labels": list(label_names),
                                  "settings": settings}, default=str))


def check_fingerprint(saved: dict[str, Any] | None, wanted: dict[str, Any] | None,
                       out_dir: Path) -> None:
    if saved is None or wanted is None:
        return
    # a checkpoint written before a field became resumable still names it
    saved = {**saved, "settings": {k: v for k, v in (saved.get("settings") or {}).items()
                                   if k not in RESUMABLE_FIELDS}}
    if saved == wanted:
        return
    keys = sorted(k for k in {**saved, **wanted} if saved.get(k) != wanted.get(k))
    if keys == ["settings"]:
        a, b = saved["settings"], wanted["settings"]
        keys = sorted(k for k in {**a, **b} if a.get(k) != b.get(k))
    raise InputError(f"{out_dir}: its checkpoint is from another run (different "
                     f"{', '.join(keys)}); use a new --out folder or delete {out_dir}")
