"""Command-line options made from a config dataclass's fields, so each default is written once.

The convention: an option for a setting has the setting's name as its ``dest``, so

- :func:`add_option` (``add_option(p, EmbedConfig, "batch_size", help=...)``) adds
  ``--batch-size`` with ``EmbedConfig``'s default for ``batch_size`` and a type from the field's
  annotation (``int``, ``float`` or text, optional or not; a ``bool`` field becomes a switch:
  ``--align`` turns a False default on, a flag such as ``--no-track`` turns a True one off);
  a number refuses values outside the range :data:`celebface.validate.FIELD_CHECKS` declares
  for the setting's name; pass ``type=`` for another range check (:mod:`celebface.cli.common`),
  ``choices=``, ``metavar=``, or the flag when it is not the field's name;
- :func:`config_from` builds the config from every parsed option named like one of its fields.

``target`` may also be a function: its keyword arguments' defaults stand in for the fields.
A config holding a group of settings (a trainer's ``loop: LoopConfig``, see
:func:`celebface.validate.settings_group`) has the group's settings under their own names:
``add_option(p, FaceResNetConfig, "epochs")`` is ``--epochs`` with face-resnet's default.
A help text may say ``%(default)s`` (or ``%(default)g`` for a number) instead of repeating the
default. A command that wants another default than the library's passes ``default=``
explicitly; ``tests/test_cli.py`` lists those, so any other drift fails a test.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from celebface import validate
from celebface.validate import ConfigError, build, flat_defaults, flat_names, groups

T = TypeVar("T")


def defaults(target: type | Callable[..., Any]) -> dict[str, Any]:
    """Name -> default of a dataclass's settings (its groups' included) or a function's
    parameters (those that have one; a ``default_factory`` is called)."""
    if dataclasses.is_dataclass(target):
        return flat_defaults(target)
    return {name: p.default for name, p in inspect.signature(target).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _value_type(target: type | Callable[..., Any], name: str) -> type | None:
    """``int``, ``float`` or ``bool`` when the annotation of ``name`` is one of them (or that
    or None); else None (text, or a type the caller must give)."""
    hints = typing.get_type_hints(target.__init__ if inspect.isclass(target)
                                  and not dataclasses.is_dataclass(target) else target)
    if dataclasses.is_dataclass(target):  # a setting of a group: its class's annotation
        group = next((g for g, names in groups(target).items() if name in names), None)
        if group is not None:
            hints = typing.get_type_hints(hints[group])
    hint = hints.get(name)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else None
    return hint if hint in (int, float, bool) else None


def add_option(parser: argparse._ActionsContainer, target: type | Callable[..., Any],
               name: str, *flags: str, **kwargs: Any) -> argparse.Action:
    """Add the option of setting ``name`` of ``target`` (see the module doc); ``flags``
    default to ``--name-with-dashes``; ``kwargs`` go to ``add_argument`` and win."""
    flags = flags or ("--" + name.replace("_", "-"),)
    table = defaults(target)
    if name not in table:
        raise KeyError(f"{getattr(target, '__name__', target)} has no setting {name!r} "
                       "with a default")
    kwargs.setdefault("default", table[name])
    kind = _value_type(target, name)
    if kind is bool:
        kwargs.setdefault("action", "store_false" if table[name] else "store_true")
    else:
        if kind is not None and "type" not in kwargs:
            kwargs["type"] = _checked_type(kind, name)
        own = flags[0].lstrip("-").replace("-", "_")
        if own != name and "choices" not in kwargs:  # show --val VAL, not --val VAL_FRACTION
            kwargs.setdefault("metavar", own.upper())
    return parser.add_argument(*flags, dest=name, **kwargs)


def arg_type(parse: Callable[[str], Any], check: Callable[[str, Any], Any], name: str
              ) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        try:
            return check("", value)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(exc.reason) from None

    convert.__name__ = name  # argparse names the type in some messages
    return convert


def _checked_type(kind: type, name: str) -> Any:
    """The argparse type of a number setting: ``kind``, refusing values outside the range
    :data:`celebface.validate.FIELD_CHECKS` declares for ``name`` (when it declares one)."""
    check = validate.FIELD_CHECKS.get(name)
    return kind if check is None else arg_type(kind, check, kind.__name__)


def values_from(target: type | Callable[..., Any], args: argparse.Namespace) -> dict[str, Any]:
    """The parsed values of ``target``'s settings: every option named like one of them."""
    parsed = vars(args)
    if dataclasses.is_dataclass(target):
        names = flat_names(target)
    else:
        names = list(inspect.signature(target).parameters)
    return {n: parsed[n] for n in names if n in parsed}


def config_from(cls: type[T], args: argparse.Namespace, **values: Any) -> T:
    """``cls`` with the parsed values of its settings, then ``values`` (which win; both flat:
    a group's settings go into the group)."""
    return build(cls, {**values_from(cls, args), **values})
