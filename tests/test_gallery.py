"""Gallery: files, edits, atomic saves, matching, the unknown rule and calibration.

Everything here runs on synthetic embeddings or tiny generated images (fast, no models).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.gallery import (
    EnrollConfig,
    FaceSet,
    Gallery,
    GalleryMatcher,
    ModelMatcher,
    calibrate,
    calibrate_scores,
    enroll,
    match,
    open_set_rates,
)
from celebface.gallery.calibration import (
    GAP_WEIGHT_GRID,
    choose_gap_weight,
    cross_validate_gap_weights,
    stranger_folds,
    truth_indices,
    wilson_interval,
)
from celebface.gallery.policy import (
    OpenSetPolicy,
    best_scores,
    decision_scores,
    policy_for,
    threshold_for_far,
)
from celebface.gallery.store import GalleryError
from celebface.recognition.base import l2_normalize
from celebface.recognition.spec import EmbedderSpec
from celebface.types import UNKNOWN
from fakes import ColourEmbedder

DIM = 32


def clusters(
    rng: np.random.Generator, n_ids: int, per_id: int, noise: float = 0.35, centers=None
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Unit vectors scattered around one random centre per identity."""
    if centers is None:
        centers = l2_normalize(rng.normal(size=(n_ids, DIM)))
    emb = np.repeat(centers, per_id, axis=0) + noise * rng.normal(size=(n_ids * per_id, DIM)) / (
        DIM**0.5
    )
    ids = [f"id{i:02d}" for i in range(n_ids) for _ in range(per_id)]
    return l2_normalize(emb), ids, centers


def make_gallery(rng: np.random.Generator, n_ids: int = 6, per_id: int = 5) -> Gallery:
    emb, ids, _ = clusters(rng, n_ids, per_id)
    g = Gallery(embedder={"name": "fake", "settings": {"model": "fake", "dim": DIM}})
    g.add(emb, ids, [f"/photos/{i}/{k}.jpg" for k, i in enumerate(ids)])
    return g


# ------------------------------------------------------------------ files and edits
def test_save_load_round_trip(tmp_path: Path, rng: np.random.Generator) -> None:
    g = make_gallery(rng)
    g.thresholds["centroid"] = 0.61
    g.save(tmp_path / "g")
    h = Gallery.load(tmp_path / "g")
    assert h.names == g.names and h.sources == g.sources
    np.testing.assert_allclose(h.embeddings, g.embeddings, atol=1e-6)
    np.testing.assert_array_equal(h.labels, g.labels)
    assert policy_for(h, "centroid").threshold == pytest.approx(0.61)
    averages = json.loads((tmp_path / "g" / "average_embeddings.json").read_text())
    assert list(averages) == g.names
    np.testing.assert_allclose(np.array(list(averages.values())), g.centroids(), atol=1e-6)
    manifest = json.loads((tmp_path / "g" / "gallery.json").read_text())
    assert manifest["dim"] == DIM and manifest["counts"] == dict.fromkeys(g.names, 5)
    assert manifest["embedder"]["name"] == "fake"
    assert len(list((tmp_path / "g").glob("embeddings-*.npz"))) == 1


def test_add_and_remove(rng: np.random.Generator) -> None:
    g = make_gallery(rng, n_ids=3, per_id=4)
    before = g.centroids().copy()
    g.remove("id01")
    assert g.names == ["id00", "id02"] and len(g) == 8
    np.testing.assert_allclose(g.centroids(), before[[0, 2]], atol=1e-6)
    assert {g.names[i] for i in g.labels} == {"id00", "id02"}
    with pytest.raises(GalleryError, match="not in the gallery"):
        g.remove("id01")
    # re-adding a source replaces its embedding instead of duplicating it
    src = g.sources[0]
    g.add(np.ones((1, DIM)), ["id00"], [src])
    assert g.sources.count(src) == 1 and len(g) == 8
    with pytest.raises(ValueError, match="-d embeddings"):
        g.add(np.ones((1, DIM + 1)), ["x"], ["y"])


