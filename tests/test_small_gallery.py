"""Uncalibrated thresholds that know how many photos each person has (issue 24)."""

from __future__ import annotations

import numpy as np
import pytest

from celebface.gallery import policy
from celebface.gallery.matching import GalleryMatcher, match
from celebface.gallery.policy import (
    BUCKET_FAR_WEIGHTS,
    DEFAULT_FAR,
    ONE_PHOTO_MEAN_FACE_WEIGHT,
    OpenSetPolicy,
    default_threshold,
    gallery_threshold,
    person_offsets,
    photo_bucket,
    policy_for,
    tail_chance,
    tail_threshold,
)
from celebface.gallery.store import Gallery
from celebface.recognition.registry import impostor_tails, measured
from test_gallery import ColourEmbedder, write_people

TAILS = {"1": [(0.1, 0.80), (0.01, 0.85), (0.0001, 0.90)],
         "5+": [(0.1, 0.85), (0.01, 0.90), (0.0001, 0.95)]}


def test_photo_buckets() -> None:
    assert [photo_bucket(n) for n in (1, 2, 4, 5, 200)] == ["1", "2-4", "2-4", "5+", "5+"]


def test_tail_chance_inverts_tail_threshold() -> None:
    for p in (0.05, 0.003, 0.0002):
        assert tail_chance(TAILS["1"], tail_threshold(TAILS["1"], p)) == pytest.approx(p)


def test_gallery_threshold_spends_the_far_over_its_people() -> None:
    """One bucket: the t of p = FAR / (w N). Mixed: the t where the people's weighted tails add
    up to the FAR, between the all-one-photo and the all-many-photo thresholds; a missing
    bucket (2-4 here) uses the measured one with the most photos, and its weight."""
    w = BUCKET_FAR_WEIGHTS["1"]
    assert gallery_threshold(TAILS, [1] * 10) == pytest.approx(
        tail_threshold(TAILS["1"], DEFAULT_FAR / (w * 10)))
    assert gallery_threshold(TAILS, [3] * 10) == pytest.approx(tail_threshold(TAILS["5+"],
                                                                              DEFAULT_FAR / 10))
    mixed = gallery_threshold(TAILS, [1] * 5 + [50] * 5)
    assert gallery_threshold(TAILS, [1] * 10) < mixed < gallery_threshold(TAILS, [50] * 10)
    total = 5 * w * tail_chance(TAILS["1"], mixed) + 5 * tail_chance(TAILS["5+"], mixed)
    assert total == pytest.approx(DEFAULT_FAR, rel=1e-6)


def test_one_photo_people_spend_more_of_the_far_budget() -> None:
    """A one-photo gallery's FAR varies more from gallery to gallery than a many-photo one's
    (one photo near a stranger's face takes many of their photos), so a one-photo person counts
    as 1.5 people (measured on half A, benchmarks/results/small_gallery.md): 10 one-photo
    people get the threshold of p = FAR / 15, 10 many-photo people still that of FAR / 10."""
    assert BUCKET_FAR_WEIGHTS == {"1": 1.5}
    one = gallery_threshold(TAILS, [1] * 10)
    assert one == pytest.approx(tail_threshold(TAILS["1"], DEFAULT_FAR / 15))
    assert one > tail_threshold(TAILS["1"], DEFAULT_FAR / 10) + 1e-3
    assert gallery_threshold(TAILS, [50] * 10) == pytest.approx(
        tail_threshold(TAILS["5+"], DEFAULT_FAR / 10))
    # the real tables: 30 one-photo people aim each at p = 0.5% / 45
    tails = impostor_tails("dlib", "none")["centroid"]
    assert default_threshold("dlib", "none", "centroid", 30, 1) == pytest.approx(
        tail_threshold(tails["1"], DEFAULT_FAR / 45))


def test_one_photo_people_get_the_one_photo_tail() -> None:
    """A one-photo "centroid" is one noisy vector: strangers score lower against it than
    against a many-photo centroid, so its measured threshold is lower (the old rule used the
    many-photo tail for everyone: 21% of one-photo people named, issue 24)."""
    tails = impostor_tails("dlib", "none")["centroid"]
    assert set(tails) == {"1", "2-4", "5+"}
    for p in (0.01, 1e-4):
        assert tail_threshold(tails["1"], p) < tail_threshold(tails["2-4"], p) \
            < tail_threshold(tails["5+"], p)

    def gallery(per_person: int) -> Gallery:
        g = Gallery(embedder={"name": "dlib", "tta": "none"})
        v = np.repeat(np.eye(128, dtype=np.float32)[:30], per_person, axis=0)
        ids = [f"p{i}" for i in range(30) for _ in range(per_person)]
        g.add(v, ids, [f"s{i}" for i in range(len(ids))])
        return g

    one, many = (policy_for(gallery(n), "centroid").threshold for n in (1, 6))
    assert one == pytest.approx(default_threshold("dlib", "none", "centroid", 30, 1))
    assert many == pytest.approx(default_threshold("dlib", "none", "centroid", 30))
    assert one < many - 0.005
    assert default_threshold("dlib", "flip", "centroid", 30, 1) < default_threshold(
        "dlib", "flip", "centroid", 30) - 0.005
    # an embedder measured with many photos only keeps that tail for everyone
    assert default_threshold("dlib+facenet", "none", "centroid", 30, 1) == pytest.approx(
        default_threshold("dlib+facenet", "none", "centroid", 30))


