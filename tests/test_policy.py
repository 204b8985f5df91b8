"""The open-set policy (celebface.gallery.policy): one value made by policy_for, one decide."""

from __future__ import annotations

import numpy as np
import pytest

from celebface.errors import InputError
from celebface.gallery import Gallery
from celebface.gallery.calibration import Calibration
from celebface.gallery.policy import (
    FALLBACK_THRESHOLD,
    OpenSetPolicy,
    default_threshold,
    pair_threshold,
    policy_for,
    store_calibration,
)
from celebface.recognition.registry import embedder_config
from celebface.types import UNKNOWN


def gallery(embedder: str = "dlib", photos: tuple[int, ...] = (1, 3, 6)) -> Gallery:
    rng = np.random.default_rng(0)
    g = Gallery(embedder={"name": embedder, "tta": "none"})
    for i, n in enumerate(photos):
        v = rng.normal(size=(n, 128)).astype(np.float32)
        g.add(v / np.linalg.norm(v, axis=1, keepdims=True), [f"p{i}"] * n,
              [f"p{i}_{k}.jpg" for k in range(n)])
    return g


def test_an_uncalibrated_gallery_gets_its_measured_threshold() -> None:
    g = gallery()
    p = policy_for(g, "centroid")
    assert p.source == "measured" and not p.calibrated and p.gap_weight == 0.0
    assert p.threshold == default_threshold("dlib", "none", "centroid", 3, [1, 3, 6])
    assert dict(p.photos) == {"p0": 1, "p1": 3, "p2": 6}
    assert [p.bucket(n) for n in ("p0", "p1", "p2")] == ["1", "2-4", "5+"]
    # nothing measured for the embedder, or no gallery: the fallback
    assert policy_for(gallery("nobody"), "centroid").source == "fallback"
    assert policy_for(gallery("nobody"), "centroid").threshold == FALLBACK_THRESHOLD
    none = policy_for(None, "model")
    assert (none.threshold, none.source, none.calibrated) == (FALLBACK_THRESHOLD, "fallback",
                                                              False)


def test_calibration_and_override() -> None:
    g = gallery()
    cal = Calibration(method="knn", target_far=0.01, threshold=0.93, far=0.01, tar=0.8,
                      accept_rate=0.85, closed_set_accuracy=0.9, genuine=10,
                      genuine_identities=3, strangers=100, stranger_identities=5,
                      min_measurable_far=0.01, gap_weight=0.25)
    store_calibration(g, "knn", cal.threshold, cal.to_dict())
    p = policy_for(g, "knn")
    assert (p.threshold, p.gap_weight, p.source, p.calibrated) == (0.93, 0.25, "calibrated",
                                                                   True)
    assert not policy_for(g, "centroid").calibrated  # another method: still measured
    # an explicit threshold is on the similarity itself, even on a calibrated gallery
    given = policy_for(g, "knn", override=0.7)
    assert (given.threshold, given.gap_weight, given.source) == (0.7, 0.0, "given")
    assert given.calibrated
    # a classifier's calibration carries no gap weight (its softmax weighs the others)
    g.thresholds["model"], g.calibration["model"] = 0.6, {"gap_weight": 0.5}
    assert (policy_for(g, "model").threshold, policy_for(g, "model").gap_weight) == (0.6, 0.0)
    with pytest.raises(InputError, match="source"):
        OpenSetPolicy(0.5, source="guess")


def test_video_thresholds_come_from_the_policy() -> None:
    cfg = embedder_config("dlib")
    offsets, drops = cfg.view_offsets["none"], cfg.name_drop["none"]
    g = gallery()
    p = policy_for(g, "centroid", override=0.9)
    assert p.same_view == cfg.near_duplicate["none"] and p.view_offsets == tuple(offsets)
    assert p.track_threshold(1) == 0.9
    assert [p.track_threshold(n) for n in (2, 3, 4, 9)] == [
        0.9 - offsets[0], 0.9 - offsets[1], 0.9 - offsets[2], 0.9 - offsets[2]]
    assert p.earns(0.9) and not p.earns(0.9 - 1e-6)
    assert p.earns(0.9 - offsets[0], views=2)
    # a one-photo person's name drops further under the threshold than a many-photo one's
    assert (p.drop_for("p0"), p.drop_for("p2")) == (drops[0], drops[1])
    assert p.dropped(0.9 - drops[1] - 1e-3, "p2") and not p.dropped(0.9 - drops[1] + 1e-3, "p2")
    # a classifier, or an embedder with nothing measured: no view offsets, no name drop
    for q in (policy_for(g, "model", 0.9), policy_for(gallery("nobody"), "centroid", 0.9)):
        assert q.view_offsets == () and q.same_view == -1.0
        assert q.track_threshold(5) == 0.9
    assert policy_for(g, "model", 0.9).name_drop is None
    assert not policy_for(g, "model", 0.9).dropped(-1.0, "p0")


