"""``inception --align``: aligned chips and cached frozen backbone blocks (the CPU path), the
frame of the chips (``chip_padding``), flip TTA, and the frozen-map cache shared with
``face-resnet``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from celebface.training import load_model, train_model
from test_train import _one_thread, write_faces  # noqa: F401 (_one_thread: autouse)


def test_frozen_maps_caches_both_views_and_reads_them_back(tmp_path: Path) -> None:
    import torch

    from celebface.training.frozen import FrozenMaps, frozen_maps

    calls: list[int] = []

    def trunk(x: torch.Tensor) -> torch.Tensor:  # column-weighted: a flip changes the map
        calls.append(len(x))
        return x.float().permute(0, 3, 1, 2) * torch.arange(1, x.shape[2] + 1)

    images = np.random.default_rng(0).integers(0, 255, (5, 4, 6, 3), dtype=np.uint8)
    maps = frozen_maps(trunk, images, tmp_path / "m.npy", "cpu", progress=False)
    assert maps.shape == (5, 2, 3, 4, 6) and maps.dtype == np.float16
    x = torch.from_numpy(images)
    np.testing.assert_allclose(maps[:, 0], trunk(x).numpy(), rtol=1e-3)
    np.testing.assert_allclose(maps[:, 1], trunk(x.flip(2)).numpy(), rtol=1e-3)
    assert not np.allclose(maps[:, 0], maps[:, 1], rtol=1e-2)
    made = len(calls)
    again = frozen_maps(trunk, images, tmp_path / "m.npy", "cpu", progress=False)
    assert len(calls) == made + 1  # only the shape probe: the maps come from the file
    assert np.array_equal(again, maps)
    plain = FrozenMaps(maps, np.array([3]), np.arange(5), augment=False)
    assert np.array_equal(plain[0][0].numpy(), maps[3, 0].astype(np.float32))


def test_aligned_inception_trains_on_cached_blocks_and_predicts_from_photos(
    tmp_path: Path
) -> None:
    """The cached-blocks path must train the network that prediction runs: the val
    probabilities from the cached maps equal those of the saved model on the photos."""
    import torch

    from celebface.io import read_image
    from celebface.training.data import load_image_data
    from celebface.training.frozen import FrozenMaps

    faces = write_faces(tmp_path / "faces", n_per=6, size=48)
    cache = tmp_path / "cache"
    out = tmp_path / "m"
    model = train_model(faces, "inception", out, backbone="mobilenet_v2", pretrained="imagenet",
                        align=True, chip_padding=0.15, freeze=14, input_size=32, epochs=2,
                        batch_size=4, tta="none",  # the recipe's flip would average the mirror
                        cache_dir=str(cache), progress=False, device="cpu", patience=0)
    maps_files = list(cache.glob("inception-*-p0.15-mobilenet_v2-32px-B14-imagenet*-v2.npy"))
    assert len(maps_files) == 1 and list(cache.glob("chips-*.npy"))
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["preprocessing"]["align"] == "dlib-5-point"
    assert meta["preprocessing"]["chip_padding"] == 0.15
    assert meta["config"]["align"] is True and model.net.from_block == 0

    images = load_image_data(faces)
    va = images.indices("val")
    maps = np.load(maps_files[0])
    net = model.net.eval()
    net.from_block = 14
    with torch.inference_mode():
        x = torch.stack([FrozenMaps(maps, va, images.labels, False)[i][0]
                         for i in range(len(va))])
        cached = torch.softmax(net(x).double(), 1).numpy()
        vectors = torch.nn.functional.normalize(net.embed(x).double()).numpy()
    net.from_block = 0
    photos = [read_image(images.paths[i]).rgb for i in va]
    reloaded = load_model(out, device="cpu")
    assert reloaded.cutter is not None
    np.testing.assert_allclose(reloaded.predict_proba(photos), cached, atol=2e-3)
    emb = reloaded.as_embedder()
    assert emb.settings()["align"] == "dlib-5-point"
    np.testing.assert_allclose(emb.embed(photos), vectors, atol=5e-3)


def test_chip_crop_keeps_the_centre_as_a_smaller_padding() -> None:
    from celebface.errors import InputError
    from celebface.training.inception.aligned import crop

    chips = np.arange(2 * 150 * 150 * 3, dtype=np.int64).reshape(2, 150, 150, 3)
    assert crop(chips, 0.25).shape == chips.shape
    inner = crop(chips, 0.1)  # (1 + 0.2) / (1 + 0.5) of the side: 120 px, 15 px off each edge
    assert inner.shape == (2, 120, 120, 3)
    assert np.array_equal(inner[1], chips[1, 15:135, 15:135])
    assert crop(chips[0], 0.1).shape == (120, 120, 3)
    with pytest.raises(InputError, match="chip padding"):
        crop(chips, 0.3)


@pytest.mark.slow
def test_small_aligned_fine_tune_beats_its_untrained_head(pins: Path, tmp_path: Path) -> None:
    """5 people x 20 photos, ImageNet MobileNetV2, blocks 1-14 cached: a few epochs must beat
    the same network with an untrained head by far."""
    root = tmp_path / "data"
    for person in sorted(p for p in pins.iterdir() if p.is_dir())[:5]:
        (root / person.name).mkdir(parents=True)
        for f in sorted(person.glob("*.jpg"))[:20]:
            (root / person.name / f.name).symlink_to(f)
    common = {"backbone": "mobilenet_v2", "pretrained": "imagenet", "align": True,
              "freeze": 14, "input_size": 96, "batch_size": 16, "patience": 0,
              "cache_dir": str(tmp_path / "cache"), "progress": False, "device": "cpu"}
    untrained = train_model(root, "inception", tmp_path / "u", epochs=1, lr=1e-12, **common)
    tuned = train_model(root, "inception", tmp_path / "t", epochs=8, lr=1e-3, **common)
    before, after = untrained.meta["best_val_accuracy"], tuned.meta["best_val_accuracy"]
    assert after >= 0.8 and after > before + 0.3, (before, after)


def test_cli_align_flags_reach_the_trainer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from celebface.cli.main import main

    monkeypatch.setenv("CELEBFACE_CACHE", str(tmp_path / "cache"))
    faces = write_faces(tmp_path / "faces", n_per=5, size=48)
    out = tmp_path / "m"
    assert main(["train", str(faces), "--model", "inception", "--backbone", "mobilenet_v2",
                 "--pretrained", "imagenet", "--align", "--freeze", "14", "--backbone-lr",
                 "0.1", "--chip-padding", "0.2", "--tta", "flip", "--input-size", "32",
                 "--epochs", "1", "--batch-size", "4", "--device", "cpu",
                 "--out", str(out)]) == 0
    assert "trained inception" in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["config"]["align"] is True and meta["config"]["backbone_lr"] == 0.1
    assert meta["preprocessing"]["chip_padding"] == 0.2
    assert meta["preprocessing"]["tta"] == "flip"
    assert meta["config"]["trunk_cache"] is True and set(meta["timing"]) == {
        "chips_s", "maps_s", "fit_s"}
    assert list((tmp_path / "cache" / "chips").glob("inception-*-p0.2-*-B14-*.npy"))


def test_flip_tta_averages_the_image_and_its_mirror(tmp_path: Path) -> None:
    from celebface.io import read_image

    faces = write_faces(tmp_path / "faces", n_per=4, size=32)
    out = tmp_path / "m"
    train_model(faces, "inception", out, backbone="mobilenet_v2", pretrained="imagenet",
                freeze=14, input_size=32, epochs=1, batch_size=4, tta="flip", align=False,
                progress=False, device="cpu", patience=0)
    model = load_model(out, device="cpu")
    assert model.tta == "flip"
    photos = [read_image(p).rgb for p in sorted(faces.glob("*/*.jpg"))[:6]]
    both = model.predict_proba(photos)
    model.tta = "none"
    plain = model.predict_proba(photos)
    mirrored = model.predict_proba([im[:, ::-1] for im in photos])
    np.testing.assert_allclose(both, (plain + mirrored) / 2, atol=1e-6)
    assert not np.allclose(both, plain, atol=1e-4)
    with pytest.raises(ValueError, match="--tta"):
        train_model(faces, "inception", tmp_path / "bad", tta="five-crop", device="cpu")


def test_chips_cache_is_named_by_the_auto_rule(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Chips located by another ``auto`` first pass are not reused (as the embedding caches)."""
    from celebface.detection import finder
    from celebface.training.chips import aligned_chips

    paths = sorted(write_faces(tmp_path / "faces", n_per=1, size=48).glob("*/*.jpg"))
    first = aligned_chips(paths, cache_dir=tmp_path / "cache", progress=False)
    assert aligned_chips(paths, cache_dir=tmp_path / "cache", progress=False).key == first.key
    monkeypatch.setattr(finder, "LARGE_SIDE", finder.LARGE_SIDE + 40)
    assert aligned_chips(paths, cache_dir=tmp_path / "cache", progress=False).key != first.key
