"""Embedders by registry: each entry's builder and config (measured constants) are what every
stage reads; ``embed_views`` on the Embedder base; a gallery's parsed spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from celebface.audit.run import near_duplicate_bound
from celebface.errors import InputError
from celebface.gallery import EnrollConfig, Gallery
from celebface.gallery.policy import (
    FALLBACK_THRESHOLD,
    cluster_threshold,
    default_threshold,
    pair_threshold,
    rerank_cut,
)
from celebface.recognition import EmbedderConfig, FlipTTA, register_embedder, spec
from celebface.recognition import registry as reg
from celebface.recognition.base import Embedder
from celebface.recognition.fusion import FusedEmbedder
from celebface.recognition.spec import DEFAULT_EMBEDDER, EmbedderSpec
from celebface.types import Face
from fakes import ColourEmbedder, HalvesEmbedder, MeanColourEmbedder


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmbedderConfig]:
    """``colour`` (mean colour) and ``quads`` registered for this test only."""
    monkeypatch.setattr(reg, "_REGISTRY", dict(reg._REGISTRY))
    cfg = EmbedderConfig(input_size=8, preprocessing="mean colour", options=("offset",),
                         pair_threshold={"none": 0.5, "flip": 0.6}, near_duplicate={"none": 0.97},
                         cluster_threshold={("none", "rerank"): 0.7}, rerank_cut={"none": 0.4})
    register_embedder("colour", lambda device="auto", **o: MeanColourEmbedder("colour", **o),
                      cfg)
    register_embedder("quads", lambda device="auto": ColourEmbedder(), EmbedderConfig())
    register_embedder("colour+quads", reg._fused("colour+quads"),
                      EmbedderConfig(options=("offset",), fusion_weights=(0.25, 0.75)))
    yield cfg
    spec.clear_built()  # no fake embedder kept for later tests


def test_spec_builds_by_name_and_stages_read_the_entry(registered) -> None:
    emb = EmbedderSpec("colour", options={"offset": 1.0}).build()
    assert isinstance(emb, MeanColourEmbedder) and emb.offset == 1.0
    # no weights file: not passed
    assert EmbedderSpec("colour", options={"weights": None}).build().offset == -128.0
    flipped = EmbedderSpec("colour", "flip").build()
    assert pair_threshold(embedder=emb) == 0.5 and pair_threshold(embedder=flipped) == 0.6
    assert isinstance(EmbedderSpec("colour", "flip").build(), FlipTTA)
    assert cluster_threshold(emb, "rerank") == 0.7 and rerank_cut(emb) == 0.4
    assert near_duplicate_bound(EmbedderSpec("colour")) == 0.97
    assert default_threshold("colour", "none", "centroid", 10) == FALLBACK_THRESHOLD
    with pytest.raises(InputError, match=r"unknown embedder 'nope'.*colour"):
        EmbedderSpec("nope").build()


def test_a_fusion_of_registered_parts_takes_its_entry_weights(registered) -> None:
    fused = EmbedderSpec("colour+quads", options={"offset": 2.0}).build()
    assert isinstance(fused, FusedEmbedder) and fused.weights == (0.25, 0.75)
    assert fused.parts[0].offset == 2.0 and isinstance(fused.parts[1], ColourEmbedder)
    # not registered: built from the parts, equal weights
    other = EmbedderSpec("quads+colour").build()
    assert isinstance(other, FusedEmbedder) and other.weights == (0.5, 0.5)
    with pytest.raises(InputError, match="unknown embedder"):
        EmbedderSpec("colour+colour").build()
    with pytest.raises(TypeError, match="unknown option"):
        EmbedderSpec("colour+quads", options={"margin": 1}).build()


def test_the_builtin_entries_hold_the_measured_constants() -> None:
    dlib = reg.embedder_config("dlib")
    assert dlib.input_size == 150 and dlib.pair_threshold == {"none": 0.9153, "flip": 0.9191}
    assert dlib.near_duplicate["none"] == 0.978
    # the gallery's tables are package data, read on demand
    tails = reg.impostor_tails("dlib", "flip")
    assert set(tails) == {"centroid", "knn", "topk"} and set(tails["topk"]) == {"1", "2-4", "5+"}
    assert len(reg.measured("dlib", "none")["mean_face"]["vector"]) == 128
    assert reg.impostor_tails("a/model/folder", "none") == {}
    assert reg.embedder_config("dlib+facenet").fusion_weights == (0.78, 0.22)
    assert reg.embedder_config("facenet").input_size == 160
    assert reg.embedder_config("a/model/folder") == EmbedderConfig()  # nothing measured
    # a larger gallery needs a higher threshold for the same false-accept rate
    assert 0.9 < default_threshold("dlib", "none", "knn", 1) < default_threshold("dlib", "none",
                                                                                 "knn", 1000)


class _Chips(Embedder):
    """Chips are the face's 2x2 mean colours; the vector is the chip flattened."""

    name, dim = "chips", 12

    def __init__(self) -> None:
        self.mirrored_images = 0

    def chips(self, images, faces):
        return [np.asarray([[q.reshape(-1, 3).mean(0) for q in np.array_split(half, 2, 1)]
                            for half in np.array_split(img, 2, 0)]) for img in images]

    def embed_chips(self, chips):
        return np.asarray([c.reshape(-1) for c in chips], np.float32) + 1


