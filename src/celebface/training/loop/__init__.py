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

from celebface.training.loop.config import (
    BEST,
    CHECKPOINT,
    HISTORY,
    LOOP,
    RESUMABLE_FIELDS,
    RUN_SETTINGS,
    SCHEDULE_SETTINGS,
    FitResult,
    LoopConfig,
    MetricsFn,
    StepFn,
    run_fingerprint,
)
from celebface.training.loop.fitting import fit
from celebface.training.loop.parts import (
    classification_metrics,
    classification_step,
    make_loader,
    make_optimizer,
    seed_everything,
    to_device,
)

__all__ = [
    "BEST",
    "CHECKPOINT",
    "HISTORY",
    "LOOP",
    "RESUMABLE_FIELDS",
    "RUN_SETTINGS",
    "SCHEDULE_SETTINGS",
    "FitResult",
    "LoopConfig",
    "MetricsFn",
    "StepFn",
    "classification_metrics",
    "classification_step",
    "fit",
    "make_loader",
    "make_optimizer",
    "run_fingerprint",
    "seed_everything",
    "to_device",
]
