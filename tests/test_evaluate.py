"""Evaluation: metrics, report files, unknown identities, unreadable files, the extra hook."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from celebface.evaluation import evaluate_model
from celebface.evaluation.evaluate import classification_metrics
from celebface.training import TrainedModel, register_model_kind, train_model
from test_train import IDENTITIES, write_embeddings, write_faces


class ColourModel(TrainedModel):
    """Predicts the identity whose colour channel is strongest; records what the hook got."""

    kind: ClassVar[str] = "test-colour"
    seen: ClassVar[dict[str, Any]] = {}

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        means = np.stack([im.reshape(-1, 3).mean(0) for im in images])
        e = np.exp((means - means.max(1, keepdims=True)) / 10)
        return e / e.sum(1, keepdims=True)

    def save_weights(self, model_dir: Path) -> dict[str, Any]:
        return {}

    @classmethod
    def load(cls, model_dir: Path, meta: dict[str, Any], device: str = "auto") -> ColourModel:
        return cls(meta["label_names"], meta)

    def evaluate_extra(self, images: Sequence[np.ndarray], predictions: Sequence[Any],
                       items: Sequence[Any], out_dir: Path) -> dict[str, Any]:
        ColourModel.seen.update(n=len(images), shape=images[0].shape, preds=len(predictions),
                                items=len(items))
        return {"mean_iou": 0.5}


register_model_kind(ColourModel.kind, ColourModel)


@pytest.fixture
def colour_model(tmp_path: Path) -> Path:
    ColourModel(IDENTITIES).save(tmp_path / "model")
    return tmp_path / "model"


def test_metrics_on_known_numbers() -> None:
    y = np.array([0, 0, 1, 1, 2, 2, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 2, 2, 0]]
    m, report, matrix = classification_metrics(y, probs, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["recall_macro"] == pytest.approx((0.5 + 1 + 0.75) / 3)
    assert m["precision_macro"] == pytest.approx((0.5 + 2 / 3 + 1) / 3)
    assert m["recall_weighted"] == pytest.approx(6 / 8)
    assert m["top5_accuracy"] == 1.0  # 3 classes: top-3 covers all
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 3]]
    assert "a" in report and "c" in report


def test_evaluate_folder_with_unknown_identity_and_bad_file(colour_model: Path,
                                                            tmp_path: Path) -> None:
    data = write_faces(tmp_path / "data", n_per=4)
    stranger = data / "pins_Someone Else"
    stranger.mkdir()
    (stranger / "x.jpg").write_bytes((data / IDENTITIES[0] / "0.jpg").read_bytes())
    (data / IDENTITIES[1] / "broken.jpg").write_bytes(b"not a jpeg")
    (data / IDENTITIES[2] / "empty.png").write_bytes(b"")
    metrics = evaluate_model(colour_model, data, tmp_path / "report", progress=False)
    c = metrics["counts"]
    assert c["unknown_identity"] == 1 and metrics["unknown_identities"] == {
        "pins_Someone Else": 1}
    assert c["unreadable"] == 2 and c["evaluated"] == 12
    assert any("broken.jpg" in e for e in metrics["unreadable_files"])
    # colours: Ann red, Bo green, Cé blue; ColourModel picks the strongest channel
    assert metrics["accuracy"] == 1.0
    assert metrics["extra"] == {"mean_iou": 0.5}
    assert ColourModel.seen == {"n": 12, "shape": (64, 64, 3), "preds": 12, "items": 12}
    report = tmp_path / "report"
    for name in ("metrics.json", "classification_report.txt", "confusion_matrix.png",
                 "predictions.csv", "summary.txt"):
        assert (report / name).stat().st_size > 0, name
    assert not (report / "history.png").exists()  # this model has no history
    assert "mean_iou" in (report / "summary.txt").read_text(encoding="utf-8")


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_evaluate_inception_writes_history_and_errors(tmp_path: Path, one_thread: None) -> None:
    data = write_faces(tmp_path / "data", n_per=3)
    model = tmp_path / "model"
    train_model(data, "inception", model, input_size=75, epochs=2, batch_size=4,
                max_steps_per_epoch=1, num_workers=0, progress=False, device="cpu")
    metrics = evaluate_model(model, data, tmp_path / "report", progress=False)
    assert metrics["counts"]["evaluated"] == 9
    assert (tmp_path / "report" / "history.png").stat().st_size > 0
    rows = (tmp_path / "report" / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 10
    if metrics["accuracy"] < 1.0:
        assert (tmp_path / "report" / "errors.png").stat().st_size > 0


def test_embeddings_with_another_embedder_are_refused(tmp_path: Path) -> None:
    emb = write_embeddings(tmp_path / "emb")
    train_model(emb, "centroid", tmp_path / "model")
    other = write_embeddings(tmp_path / "other")
    meta = json.loads((other / "embedding.json").read_text(encoding="utf-8"))
    (other / "embedding.json").write_text(json.dumps({**meta, "tta": "none"}), encoding="utf-8")
    with pytest.raises(ValueError, match="expects"):
        evaluate_model(tmp_path / "model", other, tmp_path / "report")


def test_split_without_splits_is_clear(colour_model: Path, tmp_path: Path) -> None:
    data = write_faces(tmp_path / "data", n_per=2)
    with pytest.raises(ValueError, match=r"no splits\.csv"):
        evaluate_model(colour_model, data, tmp_path / "r", split="val")


def test_evaluate_and_train_on_a_packed_folder(colour_model: Path, tmp_path: Path) -> None:
    from celebface.packing import pack_dataset
    from celebface.training.data import load_image_data

    data = write_faces(tmp_path / "data", n_per=10, size=32)
    pack_dataset(data, tmp_path / "packed", size=32, progress=False, workers=1)
    images = load_image_data(tmp_path / "packed")
    assert images.kind == "pack" and images.image(0).shape == (32, 32, 3)
    metrics = evaluate_model(colour_model, tmp_path / "packed", tmp_path / "r", split="test",
                             progress=False)
    n_test = int((images.splits == "test").sum())
    assert 0 < n_test < 30 and metrics["counts"]["evaluated"] == n_test
    assert metrics["accuracy"] == 1.0