def test_embed_views_on_the_base_class(rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, (10, 20, 3), dtype=np.uint8)
    chips = _Chips()
    views = chips.embed_views([img], None, ("orig", "flip"))
    np.testing.assert_allclose(views["orig"], chips.embed([img]), atol=1e-6)
    # flip mirrors the chip: the same as embedding the mirrored image for this chip
    np.testing.assert_allclose(views["flip"], chips.embed([img[:, ::-1]]), atol=1e-6)
    halves = HalvesEmbedder()  # no chips: flip mirrors the image and its face
    face = Face((2, 0, 18, 10))
    got = halves.embed_views([img], [face], ("orig", "flip"))
    np.testing.assert_allclose(got["flip"], halves.embed([img[:, ::-1]], [face]), atol=1e-6)
    with pytest.raises(ValueError, match="unknown view 'upside'"):
        halves.embed_views([img], None, ("upside",))

    class Nothing(Embedder):
        pass

    with pytest.raises(NotImplementedError):
        Nothing().embed([img])


def test_gallery_spec_is_parsed_once_and_follows_a_new_embedder() -> None:
    g = Gallery(embedder={"name": "dlib", "options": {"tta": "flip"}})  # an older layout
    assert g.spec is g.spec and g.spec.tta == "flip" and "tta" not in g.spec.options
    g.embedder = {"name": "facenet", "tta": "none"}
    assert g.spec.name == "facenet" and g.spec.tta == "none"


def test_an_old_manifest_layout_is_migrated_on_load_and_saved_in_todays(tmp_path: Path,
                                                                       rng) -> None:
    import json

    from celebface.gallery.stores import open_store

    g = Gallery(embedder={"name": "dlib", "tta": "flip"})
    g.add(rng.normal(size=(2, 4)).astype(np.float32), ["ann", "bo"], ["p1", "p2"])
    g.save(tmp_path / "g")
    manifest = tmp_path / "g" / "gallery.json"
    old = json.loads(manifest.read_text())
    old["embedder"] = {"name": "dlib", "options": {"tta": "flip", "aligner": "predictor"},
                       "settings": {"tta": "flip", "dim": 4}}  # as an earlier version wrote it
    manifest.write_text(json.dumps(old))
    loaded = Gallery.load(tmp_path / "g")
    assert loaded.embedder == {"name": "dlib", "tta": "flip", "options": {"aligner": "predictor"},
                               "settings": {"dim": 4}}
    assert loaded.spec == EmbedderSpec("dlib", "flip", {"aligner": "predictor"}, {"dim": 4})
    open_store(tmp_path / "g").edit(lambda gallery: gallery.remove("bo"))
    assert json.loads(manifest.read_text())["embedder"] == loaded.embedder
    # an embeddings folder's embedding.json of an earlier version (no "embedder")
    meta = {"model": "facenet", "tta": "flip", "weights_path": "/w.pt",
            "settings": {"model": "facenet", "dim": 512, "box_margin": 0.2}}
    assert EmbedderSpec.of_embeddings(meta) == EmbedderSpec(
        "facenet", "flip", {"box_margin": 0.2, "weights": "/w.pt"},
        {"model": "facenet", "dim": 512, "box_margin": 0.2})


