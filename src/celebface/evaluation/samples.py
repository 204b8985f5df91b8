"""What an evaluation runs on: a dataset's samples, and the model's probabilities for them."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from celebface.data import DatasetError, FaceDataset, FaceItem, kind_of, open_dataset
from celebface.data.boxes import is_box_dataset
from celebface.errors import InputError
from celebface.io import ImageReadError
from celebface.recognition.spec import EmbedderSpec
from celebface.training.base import predictions_from_probs

log = logging.getLogger(__name__)

@dataclass
class EvalSet:
    """What to evaluate: the items of a dataset (:func:`celebface.data.open_dataset`) as
    ``samples``, with the dataset giving their pixels or stored embeddings."""

    dataset: FaceDataset
    kind: str  # the dataset's kind (:func:`celebface.data.kind_of`): photos, crops, synth, ...
    samples: list[FaceItem]

    @property
    def root(self) -> Path:
        return self.dataset.root

    @property
    def embeddings(self) -> np.ndarray | None:
        return self.dataset.vectors

    @property
    def embedder(self) -> dict[str, Any]:
        return self.dataset.meta if self.kind == "embeddings" else {}

    def image(self, s: FaceItem) -> np.ndarray:
        return self.dataset.load(s)


class LazyImages(Sequence):
    """Images of some samples, decoded when indexed (for hooks that want pixels)."""

    def __init__(self, data: EvalSet, samples: Sequence[FaceItem]):
        self.data, self.samples = data, list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return self.data.image(self.samples[i])


def load_eval_set(data: str | Path, split: str | None = None, *, boxes: bool = False,
                  use_embeddings: bool = False, seed: int = 0,
                  val_fraction: float = 0.15) -> EvalSet:
    """The samples of ``data`` (folder, packed, embeddings or, with ``boxes``, a box dataset),
    restricted to ``split`` when given. Rows of a pack or an embeddings folder without a
    stored split get the stratified split of ``seed`` and ``val_fraction`` (pass the model's,
    so its val rows are the ones held out in training); a folder's split is its splits.csv's."""

    root = Path(data)
    kind = kind_of(root)
    if boxes and is_box_dataset(root):
        dataset = open_dataset(root, boxes=True)
        return EvalSet(dataset, kind, dataset.split(split).items)
    if kind == "embeddings" and not use_embeddings:
        raise DatasetError(f"{root}: holds embeddings; this model needs face images")
    dataset = open_dataset(root)
    if kind in ("pack", "embeddings"):  # rows without a stored split: the training split
        dataset = dataset.with_splits(seed, val_fraction)
    return EvalSet(dataset, kind, dataset.split(split).items)


def _batches(seq: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start:start + size]


def _same_embedder(model_spec: dict[str, Any], data_meta: dict[str, Any]) -> bool:

    return EmbedderSpec.from_dict(model_spec).same_vectors(EmbedderSpec.of_embeddings(data_meta))


def predict_set(
    model: Any, data: EvalSet, samples: Sequence[FaceItem], batch_size: int = 64,
    progress: bool = True, full_predictions: bool = False,
) -> tuple[np.ndarray, list[FaceItem], list[str], list[Any]]:
    """Probabilities for the readable samples: ``(probs, kept samples, errors, predictions)``.
    With ``full_predictions`` the model's own :class:`Prediction` objects (e.g. with boxes)
    are kept too, from the same forward pass."""


    if data.kind == "embeddings":
        if not hasattr(model, "predict_embeddings"):
            raise InputError(f"{data.root}: holds embeddings, but a {model.kind} model works "
                             "on images")
        if not _same_embedder(model.meta.get("embedder", {}), data.embedder):
            raise InputError(f"{data.root}: embeddings made with {data.embedder.get('model')} "
                             f"(tta {data.embedder.get('tta')}), but the model expects "
                             f"{model.meta.get('embedder')}")
        probs = model.predict_embeddings(data.dataset.vectors_of(list(samples)))
        return probs, list(samples), [], predictions_from_probs(probs, model.label_names)
    probs, kept, errors, preds = [], [], [], []
    bar = tqdm(total=len(samples), desc="evaluate", unit="img", disable=not progress)
    for chunk in _batches(samples, batch_size):
        images, ok, faces = [], [], []
        for s in chunk:
            try:
                images.append(data.image(s))
                ok.append(s)
                faces.append(s.face)
            except ImageReadError as exc:
                errors.append(str(exc))
                log.warning("skipped: %s", exc)
        if images and full_predictions:
            batch_preds = model.predict(images, top_k=model.num_classes, faces=faces)
            index = {n: i for i, n in enumerate(model.label_names)}
            p = np.zeros((len(images), model.num_classes))
            for row, pred in zip(p, batch_preds, strict=True):
                for name, prob in pred.top_k:
                    row[index[name]] = prob
            probs.append(p)
            preds.extend(batch_preds)
            kept.extend(ok)
        elif images:
            probs.append(model.proba(images, faces))
            kept.extend(ok)
        bar.update(len(chunk))
    bar.close()
    width = model.num_classes
    probs_arr = np.concatenate(probs) if probs else np.zeros((0, width))
    if not full_predictions:
        preds = []
    return probs_arr, kept, errors, preds
