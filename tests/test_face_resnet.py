"""face-resnet: dlib's ResNet made trainable (same weights, same outputs), a small fine-tune on
pins photos that beats its untrained head, the model folder as an embedder, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from celebface.cli.main import main
from celebface.training import load_model, train_model


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_trainable_dlib_net_has_dlib_weights_and_outputs() -> None:
    import torch

    from celebface.models.store import dlib_model_path
    from celebface.recognition.dlib_torch import build_model, freeze_levels, read_dlib_weights

    path = dlib_model_path("resnet")
    frozen, trainable = build_model(path), build_model(path, trainable=True)
    assert not any(p.requires_grad for p in frozen.parameters())
    params = dict(trainable.named_parameters())
    assert all(p.requires_grad for p in params.values())
    assert "aff.gamma" in params and "units.0.aff1.beta" in params  # Affine is trainable
    file = read_dlib_weights(path)
    conv = file[0]
    assert np.array_equal(params["conv.weight"].detach().numpy().ravel(), conv[:32 * 3 * 49])
    assert np.array_equal(params["fc.weight"].detach().numpy(), file[-1].reshape(256, 128).T)
    chips = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (2, 150, 150, 3),
                                                                dtype=np.uint8))
    with torch.inference_mode():
        assert torch.allclose(frozen(chips), trainable(chips), atol=1e-6)
        assert torch.allclose(trainable.head(trainable.trunk(chips, 4), 4), frozen(chips),
                              atol=1e-5)
    freeze_levels(trainable, 4)
    trained = [n for n, p in trainable.named_parameters() if p.requires_grad]
    assert trained and all(n.startswith(("units.13.", "fc.")) for n in trained)


def test_margin_heads_penalise_only_the_true_class() -> None:
    import torch

    from celebface.training.face_resnet import ClassHead

    torch.manual_seed(0)
    emb, y = torch.randn(6, 128), torch.tensor([0, 1, 2, 0, 1, 2])
    for kind in ("cosface", "arcface"):
        head = ClassHead(3, kind, scale=10.0, margin=0.3)
        plain, margin = head(emb), head(emb, y)
        onehot = torch.nn.functional.one_hot(y, 3).bool()
        assert torch.equal(plain[~onehot], margin[~onehot])
        assert bool((margin[onehot] < plain[onehot]).all())
    with pytest.raises(ValueError, match="--head"):
        train_model(Path("."), "face-resnet", Path("x"), head="circle")


@pytest.fixture(scope="module")
def five_people(pins: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5 people x 20 photos of pins105-dev (symlinks), stratified split (3 val each)."""
    root = tmp_path_factory.mktemp("five") / "data"
    for person in sorted(p for p in pins.iterdir() if p.is_dir())[:5]:
        (root / person.name).mkdir(parents=True)
        for f in sorted(person.glob("*.jpg"))[:20]:
            (root / person.name / f.name).symlink_to(f)
    return root


@pytest.mark.slow
def test_small_fine_tune_beats_its_untrained_head(five_people: Path, tmp_path: Path) -> None:
    from celebface.io import read_image
    from celebface.recognition import EmbedderSpec

    common = {"cache_dir": str(tmp_path / "cache"), "init_head": "random", "freeze": 4,
              "cache_flip": False, "batch_size": 16, "progress": False, "device": "cpu",
              "head": "cosface", "scale": 16.0, "patience": 0}
    # a learning rate too small to move the weights: the untrained head (lr must be > 0)
    untrained = train_model(five_people, "face-resnet", tmp_path / "u", epochs=1, lr=1e-12,
                            **common)
    tuned = train_model(five_people, "face-resnet", tmp_path / "t", epochs=6, lr=5e-3,
                        backbone_lr=0.1, **common)
    before, after = untrained.meta["best_val_accuracy"], tuned.meta["best_val_accuracy"]
    assert after >= 0.8 and after > before + 0.3, (before, after)
    hist = json.loads((tmp_path / "t" / "history.json").read_text(encoding="utf-8"))
    assert len(hist["epochs"]) == 6 and (tmp_path / "t" / "curves.png").is_file()
    assert tuned.meta["config"]["freeze"] == 4

    # the saved folder predicts from photos and embeds as an embedder
    photos = sorted(five_people.glob("*/*.jpg"))[::20]
    images = [read_image(p).rgb for p in photos]
    model = load_model(tmp_path / "t", device="cpu")
    preds = model.predict(images)
    # the reloaded folder predicts what the trained model did, and mostly right (a 6-epoch
    # fine-tune on 100 photos: the val check above asks 80%)
    assert [p.identity for p in preds] == [p.identity for p in tuned.predict(images)]
    assert sum(p.identity == f.parent.name for p, f in zip(preds, photos, strict=True)) >= 4
    emb = EmbedderSpec(str(tmp_path / "t")).build("cpu")
    vecs = emb.embed(images)
    assert vecs.shape == (5, 128) and np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert emb.settings()["model_dir"] == str(tmp_path / "t")
    dlib_vecs = EmbedderSpec("dlib").build("cpu").embed(images)
    assert not np.allclose(vecs, dlib_vecs, atol=1e-3)  # level 5 and fc were fine-tuned


