"""`celebface embed`: embedders, flip TTA, caching, bad files, facenet plumbing, real faces."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.cli.main import main
from celebface.models.store import MissingWeightsError, dlib_model_path
from celebface.packing import pack_dataset
from celebface.recognition import (
    DlibEmbedder,
    Embedder,
    EmbedderSpec,
    FlipTTA,
    embed_dataset,
    l2_normalize,
    load_embeddings,
)
from celebface.recognition.dlib_torch import read_dlib_weights
from celebface.recognition.spec import DEFAULT_EMBEDDER
from celebface.types import Face
from fakes import HalvesEmbedder


def _faces_dataset(root: Path, rng: np.random.Generator, per_id: int = 2) -> Path:
    """Smooth random blobs: enough for the pipeline (the shape predictor always answers)."""
    for identity in ("alice", "bob"):
        (root / identity).mkdir(parents=True)
        for i in range(per_id):
            small = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((50 + 3 * i, 60), Image.Resampling.BICUBIC)
            img.save(root / identity / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def dlib_embedder() -> DlibEmbedder:
    return DlibEmbedder(device="cpu")


def test_dlib_embedder_shapes_and_norm(dlib_embedder: DlibEmbedder,
                                       rng: np.random.Generator) -> None:
    imgs = [rng.integers(0, 256, (70, 60, 3), dtype=np.uint8) for _ in range(3)]
    faces = [None, Face((5, 5, 55, 65)), None]
    out = dlib_embedder.embed(imgs, faces)
    assert out.shape == (3, 128) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(out[0], out[1])  # the box matters
    assert dlib_embedder.embed([]).shape == (0, 128)


def test_torch_port_matches_dlib(dlib_embedder: DlibEmbedder, rng: np.random.Generator) -> None:
    """The PyTorch network with dlib's weights gives dlib's own descriptors."""
    chips = [dlib_embedder.chip(rng.integers(0, 256, (80, 70, 3), dtype=np.uint8))
             for _ in range(2)]
    assert chips[0].shape == (150, 150, 3)
    ours = dlib_embedder.embed_chips(chips)
    theirs = DlibEmbedder(backend="dlib").embed_chips(chips)
    assert np.abs(ours - theirs).max() < 1e-5
    assert np.abs(theirs).max() > 0.01  # real descriptors, not zeros


def test_dlib_weight_reader_rejects_other_files(tmp_path: Path) -> None:
    params = read_dlib_weights(dlib_model_path("resnet"))
    assert params[0].size == 32 * 3 * 7 * 7 + 32 and params[-1].size == 256 * 128
    other = tmp_path / "x.dat"
    other.write_bytes(b"\x01\x02" * 100)
    with pytest.raises(ValueError, match="not dlib's face ResNet"):
        read_dlib_weights(other)


def test_flip_tta_generic_and_dlib(dlib_embedder: DlibEmbedder,
                                   rng: np.random.Generator) -> None:
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, 14:] = 255  # bright strip on the right, inside the box's right half
    face = Face((2, 0, 18, 10))
    views = HalvesEmbedder().embed_views([img], [face], ("orig", "flip"))
    np.testing.assert_allclose(views["flip"][0][:3], views["orig"][0][3:], atol=1e-6)
    tta = FlipTTA(HalvesEmbedder()).embed([img], [face])
    expected = l2_normalize(views["orig"] + views["flip"])
    np.testing.assert_allclose(tta, expected, atol=1e-6)
    # dlib: the flip view is the mirrored aligned chip
    big = rng.integers(0, 256, (60, 50, 3), dtype=np.uint8)
    dv = dlib_embedder.embed_views([big], None, ("orig", "flip"))
    chip = dlib_embedder.chip(big)
    np.testing.assert_allclose(
        dv["flip"], l2_normalize(dlib_embedder.embed_chips([chip[:, ::-1].copy()])), atol=1e-5)
    flip = EmbedderSpec("dlib", "flip").build("cpu")
    np.testing.assert_allclose(flip.embed([big]), l2_normalize(dv["orig"] + dv["flip"]),
                               atol=1e-5)
    assert flip.settings()["tta"] == "flip"


def test_embed_dataset_outputs_cache_and_bad_files(tmp_path: Path,
                                                   rng: np.random.Generator) -> None:
    data = _faces_dataset(tmp_path / "data", rng)
    (data / "bob" / "empty.jpg").write_bytes(b"")
    (data / "bob" / "junk.png").write_bytes(b"not a png")
    out = tmp_path / "emb"
    first = embed_dataset(data, out, progress=False)
    assert first.embeddings.shape == (4, EmbedderSpec().build().dim)  # the default embedder
    np.testing.assert_allclose(np.linalg.norm(first.embeddings, axis=1), 1.0, atol=1e-5)
    assert first.labels.tolist() == [0, 0, 1, 1] and first.label_names == ["alice", "bob"]
    assert first.meta["computed"] == 4 and first.meta["errors"] == 2
    errors = (out / "errors.txt").read_text().splitlines()
    assert len(errors) == 2 and any("empty.jpg" in e and "empty" in e for e in errors)

    loaded = load_embeddings(out)
    np.testing.assert_array_equal(loaded.embeddings, first.embeddings)
    assert loaded.paths == first.paths and loaded.label_names == ["alice", "bob"]
    meta = json.loads((out / "embedding.json").read_text())
    assert meta["model"] == DEFAULT_EMBEDDER and meta["dim"] == first.embeddings.shape[1]
    assert meta["tta"] == "none"
    assert "dlib-bin" in meta["versions"]

    # rerun: nothing computed, same vectors
    again = embed_dataset(data, out, progress=False)
    assert again.meta["computed"] == 0 and again.meta["cached"] == 4
    np.testing.assert_array_equal(again.embeddings, first.embeddings)
    # a new image (as after an interrupted run): only it is computed
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(
        data / "alice" / "new.png")
    third = embed_dataset(data, out, progress=False)
    assert third.meta["computed"] == 1 and len(third) == 5
    # flip reuses the cached 'orig' view, computes only the mirror
    flip = embed_dataset(data, tmp_path / "emb_flip", tta="flip",
                         cache_dir=str(out / ".cache"), progress=False)
    assert flip.meta["tta"] == "flip" and flip.meta["computed"] == 5
    cos = np.sum(flip.embeddings * third.embeddings, axis=1)
    assert np.all(cos > 0.5) and np.all(cos < 1.0 - 1e-6)
    # other settings: a different cache entry
    other = embed_dataset(data, tmp_path / "emb2", cache_dir=str(out / ".cache"),
                          options={"padding": 0.4},
                          progress=False)
    assert other.meta["computed"] == 5


def test_embed_packed_dir_and_cli(tmp_path: Path, rng: np.random.Generator,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    data = _faces_dataset(tmp_path / "data", rng)
    pack_dataset(data, tmp_path / "packed", size=64, progress=False)
    out = tmp_path / "emb"
    assert main(["-q", "embed", str(tmp_path / "packed"), "--out", str(out),
                 "--device", "cpu", "--embedder", "dlib"]) == 0
    assert "4 embeddings (dlib, 128-d, tta=none)" in capsys.readouterr().out
    emb = load_embeddings(out)
    assert emb.embeddings.shape == (4, 128) and emb.labels.tolist() == [0, 0, 1, 1]
    assert emb.meta["source"] == "packed"
    assert main(["embed", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert main(["embed", str(data), "--out", str(out), "--embedder", "nope"]) == 2
    with pytest.raises(FileNotFoundError, match="not an embeddings folder"):
        load_embeddings(tmp_path)


def test_facenet_plumbing_with_random_weights(rng: np.random.Generator) -> None:
    pytest.importorskip("facenet_pytorch")
    emb = EmbedderSpec("facenet", options={"weights": "random"}).build("cpu")
    imgs = [rng.integers(0, 256, (90, 70, 3), dtype=np.uint8) for _ in range(2)]
    out = emb.embed(imgs, [None, Face((10, 10, 60, 80))])
    assert out.shape == (2, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert emb.settings()["weights"] == "random"


def test_facenet_weights_file_is_kept_for_rebuilding(tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    torch = pytest.importorskip("torch")
    from facenet_pytorch import InceptionResnetV1

    from celebface.recognition import EmbedConfig

    torch.manual_seed(1)
    weights = tmp_path / "my facenet.pt"
    torch.save(InceptionResnetV1(pretrained=None).state_dict(), weights)
    data = _faces_dataset(tmp_path / "data", rng, per_id=1)
    emb = embed_dataset(data, tmp_path / "emb", EmbedConfig(embedder="facenet", device="cpu",
                                                            weights=str(weights), progress=False))
    spec = EmbedderSpec.of_embeddings(emb.meta)
    assert spec.options["weights"] == str(weights.resolve())
    rebuilt = spec.build("cpu")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in emb.paths]
    from celebface.detection import get_finder

    located = get_finder(device="cpu").locate(images, None, "auto")  # as embed_dataset did
    np.testing.assert_allclose(rebuilt.embed(images, located), emb.embeddings, atol=1e-5)


def test_facenet_missing_weights_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(MissingWeightsError) as exc:
        EmbedderSpec("facenet", options={"weights": "vggface2"}).build("cpu")
    msg = str(exc.value)
    assert "20180402-114759-vggface2.pt" in msg and "--weights" in msg
    assert str(tmp_path / "torch") in msg
    with pytest.raises(MissingWeightsError, match="does not exist"):
        EmbedderSpec("facenet", options={"weights": tmp_path / "nope.pt"}).build("cpu")


def test_model_folder_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    training = pytest.importorskip("celebface.training")
    sentinel = HalvesEmbedder()

    class _Model:
        def as_embedder(self) -> Embedder:
            return sentinel

    devices = []
    monkeypatch.setattr(training, "load_model",
                        lambda path, device="auto": devices.append(device) or _Model())
    assert EmbedderSpec(str(tmp_path)).build("cpu") is sentinel
    assert devices == ["cpu"]  # the device asked for reaches the model
    with pytest.raises(TypeError, match="takes no options"):
        EmbedderSpec(str(tmp_path), options={"padding": 0.3}).build()
    with pytest.raises(ValueError, match="unknown embedder"):
        EmbedderSpec("no-such-embedder").build()


@pytest.mark.integration
def test_pins_same_person_closer(pins: Path, tmp_path: Path) -> None:
    """On real faces, same-person pairs are closer than different-person pairs on average."""
    people = sorted(p for p in pins.iterdir() if p.is_dir())[:4]
    for person in people:
        (tmp_path / "data" / person.name).mkdir(parents=True)
        for f in sorted(person.iterdir())[:5]:
            (tmp_path / "data" / person.name / f.name).symlink_to(f)
    emb = embed_dataset(tmp_path / "data", tmp_path / "out", progress=False)
    assert emb.embeddings.shape == (20, 256)  # dlib+sface, the default
    sim = emb.embeddings @ emb.embeddings.T
    same = emb.labels[:, None] == emb.labels[None, :]
    off_diag = ~np.eye(len(sim), dtype=bool)
    same_mean, diff_mean = sim[same & off_diag].mean(), sim[~same].mean()
    assert same_mean > diff_mean + 0.04, (same_mean, diff_mean)
