"""Training: the fit loop, every model kind on tiny data, save/reload, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from celebface.cli.main import main
from celebface.training import load_model, train_model
from celebface.training.data import load_image_data, stratified_split
from celebface.training.loop import LoopConfig, fit

IDENTITIES = ["pins_Ann Lee", "pins_Bo Chen", "pins_Cé Durand"]  # spaces and non-ASCII


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Two shared cores: one torch thread avoids oversubscription (10-50x slower here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_embeddings(root: Path, n_per: int = 20, dim: int = 16, seed: int = 0,
                     spread: float = 0.35, split: bool = True) -> Path:
    """An embeddings folder in the format ``celebface embed`` writes: one unit-vector cluster
    per identity; every fifth row is ``val``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(IDENTITIES), dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    emb, labels, paths, splits = [], [], [], []
    for c, name in enumerate(IDENTITIES):
        for i in range(n_per):
            v = centres[c] + rng.normal(scale=spread / np.sqrt(dim), size=dim)
            emb.append(v / np.linalg.norm(v))
            labels.append(c)
            paths.append(f"/nowhere/{name}/{i}.jpg")
            splits.append("val" if i % 5 == 0 else "train")
    root.mkdir(parents=True)
    np.save(root / "face_embeddings.npy", np.asarray(emb, dtype=np.float32))
    np.save(root / "labels.npy", np.asarray(labels, dtype=np.int64))
    (root / "paths.txt").write_text("".join(p + "\n" for p in paths), encoding="utf-8")
    (root / "label_mapping.json").write_text(
        json.dumps({str(i): n for i, n in enumerate(IDENTITIES)}), encoding="utf-8")
    if split:
        (root / "splits.txt").write_text("".join(s + "\n" for s in splits), encoding="utf-8")
    meta = {"model": "dlib", "dim": dim, "alignment": "dlib-5-point", "tta": "flip",
            "settings": {"model": "dlib", "dim": dim, "padding": 0.25}}
    (root / "embedding.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def write_faces(root: Path, n_per: int = 5, size: int = 64, seed: int = 0) -> Path:
    """A folder-per-identity of tiny images, one colour family per identity."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    colours = [(210, 60, 60), (60, 210, 60), (60, 60, 210)]
    for name, colour in zip(IDENTITIES, colours, strict=True):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(n_per):
            arr = np.clip(np.asarray(colour) + rng.normal(0, 25, (size, size, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(folder / f"{i}.jpg")
    return root


@pytest.fixture(scope="module")
def emb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_embeddings(tmp_path_factory.mktemp("emb") / "emb")


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_faces(tmp_path_factory.mktemp("faces") / "faces")


@pytest.fixture(scope="module")
def inception_dir(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("inc") / "model"
    train_model(faces_dir, "inception", out, input_size=75, epochs=1, batch_size=4,
                max_steps_per_epoch=2, num_workers=0, progress=False, device="cpu")
    return out


# --------------------------------------------------------------------------- loop


def _tensor_data(n: int = 96, seed: int = 0):
    import torch
    from torch.utils.data import TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return TensorDataset(x, y)


def test_fit_writes_history_and_best_and_learns(tmp_path: Path) -> None:
    import torch

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    cfg = LoopConfig(epochs=8, batch_size=16, lr=0.02, patience=0, progress=False)
    result = fit(net, _tensor_data(), _tensor_data(48, seed=1), tmp_path, cfg)
    hist = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in hist["epochs"]] == list(range(1, 9))
    first, last = hist["epochs"][0], hist["epochs"][-1]
    for key in ("train_loss", "val_loss", "val_accuracy", "lr", "time_s"):
        assert key in last
    assert last["lr"] < first["lr"]  # exponential decay
    assert last["train_loss"] < first["train_loss"]
    assert result.best >= 0.85
    assert result.best == max(r["val_accuracy"] for r in hist["epochs"])
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()


def test_fit_early_stops_with_patience(tmp_path: Path) -> None:
    import torch

    net = torch.nn.Linear(4, 2)
    cfg = LoopConfig(epochs=50, batch_size=32, lr=0.0, patience=3, progress=False)
    result = fit(net, _tensor_data(), _tensor_data(32, 1), tmp_path, cfg)
    assert result.stopped_early
    assert result.epochs_run == 4  # best at epoch 1, then 3 epochs without gain
    assert result.best_epoch == 1


def test_fit_resumes_after_last_epoch(tmp_path: Path) -> None:
    import torch

    def run(epochs: int) -> tuple:
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 2)
        cfg = LoopConfig(epochs=epochs, batch_size=32, patience=0, progress=False)
        return fit(net, _tensor_data(), _tensor_data(32, 1), tmp_path / "r", cfg), net

    first, _ = run(2)
    assert first.epochs_run == 2
    second, _ = run(4)
    assert [r["epoch"] for r in second.history["epochs"]] == [1, 2, 3, 4]
    assert second.history["epochs"][:2] == first.history["epochs"]
    # an uninterrupted 4-epoch run gives the same numbers (RNG and optimizer state resumed)
    torch.manual_seed(0)
    straight = fit(torch.nn.Linear(4, 2), _tensor_data(), _tensor_data(32, 1), tmp_path / "s",
                   LoopConfig(epochs=4, batch_size=32, patience=0, progress=False))
    a = [r["train_loss"] for r in second.history["epochs"]]
    b = [r["train_loss"] for r in straight.history["epochs"]]
    assert np.allclose(a, b, atol=1e-6)


def test_fit_refuses_a_checkpoint_of_another_run(tmp_path: Path) -> None:
    import torch

    from celebface.training.loop import run_fingerprint

    cfg = LoopConfig(epochs=1, batch_size=32, patience=0, progress=False)
    key = run_fingerprint(cfg, tmp_path / "a", ["x", "y"])
    fit(torch.nn.Linear(4, 2), _tensor_data(), None, tmp_path / "r", cfg, fingerprint=key)
    more = LoopConfig(epochs=2, batch_size=32, patience=3, progress=False)  # resumable changes
    again = fit(torch.nn.Linear(4, 2), _tensor_data(), None, tmp_path / "r", more,
                fingerprint=run_fingerprint(more, tmp_path / "a", ["x", "y"]))
    assert again.epochs_run == 2
    for other in (run_fingerprint(more, tmp_path / "b", ["x", "y"]),
                  run_fingerprint(more, tmp_path / "a", ["x", "z"]),
                  run_fingerprint(LoopConfig(epochs=2, lr=0.5), tmp_path / "a", ["x", "y"])):
        with pytest.raises(ValueError, match="another run"):
            fit(torch.nn.Linear(4, 2), _tensor_data(), None, tmp_path / "r", more,
                fingerprint=other)


# --------------------------------------------------------------------------- data


def test_stratified_split_is_fixed_and_covers_every_class() -> None:
    labels = np.repeat([0, 1, 2], [10, 7, 2])
    a, b = stratified_split(labels, 0.2, seed=3), stratified_split(labels, 0.2, seed=3)
    assert (a == b).all()
    for c in range(3):
        assert (a[labels == c] == "val").sum() >= 1
        assert (a[labels == c] == "train").sum() >= 1


def test_folder_data_uses_its_splits_csv(tmp_path: Path) -> None:
    root = write_faces(tmp_path / "d", n_per=3)
    rows = ["split,identity,filename"] + [f"{'val' if i == 0 else 'train'},{n},{i}.jpg"
                                          for n in IDENTITIES for i in range(3)]
    (root / "splits.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    data = load_image_data(root)
    assert data.label_names == sorted(IDENTITIES)
    assert len(data.indices("val")) == 3 and len(data.indices("train")) == 6
    assert all(Path(data.paths[i]).name == "0.jpg" for i in data.indices("val"))


# --------------------------------------------------------------------------- models


@pytest.mark.parametrize("name", ["logreg", "svm", "knn", "centroid", "mlp"])
def test_embedding_models_train_save_reload(name: str, emb_dir: Path, tmp_path: Path) -> None:
    extra = {"epochs": 40} if name == "mlp" else {}
    model = train_model(emb_dir, name, tmp_path / name, **extra)
    meta = json.loads((tmp_path / name / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == name and meta["label_names"] == IDENTITIES
    assert meta["embedder"]["name"] == "dlib" and meta["embedder"]["tta"] == "flip"
    assert "versions" in meta and "command" in meta
    emb = np.load(emb_dir / "face_embeddings.npy")
    labels = np.load(emb_dir / "labels.npy")
    probs = model.predict_embeddings(emb)
    assert probs.shape == (len(emb), 3)
    assert np.allclose(probs.sum(1), 1.0)
    val = np.arange(len(emb)) % 20 % 5 == 0
    assert (probs[val].argmax(1) == labels[val]).mean() >= 0.9
    again = load_model(tmp_path / name)
    assert type(again) is type(model)
    assert np.array_equal(again.predict_embeddings(emb), probs)


def test_unknown_setting_is_a_clear_error(emb_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown setting"):
        train_model(emb_dir, "logreg", tmp_path / "m", input_size=99)
    with pytest.raises(ValueError, match="unknown model"):
        train_model(emb_dir, "forest", tmp_path / "m")


@pytest.mark.slow
def test_inception_trains_reloads_and_embeds(inception_dir: Path, faces_dir: Path) -> None:
    from celebface.io import read_image

    meta = json.loads((inception_dir / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "inception" and meta["input_size"] == 75
    hist = json.loads((inception_dir / "history.json").read_text(encoding="utf-8"))
    assert len(hist["epochs"]) == 1 and "val_accuracy" in hist["epochs"][0]
    images = [read_image(p).rgb for p in sorted(faces_dir.glob("*/*.jpg"))[:6]]
    a, b = load_model(inception_dir, device="cpu"), load_model(inception_dir, device="cpu")
    pa = a.predict_proba(images)
    assert pa.shape == (6, 3) and np.allclose(pa.sum(1), 1, atol=1e-6)
    assert np.array_equal(pa, b.predict_proba(images))
    preds = a.predict(images, top_k=2)
    assert preds[0].identity in IDENTITIES and len(preds[0].top_k) == 2
    emb = a.as_embedder().embed(images)
    assert emb.shape == (6, 128) and emb.dtype == np.float32
    assert np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_inception_on_a_padded_pack_pads_at_prediction(faces_dir: Path, tmp_path: Path) -> None:
    from celebface.packing import pack_dataset
    from celebface.packing.pack import fit_square

    pack_dataset(faces_dir, tmp_path / "pack", size=80, fit="pad", progress=False)
    train_model(tmp_path / "pack", "inception", tmp_path / "m", input_size=75, epochs=1,
                batch_size=4, max_steps_per_epoch=1, num_workers=0, progress=False,
                device="cpu")
    model = load_model(tmp_path / "m", device="cpu")
    assert model.meta["preprocessing"]["fit"] == "pad"
    wide = np.random.default_rng(0).integers(0, 255, (60, 120, 3), dtype=np.uint8)
    assert np.allclose(model.predict_proba([wide]),
                       model.predict_proba([fit_square(wide, 75, "pad")]), atol=1e-5)


def test_inception_imagenet_weights_missing_is_clear(faces_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.models.store import MissingWeightsError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    with pytest.raises(MissingWeightsError, match="inception_v3_google"):
        train_model(faces_dir, "inception", tmp_path / "m", input_size=75, epochs=1,
                    pretrained="imagenet", progress=False)


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"model\.json"):
        load_model(tmp_path)
    (tmp_path / "model.json").write_text('{"kind": "nope"}', encoding="utf-8")
    with pytest.raises(ValueError, match="unknown model kind"):
        load_model(tmp_path)


# --------------------------------------------------------------------------- CLI


def test_cli_train_and_evaluate(emb_dir: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    assert main(["train", str(emb_dir), "--model", "centroid", "--out", str(out)]) == 0
    assert "trained centroid" in capsys.readouterr().out
    report = tmp_path / "report"
    assert main(["evaluate", str(out), str(emb_dir), "--out", str(report), "--split", "val"]) == 0
    text = capsys.readouterr().out
    assert "accuracy" in text and "top-5" in text
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["counts"]["evaluated"] == 12
    assert metrics["data"]["split"] == "val"


def test_cli_rejects_bad_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "absent"), "--out", str(tmp_path / "m")]) == 2
    assert "absent" in capsys.readouterr().err


@pytest.mark.integration
def test_embedding_model_applies_its_embedder_on_pins_images(pins: Path, tmp_path: Path) -> None:
    """A model trained on `celebface embed` output rebuilds the same embedder for raw images:
    predict(images) equals predict_embeddings(the stored embeddings)."""
    from celebface.io import read_image
    from celebface.recognition import EmbedConfig, embed_dataset

    names = sorted(p.name for p in pins.iterdir() if p.is_dir())[:3]
    subset = tmp_path / "pins"
    for name in names:
        (subset / name).mkdir(parents=True)
        for f in sorted((pins / name).iterdir())[:5]:
            (subset / name / f.name).symlink_to(f)
    emb = embed_dataset(subset, tmp_path / "emb",
                        EmbedConfig(embedder="dlib", tta="flip", progress=False, workers=1))
    model = train_model(tmp_path / "emb", "logreg", tmp_path / "model")
    again = load_model(tmp_path / "model", device="cpu")
    images = [read_image(p).rgb for p in emb.paths]
    from_images = again.predict_proba(images)
    assert np.allclose(from_images, model.predict_embeddings(emb.embeddings), atol=1e-4)
    assert [p.identity for p in again.predict(images)] == [names[i] for i in emb.labels]
    # straight from the image folder: embedded into MODEL_DIR/embeddings, stratified split
    direct = train_model(subset, "centroid", tmp_path / "direct", device="cpu")
    assert (tmp_path / "direct" / "embeddings" / "face_embeddings.npy").is_file()
    assert direct.label_names == names


@pytest.mark.slow
def test_inception_model_dir_is_an_embedder_for_embed_and_enroll(
    inception_dir: Path, faces_dir: Path, tmp_path: Path
) -> None:
    """`celebface embed/enroll --embedder MODEL_DIR` use the trained 128-d layer."""
    from celebface.cli.main import main
    from celebface.gallery import Gallery
    from celebface.recognition import load_embeddings

    out = tmp_path / "emb"
    assert main(["embed", str(faces_dir), "--out", str(out), "--embedder", str(inception_dir),
                 "--device", "cpu"]) == 0
    emb = load_embeddings(out)
    assert emb.embeddings.shape[1] == 128
    assert np.allclose(np.linalg.norm(emb.embeddings, axis=1), 1, atol=1e-5)
    gallery = tmp_path / "g"
    assert main(["enroll", str(faces_dir), "--out", str(gallery), "--detector", "none",
                 "--embedder", str(inception_dir), "--device", "cpu"]) == 0
    assert sorted(Gallery.load(gallery).names) == sorted(IDENTITIES)


def test_whole_run_timing_adds_the_calls_it_resumes(tmp_path: Path) -> None:
    from celebface.training.inception.trainer import whole_run_timing

    (tmp_path / "model.json").write_text(json.dumps(
        {"timing": {"chips_s": 270.0, "maps_s": 80.0, "fit_s": 1700.0}}), encoding="utf-8")
    history = {"epochs": [{"time_s": 100.0}, {"time_s": 50.5}]}
    assert whole_run_timing(tmp_path, {"chips_s": 2.0, "maps_s": 1.0}, history, 51.0,
                            resuming=True) == {"chips_s": 272.0, "maps_s": 81.0, "fit_s": 150.5}
    assert whole_run_timing(tmp_path, {"chips_s": 2.0}, history, 51.0,
                            resuming=False) == {"chips_s": 2.0, "fit_s": 150.5}


@pytest.mark.slow
def test_resumed_inception_run_reports_every_epoch_time(faces_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    settings = dict(input_size=75, batch_size=4, max_steps_per_epoch=2, num_workers=0,
                    progress=False, device="cpu", patience=0)
    train_model(faces_dir, "inception", out, epochs=1, **settings)
    first = json.loads((out / "model.json").read_text(encoding="utf-8"))["timing"]["fit_s"]
    train_model(faces_dir, "inception", out, epochs=2, **settings)
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    epochs = json.loads((out / "history.json").read_text(encoding="utf-8"))["epochs"]
    assert len(epochs) == 2
    assert meta["timing"]["fit_s"] == pytest.approx(sum(e["time_s"] for e in epochs), abs=0.1)
    assert meta["timing"]["fit_s"] >= first