def test_the_service_keeps_the_gallery_tta() -> None:
    """The service enrols (and builds its embedder) with the gallery's whole spec."""
    g = Gallery(embedder={"name": "dlib", "tta": "flip", "options": {"aligner": "predictor"}})
    config = EnrollConfig().with_spec(g.spec)
    assert config.spec == EmbedderSpec("dlib", "flip", {"aligner": "predictor"})
    # settings of earlier versions (tta among the options) read the same
    assert EnrollConfig(embedder="dlib",
                        embedder_options={"tta": "flip", "aligner": "predictor"}) == config


def test_every_config_names_its_embedder_by_one_spec() -> None:
    from celebface.audit import AuditConfig
    from celebface.clustering import ClusterConfig
    from celebface.gallery.faces import FaceSetConfig
    from celebface.recognition.engine import EmbedConfig
    from celebface.training.classical import ClassicalConfig
    from celebface.training.mlp import MLPConfig

    weights = str(Path("w.pt").resolve())  # a weights file is named by its absolute path
    want = EmbedderSpec("facenet", "flip", {"box_margin": 0.2, "weights": weights})
    embed = EmbedConfig(embedder="facenet", tta="flip", weights="w.pt",
                        options={"box_margin": 0.2})
    assert embed.spec == want and EmbedConfig.of_spec(want).spec == want
    assert EmbedConfig.of_spec(want, batch_size=8).weights == weights
    assert FaceSetConfig(embedder="facenet", tta="flip",
                         embedder_options={"box_margin": 0.2, "weights": weights}).spec == want
    assert ClassicalConfig(embedder="facenet", tta="flip").spec == EmbedderSpec("facenet", "flip")
    assert MLPConfig(tta="flip").spec == EmbedderSpec(DEFAULT_EMBEDDER, "flip")
    assert ClusterConfig(embedder="facenet", tta="flip").spec == EmbedderSpec("facenet", "flip")
    assert AuditConfig(embedder="facenet").spec == EmbedderSpec("facenet")
    with pytest.raises(InputError, match="--tta"):
        FaceSetConfig(tta="sideways")
    for config in (EmbedConfig(tta="sideways"), ClusterConfig(tta="sideways")):
        with pytest.raises(InputError, match="--tta"):
            config.spec  # noqa: B018


def test_spec_builds_once_per_spec(registered) -> None:
    spec.clear_built()

    plain = EmbedderSpec("colour").build("cpu")
    assert EmbedderSpec("colour").build("cpu") is plain and plain.offset == -128.0
    assert EmbedderSpec("colour").build("auto") is not plain  # one per device
    shifted = EmbedderSpec("colour", options={"offset": 2.0}).build("cpu")
    assert shifted is not plain and shifted.offset == 2.0  # the options reach the builder
    flipped = EmbedderSpec("colour", "flip", {"offset": 2.0}).build("cpu")
    assert isinstance(flipped, FlipTTA) and flipped.base.offset == 2.0
    assert EmbedderSpec("colour", "flip", {"offset": 2.0}).build("cpu") is flipped
    g = Gallery(embedder={"name": "colour", "tta": "flip", "options": {"offset": 2.0}})
    assert g.spec.build("cpu") is flipped  # a gallery's options are kept too
    # a new registration of the name: built again by the new builder
    register_embedder("colour", lambda device="auto", **o: MeanColourEmbedder("colour", **o),
                      registered)
    assert EmbedderSpec("colour").build("cpu") is not plain


def test_enroll_tta_flag_reaches_the_spec() -> None:
    from celebface.cli.main import build_parser
    from celebface.cli.options import config_from

    args = build_parser().parse_args(["enroll", "DATA", "--out", "G", "--tta", "flip"])
    config = config_from(EnrollConfig, args)
    assert config.spec == EmbedderSpec(DEFAULT_EMBEDDER, "flip") and config.embedder_options == {}