def test_crash_mid_save_keeps_previous_gallery(
    tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "g"
    g = make_gallery(rng)
    g.save(folder)
    old_names, old_emb = list(g.names), g.embeddings.copy()

    g.remove("id00")
    g.add(np.ones((2, DIM)), ["newbie", "newbie"], ["/n/1.jpg", "/n/2.jpg"])
    real_replace = os.replace
    calls = {"n": 0}

    def crashing_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # embeddings file written, crash before the rest
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crashing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        g.save(folder)
    monkeypatch.setattr(os, "replace", real_replace)

    h = Gallery.load(folder)
    assert h.names == old_names
    np.testing.assert_allclose(h.embeddings, old_emb, atol=1e-6)
    assert not list(folder.glob(".*.tmp"))

    # crash after average_embeddings.json but before the manifest: loads the old set and
    # repairs the out-of-date averages file
    calls["n"] = 0

    def crash_third(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("simulated crash")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_third)
    with pytest.raises(OSError):
        g.save(folder)
    monkeypatch.setattr(os, "replace", real_replace)
    h = Gallery.load(folder)
    assert h.names == old_names
    averages = json.loads((folder / "average_embeddings.json").read_text())
    assert list(averages) == old_names
    # a later save succeeds and cleans the orphan embeddings file
    g.save(folder)
    assert Gallery.load(folder).names == g.names
    assert len(list(folder.glob("embeddings-*.npz"))) == 1


def test_damaged_or_missing_gallery_is_a_clear_error(tmp_path: Path,
                                                     rng: np.random.Generator) -> None:
    with pytest.raises(FileNotFoundError):
        Gallery.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a gallery"):
        Gallery.load(tmp_path / "empty")
    folder = make_gallery(rng).save(tmp_path / "g")
    npz = next(folder.glob("embeddings-*.npz"))
    npz.write_bytes(npz.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ValueError, match="checksum"):
        Gallery.load(folder)


# ------------------------------------------------------------------ enrolment from photos
COLOURS = {"amy": (220, 30, 30), "bob": (30, 200, 40), "cat": (40, 40, 230)}


def write_people(root: Path, rng: np.random.Generator, people: dict, n: int = 3) -> None:
    for name, colour in people.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(n):
            arr = np.clip(np.array(colour) + rng.normal(0, 12, (24, 24, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(root / name / f"{k}.png")


def test_enroll_add_remove_resume(tmp_path: Path, rng: np.random.Generator) -> None:
    data, extra, out = tmp_path / "data", tmp_path / "extra", tmp_path / "gallery"
    write_people(data, rng, {"amy": COLOURS["amy"], "bob": COLOURS["bob"]})
    (data / "bob" / "broken.jpg").write_bytes(b"not a jpeg")
    write_people(extra, rng, {"cat": COLOURS["cat"]}, n=2)
    emb = ColourEmbedder()
    cfg = EnrollConfig(embedder="colour", detector="none", batch_size=2, checkpoint_every=2)

    s = enroll(data, out, config=cfg, models=(emb, None), progress=False)
    assert (s.added, s.identities) == (6, 2)
    assert len(s.skipped) == 1 and "broken.jpg" in s.skipped[0]
    g = Gallery.load(out)
    assert g.counts() == {"amy": 3, "bob": 3}
    assert g.embedder["settings"] == {"model": "colour", "dim": 12}
    assert g.info["faces_from"].startswith("whole images")

    # rerun: nothing is embedded again (resume)
    calls = emb.calls
    s = enroll(data, out, config=cfg, models=(emb, None), progress=False)
    assert (s.added, s.reused) == (0, 6) and emb.calls == calls

    s = enroll(extra, out, add=True, config=cfg, models=(emb, None), progress=False)
    assert s.added == 2 and Gallery.load(out).counts() == {"amy": 3, "bob": 3, "cat": 2}

    s = enroll(None, out, remove=["amy"], config=cfg, progress=False)
    assert s.removed == {"amy": 3} and Gallery.load(out).names == ["bob", "cat"]

    # without --add the gallery becomes exactly DATA again (cat dropped, amy re-embedded)
    s = enroll(data, out, config=cfg, models=(emb, None), progress=False)
    assert s.dropped == 2 and s.added == 3
    g = Gallery.load(out)
    assert g.counts() == {"bob": 3, "amy": 3}

    # DATA with --remove: the removed person stays out even though DATA has them
    s = enroll(data, out, remove=["amy"], config=cfg, models=(emb, None), progress=False)
    assert s.removed == {"amy": 3} and Gallery.load(out).names == ["bob"]
    s = enroll(data, out, config=cfg, models=(emb, None), progress=False)
    g = Gallery.load(out)
    assert g.counts() == {"bob": 3, "amy": 3}

    # matching the colours back
    probe = ColourEmbedder().embed([np.full((8, 8, 3), COLOURS["amy"], np.uint8)])
    m = OpenSetPolicy(0.5).decide(GalleryMatcher(g).scores(probe), g.names)[0]
    assert m.identity == "amy" and m.runner_up == "bob"


def test_editing_a_calibrated_gallery_clears_its_thresholds(
        tmp_path: Path, rng: np.random.Generator) -> None:
    data, extra, out = tmp_path / "data", tmp_path / "extra", tmp_path / "g"
    write_people(data, rng, {"amy": COLOURS["amy"], "bob": COLOURS["bob"]}, n=2)
    write_people(extra, rng, {"cat": COLOURS["cat"]}, n=2)
    cfg = EnrollConfig(embedder="colour", detector="none")
    models = (ColourEmbedder(), None)
    enroll(data, out, config=cfg, models=models, progress=False)

    def calibrated() -> None:
        g = Gallery.load(out)
        g.thresholds["centroid"], g.calibration["centroid"] = 0.9, {"far": 0.01}
        g.info["threshold_note"] = "calibrated"
        g.save(out)

    calibrated()
    enroll(data, out, config=cfg, models=models, progress=False)  # nothing changes: kept
    assert Gallery.load(out).thresholds == {"centroid": 0.9}
    for edit in ({"data": extra, "add": True}, {"data": None, "remove": ["cat"]}):
        calibrated()
        enroll(edit.pop("data"), out, config=cfg, models=models, progress=False, **edit)
        g = Gallery.load(out)
        assert g.thresholds == {} and g.calibration == {}
        assert "centroid" not in g.thresholds and "calibrate" in g.info["threshold_note"]


def test_enroll_refuses_a_different_embedder(tmp_path: Path, rng: np.random.Generator) -> None:
    data = tmp_path / "data"
    write_people(data, rng, {"amy": COLOURS["amy"]}, n=2)
    cfg = EnrollConfig(embedder="colour", detector="none")
    enroll(data, tmp_path / "g", config=cfg, models=(ColourEmbedder(), None), progress=False)
    write_people(data, rng, {"bob": COLOURS["bob"]}, n=2)

    class Other(ColourEmbedder):
        name = "other"

    with pytest.raises(ValueError, match=r"built with embedder.*--reembed"):
        enroll(data, tmp_path / "g", add=True, config=cfg, models=(Other(), None),
               progress=False)


def test_reembed_rebuilds_and_add_keeps_the_gallery_embedder(
        tmp_path: Path, rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gallery of one embedder: ``--reembed`` rebuilds it with another (no mixed rows);
    ``--add`` without an embedder chosen adds with the gallery's own, whatever the default."""
    import importlib

    enroll_module = importlib.import_module("celebface.gallery.enroll")

    data, extra, out = tmp_path / "data", tmp_path / "extra", tmp_path / "g"
    write_people(data, rng, {"amy": COLOURS["amy"], "bob": COLOURS["bob"]}, n=2)
    write_people(extra, rng, {"cat": COLOURS["cat"]}, n=2)

    class Other(ColourEmbedder):
        name = "other"

    enroll(data, out, config=EnrollConfig(embedder="colour", detector="none"),
           models=(ColourEmbedder(), None), progress=False)
    other = EnrollConfig(embedder="other", detector="none")
    with pytest.raises(ValueError, match="--reembed"):
        enroll(data, out, config=other, models=(Other(), None), progress=False)
    with pytest.raises(ValueError, match="without --add"):
        enroll(data, out, add=True, config=EnrollConfig(embedder="other", reembed=True),
               progress=False)
    emb = Other()
    s = enroll(data, out, config=EnrollConfig(embedder="other", detector="none", reembed=True),
               models=(emb, None), progress=False)
    g = Gallery.load(out)
    assert g.spec.name == "other" and g.counts() == {"amy": 2, "bob": 2} and emb.calls == 4
    assert s.added == 4
    # --add with the default settings (no embedder chosen): the gallery's "other" is used
    built = []
    monkeypatch.setattr(EmbedderSpec, "build",
                        lambda spec, device: built.append(spec.name) or Other())
    monkeypatch.setattr(enroll_module, "build_detector", lambda config: None)
    enroll(extra, out, add=True, config=EnrollConfig(detector="none"), progress=False)
    assert built == ["other"] and Gallery.load(out).counts() == {"amy": 2, "bob": 2, "cat": 2}


def test_calibrate_refuses_embeddings_of_another_embedder(tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    from celebface.recognition import embed_dataset

    data = tmp_path / "data"
    write_people(data, rng, {"amy": COLOURS["amy"], "bob": COLOURS["bob"]}, n=2)
    cfg = EnrollConfig(embedder="colour", detector="none")
    enroll(data, tmp_path / "g", config=cfg, models=(ColourEmbedder(), None), progress=False)
    embed_dataset(data, tmp_path / "emb", embedder=ColourEmbedder(), tta="flip", progress=False)
    with pytest.raises(ValueError, match="built with embedder"):
        calibrate(tmp_path / "g", tmp_path / "emb")


# ------------------------------------------------------------------ matching
def test_matching_methods_and_unknown_rule(rng: np.random.Generator) -> None:
    emb, ids, centers = clusters(rng, 8, 12)
    g = Gallery()
    g.add(emb, ids, [str(i) for i in range(len(ids))])
    probes, truth, _ = clusters(rng, 8, 6, centers=centers)
    strangers, _, _ = clusters(rng, 5, 6)
    for method in ("centroid", "knn", "topk"):
        m = GalleryMatcher(g, method)
        scores = m.scores(probes)
        assert scores.shape == (len(probes), 8)
        got = OpenSetPolicy(-1.0).decide(scores, m.names)
        acc = np.mean([x.identity == t for x, t in zip(got, truth, strict=True)])
        assert acc > 0.95, method
        # runner-up is a different identity with a lower score
        assert all(x.runner_up != x.identity and x.runner_up_similarity <= x.similarity
                   for x in got)
        # strangers score lower than genuine faces: a threshold between them says unknown
        s_best = m.scores(strangers).max(1)
        thr = float(np.quantile(scores.max(1), 0.05))
        assert np.mean(s_best >= thr) < 0.1, method
        unknown = OpenSetPolicy(2.0).decide(m.scores(strangers), m.names)
        assert all(u.identity == UNKNOWN and u.runner_up in m.names for u in unknown)
    # knn of an enrolled vector is itself: similarity 1
    np.testing.assert_allclose(GalleryMatcher(g, "knn").scores(emb[:3]).max(1), 1.0, atol=1e-5)


def test_model_matcher_applies_the_unknown_rule() -> None:
    class Model:
        label_names = ("a", "b", "c")

        def predict_embeddings(self, emb: np.ndarray) -> np.ndarray:
            return np.array([[0.9, 0.07, 0.03], [0.4, 0.35, 0.25]])[: len(emb)]

    m = ModelMatcher(Model())
    out = OpenSetPolicy(0.5).decide(m.scores(np.zeros((2, 4))), m.names)
    assert (out[0].identity, out[0].runner_up) == ("a", "b")
    assert out[1].identity == UNKNOWN and out[1].runner_up == "a"
    with pytest.raises(ValueError, match="predict_embeddings"):
        ModelMatcher(object())


# ------------------------------------------------------------------ calibration
def test_threshold_for_far_on_a_known_distribution(rng: np.random.Generator) -> None:
    # stranger scores ~ N(0, 1): the 1% FAR threshold is the 99th percentile, 2.326
    scores = rng.normal(size=20000)
    thr = threshold_for_far(scores, 0.01)
    assert np.mean(scores >= thr) <= 0.01
    assert thr == pytest.approx(2.326, abs=0.08)
    fresh = rng.normal(size=50000)
    assert np.mean(fresh >= thr) == pytest.approx(0.01, abs=0.0025)
    assert threshold_for_far(scores, 0.0) > scores.max()
    with pytest.raises(ValueError):
        threshold_for_far([], 0.01)


def test_calibrate_scores_hits_the_requested_far(rng: np.random.Generator) -> None:
    emb, ids, centers = clusters(rng, 10, 8, noise=0.6)
    g = Gallery()
    g.add(emb, ids, [str(i) for i in range(len(ids))])
    matcher = GalleryMatcher(g)
    genuine, gen_ids, _ = clusters(rng, 10, 10, noise=0.6, centers=centers)
    strangers, _, _ = clusters(rng, 40, 50, noise=0.6)
    stranger_ids = [f"s{i}" for i in range(len(strangers))]
    cal = calibrate_scores(
        matcher, np.concatenate([genuine, strangers]), gen_ids + stranger_ids, far=0.05
    )
    assert cal.far <= 0.05 and cal.strangers == 2000 and cal.genuine == 100
    assert 0.0 < cal.tar <= cal.accept_rate <= 1.0
    # on fresh strangers of fresh identities the FAR is close to the target
    fresh, _, _ = clusters(rng, 40, 50, noise=0.6)
    assert cal.gap_weight in GAP_WEIGHT_GRID and cal.gap_weight_source == "cv"
    assert cal.folds == 5 and len(cal.cv) == len(GAP_WEIGHT_GRID)
    assert cal.far_low <= cal.heldout_far <= cal.far_high
    fresh_far = np.mean(best_scores(matcher.scores(fresh), cal.gap_weight)[0] >= cal.threshold)
    assert fresh_far == pytest.approx(0.05, abs=0.03)
    rates = open_set_rates(matcher.scores(genuine), truth_indices(gen_ids, g.names),
                           cal.threshold, cal.gap_weight)
    assert rates.tar == pytest.approx(cal.tar)
    with pytest.raises(ValueError, match="NOT in the gallery"):
        calibrate_scores(matcher, genuine, gen_ids, far=0.01)


def lead_scores(rng: np.random.Generator, n_gen: int, n_str: int, stranger_lead: bool
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores against 3 people: genuine probes (of person 0) lead their runner-up clearly;
    strangers either sit between two people (``stranger_lead`` False: the lead tells them
    apart) or look like one person alone with a bigger lead than the genuine ones."""
    gen = np.column_stack([rng.normal(0.90, 0.03, n_gen), rng.normal(0.70, 0.03, n_gen),
                           np.full(n_gen, 0.1)])
    if stranger_lead:
        top = rng.normal(0.85, 0.03, n_str)
        strange = np.column_stack([top, top - 0.4, np.full(n_str, 0.1)])
    else:
        top = rng.normal(0.85, 0.03, n_str)
        strange = np.column_stack([top, top - 0.01, np.full(n_str, 0.1)])
    scores = np.concatenate([gen, strange]).astype(np.float32)
    truth = np.concatenate([np.zeros(n_gen, np.int64), -np.ones(n_str, np.int64)])
    fold = np.concatenate([np.full(n_gen, -1), np.arange(n_str) % 5])
    return scores, truth, fold


def test_cross_validation_chooses_the_gap_weight_that_helps(rng: np.random.Generator) -> None:
    """The weight of the lead is chosen on held-out strangers: a big one when strangers sit
    between two people, 0 when their lead over the runner-up is as large as the genuine one
    (the strangers of issue 24, on which the fixed 1/3 cost TAR)."""
    scores, truth, fold = lead_scores(rng, 400, 1000, stranger_lead=False)
    cv = cross_validate_gap_weights(scores, truth, fold, 0.01)
    assert [r.gap_weight for r in cv] == list(GAP_WEIGHT_GRID)
    assert all(r.strangers == 1000 for r in cv)  # each stranger held out once
    chosen = choose_gap_weight(cv, 0.01)
    assert chosen.gap_weight > 0 and chosen.tar > cv[0].tar + 0.2
    scores, truth, fold = lead_scores(rng, 400, 1000, stranger_lead=True)
    cv = cross_validate_gap_weights(scores, truth, fold, 0.01)
    assert choose_gap_weight(cv, 0.01).gap_weight == 0.0
    assert cv[0].tar > cv[-1].tar


def test_choose_gap_weight_refuses_a_weight_whose_held_out_far_is_too_high() -> None:
    from celebface.gallery.calibration import WeightCV

    good, leaky = WeightCV(0.0, 0.80, 10, 1000), WeightCV(0.5, 0.95, 40, 1000)
    assert choose_gap_weight([good, leaky], 0.01) is good  # 4% held out vs 1% wanted
    tie = WeightCV(0.25, 0.80, 10, 1000)
    assert choose_gap_weight([tie, good], 0.01) is good  # a tie goes to the smaller weight


def test_stranger_folds_keep_each_person_in_one_fold() -> None:
    ids = [f"p{i % 7}" for i in range(70)]
    fold = stranger_folds(ids, 3)
    for person in set(ids):
        assert len({int(f) for f, i in zip(fold, ids, strict=True) if i == person}) == 1
    assert set(fold.tolist()) == {0, 1, 2}


def test_wilson_interval() -> None:
    low, high = wilson_interval(5, 100)
    assert (low, high) == (pytest.approx(0.0215, abs=1e-4), pytest.approx(0.1118, abs=1e-4))
    assert wilson_interval(0, 100)[0] == 0.0 and wilson_interval(0, 100)[1] == pytest.approx(
        0.0370, abs=1e-4)


def test_calibrate_scores_reports_the_held_out_far(rng: np.random.Generator) -> None:
    emb, ids, centers = clusters(rng, 6, 8, noise=0.6)
    g = Gallery()
    g.add(emb, ids, [str(i) for i in range(len(ids))])
    genuine, gen_ids, _ = clusters(rng, 6, 10, noise=0.6, centers=centers)
    strangers, stranger_ids, _ = clusters(rng, 20, 30, noise=0.6)
    stranger_ids = [f"s{i}" for i in stranger_ids]
    data = np.concatenate([genuine, strangers])
    cal = calibrate_scores(GalleryMatcher(g), data, gen_ids + stranger_ids, far=0.05)
    assert cal.stranger_identities == 20 and cal.folds == 5
    heldout = next(r for r in cal.cv if r["gap_weight"] == cal.gap_weight)
    assert heldout["far"] == pytest.approx(cal.heldout_far)
    assert (cal.far_low, cal.far_high) == pytest.approx(
        wilson_interval(round(cal.heldout_far * 600), 600))
    forced = calibrate_scores(GalleryMatcher(g), data, gen_ids + stranger_ids, far=0.05,
                              gap_weight=0.7)
    assert forced.gap_weight == 0.7 and forced.gap_weight_source == "given"
    assert [r["gap_weight"] for r in forced.cv] == [0.7]


def test_calibrate_stores_threshold_and_skips_enrolled(tmp_path: Path,
                                                       rng: np.random.Generator) -> None:
    g = make_gallery(rng, n_ids=4, per_id=6)
    g.save(tmp_path / "g")
    strangers, _, _ = clusters(rng, 5, 20)
    data = FaceSet(
        np.concatenate([g.embeddings[:6], strangers]),
        [g.names[i] for i in g.labels[:6]] + ["stranger"] * len(strangers),
        g.sources[:6] + [f"/s/{i}" for i in range(len(strangers))],
    )
    cal = calibrate(tmp_path / "g", data, far=0.1, method="knn", gap_weight=0.25)
    assert cal.gap_weight_source == "given" and cal.folds == 0  # one stranger: no folds
    assert cal.genuine == 0 and cal.strangers == 100  # enrolled photos are not probes
    h = Gallery.load(tmp_path / "g")
    assert policy_for(h, "knn").threshold == pytest.approx(cal.threshold)
    assert h.calibration["knn"]["target_far"] == 0.1
    assert "centroid" not in h.thresholds
    assert policy_for(h, "knn").gap_weight == pytest.approx(0.25)
    assert h.calibration["knn"]["heldout_far"] is None  # not measured: plain JSON, no NaN
    assert "NaN" not in (tmp_path / "g" / "gallery.json").read_text()
    assert policy_for(h, "centroid").gap_weight == 0.0  # uncalibrated: the similarity itself
    h.calibration["knn"].pop("gap_weight")  # a gallery calibrated before the gap rule
    assert policy_for(h, "knn").gap_weight == 0.0


def test_gap_weight_rewards_a_clear_lead() -> None:
    names = ["ann", "bob", "cy"]
    scores = np.array([[0.95, 0.80, 0.10],    # a clear lead over bob
                       [0.95, 0.94, 0.10],    # as close to two people
                       [0.90, 0.10, 0.05]],   # far from everyone, but far ahead
                      np.float32)
    np.testing.assert_allclose(decision_scores(scores[:, 0], scores[:, 1], 0.5),
                               [1.025, 0.955, 1.30], rtol=1e-6)
    plain = OpenSetPolicy(0.96).decide(scores, names)
    assert [m.identity for m in plain] == [UNKNOWN] * 3
    gap = OpenSetPolicy(0.96, 0.5).decide(scores, names)
    assert [m.identity for m in gap] == ["ann", UNKNOWN, "ann"]
    assert gap[0].similarity == pytest.approx(0.95) and gap[0].score == pytest.approx(1.025)
    assert gap[0].runner_up == "bob" and gap[1].runner_up == "ann"
    best, idx = best_scores(scores, 0.5)
    np.testing.assert_allclose(best, [1.025, 0.955, 1.30], rtol=1e-6)
    assert list(idx) == [0, 0, 0]
    # one person enrolled: no runner-up, no lead
    assert OpenSetPolicy(0.92, 0.5).decide(scores[:, :1], names[:1])[0].identity == "ann"
    assert OpenSetPolicy(0.92, 0.5).decide(scores[2:, :1], names[:1])[0].identity == UNKNOWN


def test_match_through_the_index_applies_the_gap(rng: np.random.Generator) -> None:
    g = make_gallery(rng, n_ids=5, per_id=4)
    matcher = GalleryMatcher(g)
    probes = g.embeddings[::4] + 0.3 * rng.normal(size=g.embeddings[::4].shape)
    s = matcher.scores(probes)
    for gap in (0.0, 0.5):
        # half-way between two neighbouring decision scores, never on one: the index (FAISS,
        # float32) and numpy may differ in the last bits, so a probe exactly on the threshold
        # could fall either way
        ranked = np.sort(best_scores(s, gap)[0])
        k = len(ranked) // 2
        assert ranked[k] - ranked[k - 1] > 1e-4
        thr = float(ranked[k - 1] + ranked[k]) / 2
        via_index = match(matcher, probes, OpenSetPolicy(thr, gap))
        direct = OpenSetPolicy(thr, gap).decide(s, matcher.names)
        assert [m.identity for m in via_index] == [m.identity for m in direct]
        assert sum(m.known for m in direct) in range(1, len(direct))
