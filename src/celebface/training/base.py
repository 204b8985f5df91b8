"""What every trained model is: a saved folder with ``model.json`` that predicts identities."""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from celebface.data.stage import write_stage
from celebface.errors import CelebfaceError, MissingFileError
from celebface.io import atomic_write_json
from celebface.io.checksum import checksum_matches, sha256_file
from celebface.recognition.spec import migrate_spec
from celebface.types import Prediction

MODEL_JSON = "model.json"


class ModelError(CelebfaceError, ValueError):
    """A model folder that cannot be used (damaged or unreadable weights)."""


def _file_times(model_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()
            if p.is_file() and not p.name.startswith(".") and p.name != MODEL_JSON}


def weights_file(model_dir: str | Path, meta: dict[str, Any], default: str) -> Path:
    """The weights file of a model folder (``model.json``'s ``weights``, else ``default``);
    ``FileNotFoundError`` when it is missing."""
    path = Path(model_dir) / meta.get("weights", default)
    if not path.is_file():
        raise MissingFileError(f"{path}: weights file missing")
    return path


def check_weights(model_dir: Path, meta: dict[str, Any]) -> None:
    """Raise :class:`ModelError` when a weights file no longer has the checksum that
    ``model.json`` stored (models saved before checksums were stored are not checked)."""
    for name, expected in (meta.get("checksums") or {}).items():
        path = model_dir / name
        if not path.is_file():
            raise ModelError(f"{path}: missing (listed in {MODEL_JSON})")
        if not checksum_matches(path, expected):
            raise ModelError(f"{path}: checksum does not match {MODEL_JSON} (file damaged)")


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape a model's numbers."""
    out = {"python": platform.python_version()}
    for name in ("celebface", "torch", "torchvision", "numpy", "scikit-learn", "dlib-bin",
                 "facenet-pytorch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def command_line() -> str:
    """The command that is running, as a shell would take it back."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("celebface", "main.py", "__main__.py"):
        argv[0] = "celebface"
    return shlex.join(argv)


def predictions_from_probs(
    probs: np.ndarray, label_names: Sequence[str], top_k: int = 5
) -> list[Prediction]:
    """``(N, C)`` probabilities to one :class:`Prediction` per row."""
    probs = np.asarray(probs, dtype=np.float64)
    k = min(top_k, probs.shape[1]) if probs.ndim == 2 else 0
    out = []
    for row in probs:
        order = np.argsort(-row, kind="stable")[:k]
        tops = [(label_names[i], float(row[i])) for i in order]
        out.append(Prediction(tops[0][0], tops[0][1], tops))
    return out


class TrainedModel(ABC):
    """A trained identity classifier, saved in and loaded from a folder.

    Subclasses set ``kind`` (the ``model.json`` key that :func:`celebface.training.load_model`
    dispatches on), implement :meth:`predict_proba`, :meth:`save_weights` and :meth:`load`.
    ``meta`` is the ``model.json`` content (kind, label names, preprocessing, embedder
    settings, training config, command, package versions).

    Optional hook for evaluation: ``evaluate_extra(images, predictions, items, out_dir) ->
    dict`` (see :mod:`celebface.evaluation`), e.g. box metrics of a multi-output model.
    """

    kind: ClassVar[str] = ""

    def __init__(self, label_names: Sequence[str], meta: dict[str, Any] | None = None):
        self.label_names = list(label_names)
        self.meta: dict[str, Any] = dict(meta or {})
        if self.meta.get("embedder"):  # an earlier version's layout: today's from now on
            self.meta["embedder"] = migrate_spec(self.meta["embedder"])

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @abstractmethod
    def predict_proba(
        self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
    ) -> np.ndarray:
        """``(N, num_classes)`` float probabilities for RGB uint8 face images; ``faces``
        (box and landmarks per image, where known) are used by models that align faces."""

    def predict(
        self, images: Sequence[np.ndarray], top_k: int = 5, faces: Sequence[Any] | None = None
    ) -> list[Prediction]:
        """Identity, probability and the ``top_k`` best identities per image."""
        if len(images) == 0:
            return []
        return predictions_from_probs(self.proba(images, faces), self.label_names, top_k)

    def proba(self, images: Sequence[np.ndarray], faces: Sequence[Any] | None = None
              ) -> np.ndarray:
        """:meth:`predict_proba`, passing ``faces`` only when some are known (so models
        written before faces existed keep working)."""
        if faces is not None and any(f is not None for f in faces):
            return self.predict_proba(images, faces)
        return self.predict_proba(images)

    @abstractmethod
    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        """Write the weights into ``model_dir``; return entries to add to ``model.json``."""

    def save(self, model_dir: str | Path) -> Path:
        """Write weights and ``model.json`` (last, so a folder with it is complete)."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        before = _file_times(model_dir)
        extra = self.save_weights(model_dir)
        written = [n for n, t in _file_times(model_dir).items() if before.get(n) != t]
        meta = {
            **self.meta,
            **extra,
            # SHA-256 of the files save_weights wrote: loading refuses a damaged one
            "checksums": {n: sha256_file(model_dir / n) for n in sorted(written)},
            "kind": self.kind,
            "label_names": self.label_names,
            "num_classes": self.num_classes,
        }
        meta.setdefault("command", command_line())
        meta.setdefault("versions", package_versions())
        meta.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.meta = meta
        atomic_write_json(model_dir / MODEL_JSON, meta)

        write_stage(model_dir, "model", {"kind": self.kind, "embedder": meta.get("embedder")})
        return model_dir

    @classmethod
    @abstractmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> TrainedModel:
        """Rebuild the model saved in ``model_dir`` (``meta`` is its ``model.json``)."""


def read_model_json(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / MODEL_JSON
    if not path.is_file():
        raise MissingFileError(f"{path}: no model.json, not a trained model folder")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc.msg})") from None
    if "kind" not in meta:
        raise ModelError(f"{path}: no 'kind' key")
    return meta
