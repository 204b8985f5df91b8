"""Arguments shared by several subcommands, and argparse types that check ranges.

The types reuse :mod:`celebface.validate` (the same checks the config dataclasses run), so a
value out of range is refused at parse time with one line: ``argument --k: 0 is out of range
(must be >= 1)``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from celebface import validate
from celebface.cli.options import add_option, arg_type
from celebface.detection.registry import detector_names
from celebface.device import DEVICES
from celebface.engines import ENGINES
from celebface.recognition import embedder_names
from celebface.recognition.spec import DEFAULT_EMBEDDER, TTAS

#: The ``--tta`` choices: ``none`` or ``flip`` (average each face with its mirror image).
TTA_CHOICES = TTAS


def add_detector(parser: argparse._ActionsContainer, target: type | Callable[..., object],
                 crops: str | None = None, field: str = "detector", flag: str = "--detector",
                 default: str = "%(default)s", what: str = "face detector") -> None:
    """``--detector`` (or ``flag`` for ``field``): the registered detectors (and ``none`` when
    ``crops`` says what it means for this command)."""
    names = detector_names()
    help = f"{what}: " + ", ".join(names) + f" (default: {default})"
    if crops:
        help += f"; none {crops}"
    add_option(parser, target, field, flag, choices=(*names, "none") if crops else names,
               help=help)


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in ``[lo, hi]``."""
    return arg_type(int, lambda n, v: validate.in_range(n, v, lo, hi, kind=int), "int")


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                hi_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in ``[lo, hi]`` (open ends when asked)."""
    return arg_type(float, lambda n, v: validate.in_range(n, v, lo, hi, lo_open=lo_open,
                                                           hi_open=hi_open), "float")


positive_int = arg_type(int, validate.positive_int, "positive_int")
nonneg_int = arg_type(int, validate.nonneg_int, "nonneg_int")
positive_float = arg_type(float, validate.positive_float, "positive_float")
nonneg_float = arg_type(float, validate.nonneg_float, "nonneg_float")
unit_float = arg_type(float, validate.unit_float, "unit_float")
fraction = arg_type(float, validate.fraction, "fraction")
#: a similarity or probability threshold
probability = unit_float
#: a longer-side limit in pixels: 0 (none) or at least 16
pixels = arg_type(int, validate.image_side, "pixels")
#: torch CPU threads: 1 to validate.MAX_THREADS
thread_count = arg_type(int, validate.threads, "threads")
#: a random seed
seed = arg_type(int, validate.seed, "seed")


def positive_int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated whole numbers >= 1 (``512,256``)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated numbers")
    return tuple(positive_int(p) for p in parts)


def comma_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names (``photo,noise``), spaces trimmed."""
    parts = tuple(p.strip() for p in text.split(",") if p.strip())
    if not parts:
        raise argparse.ArgumentTypeError(f"{text!r}: give comma-separated names")
    return parts


def add_device(p: argparse.ArgumentParser, threads: bool = True) -> None:
    """``--device`` and (unless the command has its own) ``--threads``."""
    p.add_argument("--device", default="auto", choices=DEVICES,
                   help="compute device (default: auto = cuda when available)")
    if threads:
        p.add_argument("--threads", type=thread_count, default=None, metavar="N",
                       help="torch CPU threads (default: the CPU cores free now, 1 on a busy "
                            "machine)")
        p.set_defaults(_torch_threads=True)  # main() sets torch's threads before running


def add_engine(p: argparse.ArgumentParser, config: type) -> None:
    """``--engine`` and ``--address`` of a stage that can run on a Ray cluster."""
    add_option(p, config, "engine", choices=ENGINES,
               help="local (default) or ray: run on a Ray cluster (pip install "
                    "'celebface[ray]'); outputs are the same")
    add_option(p, config, "address",
               help="Ray cluster to join (e.g. HEAD:6379; default: RAY_ADDRESS or a new local "
                    "instance)")


def embedder_help(models: bool = True) -> str:
    """``--embedder``'s help: the registered embedders, the default marked (and trained
    model folders where ``models``)."""

    names = [f"{n} (default)" if n == DEFAULT_EMBEDDER else n for n in embedder_names()]
    return ", ".join(names) + (", or a trained model folder" if models else "")
