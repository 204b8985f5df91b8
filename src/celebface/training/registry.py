"""Model kinds and trainers by name: ``load_model`` dispatches on ``model.json``'s ``kind``,
``train_model`` on the model name.

A module that adds a model registers it with :func:`register_model_kind` (load side) and is
listed in ``_MODULES`` (or registers a trainer with :func:`register_trainer`). A trainer is
``train(data, out, **config) -> TrainedModel``; the trainer of a module that serves several
model names (``classical``) gets ``model=<name>`` in ``config``.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celebface.errors import CelebfaceError, InputError
from celebface.training.base import ModelError, TrainedModel, check_weights, read_model_json
from celebface.validate import build, check_fields, flat_defaults, flat_names

log = logging.getLogger(__name__)

#: model name -> module that trains it (``train``) and registers its kind (imported on first
#: use).
_MODULES: dict[str, str] = {
    "inception": "celebface.training.inception",
    "face-resnet": "celebface.training.face_resnet.trainer",
    "mlp": "celebface.training.mlp",
    "logreg": "celebface.training.classical",
    "svm": "celebface.training.classical",
    "knn": "celebface.training.classical",
    "centroid": "celebface.training.classical",
    "multi-output": "celebface.training.multi_output.trainer",
}
#: model name -> ``module:class`` of its config dataclass (light modules: no torch import), the
#: one place each setting's default is written (``celebface train`` builds its flags from them).
_CONFIGS: dict[str, str] = {
    "inception": "celebface.training.inception.config:InceptionConfig",
    "face-resnet": "celebface.training.face_resnet.config:FaceResNetConfig",
    "mlp": "celebface.training.mlp:MLPConfig",
    "logreg": "celebface.training.classical:ClassicalConfig",
    "svm": "celebface.training.classical:ClassicalConfig",
    "knn": "celebface.training.classical:ClassicalConfig",
    "centroid": "celebface.training.classical:ClassicalConfig",
    "multi-output": "celebface.training.multi_output.config:MultiOutputConfig",
}
#: modules whose ``train`` serves several names and takes ``model=name``.
_MULTI_NAME_MODULES = {"celebface.training.classical"}

MODEL_NAMES: tuple[str, ...] = tuple(_MODULES)
#: The model ``celebface train`` uses when none is named (best on pins105-dev, see benchmarks).
DEFAULT_MODEL = "logreg"

_KINDS: dict[str, type[TrainedModel]] = {}
_TRAINERS: dict[str, Callable[..., TrainedModel]] = {}


def register_model_kind(kind: str, cls: type[TrainedModel]) -> None:
    """Make :func:`load_model` rebuild folders whose ``model.json`` says ``kind`` with ``cls``."""
    _KINDS[kind] = cls


def register_trainer(name: str, fn: Callable[..., TrainedModel]) -> None:
    """Make ``train_model(data, name, out, **config)`` call ``fn(data, out, **config)``."""
    _TRAINERS[name] = fn


def _import_for(name: str) -> str | None:
    module = _MODULES.get(name)
    if module is not None:
        importlib.import_module(module)
    return module


def load_model(model_dir: str | Path, device: str = "auto") -> TrainedModel:
    """The trained model saved in ``model_dir``, ready to ``predict(images)``."""
    model_dir = Path(model_dir)
    meta = read_model_json(model_dir)
    kind = meta["kind"]
    if kind not in _KINDS:
        _import_for(kind)
    if kind not in _KINDS:
        raise ModelError(f"{model_dir / 'model.json'}: unknown model kind {kind!r}")
    check_weights(model_dir, meta)
    try:
        return _KINDS[kind].load(model_dir, meta, device=device)
    except (CelebfaceError, MemoryError):
        raise
    except Exception as exc:  # a damaged or foreign weights file: one line, naming the folder
        raise ModelError(f"{model_dir}: cannot load the {kind} model "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


def train_model(data: str | Path, model: str, out: str | Path, **config: Any) -> TrainedModel:
    """Train model ``model`` (one of :data:`MODEL_NAMES`) on ``data``, save it in ``out``.

    ``data`` is a folder-per-identity of face crops, a packed folder (``celebface pack``) or,
    for embedding models, an embeddings folder (``celebface embed``). ``config`` holds the
    model's settings (see each module's config dataclass); unknown keys are an error.
    """
    if model not in _TRAINERS:
        module = _import_for(model)
        if model not in _TRAINERS and module is not None:
            mod = importlib.import_module(module)
            fn = mod.train
            if module in _MULTI_NAME_MODULES:
                register_trainer(model, functools.partial(fn, model=model))
            else:
                register_trainer(model, fn)
    if model not in _TRAINERS:
        raise InputError(f"unknown model {model!r}: choose one of {', '.join(MODEL_NAMES)}")
    return _TRAINERS[model](data, out, **config)


def config_class(model: str) -> type:
    """The config dataclass of model ``model`` (one of :data:`MODEL_NAMES`)."""
    if model not in _CONFIGS:
        raise InputError(f"unknown model {model!r}: choose one of {', '.join(MODEL_NAMES)}")
    module, _, name = _CONFIGS[model].partition(":")
    return getattr(importlib.import_module(module), name)


def model_defaults(model: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Setting -> the value model ``model`` uses when it is not given: its config's defaults,
    then (for the settings ``given``, e.g. a pretrained backbone) the config's measured
    ``recipe``, then per-model values the config names (``per_model``, e.g. logreg's C)."""
    cls = config_class(model)
    out = flat_defaults(cls)
    out.update(getattr(cls, "per_model", lambda m: {})(model))
    out.update(getattr(cls, "recipe", lambda g: {})({k: v for k, v in (given or {}).items()
                                                       if v is not None}))
    return out


def make_config(cls: type, config: dict[str, Any], what: str) -> Any:
    """A config dataclass made from flat settings (those of its groups, e.g. ``loop``,
    included), ignoring ``None`` values (flags not given) and naming any unknown key in a clear
    error. Settings not given take the config's measured ``recipe`` for the ones given (a
    classmethod, e.g. a pretrained backbone's), if it has one, else the defaults."""
    names = set(flat_names(cls))
    unknown = sorted(k for k, v in config.items() if k not in names and v is not None)
    if unknown:
        raise InputError(f"{what}: unknown setting(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(names))}")
    given = {k: v for k, v in config.items() if k in names and v is not None}
    recipe = getattr(cls, "recipe", None)
    if recipe is not None:
        given = {**recipe(given), **given}
    return check_fields(build(cls, given), what)
