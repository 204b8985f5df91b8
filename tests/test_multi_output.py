"""The multi-output model: shapes and ranges, losses, box-aware augmentation, a few training
steps on tiny CPU inputs, save/reload, box evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from celebface.data import open_dataset  # noqa: E402
from celebface.synth import SynthConfig, synthesize  # noqa: E402
from celebface.training import load_model, train_model  # noqa: E402
from celebface.training.multi_output import (  # noqa: E402
    MultiOutputConfig,
    augment,
    build_net,
    giou_loss,
    paired_iou,
)

SIZE = 75  # the smallest input InceptionV3 takes


def test_network_outputs_shapes_and_ranges() -> None:
    torch.manual_seed(0)
    net = build_net(3, MultiOutputConfig(input_size=SIZE).network()).eval()
    with torch.no_grad():
        boxes, logits = net(torch.rand(4, 3, SIZE, SIZE) * 2 - 1)
    assert boxes.shape == (4, 4) and logits.shape == (4, 3)
    assert boxes.min() >= 0 and boxes.max() <= 1
    assert torch.all(boxes[:, 2] >= boxes[:, 0]) and torch.all(boxes[:, 3] >= boxes[:, 1])


def test_iou_and_giou_losses() -> None:
    a = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.1, 0.0, 0.3, 0.2]])
    assert paired_iou(a, b).tolist() == pytest.approx([1.0, 1 / 3])
    assert float(giou_loss(a[:1], b[:1])) == pytest.approx(0.0, abs=1e-6)
    far = torch.tensor([[0.8, 0.8, 0.9, 0.9]])
    assert float(giou_loss(a[:1], far)) > 1.0  # disjoint: GIoU < 0
    # the loss falls as the predicted box moves onto the target
    near = torch.tensor([[0.15, 0.1, 0.55, 0.5]])
    assert float(giou_loss(near, a[:1])) < float(giou_loss(far, a[:1]))


def test_augment_keeps_box_on_the_object() -> None:
    torch.manual_seed(1)
    size = 80
    img = -torch.ones(3, size, size)
    x1, y1, x2, y2 = 18, 30, 46, 62
    img[:, y1:y2, x1:x2] = 1.0
    box = torch.tensor([x1, y1, x2, y2], dtype=torch.float32) / size
    for _ in range(40):
        out, b, _ = augment(img.clone(), box.clone())
        assert out.shape == img.shape and out.min() >= -1 and out.max() <= 1
        mask = out.mean(0) > out.mean()  # the bright patch
        ys, xs = torch.nonzero(mask, as_tuple=True)
        found = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float() / size
        assert torch.allclose(found, b, atol=2.5 / size), (found * size, b * size)


@pytest.fixture(scope="module")
def tiny_box_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 'identities' (a red and a blue patterned face) composited onto backgrounds."""
    root = tmp_path_factory.mktemp("mo")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (220, 40, 40)), ("blue", (40, 40, 220))):
        folder = root / "faces" / name
        folder.mkdir(parents=True)
        for j in range(6):
            face = np.clip(np.array(colour) + rng.normal(0, 20, (48, 40, 3)), 0, 255)
            Image.fromarray(face.astype(np.uint8)).save(folder / f"{j}.png")
    dst = root / "synth"
    synthesize(root / "faces", dst, SynthConfig(size=96, backgrounds=("gradient", "noise")),
               progress=False)
    return dst


