"""One description of an embedder, saved the same way in ``embedding.json``, model folders
and ``gallery.json``, and one way to build it back.

``name`` is ``dlib``, ``facenet`` (or another registered name) or a trained-model folder;
:meth:`EmbedderSpec.build` is the one way to build an embedder (kept once per process);
``tta`` is ``none`` or ``flip``; ``options`` are the constructor options (e.g. ``aligner``,
``weights``); ``settings`` is what the built embedder reported (everything that changes its
vectors): two specs with different settings give incomparable vectors.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celebface.errors import InputError, OptionError
from celebface.plugins import embedder_kind
from celebface.recognition.base import Embedder
from celebface.recognition.registry import embedder_names, generation, registered_builder
from celebface.recognition.tta import TTAS as TTAS  # the TTA settings, re-exported
from celebface.recognition.tta import FlipTTA, check_tta

#: The one TTA default of every stage (embed, enroll, train, calibrate, recognize).
DEFAULT_TTA = "none"
#: The one embedder default of every stage (embed, enroll, train, calibrate, recognize,
#: verify, cluster, audit, the service): chosen by ``benchmarks/embedders.py``.
DEFAULT_EMBEDDER = "dlib+sface"
#: What a spec that names no embedder means: everything written before specs named one was
#: made with dlib, so old galleries and embeddings folders keep their vectors' meaning.
LEGACY_EMBEDDER = "dlib"
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
        """Read a spec written by :meth:`to_dict` (an empty one: :data:`LEGACY_EMBEDDER`);
        the layouts of earlier versions are turned into this one by :func:`migrate_spec`
        where they are loaded."""
        if not d:
            return cls(LEGACY_EMBEDDER)
        return cls(str(d.get("name", LEGACY_EMBEDDER)), str(d.get("tta") or DEFAULT_TTA),
                   dict(d.get("options") or {}), dict(d.get("settings") or {}))

    @classmethod
    def of_embeddings(cls, meta: dict[str, Any]) -> EmbedderSpec:
        """The spec of an embeddings folder's ``embedding.json`` (of any version)."""
        return cls.from_dict(migrate_spec(meta.get("embedder") or meta))

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

    def made_by(self, embedder: Embedder) -> bool:
        """Did an embedder like ``embedder`` make this spec's vectors (its settings, without
        the TTA wrapper's mark, equal those recorded; a spec without settings: yes)?"""
        if not self.settings:
            return True
        have = {k: v for k, v in embedder.settings().items() if k != "tta"}
        return _plain(have) == _plain(self.settings)

    def build(self, device: str = "auto") -> Embedder:
        """The :class:`~celebface.recognition.base.Embedder` this spec describes: a registered
        name or fusion (:mod:`celebface.recognition.registry`) or a trained model folder (its
        embedding layer, built by the ``model-folder`` kind :mod:`celebface.plugins` holds),
        wrapped in :class:`~celebface.recognition.tta.FlipTTA` for ``tta="flip"``. Built once
        per process for each name, TTA, options and device (the last few are kept; a model
        folder again once its ``model.json`` changes)."""
        # a weights option of None: no weights file given (the builder's default)
        options = {k: v for k, v in self.options.items() if not (k == "weights" and v is None)}
        key = (json.dumps([self.name, self.tta, options], sort_keys=True, default=str),
               str(device), generation(), _folder_stamp(self.name))
        with _BUILT_LOCK:
            if key in _BUILT:
                _BUILT.move_to_end(key)
                return _BUILT[key]
        embedder = self._construct(device, options)
        with _BUILT_LOCK:
            _BUILT[key] = embedder
            while len(_BUILT) > _KEEP:
                _BUILT.popitem(last=False)
        return embedder

    def _construct(self, device: str, options: dict[str, Any]) -> Embedder:
        check_tta(self.tta)
        build = registered_builder(self.name)
        try:
            if build is not None:
                embedder = build(device, options)
            elif Path(self.name).is_dir():
                if options:
                    raise OptionError(f"{self.name}: a model folder embedder takes no options "
                                      f"({', '.join(options)})")
                embedder = embedder_kind("model-folder")(self.name, device)
            else:
                raise InputError(f"unknown embedder {self.name!r}: choose "
                                 f"{', '.join(embedder_names())} or a trained model "
                                 "folder")
        except TypeError as exc:  # a builder's own signature (an option it does not take)
            if isinstance(exc, OptionError):
                raise
            raise InputError(f"cannot build embedder {self.describe()}: {exc}") from None
        return FlipTTA(embedder) if self.tta == "flip" else embedder

    def describe(self) -> str:
        return f"{self.name} (tta {self.tta}{', ' if self.options else ''}" + ", ".join(
            f"{k}={v}" for k, v in sorted(self.options.items())) + ")"


def migrate_spec(d: dict[str, Any] | None) -> dict[str, Any]:
    """An embedder description of any version in today's layout (:meth:`EmbedderSpec.to_dict`;
    empty stays empty): a gallery's ``tta`` inside ``options``, and an ``embedding.json`` that
    names no embedder (its ``model``, ``settings`` and ``weights_path``), as earlier versions
    wrote them. Applied once where a description is loaded (every :class:`Gallery`, so the
    next save writes today's layout; embeddings folders), so nothing else reads old ones."""
    d = dict(d or {})
    if not d:
        return {}
    settings = {k: v for k, v in (d.get("settings") or {}).items() if k != "tta"}
    options = dict(d.get("options") or {})
    tta = d.get("tta") or options.get("tta") or DEFAULT_TTA
    options.pop("tta", None)
    name = d.get("name")
    if name is None:  # an embedding.json of an earlier version
        name = (settings.get("model_dir") or d.get("model")
                or settings.get("model", LEGACY_EMBEDDER))
        options = {k: v for k, v in settings.items() if k not in _DESCRIPTIVE}
        if d.get("weights_path"):
            options["weights"] = d["weights_path"]
    return {"name": str(name), "tta": str(tta), "options": options, "settings": settings}


def _plain(d: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in d.items()}


#: how many built embedders :meth:`EmbedderSpec.build` keeps (least recently used go first)
_KEEP = 4
_BUILT: OrderedDict[tuple[str, str, int, int], Embedder] = OrderedDict()
_BUILT_LOCK = threading.Lock()


def clear_built() -> None:
    """Forget every embedder :meth:`EmbedderSpec.build` kept."""
    with _BUILT_LOCK:
        _BUILT.clear()


def _folder_stamp(name: str) -> int:
    """When a model folder's ``model.json`` last changed (0: ``name`` is no such folder)."""
    try:
        return os.stat(Path(name) / "model.json").st_mtime_ns
    except (OSError, ValueError):
        return 0