@pytest.mark.slow
def test_cli_trains_face_resnet(five_people: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str],
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELEBFACE_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m"
    assert main(["train", str(five_people), "--model", "face-resnet", "--head", "softmax",
                 "--freeze-levels", "5", "--epochs", "1", "--batch-size", "32",
                 "--tta", "flip", "--label-smoothing", "0.1", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert "trained face-resnet" in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "face-resnet" and meta["head"]["head"] == "softmax"
    assert meta["preprocessing"]["tta"] == "flip" and meta["config"]["label_smoothing"] == 0.1
    assert load_model(out, device="cpu").tta == "flip"
    assert meta["config"]["freeze"] == 5
    assert list((tmp_path / "cache" / "chips").glob("chips-*.npy"))


def test_chip_augmentation_keeps_shape_and_type() -> None:
    import torch

    from celebface.training.face_resnet import ChipData
    from celebface.training.frozen import FrozenMaps

    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (4, 150, 150, 3), dtype=np.uint8)
    labels = np.array([0, 1, 0, 1])
    data = ChipData(chips, np.array([1, 3]), labels, augment=True)
    x, y = data[0]
    assert x.shape == (150, 150, 3) and x.dtype == torch.uint8 and y == 1
    plain, _ = ChipData(chips, np.array([1, 3]), labels, augment=False)[0]
    assert np.array_equal(plain.numpy(), chips[1])
    maps = rng.normal(size=(4, 2, 8, 4, 4)).astype(np.float16)
    views = {FrozenMaps(maps, np.array([2]), labels, augment=True)[0][0].sum().item()
             for _ in range(20)}
    assert len(views) == 2  # the chip's and its mirror image's maps


@pytest.mark.slow
def test_end_to_end_path_without_trunk_cache(five_people: Path, tmp_path: Path) -> None:
    model = train_model(five_people, "face-resnet", tmp_path / "e2e", freeze=3,
                        trunk_cache=False, epochs=1, batch_size=4, max_steps_per_epoch=2,
                        max_val_steps=1, cache_dir=str(tmp_path / "cache"), progress=False,
                        device="cpu", tta="flip")  # val on each chip and its mirror image
    assert model.meta["config"]["trunk_cache"] is False and model.tta == "flip"
    assert not list((tmp_path / "cache").glob("trunk-*"))  # chips only
    assert model.net.from_level == 0



def test_flip_tta_averages_the_chip_and_its_mirror(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """predict_proba honours ``preprocessing.tta``: with ``flip`` a chip bright on the left
    (class 0 alone) and its mirror image (class 1) average to an even split."""
    import torch
    from torch import nn

    from celebface.training.face_resnet import ClassHead, FaceResNetModel, FaceResNetNet
    from celebface.training.face_resnet import model as model_module

    class LeftMinusRight(nn.Module):
        """dlib's ResNet's stand-in: feature 0 of 128 is the left half's mean minus the right
        half's, so a chip and its mirror image point opposite ways."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            cols = x.float().mean(dim=(1, 3)) / 255  # (N, W)
            d = cols[:, :75].mean(1) - cols[:, 75:].mean(1)
            return nn.functional.pad(d[:, None], (0, 127))

    monkeypatch.setattr(model_module, "face_chips", lambda images, aligner, faces: images)
    head = ClassHead(2, "softmax")
    with torch.no_grad():
        head.weight.zero_()
        head.weight[0, 0], head.weight[1, 0] = 20.0, -20.0
    chip = np.zeros((150, 150, 3), np.uint8)
    chip[:, :60] = 200  # bright on the left
    chips = [chip, np.ascontiguousarray(chip[:, ::-1])]

    def model(meta: dict) -> FaceResNetModel:
        return FaceResNetModel(FaceResNetNet(LeftMinusRight(), head), ["a", "b"], meta,
                               device="cpu")

    old = model({})  # a folder from before --tta: none
    assert old.tta == "none"
    plain = old.predict_proba(chips)
    assert plain[0, 0] > 0.9 and plain[1, 1] > 0.9
    flip = model({"preprocessing": {"tta": "flip"}})
    both = flip.predict_proba(chips)
    np.testing.assert_allclose(both, (plain + plain[::-1]) / 2, atol=1e-9)
    np.testing.assert_allclose(both, 0.5, atol=1e-6)
    assert flip.save_weights(tmp_path)["preprocessing"]["tta"] == "flip"  # model.json's
    with pytest.raises(ValueError, match="--tta"):
        model({"preprocessing": {"tta": "five-crop"}})
    with pytest.raises(ValueError, match="--tta"):
        train_model(Path("."), "face-resnet", Path("x"), tta="five-crop")


def test_tta_validation_scores_both_views() -> None:
    """With --tta flip the fit loop validates on the chip and its mirror image together: the
    datasets give both views and step_fn scores their mean probabilities."""
    import torch

    from celebface.training.face_resnet import ChipData, step_fn
    from celebface.training.frozen import FrozenMaps

    rng = np.random.default_rng(0)
    chips = rng.integers(0, 255, (3, 150, 150, 3), dtype=np.uint8)
    labels = np.array([0, 1, 1])
    x, y = ChipData(chips, np.array([2]), labels, augment=False, all_views=True)[0]
    assert x.shape == (2, 150, 150, 3) and y == 1
    assert np.array_equal(x[0].numpy(), chips[2]) and np.array_equal(x[1].numpy(),
                                                                     chips[2][:, ::-1])
    maps = rng.normal(size=(3, 2, 8, 4, 4)).astype(np.float16)
    m, _ = FrozenMaps(maps, np.array([1]), labels, augment=False, all_views=True)[0]
    assert m.shape == (2, 8, 4, 4) and np.array_equal(m.numpy(), maps[1].astype(np.float32))

    class Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8 * 4 * 4, 3)

        def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
            return self.fc(x.flatten(1))

    net = Linear().eval()
    both = torch.from_numpy(maps.astype(np.float32))  # (3 faces, 2 views, ...)
    targets = torch.from_numpy(labels)
    with torch.no_grad():
        loss, out = step_fn(net, (both, targets))
        probs = [torch.softmax(net(both[:, v]), 1) for v in range(2)]
    expected = ((probs[0] + probs[1]) / 2).log()
    assert torch.allclose(out["logits"], expected, atol=1e-6)
    assert torch.isclose(loss, torch.nn.functional.nll_loss(expected, targets), atol=1e-6)
    with torch.no_grad():  # one view: the plain logits, as before
        _, one = step_fn(net, (both[:, 0], targets))
    assert torch.allclose(one["logits"], net(both[:, 0]))


@pytest.mark.slow
def test_validation_with_flip_is_part_of_the_run(five_people: Path, tmp_path: Path) -> None:
    """tta may change when a run resumes, unless it changed how the best epoch was chosen."""
    common = {"cache_dir": str(tmp_path / "cache"), "freeze": 5, "batch_size": 32,
              "progress": False, "device": "cpu", "epochs": 1}
    train_model(five_people, "face-resnet", tmp_path / "f", tta="flip", **common)
    with pytest.raises(ValueError, match="another run"):
        train_model(five_people, "face-resnet", tmp_path / "f", tta="none", **common)
    # without the mirror maps the fit loop validates on the chip alone: tta is free to change
    nomirror = {**common, "cache_flip": False}
    train_model(five_people, "face-resnet", tmp_path / "n", tta="flip", **nomirror)
    assert train_model(five_people, "face-resnet", tmp_path / "n", **nomirror).tta == "none"