@pytest.fixture(scope="module")
def trained(tiny_box_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model") / "mo"
    train_model(tiny_box_data, "multi-output", out, input_size=SIZE, epochs=1, batch_size=4,
                max_steps_per_epoch=2, device="cpu", progress=False, box_weight=2.0,
                giou_weight=0.5)
    return out


@pytest.mark.slow
def test_trains_saves_and_reloads(trained: Path, tiny_box_data: Path) -> None:
    meta = json.loads((trained / "model.json").read_text())
    assert meta["kind"] == "multi-output"
    assert meta["label_names"] == ["blue", "red"]
    assert meta["config"]["box_weight"] == 2.0
    history = json.loads((trained / "history.json").read_text())
    assert len(history["epochs"]) == 1
    for key in ("train_loss", "val_loss", "val_accuracy", "val_miou", "val_iou50"):
        assert np.isfinite(history["epochs"][-1][key])
    items = open_dataset(tiny_box_data, boxes=True).items[:5]
    images = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    images.append(np.zeros((60, 130, 3), np.uint8))  # another shape: box in its own pixels
    a = load_model(trained, device="cpu").predict(images)
    b = load_model(trained, device="cpu").predict(images)
    assert len(a) == len(images)
    for p, q, img in zip(a, b, images, strict=True):
        assert p.identity in ("blue", "red") and 0 <= p.probability <= 1
        assert p.identity == q.identity and p.probability == pytest.approx(q.probability)
        assert p.box == pytest.approx(q.box)
        h, w = img.shape[:2]
        assert 0 <= p.box[0] <= p.box[2] <= w and 0 <= p.box[1] <= p.box[3] <= h
    assert load_model(trained, device="cpu").predict([]) == []


@pytest.mark.slow
def test_training_resumes_from_checkpoint(trained: Path, tiny_box_data: Path) -> None:
    model = train_model(tiny_box_data, "multi-output", trained, input_size=SIZE, epochs=2,
                        batch_size=4, max_steps_per_epoch=1, device="cpu", progress=False,
                        box_weight=2.0, giou_weight=0.5)
    history = json.loads((trained / "history.json").read_text())
    assert [r["epoch"] for r in history["epochs"]] == [1, 2]
    assert model.meta["train_count"] == 10


@pytest.mark.slow
def test_evaluate_extra_box_metrics(trained: Path, tiny_box_data: Path, tmp_path: Path) -> None:
    model = load_model(trained, device="cpu")
    items = open_dataset(tiny_box_data, boxes=True).items
    images = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    preds = model.predict(images)
    extra = model.evaluate_extra(images, preds, items, tmp_path)
    box = extra
    assert box["count"] == len(items)
    assert 0 <= box["mean_iou"] <= 1 and 0 <= box["iou_ge_0.75"] <= box["iou_ge_0.5"] <= 1
    assert (tmp_path / box["samples_picture"]).stat().st_size > 1000
    # items without boxes (a plain folder of crops): no box metrics
    assert model.evaluate_extra(images, preds, [object()] * len(images), tmp_path) == {}


def test_rejects_plain_folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    Image.new("RGB", (20, 20)).save(tmp_path / "a" / "x.jpg")
    with pytest.raises(ValueError, match="box-and-identity dataset"):
        train_model(tmp_path, "multi-output", tmp_path / "out", input_size=SIZE)
    with pytest.raises(ValueError, match="at least 75"):
        MultiOutputConfig(input_size=64)


@pytest.mark.slow
def test_evaluate_reports_box_metrics(trained: Path, tiny_box_data: Path, tmp_path: Path) -> None:
    from celebface.evaluation import evaluate_model, format_summary

    metrics = evaluate_model(trained, tiny_box_data, tmp_path / "report", device="cpu",
                             progress=False)
    extra = metrics["extra"]
    assert extra["count"] == metrics["counts"]["evaluated"] == 12
    for key in ("mean_iou", "iou_ge_0.5", "iou_ge_0.75", "accuracy_given_iou_ge_0.5"):
        assert key in extra
    assert (tmp_path / "report" / "box_samples.png").is_file()
    assert "mean_iou" in format_summary(metrics)


@pytest.mark.slow
def test_trains_on_a_pretrained_mobilenet_and_reloads(tiny_box_data: Path,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "mo_mnv2"
    train_model(tiny_box_data, "multi-output", out, input_size=64, epochs=1, batch_size=4,
                max_steps_per_epoch=2, device="cpu", progress=False, backbone="mobilenet_v2",
                pretrained="imagenet", freeze=10)
    meta = json.loads((out / "model.json").read_text())
    assert meta["network"]["backbone"] == "mobilenet_v2"
    assert meta["config"]["freeze"] == 10
    from celebface.models.store import imagenet_weights

    state = torch.load(imagenet_weights("mobilenet_v2"), map_location="cpu", weights_only=True)
    model = load_model(out, device="cpu")
    frozen = model.net.features[:10].state_dict()  # frozen: still the file's tensors
    assert all(torch.equal(v, state[f"features.{k}"]) for k, v in frozen.items())
    items = open_dataset(tiny_box_data, boxes=True).items[:3]
    preds = model.predict([np.asarray(Image.open(it.path).convert("RGB")) for it in items])
    assert len(preds) == 3 and all(p.box is not None for p in preds)
    with pytest.raises(ValueError, match="at least 32"):
        MultiOutputConfig(input_size=16, backbone="mobilenet_v2")


def _box_net(identity_from: str = "box", roi_jitter: float = 0.0) -> torch.nn.Module:
    """A region network with ImageNet trunk weights (a random trunk's features hardly vary)."""
    cfg = MultiOutputConfig(input_size=64, backbone="mobilenet_v2", pretrained="imagenet",
                            identity_from=identity_from, roi_jitter=roi_jitter)
    torch.manual_seed(0)
    return build_net(3, cfg.network()).eval()


@pytest.mark.parametrize("identity_from", ["box", "crop"])
def test_box_identity_head_reads_the_given_region(identity_from: str) -> None:
    net = _box_net(identity_from)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    left = torch.tensor([[0.0, 0.0, 0.5, 0.5]] * 2)
    right = torch.tensor([[0.5, 0.5, 1.0, 1.0]] * 2)
    with torch.no_grad():
        boxes, logits = net(x, left)
        boxes2, logits_right = net(x, right)
        pred_boxes, logits_pred = net(x)
        _, logits_at_pred = net(x, pred_boxes)
    assert boxes.shape == (2, 4) and logits.shape == (2, 3)
    assert torch.equal(boxes, boxes2)  # the box head does not read the given box
    assert not torch.allclose(logits, logits_right)  # another region, other logits
    # no box given: the predicted one (inference)
    assert torch.allclose(logits_pred, logits_at_pred, atol=1e-5)
    # the scene head ignores the box
    scene = build_net(3, MultiOutputConfig(input_size=64, backbone="mobilenet_v2",
                                           pretrained="imagenet",
                                           identity_from="scene").network()).eval()
    with torch.no_grad():
        assert torch.equal(scene(x, left)[1], scene(x, right)[1])
    with pytest.raises(ValueError, match="identity_from"):
        MultiOutputConfig(identity_from="nose")


def test_roi_jitter_moves_the_true_box_in_training_only() -> None:
    net = _box_net(roi_jitter=0.1)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    box = torch.tensor([[0.2, 0.2, 0.7, 0.8]] * 2)
    with torch.no_grad():
        assert torch.equal(net(x, box)[1], net(x, box)[1])  # eval: the box as given
        net.train()
        for module in net.modules():  # dropout and BatchNorm off: only the jitter is random
            if isinstance(module, torch.nn.Dropout | torch.nn.BatchNorm2d):
                module.eval()
        assert not torch.allclose(net(x, box)[1], net(x, box)[1])


def test_step_uses_true_boxes_in_training_and_predicted_ones_in_validation() -> None:
    from celebface.training.multi_output import make_step

    net = _box_net()
    seen: list[torch.Tensor | None] = []
    outputs = net.outputs

    def spy(x: torch.Tensor, boxes: torch.Tensor | None = None, *rest: object) -> tuple:
        seen.append(boxes)
        return outputs(x, boxes, *rest)

    net.outputs = spy  # type: ignore[method-assign]
    step = make_step(MultiOutputConfig(input_size=64, backbone="mobilenet_v2",
                                       identity_from="box"))
    true = torch.tensor([[0.1, 0.2, 0.6, 0.7], [0.3, 0.3, 0.9, 0.8]])
    batch = (torch.rand(2, 3, 64, 64) * 2 - 1, true, torch.tensor([0, 2]))
    net.train()
    loss, out = step(net, batch)
    assert seen[-1] is true and torch.isfinite(loss)
    net.eval()
    with torch.no_grad():
        loss, out = step(net, batch)
        assert seen[-1] is None  # validation: the predicted box, as at inference
        assert torch.allclose(out["logits"], net(batch[0], out["boxes"])[1], atol=1e-5)


@pytest.mark.slow
def test_box_identity_model_saves_reloads_and_old_models_load_as_scene(
        tiny_box_data: Path, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "mo_box"
    train_model(tiny_box_data, "multi-output", out, input_size=64, epochs=1, batch_size=4,
                max_steps_per_epoch=2, device="cpu", progress=False, backbone="mobilenet_v2",
                pretrained="none", identity_from="box")
    meta = json.loads((out / "model.json").read_text())
    assert meta["network"]["identity_from"] == "box"
    items = open_dataset(tiny_box_data, boxes=True).items[:4]
    images = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    a, b = load_model(out, device="cpu"), load_model(out, device="cpu")
    assert a.net.identity_from == "box"
    pa, pb = a.predict_outputs(images), b.predict_outputs(images)
    assert np.allclose(pa[0], pb[0], atol=1e-6) and np.allclose(pa[1], pb[1], atol=1e-4)
    # a model.json written before the option (no key) loads with the scene head
    legacy = tmp_path / "legacy"
    train_model(tiny_box_data, "multi-output", legacy, input_size=64, epochs=1, batch_size=4,
                max_steps_per_epoch=1, device="cpu", progress=False, backbone="mobilenet_v2",
                pretrained="none", identity_from="scene")
    old = json.loads((legacy / "model.json").read_text())
    for key in ("identity_from", "roi_size", "roi_margin", "roi_jitter"):
        old["network"].pop(key)
    (legacy / "model.json").write_text(json.dumps(old))
    assert load_model(legacy, device="cpu").net.identity_from == "scene"


def test_align_chips_is_the_similarity_warp(rng: np.random.Generator) -> None:
    """The differentiable chip cutter agrees with the numpy warp of the same landmarks."""
    from celebface.geometry import similarity_transform, warp
    from celebface.recognition.dlib_resnet import chip_template
    from celebface.training.multi_output.net import align_chips

    yy, xx = np.mgrid[0:96, 0:96].astype(float)
    image = np.stack([128 + 100 * np.sin(xx / 5 + c) * np.cos(yy / 7 - c) for c in range(3)],
                     -1).astype(np.uint8)  # smooth, with detail everywhere
    base = chip_template(150, 0.25) * 0.4 + 15  # a face about 60 px across
    angle = np.radians(12)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    landmarks = (base - 45) @ rot.T + 48 + rng.normal(0, 0.7, base.shape)
    want = warp(image, similarity_transform(landmarks, chip_template(150, 0.25)), 150)
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float()
    got = align_chips(x, torch.from_numpy(landmarks / 96.0)[None])[0].numpy()
    assert got.shape == (150, 150, 3)
    inside = np.s_[10:140, 10:140]  # away from the border fill
    assert np.abs(got[inside] - want[inside].astype(float)).mean() < 2.0
    # other landmarks, another chip
    moved = align_chips(x, torch.from_numpy((landmarks + 6) / 96.0)[None])[0].numpy()
    assert np.abs(moved[inside] - want[inside].astype(float)).mean() > 10.0


def test_dlib_landmarks_cut_dlib_chip(five_celeb: Path) -> None:
    """The landmark targets, warped onto the chip template, give dlib's own chip."""
    from celebface.detection import get_detector
    from celebface.geometry import similarity_transform, warp
    from celebface.io import read_image
    from celebface.recognition.dlib_resnet import DlibEmbedder, chip_template

    embedder = DlibEmbedder()
    photos = sorted(p for p in five_celeb.rglob("*.jpg"))[:3]
    detector = get_detector("mtcnn", device="cpu")
    for path in photos:
        image = read_image(path).rgb
        face = detector.detect(image)[0]
        landmarks = embedder.landmarks(image, face)
        assert landmarks.shape == (5, 2)
        assert landmarks[0, 0] < landmarks[1, 0]  # the image-left eye first, as MTCNN
        ours = warp(image, similarity_transform(landmarks, chip_template()), 150)
        theirs = embedder.chip(image, face.with_(landmarks=None))
        assert np.abs(ours.astype(float) - theirs).mean() < 3.0


def test_augment_moves_landmarks_with_the_image() -> None:
    torch.manual_seed(3)
    size = 80
    points = torch.tensor([[0.3, 0.4], [0.5, 0.42], [0.41, 0.55], [0.33, 0.7], [0.52, 0.68]])
    img = -torch.ones(3, size, size)
    for i, (x, y) in enumerate(points.tolist()):  # a bright dot per point, brightness = order
        px, py = round(x * size), round(y * size)
        img[:, py - 1:py + 2, px - 1:px + 2] = -0.6 + 0.3 * i
    box = torch.tensor([0.2, 0.3, 0.65, 0.8])
    flipped = False
    for _ in range(30):
        out, _, moved = augment(img.clone(), box.clone(), points.clone())
        flipped |= bool(moved[0, 0] > moved[1, 0])
        for x, y in moved.tolist():  # each point still sits on a dot
            px = min(size - 1, max(0, round(x * size - 0.5)))
            py = min(size - 1, max(0, round(y * size - 0.5)))
            patch = out[:, max(0, py - 2):py + 3, max(0, px - 2):px + 3]
            assert patch.max() > out[:, :5, :5].max() + 0.1
    assert not flipped  # a mirrored face keeps the image-left eye first


def _face_net(**kw: object) -> torch.nn.Module:
    cfg = MultiOutputConfig(input_size=96, backbone="mobilenet_v2", pretrained="imagenet",
                            identity_from="face", **kw)
    torch.manual_seed(0)
    return build_net(3, cfg.network()).eval()


def test_face_identity_reads_the_face_at_the_landmarks() -> None:
    net = _face_net()
    x = torch.rand(2, 3, 96, 96) * 2 - 1
    box = torch.tensor([[0.2, 0.2, 0.7, 0.8]] * 2)
    here = torch.tensor([[0.35, 0.4], [0.55, 0.4], [0.45, 0.5], [0.37, 0.62], [0.53, 0.62]])
    there = here * 0.6
    with torch.no_grad():
        a = net.outputs(x, box, here.expand(2, 5, 2))
        b = net.outputs(x, box, there.expand(2, 5, 2))
        pred = net.outputs(x)
        at_pred = net.outputs(x, pred.boxes, pred.landmarks)
    assert a.landmarks.shape == (2, 5, 2) and a.logits.shape == (2, 3)
    assert not torch.allclose(a.logits, b.logits)  # other landmarks, another face
    assert torch.allclose(pred.logits, at_pred.logits, atol=1e-4)  # inference: predicted ones
    # landmarks lie in the (widened) box they were read from
    lo, hi = net.widen(box)[:, None, :2], net.widen(box)[:, None, 2:]
    assert torch.all(a.landmarks >= lo - 1e-6) and torch.all(a.landmarks <= hi + 1e-6)
    # dlib's weights, as loaded: a silent random start would fail
    from celebface.models.store import dlib_model_path
    from celebface.recognition.dlib_torch import build_model

    dlib = build_model(dlib_model_path("resnet"))
    assert torch.equal(net.face_net.conv.weight, dlib.conv.weight)
    # face_freeze 5: only the 128-d layer of dlib's network trains
    trainable = {n for n, p in net.face_net.named_parameters() if p.requires_grad}
    assert trainable == {"fc.weight"}


@pytest.mark.slow
def test_face_model_trains_saves_and_reloads(tiny_box_data: Path, tmp_path: Path) -> None:
    from celebface.training.multi_output import make_step

    out = tmp_path / "mo_face"
    train_model(tiny_box_data, "multi-output", out, input_size=64, epochs=1, batch_size=4,
                max_steps_per_epoch=2, device="cpu", progress=False, backbone="mobilenet_v2",
                pretrained="none", identity_from="face", face_freeze=4)
    meta = json.loads((out / "model.json").read_text())
    assert meta["network"]["identity_from"] == "face"
    assert meta["network"]["face_freeze"] == 4
    history = json.loads((out / "history.json").read_text())
    assert np.isfinite(history["epochs"][-1]["val_nme"])
    items = open_dataset(tiny_box_data, boxes=True).items[:4]
    images = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    a, b = load_model(out, device="cpu"), load_model(out, device="cpu")
    pa, pb = a.predict_outputs(images), b.predict_outputs(images)
    assert np.allclose(pa[0], pb[0], atol=1e-5) and np.allclose(pa[1], pb[1], atol=1e-4)
    # training reads the true landmarks (the 4th batch item), validation the predicted ones
    net, seen = a.net, []
    outputs = net.outputs

    def spy(x: torch.Tensor, boxes: object = None, landmarks: object = None,
            labels: object = None) -> object:
        seen.append((landmarks, labels))
        return outputs(x, boxes, landmarks, labels)

    net.outputs = spy  # type: ignore[method-assign]
    step = make_step(MultiOutputConfig(input_size=64, backbone="mobilenet_v2",
                                       identity_from="face"))
    points = torch.rand(2, 5, 2) * 0.3 + 0.35
    batch = (torch.rand(2, 3, 64, 64) * 2 - 1, torch.tensor([[0.3, 0.3, 0.7, 0.7]] * 2),
             torch.tensor([0, 1]), points)
    net.train()
    loss, extra = step(net, batch)
    assert seen[-1][0] is points and seen[-1][1] is batch[2] and torch.isfinite(loss)
    assert "landmarks" in extra
    net.eval()
    with torch.no_grad():
        step(net, batch)
    assert seen[-1] == (None, None)


@pytest.mark.slow
def test_flip_tta_averages_the_mirror_image(trained: Path, tiny_box_data: Path) -> None:
    items = open_dataset(tiny_box_data, boxes=True).items[:3]
    images = [np.asarray(Image.open(it.path).convert("RGB")) for it in items]
    model = load_model(trained, device="cpu")
    assert model.tta == "none"  # saved without it
    plain, boxes = model.predict_outputs(images)
    mirrored, _ = model.predict_outputs([np.ascontiguousarray(im[:, ::-1]) for im in images])
    model.tta = "flip"
    both, same_boxes = model.predict_outputs(images)
    assert np.allclose(both, (plain + mirrored) / 2, atol=1e-5)
    assert np.allclose(same_boxes, boxes)  # the box is the image's own
    with pytest.raises(ValueError, match="tta"):
        MultiOutputConfig(tta="rotate")


@pytest.mark.slow
def test_a_run_resumes_with_another_tta(tiny_box_data: Path, tmp_path: Path) -> None:
    """TTA only changes predictions: a finished run reloads with it, no retraining."""
    out = tmp_path / "mo_tta"
    kw = dict(input_size=64, epochs=1, batch_size=4, max_steps_per_epoch=1, device="cpu",
              progress=False, backbone="mobilenet_v2", pretrained="none")
    train_model(tiny_box_data, "multi-output", out, **kw)
    model = train_model(tiny_box_data, "multi-output", out, tta="flip", **kw)
    assert model.tta == "flip"
    assert json.loads((out / "model.json").read_text())["preprocessing"]["tta"] == "flip"
    with pytest.raises(ValueError, match="another run"):
        train_model(tiny_box_data, "multi-output", out, **{**kw, "lr": 0.5})