@pytest.mark.parametrize("checkpoint", [512, 1])
def test_a_single_photo_is_enrolled_with_its_mirror_image(tmp_path, rng, checkpoint) -> None:
    """One photo: the average of it and its mirror image (two views); several photos: each
    photo as it is, whether or not a checkpoint saved the photo before the run ended.
    Re-enrolling embeds nothing again."""
    from PIL import Image

    from celebface.gallery import EnrollConfig, enroll
    from celebface.recognition.base import l2_normalize, mirror

    data = tmp_path / "data"
    write_people(data, rng, {"amy": (220, 30, 30), "bob": (30, 200, 40)}, n=3)
    for extra in ("1.png", "2.png"):
        (data / "amy" / extra).unlink()
    # a photo whose left and right halves differ, so its mirror embeds differently
    arr = np.asarray(Image.open(data / "amy" / "0.png")).copy()
    arr[:, :12] = (30, 30, 200)
    Image.fromarray(arr).save(data / "amy" / "0.png")
    emb = ColourEmbedder()
    cfg = EnrollConfig(embedder="colour", detector="none", checkpoint_every=checkpoint)
    enroll(data, tmp_path / "g", config=cfg, models=(emb, None), progress=False)
    g = Gallery.load(tmp_path / "g")
    assert g.counts() == {"amy": 1, "bob": 3}
    plain = emb.embed([arr])[0]
    flipped = emb.embed([mirror(arr, None)[0]])[0]
    assert float(plain @ flipped) < 0.99
    amy = g.embeddings[g.labels == g.names.index("amy")][0]
    np.testing.assert_allclose(amy, l2_normalize(plain + flipped), atol=1e-5)
    bob = [np.asarray(Image.open(data / "bob" / f"{k}.png")) for k in range(3)]
    np.testing.assert_allclose(np.sort(g.embeddings[g.labels == g.names.index("bob")], 0),
                               np.sort(emb.embed(bob), 0), atol=1e-5)
    calls = emb.calls
    enroll(data, tmp_path / "g", config=cfg, models=(emb, None), progress=False)
    assert emb.calls == calls
    np.testing.assert_allclose(Gallery.load(tmp_path / "g").embeddings, g.embeddings)


def test_person_offsets_weaken_one_photo_vectors_near_the_mean_face() -> None:
    """Only one-photo people get an offset: weight x (v . mean face - reference), so a vector
    on the mean face is lowered, one far from it raised; an unmeasured embedder gets none."""
    mean = measured("dlib", "none")["mean_face"]
    ref, face = mean["reference"], mean["vector"]
    face = np.asarray(face, np.float32)
    far_away = np.linalg.qr(np.c_[face, np.eye(128)[:, :1]])[0][:, 1].astype(np.float32)
    vectors = np.stack([face, far_away, face])
    off = person_offsets("dlib", "none", vectors, [1, 1, 7])
    w = ONE_PHOTO_MEAN_FACE_WEIGHT
    np.testing.assert_allclose(off, [w * (1 - ref), w * (0 - ref), 0], atol=1e-4)
    assert off[0] > 0 > off[1]
    assert not person_offsets("fake", "none", vectors, [1, 1, 7]).any()
    assert not person_offsets("dlib", "none", vectors, [1, 1, 7], weight=0).any()
    assert not person_offsets("dlib", "none", vectors[:, :8], [1, 1, 7]).any()  # not dlib's


@pytest.fixture
def toy_mean_face(monkeypatch: pytest.MonkeyPatch) -> None:
    """A measured mean face for the 8-d embedder "toy": e1, reference 0.5."""
    real = policy.measured
    monkeypatch.setattr(policy, "measured", lambda name, tta: {"mean_face": {
        "reference": 0.5, "vector": [1.0] + [0.0] * 7}} if name == "toy" else real(name, tta))


def toy_gallery(people: dict[str, np.ndarray]) -> Gallery:
    g = Gallery(embedder={"name": "toy", "tta": "none"})
    for name, rows in people.items():
        rows = np.atleast_2d(rows).astype(np.float32)
        g.add(rows, [name] * len(rows), [f"{name}{k}" for k in range(len(rows))])
    return g


