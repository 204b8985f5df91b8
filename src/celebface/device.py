"""Choosing the compute device."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> str:
    """``auto`` gives ``cuda`` when a CUDA GPU is usable, else ``cpu``; ``cuda`` without a GPU
    is an error."""
    import torch

    if name not in DEVICES and not name.startswith("cuda:"):
        raise ValueError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    has_cuda = torch.cuda.is_available()
    if name == "auto":
        return "cuda" if has_cuda else "cpu"
    if name.startswith("cuda") and not has_cuda:
        raise RuntimeError(f"device {name!r} asked for, but no CUDA GPU is available")
    return name
