"""Range checks shared by the command line (argparse types) and the config dataclasses.

Each check returns the value or raises :class:`ConfigError` with one line naming the setting,
the value and the allowed range; :mod:`celebface.cli.common` turns them into argparse types.
"""

from __future__ import annotations

import math
from typing import Any

from celebface.errors import CelebfaceError


class ConfigError(CelebfaceError, ValueError):
    """A setting out of its range; ``reason`` is the message without the setting's name."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def _number(name: str, value: Any, kind: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"{value!r} is not a number")
    if kind is int and not float(value).is_integer():
        raise ConfigError(name, f"{value!r} is not a whole number")
    if not math.isfinite(value):
        raise ConfigError(name, f"{value} is not a finite number")
    return kind(value)


def in_range(
    name: str,
    value: Any,
    lo: float | None = None,
    hi: float | None = None,
    *,
    kind: type = float,
    lo_open: bool = False,
    hi_open: bool = False,
) -> Any:
    """``value`` as ``kind`` when ``lo <= value <= hi`` (``<`` for an open end)."""
    v = _number(name, value, kind)
    low_bad = lo is not None and (v <= lo if lo_open else v < lo)
    high_bad = hi is not None and (v >= hi if hi_open else v > hi)
    if low_bad or high_bad:
        raise ConfigError(name, f"{value} is out of range "
                                f"({_describe(lo, hi, lo_open, hi_open)})")
    return v


def _describe(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    if hi is None:
        return f"must be {'>' if lo_open else '>='} {_num(lo)}"
    if lo is None:
        return f"must be {'<' if hi_open else '<='} {_num(hi)}"
    return (f"must be in {'(' if lo_open else '['}{_num(lo)}, {_num(hi)}"
            f"{')' if hi_open else ']'}")


def _num(x: float | None) -> str:
    return str(int(x)) if x is not None and float(x).is_integer() else f"{x:g}"


def positive_int(name: str, value: Any) -> int:
    return in_range(name, value, 1, kind=int)


def nonneg_int(name: str, value: Any) -> int:
    return in_range(name, value, 0, kind=int)


def positive_float(name: str, value: Any) -> float:
    return in_range(name, value, 0, lo_open=True)


def nonneg_float(name: str, value: Any) -> float:
    return in_range(name, value, 0)


def unit_float(name: str, value: Any) -> float:
    """A value in [0, 1] (a score or similarity threshold)."""
    return in_range(name, value, 0, 1)


def fraction(name: str, value: Any) -> float:
    """A share in [0, 1) (a validation fraction, a false-accept rate, dropout)."""
    return in_range(name, value, 0, 1, hi_open=True)


def optional(check: Any, name: str, value: Any) -> Any:
    """``check(name, value)`` unless ``value`` is None."""
    return None if value is None else check(name, value)


def image_side(name: str, value: Any) -> int:
    """A longer-side limit in pixels: 0 (no limit) or at least 16."""
    v = nonneg_int(name, value)
    if 0 < v < 16:
        raise ConfigError(name, f"{value} is too small (0 = no limit, else at least 16)")
    return v


#: The most torch CPU threads a run may ask for (more only costs memory; 100000 crashed).
MAX_THREADS = 512
#: The largest side of the images crop, pack and synth write, in pixels.
MAX_OUTPUT_SIDE = 4096


def threads(name: str, value: Any) -> int:
    """A thread count in [1, :data:`MAX_THREADS`]."""
    return in_range(name, value, 1, MAX_THREADS, kind=int)


def seed(name: str, value: Any) -> int:
    """A random seed numpy accepts: [0, 2**32 - 1]."""
    return in_range(name, value, 0, 2**32 - 1, kind=int)


def output_side(name: str, value: Any) -> int:
    """The side of an output image: [8, :data:`MAX_OUTPUT_SIDE`] pixels."""
    return in_range(name, value, 8, MAX_OUTPUT_SIDE, kind=int)


def decay(name: str, value: Any) -> float:
    """A per-step multiplier in (0, 1]."""
    return in_range(name, value, 0, 1, lo_open=True)


def widths(name: str, value: Any) -> Any:
    """A layer width, or a sequence of them, each >= 1."""
    if isinstance(value, list | tuple):
        if not value:
            raise ConfigError(name, "needs at least one width")
        return type(value)(positive_int(name, v) for v in value)
    return positive_int(name, value)


def content_score(name: str, value: Any) -> float:
    """A PySceneDetect content score threshold: 0 (never) to 255."""
    return in_range(name, value, 0, 255)


#: The range of each setting, by field name, declared once: training configs run them
#: (:func:`check_fields`), and every command-line flag made from a setting of that name
#: (:func:`celebface.cli.options.add_option`) refuses values outside them.
FIELD_CHECKS: dict[str, Any] = {
    "threshold": unit_float, "cut": unit_float, "near_duplicate": unit_float,
    "mislabel_margin": lambda n, v: in_range(n, v, 0, 2), "tiny_face": nonneg_float,
    "min_photos": nonneg_int, "min_size": positive_int, "seed": seed, "size": output_side,
    "threads": threads, "torch_threads": lambda n, v: in_range(n, v, 0, MAX_THREADS, kind=int),
    "epochs": positive_int, "batch_size": positive_int, "k": positive_int,
    "patience": nonneg_int, "num_workers": nonneg_int, "workers": nonneg_int,
    "limit_per_class": positive_int, "max_steps_per_epoch": positive_int,
    "lr": positive_float, "C": positive_float, "lr_decay": decay,
    "weight_decay": nonneg_float, "box_weight": nonneg_float, "class_weight": nonneg_float,
    "dropout": fraction, "val_fraction": fraction, "label_smoothing": fraction,
    "input_size": lambda n, v: in_range(n, v, 16, kind=int), "hidden": widths,
    "cut_threshold": content_score, "box_change": content_score,
}


def check_fields(config: Any, what: str = "") -> Any:
    """Run :data:`FIELD_CHECKS` on a config dataclass's fields that are set; returns it."""
    import dataclasses

    prefix = f"{what}: " if what else ""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in FIELD_CHECKS and value is not None:
            FIELD_CHECKS[f.name](prefix + f.name, value)
    return config