def test_matcher_scores_carry_the_offsets(toy_mean_face, rng) -> None:
    """Every method's scores against a one-photo person are the similarity minus its offset;
    many-photo people keep the similarity."""
    e = np.eye(8, dtype=np.float32)
    g = toy_gallery({"ann": 0.6 * e[0] + 0.8 * e[1], "bob": e[2], "cat": [e[3], e[3], e[4]]})
    probes = rng.normal(size=(5, 8)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    for method in ("centroid", "knn", "topk"):
        m = GalleryMatcher(g, method)
        np.testing.assert_allclose(m.offsets, [0.25 * (0.6 - 0.5), 0.25 * (0 - 0.5), 0],
                                   atol=1e-6)
        plain = GalleryMatcher(g, method)
        plain.offsets = np.zeros(3, np.float32)  # the similarity alone
        np.testing.assert_allclose(m.scores(probes), plain.scores(probes) - m.offsets,
                                   atol=1e-6)
        for q in probes:
            np.testing.assert_allclose(m.identity_scores(q, np.arange(3)),
                                       m.scores(q[None])[0], atol=1e-6)


def test_index_finds_a_one_photo_person_its_offset_raises(toy_mean_face) -> None:
    """The index proposes the two closest centroids (ann, bob); cat's single photo is a little
    less similar but far from the mean face, so its offset raises it above both: the search
    must widen by the largest raise, or it names ann."""
    e = np.eye(8, dtype=np.float32)
    g = toy_gallery({"ann": [0.8 * e[1] + 0.6 * e[0]] * 5,
                     "bob": [0.79 * e[1] + np.sqrt(1 - 0.79 ** 2) * e[2]] * 5,
                     "cat": 0.78 * e[1] + np.sqrt(1 - 0.78 ** 2) * e[3]})
    m = GalleryMatcher(g)
    assert m.max_boost == pytest.approx(0.125)
    probe = e[1][None]
    direct = OpenSetPolicy(0.5).decide(m.scores(probe), m.names)
    assert direct[0].identity == "cat" and direct[0].similarity == pytest.approx(0.905)
    assert [x.identity for x in match(m, probe, OpenSetPolicy(0.5))] == ["cat"]


@pytest.mark.integration
def test_one_photo_gallery_and_cross_validated_calibration(pins, tmp_path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    """Real faces: a gallery of one photo a person gets the one-photo threshold; calibrate
    chooses its gap weight over 6 stranger people and stores the held-out FAR interval."""
    from celebface.cli.main import main
    from celebface.io import read_splits

    splits = read_splits(pins / "splits.csv")
    people = sorted(p.name for p in pins.iterdir() if p.is_dir())[20:30]
    known, strangers = people[:4], people[4:]

    def link(dst, ids, split, n):
        for ident in ids:
            (dst / ident).mkdir(parents=True, exist_ok=True)
            for f in sorted(f for (i, f), s in splits.items() if i == ident and s == split)[:n]:
                (dst / ident / f).symlink_to(pins / ident / f)
        return dst

    g = str(tmp_path / "g")
    train = link(tmp_path / "train", known, "train", 1)
    assert main(["enroll", str(train), "--out", g, "--detector", "none", "--device", "cpu"]) == 0
    gallery = Gallery.load(g)
    assert gallery.counts() == dict.fromkeys(known, 1)
    name = gallery.spec.name  # the default embedder
    threshold = policy_for(gallery, "centroid").threshold
    assert threshold == pytest.approx(default_threshold(name, "none", "centroid", 4, 1))
    assert threshold < default_threshold(name, "none", "centroid", 4)
    # real one-photo vectors get small offsets of either sign around the measured reference
    offsets = GalleryMatcher(gallery).offsets
    assert np.all(offsets != 0) and np.all(np.abs(offsets) < 0.05), offsets
    calib = link(link(tmp_path / "calib", known, "val", 3), strangers, "train", 6)
    capsys.readouterr()
    assert main(["calibrate", g, str(calib), "--far", "0.1", "--detector", "none"]) == 0
    out = capsys.readouterr().out
    assert "5-fold cross-validation" in out and "held-out FAR" in out, out
    record = Gallery.load(g).calibration["centroid"]
    assert record["gap_weight_source"] == "cv" and record["folds"] == 5
    assert record["far_low"] <= record["heldout_far"] <= record["far_high"]
    assert record["stranger_identities"] == 6 and record["strangers"] == 36
    assert [r["gap_weight"] for r in record["cv"]] == pytest.approx([0, 0.1, 0.25, 0.5, 1])
    assert policy_for(Gallery.load(g), "centroid").gap_weight == record["gap_weight"]
