"""Choosing the compute device and the number of CPU threads torch uses."""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from celebface.errors import CelebfaceError, InputError

log = logging.getLogger(__name__)


class DeviceError(CelebfaceError, RuntimeError):
    """A device was asked for that this machine does not have."""


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """``auto`` gives ``cuda`` when a CUDA GPU is usable, else ``cpu``; ``cuda`` without a GPU
    is an error."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise InputError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if name.startswith("cuda") and not has_cuda:
        raise DeviceError(f"device {name!r} asked for, but no CUDA GPU is available")
    return name


def available_cpus() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]  # noqa: SIM115
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def pick_threads(workers: int = 1, requested: int | None = None) -> int:
    """Torch CPU threads for each of ``workers`` concurrent workers: ``requested`` if given,
    else the cores free now (usable cores less the 1-minute load average, rounded) shared
    among the workers. On a busy host this gives 1: torch's default (every core) makes its
    threads wait for each other and runs several times slower there."""
    if requested:
        return max(1, int(requested))
    cpus = available_cpus()
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover
        load = 0.0
    free = min(cpus, max(1, math.floor(cpus - load + 0.5)))
    return max(1, free // max(1, workers))


def set_torch_threads(requested: int | None = None, workers: int = 1) -> int:
    """Set torch's CPU threads with :func:`pick_threads`; returns the previous value. An
    ``OMP_NUM_THREADS`` in the environment is respected when nothing is requested."""
    import torch

    old = torch.get_num_threads()
    if requested is None and os.environ.get("OMP_NUM_THREADS"):
        n = max(1, old // max(1, workers))
    else:
        n = pick_threads(workers, requested)
    if n != old:
        torch.set_num_threads(n)
        log.debug("torch CPU threads: %d (was %d)", n, old)
    return old


def full_precision() -> Any:
    """A context for inference whose results must not depend on the device: on CUDA, cuDNN's
    convolutions run in full float32 (no TF32, which moved MTCNN's boxes by up to 3.5 px and
    turned one five_celeb face into two against the CPU: ``benchmarks/results/gpu_check.md``)
    and deterministically. On the CPU it changes nothing."""
    import torch

    return torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, benchmark=False,
                                      deterministic=True, allow_tf32=False)
