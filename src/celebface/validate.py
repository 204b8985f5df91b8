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
        return f"must be {'>' if lo_open else '>='} {lo:g}"
    if lo is None:
        return f"must be {'<' if hi_open else '<='} {hi:g}"
    return f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"


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


#: Checks of the settings training configs share, by field name (see :func:`check_fields`).
FIELD_CHECKS: dict[str, Any] = {
    "epochs": positive_int, "batch_size": positive_int, "k": positive_int,
    "patience": nonneg_int, "num_workers": nonneg_int, "workers": nonneg_int,
    "limit_per_class": positive_int, "max_steps_per_epoch": positive_int,
    "lr": positive_float, "C": positive_float, "lr_decay": decay,
    "weight_decay": nonneg_float, "box_weight": nonneg_float, "class_weight": nonneg_float,
    "dropout": fraction, "val_fraction": fraction, "label_smoothing": fraction,
    "input_size": lambda n, v: in_range(n, v, 16, kind=int), "hidden": widths,
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
