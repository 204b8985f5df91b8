"""Engines the crop and embed stages can hand their work to, found by name.

The stages sit low in the layering and the engines above them (:mod:`celebface.engines`: Ray
imports the stages' own chunk functions), so a stage never imports an engine: it asks this
table for ``(stage, engine)`` and gets the engine's entry point, as a plugin entry point
would be found. The package root registers the engines that ship with celebface; other code
may register more with :func:`register_engine`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from celebface.errors import InputError

LOCAL = "local"
_ENGINES: dict[tuple[str, str], str] = {}  # (stage, engine) -> "module:function"


def register_engine(stage: str, name: str, target: str) -> None:
    """Let ``stage`` (``crop``, ``embed``) run on engine ``name`` through ``target``
    (``"package.module:function"``, imported on first use)."""
    _ENGINES[(stage, name)] = target


def engine_names(stage: str) -> list[str]:
    """``local`` and the engines registered for ``stage``."""
    return [LOCAL, *sorted(n for s, n in _ENGINES if s == stage)]


def engine_runner(stage: str, name: str) -> Callable[..., Any]:
    """The entry point of engine ``name`` for ``stage`` (not ``local``: the stage runs that
    itself); an unknown name is an :class:`InputError` naming the choices."""
    target = _ENGINES.get((stage, name))
    if target is None:
        raise InputError(f"unknown engine {name!r}: choose {' or '.join(engine_names(stage))}")
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)
