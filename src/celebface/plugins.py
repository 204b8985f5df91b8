"""Parts that live above the stages which use them, found by name.

The stages sit low in the layering and the parts they hand work to above them (the engines of
:mod:`celebface.engines`: Ray imports the stages' own chunk functions; the trained-model
folders of :mod:`celebface.training`, which embed faces), so a stage never imports one: it
asks these tables and gets the callable the top registered, as a plugin entry point would be
found. The package root registers the parts that ship with celebface (each imported only
when first called); other code may register more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celebface.errors import InputError

LOCAL = "local"
_ENGINES: dict[tuple[str, str], Callable[..., Any]] = {}  # (stage, engine) -> entry point
_EMBEDDER_KINDS: dict[str, Callable[..., Any]] = {}  # kind -> builder(name, device)


def register_engine(stage: str, name: str, runner: Callable[..., Any]) -> None:
    """Let ``stage`` (``crop``, ``embed``) run on engine ``name`` through ``runner``."""
    _ENGINES[(stage, name)] = runner


def engine_names(stage: str) -> list[str]:
    """``local`` and the engines registered for ``stage``."""
    return [LOCAL, *sorted(n for s, n in _ENGINES if s == stage)]


def engine_runner(stage: str, name: str) -> Callable[..., Any]:
    """The entry point of engine ``name`` for ``stage`` (not ``local``: the stage runs that
    itself); an unknown name is an :class:`InputError` naming the choices."""
    runner = _ENGINES.get((stage, name))
    if runner is None:
        raise InputError(f"unknown engine {name!r}: choose {' or '.join(engine_names(stage))}")
    return runner


def register_embedder_kind(kind: str, builder: Callable[..., Any]) -> None:
    """Let embedder specs whose name is a ``kind`` (``model-folder``: a trained model folder)
    be built by ``builder(name, device)``."""
    _EMBEDDER_KINDS[kind] = builder


def embedder_kind(kind: str) -> Callable[..., Any]:
    """The builder registered for embedders of ``kind``."""
    if kind not in _EMBEDDER_KINDS:
        raise InputError(f"no embedder builder registered for {kind!r}")
    return _EMBEDDER_KINDS[kind]
