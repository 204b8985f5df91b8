"""One description of an embedder, saved the same way in ``embedding.json``, model folders
and ``gallery.json``, and one way to build it back.

``name`` is ``dlib``, ``facenet`` (or another registered name) or a trained-model folder;
``tta`` is ``none`` or ``flip``; ``options`` are the constructor options (e.g. ``aligner``,
``weights``); ``settings`` is what the built embedder reported (everything that changes its
vectors): two specs with different settings give incomparable vectors.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celebface.errors import InputError

#: The one TTA default of every stage (embed, enroll, train, calibrate, recognize).
DEFAULT_TTA = "none"
#: The one embedder default of every stage (embed, enroll, train, calibrate, recognize,
#: verify, cluster, audit, the service): chosen by ``benchmarks/embedders.py``.
DEFAULT_EMBEDDER = "dlib+sface"
#: What a spec that names no embedder means: everything written before specs named one was
#: made with dlib, so old galleries and embeddings folders keep their vectors' meaning.
LEGACY_EMBEDDER = "dlib"
#: The test-time augmentations: ``none``, or ``flip`` (each face with its mirror image: the
#: average of the two embeddings, or of a trained model's two predictions).
TTAS = ("none", "flip")


def check_tta(tta: str) -> str:
    """``tta`` when it is one of :data:`TTAS` (the check of every ``--tta`` setting)."""
    if tta not in TTAS:
        raise InputError(f"--tta must be {' or '.join(TTAS)}, not {tta!r}")
    return tta

#: name -> builder(name, device, **options), for embedders defined outside this package
#: (trained-model folders register here from :mod:`celebface.training`).
_BUILDERS: dict[str, Callable[..., Any]] = {}


#: where builders of a kind live when nothing registered them yet (imported on first use)
_PROVIDERS = {"model-folder": "celebface.training"}


def register_builder(kind: str, builder: Callable[..., Any]) -> None:
    """Let ``get_embedder`` make embedders of ``kind`` (``model-folder``: a trained model)."""
    _BUILDERS[kind] = builder


def builder_for(kind: str) -> Callable[..., Any]:
    """The registered builder of ``kind``, importing its provider package if needed."""
    if kind not in _BUILDERS and kind in _PROVIDERS:
        import importlib

        importlib.import_module(_PROVIDERS[kind])
    if kind not in _BUILDERS:
        raise InputError(f"no embedder builder registered for {kind!r}")
    return _BUILDERS[kind]


#: settings keys that describe, not configure, an embedder (not constructor options)
_DESCRIPTIVE = ("model", "dim", "alignment", "weights", "model_dir", "input_size", "margin",
                "tta", "backend_note", "model_files")


@dataclass(frozen=True)
class EmbedderSpec:
    """See the module doc."""

    name: str = DEFAULT_EMBEDDER
    tta: str = DEFAULT_TTA
    options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "tta": self.tta, "options": dict(self.options),
                "settings": dict(self.settings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> EmbedderSpec:
        """Read a spec, also from the layouts of earlier versions (a gallery's ``tta`` inside
        ``options``; an ``embedding.json``'s ``model``/``settings``/``weights_path``)."""
        d = dict(d or {})
        if not d:
            return cls(LEGACY_EMBEDDER)
        options = dict(d.get("options") or {})
        tta = str(d.get("tta") or options.pop("tta", None) or DEFAULT_TTA)
        options.pop("tta", None)
        settings = dict(d.get("settings") or {})
        name = d.get("name")
        if name is None:  # an embedding.json of an earlier version
            name = (settings.get("model_dir") or d.get("model")
                    or settings.get("model", LEGACY_EMBEDDER))
            options = {k: v for k, v in settings.items() if k not in _DESCRIPTIVE}
            if d.get("weights_path"):
                options["weights"] = d["weights_path"]
        settings.pop("tta", None)
        return cls(str(name), tta, options, settings)

    @classmethod
    def of(cls, embedder: Any, name: str, tta: str, options: dict[str, Any] | None = None
           ) -> EmbedderSpec:
        """The spec of a built embedder (its settings without the TTA wrapper's mark)."""
        settings = dict(embedder.settings())
        settings.pop("tta", None)
        return cls(str(name), tta, dict(options or {}), settings)

    @classmethod
    def from_config(cls, config: Any) -> EmbedderSpec:
        """The spec a stage's settings name: their ``embedder``, ``tta`` (default
        :data:`DEFAULT_TTA`), constructor options (``embedder_options`` or ``options``) and
        ``weights`` file when set (as an absolute path); the one way every config's embedder
        fields become a spec."""
        options = dict(getattr(config, "embedder_options", None)
                       or getattr(config, "options", None) or {})
        if getattr(config, "weights", None):
            options["weights"] = str(Path(config.weights).resolve())
        return cls(str(config.embedder), check_tta(getattr(config, "tta", DEFAULT_TTA)), options)

    def same_vectors(self, other: EmbedderSpec) -> bool:
        """Do the two give comparable vectors (same settings and TTA)?"""
        if self.tta != other.tta:
            return False
        if self.settings and other.settings:
            return _plain(self.settings) == _plain(other.settings)
        return self.name == other.name and _plain(self.options) == _plain(other.options)

    def describe(self) -> str:
        return f"{self.name} (tta {self.tta}{', ' if self.options else ''}" + ", ".join(
            f"{k}={v}" for k, v in sorted(self.options.items())) + ")"


def _plain(d: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()}


def build_embedder(spec: EmbedderSpec | dict[str, Any], device: str = "auto") -> Any:
    """The :class:`~celebface.recognition.base.Embedder` a spec describes."""
    from celebface.recognition import get_embedder

    if not isinstance(spec, EmbedderSpec):
        spec = EmbedderSpec.from_dict(spec)
    try:
        return get_embedder(spec.name, device=device, tta=spec.tta, **spec.options)
    except TypeError as exc:
        raise InputError(f"cannot rebuild embedder {spec.describe()}: {exc}") from None


def default_embedder(spec: EmbedderSpec | str = DEFAULT_EMBEDDER, device: str = "auto"
                     ) -> Any:
    """The embedder :func:`build_embedder` builds for ``spec`` (a bare name: that embedder
    without TTA or options), built once per process for each spec and device (the facade,
    verification, clustering and auditing call it in loops)."""
    if not isinstance(spec, EmbedderSpec):
        spec = EmbedderSpec(str(spec))
    key = json.dumps({"name": spec.name, "tta": spec.tta, "options": spec.options},
                     sort_keys=True, default=str)
    return _cached_embedder(key, device)


@functools.lru_cache(maxsize=4)
def _cached_embedder(key: str, device: str) -> Any:
    return build_embedder(EmbedderSpec.from_dict(json.loads(key)), device)