def test_decide_names_over_the_threshold_with_the_gap_weight() -> None:
    names = ["ann", "bob", "cat"]
    scores = np.array([[0.95, 0.94, 0.1],  # close second
                       [0.95, 0.5, 0.1],  # clear lead
                       [0.5, 0.4, 0.3]], np.float32)  # nobody
    plain = OpenSetPolicy(0.9).decide(scores, names)
    assert [m.identity for m in plain] == ["ann", "ann", UNKNOWN]
    assert (plain[0].runner_up, plain[0].runner_up_similarity) == ("bob", pytest.approx(0.94))
    assert (plain[2].runner_up, plain[2].similarity) == ("ann", pytest.approx(0.5))
    gap = OpenSetPolicy(0.96, gap_weight=0.5).decide(scores, names)
    assert [m.identity for m in gap] == [UNKNOWN, "ann", UNKNOWN]
    assert gap[1].score == pytest.approx(0.95 + 0.5 * 0.45)
    # from each row's best identities (an index's answer): the same decisions
    top = np.argsort(-scores, axis=1)[:, :2]
    via_top = OpenSetPolicy(0.96, 0.5).decide(np.take_along_axis(scores, top, 1), names,
                                              top=top)
    assert via_top == gap
    # per-row track thresholds: a 4-view track passes where a single face does not
    p = OpenSetPolicy(0.96, view_offsets=(0.005, 0.01, 0.02), same_view=0.99)
    assert [m.identity for m in p.decide(scores[:1], names, views=[1])] == [UNKNOWN]
    assert [m.identity for m in p.decide(scores[:1], names, views=[4])] == ["ann"]
    # one enrolled person: no runner-up, no lead
    one = OpenSetPolicy(0.9, gap_weight=1.0).decide(scores[:, :1], names[:1])
    assert [m.identity for m in one] == ["ann", "ann", UNKNOWN] and one[0].runner_up is None
    with pytest.raises(ValueError, match="do not match"):
        OpenSetPolicy(0.9).decide(scores, names[:2])


def test_pair_threshold_rule() -> None:
    g = gallery()
    measured = embedder_config("dlib").pair_threshold["none"]
    assert pair_threshold(gallery=g) == measured
    assert pair_threshold(gallery=g, override=0.5) == 0.5
    g.thresholds["topk"] = 0.97
    assert pair_threshold(gallery=g) == 0.97
    g.thresholds["knn"] = 0.95
    assert pair_threshold(gallery=g) == 0.95  # the face-to-face one first


def test_a_recogniser_built_with_a_policy_decides_by_it() -> None:
    """``Recognizer(..., policy=)``: a policy built by the caller names the faces; one made
    for another match method is refused."""
    from dataclasses import replace

    from celebface.recognizer import Recognizer, RecognizerConfig

    g = gallery()
    probe = g.centroids()[2:3] * 0.9 + g.centroids()[1:2] * 0.1  # p2: 6 photos, no offset
    probe /= np.linalg.norm(probe)
    cosine = float(probe[0] @ g.centroids()[2])
    strict = replace(policy_for(g, "centroid"), threshold=cosine + 0.001, source="given")
    rec = Recognizer(g, config=RecognizerConfig(match="centroid"), policy=strict)
    assert rec.policy is strict and rec.threshold == strict.threshold
    assert rec.name(probe)[0].identity == UNKNOWN  # just under the given threshold
    assert Recognizer(g, config=RecognizerConfig(match="centroid")).name(probe)[0].identity \
        == "p2"
    with pytest.raises(InputError, match="cannot decide"):
        Recognizer(g, config=RecognizerConfig(match="knn"), policy=strict)
