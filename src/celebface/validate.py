"""Range checks shared by the command line (argparse types) and the config dataclasses, and
the flat view of a config that nests settings groups.

Each check returns the value or raises :class:`ConfigError` with one line naming the setting,
the value and the allowed range; :mod:`celebface.cli.common` turns them into argparse types.

A config may hold a group of settings declared once elsewhere (a trainer's
``loop: LoopConfig``): a dataclass field whose metadata is :func:`settings_group`; the group's
fields it names are then
settings of the config under their own names: :func:`flat_defaults`, :func:`flat_settings`,
:func:`nest` and :func:`check_fields` see ``epochs``, not ``loop``. That flat view is what
command-line flags, ``make_config``, run fingerprints and ``model.json`` use.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from celebface.errors import CelebfaceError

T = TypeVar("T")

#: field metadata key of a :func:`settings_group`: the names of its fields that are settings
GROUP = "settings_group"


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
    """Run :data:`FIELD_CHECKS` on a config dataclass's settings that are set (those of its
    groups included); returns it."""
    prefix = f"{what}: " if what else ""
    for name, value in _flat_items(config):
        if name in FIELD_CHECKS and value is not None:
            FIELD_CHECKS[name](prefix + name, value)
    return config


def settings_group(names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The metadata of a config field that holds a settings dataclass (made by its
    ``default_factory``) whose fields ``names`` are settings of the config under their own
    names; its other fields keep what the factory gives them."""
    return {GROUP: tuple(names)}


def groups(cls: Any) -> dict[str, tuple[str, ...]]:
    """Group field -> the names of its settings, of a config dataclass (or instance)."""
    return {f.name: f.metadata[GROUP] for f in dataclasses.fields(cls) if GROUP in f.metadata}


def _group_default(f: dataclasses.Field[Any]) -> Any:
    factory = f.default_factory
    if not callable(factory):
        raise TypeError(f"settings group {f.name!r} has no default_factory")
    return factory()


def _flat_items(config: Any) -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if GROUP in f.metadata:
            yield from ((n, getattr(value, n)) for n in f.metadata[GROUP])
        else:
            yield f.name, value


def flat_defaults(cls: Any) -> dict[str, Any]:
    """Setting -> default of a config dataclass, its groups' settings in their place (a
    ``default_factory`` is called)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if GROUP in f.metadata:
            group = _group_default(f)
            out.update((n, getattr(group, n)) for n in f.metadata[GROUP])
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def flat_names(cls: Any) -> list[str]:
    """The settings of a config dataclass, its groups' in their place."""
    return [n for f in dataclasses.fields(cls)
            for n in f.metadata.get(GROUP, (f.name,))]


def flat_settings(config: Any) -> dict[str, Any]:
    """Setting -> value of a config (a copy, as ``dataclasses.asdict`` gives for a config
    without groups): the form saved in ``model.json`` and run fingerprints."""
    return {name: (dataclasses.asdict(value)
                   if dataclasses.is_dataclass(value) and not isinstance(value, type)
                   else copy.deepcopy(value)) for name, value in _flat_items(config)}


def nest(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of config dataclass ``cls`` for the flat settings ``values``:
    a group's settings go into its default (or the group given in ``values``), replaced."""
    owner = {n: group for group, names in groups(cls).items() for n in names}
    kwargs = {k: v for k, v in values.items() if k not in owner}
    for f in dataclasses.fields(cls):
        given = {k: v for k, v in values.items() if owner.get(k) == f.name}
        if given:
            base = kwargs[f.name] if f.name in kwargs else _group_default(f)
            kwargs[f.name] = dataclasses.replace(base, **given)
    return kwargs


def build(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` made from flat settings (see :func:`nest`)."""
    return cls(**nest(cls, values))
