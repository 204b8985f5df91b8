"""Recognition with the real detector (MTCNN) and embedder (dlib) on real faces.

Small slices of ../shared/data keep this fast; skipped when the data is absent.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from celebface.cli.main import main
from celebface.detection.finder import pick_face
from celebface.gallery import EnrollConfig, Gallery, enroll
from celebface.gallery.matching import DEFAULT_MATCH
from celebface.gallery.policy import policy_for
from celebface.io import read_image, read_splits
from celebface.recognizer import Recognizer, RecognizerConfig
from celebface.streaming import VideoTracker
from celebface.streaming.synthetic import moving_faces
from celebface.types import UNKNOWN, box_iou

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PINS_IDS = ["pins_Adriana Lima", "pins_Bill Gates", "pins_Jason Momoa"]
STRANGERS = ["pins_Alexandra Daddario", "pins_Zendaya"]


def rows(root: Path, identity: str, split: str, n: int) -> list[Path]:
    splits = read_splits(root / "splits.csv")
    names = sorted(f for (i, f), s in splits.items() if i == identity and s == split)
    return [root / identity / f for f in names[:n]]


def link_subset(root: Path, dst: Path, ids: list[str], split: str, n: int) -> Path:
    """A folder-per-identity view (symlinks, no copies) of ``n`` photos per identity."""
    for ident in ids:
        (dst / ident).mkdir(parents=True, exist_ok=True)
        for p in rows(root, ident, split, n):
            (dst / ident / p.name).symlink_to(p)
    return dst


@pytest.fixture(scope="module")
def models():
    from celebface.detection import get_detector
    from celebface.recognition import EmbedderSpec

    return EmbedderSpec("dlib").build("cpu"), get_detector("mtcnn", device="cpu")


def test_five_celeb_gallery_names_held_out_photos(five_celeb: Path, tmp_path: Path,
                                                  models) -> None:
    ids = sorted(p.name for p in five_celeb.iterdir() if p.is_dir())
    data = link_subset(five_celeb, tmp_path / "train", ids, "train", 3)
    cfg = EnrollConfig(max_side=640, checkpoint_every=8)
    s = enroll(data, tmp_path / "g", config=cfg, models=models, progress=False)
    assert s.identities == 5 and s.embeddings >= 12
    rec = Recognizer(tmp_path / "g", detector=models[1], embedder=models[0],
                     config=RecognizerConfig(threshold=0.0, detect_side=640))
    results = []
    for ident in ids:
        for path in rows(five_celeb, ident, "val", 1):
            face = pick_face(rec.recognize(read_image(path, 1024).rgb))
            results.append(face is not None and face.identity == ident)
    assert np.mean(results) >= 0.8, results


def test_synthetic_video_of_real_faces_keeps_stable_names(pins: Path, tmp_path: Path,
                                                          models) -> None:
    data = link_subset(pins, tmp_path / "train", PINS_IDS[:2], "train", 4)
    cfg = EnrollConfig(detector="none")
    enroll(data, tmp_path / "g", config=cfg, models=(models[0], None), progress=False)
    crops = [read_image(rows(pins, i, "val", 1)[0]).rgb for i in PINS_IDS[:2]]
    video = moving_faces(crops, n_frames=12, size=(480, 270), face_height=120, speed=5, seed=3)
    rec = VideoTracker(Recognizer(tmp_path / "g", detector=models[1], embedder=models[0],
                                  config=RecognizerConfig(threshold=0.0, video_detect_side=320)))
    per_track: dict[int, Counter] = {}
    correct = total = 0
    for frame, boxes in zip(video.frames, video.boxes, strict=True):
        for face in rec.process_frame(frame):
            ious = [box_iou(face.box, b) for b in boxes]
            if max(ious) < 0.3:
                continue
            total += 1
            correct += face.identity == PINS_IDS[int(np.argmax(ious))]
            per_track.setdefault(face.track_id, Counter())[face.identity] += 1
    assert total >= 22  # both faces found in (nearly) every frame
    assert correct / total >= 0.9
    # names are stable: each track keeps one name in (nearly) every frame
    for counts in per_track.values():
        assert counts.most_common(1)[0][1] / sum(counts.values()) >= 0.9
    assert rec.stats.embedded < total  # the tracker skipped embeddings


def test_cli_enroll_calibrate_recognize(pins: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    train = link_subset(pins, tmp_path / "train", PINS_IDS, "train", 4)
    calib = link_subset(pins, tmp_path / "calib", PINS_IDS, "val", 3)
    link_subset(pins, calib, STRANGERS, "train", 8)
    g = str(tmp_path / "g")
    assert main(["enroll", str(train), "--out", g, "--detector", "none", "--device", "cpu"]) == 0
    assert "3 people, 12 faces" in capsys.readouterr().out
    assert main(["calibrate", g, str(calib), "--far", "0.1", "--detector", "none"]) == 0
    out = capsys.readouterr().out
    assert "measured FAR" in out and "16 faces of 2 strangers" in out
    thr = policy_for(Gallery.load(g), DEFAULT_MATCH).threshold
    photos = link_subset(pins, tmp_path / "photos", [PINS_IDS[0], STRANGERS[0]], "val", 1)
    code = main(["recognize", str(photos), "--gallery", g, "--jsonl",
                 str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "ann"), "--device", "cpu"])
    assert code == 0
    assert f"threshold {thr:.3f}" in capsys.readouterr().out
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and all(len(rec["faces"]) >= 1 for rec in lines)
    named = {Path(rec["source"]).parent.name: rec["faces"][0]["identity"] for rec in lines}
    assert named[PINS_IDS[0]] == PINS_IDS[0]
    assert named[STRANGERS[0]] in (UNKNOWN, *PINS_IDS)
    assert len(list((tmp_path / "ann").rglob("*.jpg"))) == 2
    # remove one person and check the gallery
    assert main(["enroll", "--out", g, "--remove", PINS_IDS[2]]) == 0
    assert Gallery.load(g).names == PINS_IDS[:2]
    assert main(["enroll", "--out", g, "--remove", "nobody"]) == 2


def test_uncalibrated_gallery_turns_strangers_away(pins: Path, tmp_path: Path, models) -> None:
    """The default threshold of an uncalibrated dlib gallery accepts enrolled people and rejects
    strangers (a threshold read off dlib's Euclidean 0.6 rule accepted every stranger here)."""
    from celebface.gallery import GalleryMatcher

    known = sorted(p.name for p in pins.iterdir() if p.is_dir())[:12]
    known, strangers = known[::2], known[1::2]
    data = link_subset(pins, tmp_path / "train", known, "train", 10)
    enroll(data, tmp_path / "g", config=EnrollConfig(detector="none"),
           models=(models[0], None), progress=False)
    gallery = Gallery.load(tmp_path / "g")
    assert DEFAULT_MATCH not in gallery.thresholds
    matcher = GalleryMatcher(gallery, DEFAULT_MATCH)
    thr = policy_for(gallery, DEFAULT_MATCH).threshold

    def best(ids: list[str]) -> tuple[np.ndarray, list[str], list[Path]]:
        paths = [p for i in ids for p in rows(pins, i, "val", 5)]
        vecs = models[0].embed([read_image(p).rgb for p in paths])
        scores = matcher.scores(vecs)
        return scores.max(1), [gallery.names[j] for j in scores.argmax(1)], paths

    s_known, named, paths = best(known)
    s_strange, _, _ = best(strangers)
    truth = [p.parent.name for p in paths]
    accepted = np.mean([s >= thr and n == t for s, n, t in zip(s_known, named, truth, strict=True)])
    assert accepted >= 0.7, (thr, np.round(s_known, 3))
    assert np.mean(s_strange >= thr) <= 0.1, (thr, np.round(s_strange, 3))
