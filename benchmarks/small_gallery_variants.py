"""One-photo galleries, uncalibrated: what else was tried to name more people (issue 24).

The same experiment as ``benchmarks/small_gallery.py`` (30 of the held-out half B of
pins105-dev enrolled from one random train photo each, 5 val probes each, the other 23 B
people's val photos as strangers, the same 20 draws), scored here with plain matrix products so
that each variant can change the enrolment vector or the score. Every variant's threshold comes
from its own impostor tail measured on half A (the 8 one-photo draws of
``benchmarks/thresholds.py``): ``t`` with ``30 x P_A(impostor >= t) = FAR``. Choices (weights)
are made on half A draws only (30 of A's 52 people from those enrolments, 20 draws); B is only
reported. Variants:

- *views*: the photo and its mirror (what enroll does), plus 4 or 8 jittered copies of the
  aligned chip (small shifts, scales, rotations, mirrored or not: dlib's "jitter" idea, as
  fixed views), all averaged; the views are embedded here (dlib, the default pipeline) for the
  ~1,000 photos the draws enrol, cached under ``--cache``;
- *mean-face offset* (adopted, ``celebface.gallery.policy.person_offsets``): one-photo scores
  minus ``w (v . mean face - reference)``;
- *FAR budget*: the tail-sum aimed at 0.75% instead of 0.5%;
- *gap*: the decision score ``s + w (s - runner-up)`` with its tail measured in 30-person
  galleries of A (it depends on the gallery size);
- *cohort*: ``s - b x`` the mean of the person's 5 highest similarities to the other enrolled
  people (needs 6+ people; tail from 30-person galleries of A);
- *centring*: ``b x`` the mean face subtracted from probes and gallery before the cosine.

    .venv/bin/python benchmarks/small_gallery_variants.py --emb runs/pins_emb/dlib \\
        --cache runs/smallgal2/.cache

Writes ``benchmarks/results/small_gallery_variants.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from thresholds import enrolled_rows, halves, tail

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "pins105-dev"
PEOPLE, PROBES, DRAWS, TAIL_DRAWS = 30, 5, 20, 8
#: jittered views of the aligned chip: (dx, dy pixels, scale, degrees, mirrored)
JITTERS = {
    "j1": (3, 0, 1.0, 0, False), "j2": (-3, 0, 1.0, 0, True),
    "j3": (0, 3, 1.0, 3, False), "j4": (0, -3, 1.0, -3, True),
    "j5": (0, 0, 0.95, 0, False), "j6": (0, 0, 1.05, 0, True),
    "j7": (2, -2, 1.03, -3, False), "j8": (-2, 2, 0.97, 3, True),
}
VIEWS = ("orig", "flip", *JITTERS)


#: What was concluded from the run of 2026-12-04 (dlib, tta none), printed under the table.
NOTES = """Notes (the 2026-12-04 run, dlib): the mean-face offset is adopted with w = 0.25.
On half A, w = 0.5 named 64.1% vs 62.2% at the same FAR (0.44%); the smaller correction was
kept because its tail held better (on B w = 0.5 gave 68.5% but FAR 0.76%, worst draw 2.02%;
both B rows were seen before the choice). Jittered views add 0.6-1.2 points on top of it
(scales: better in 16 of 20 draws) with the worst draw at 2.02% instead of 1.83%: not adopted
(enrolment would need chip-level views per embedder and re-measured tails for ~1 point). The
0.75% FAR budget names 68.9% but its worst draw is 2.02%, not near 1%: not adopted. The gap
(s + w x lead) raises TAR but its tail, measured in 30-person A galleries, does not hold on B
(FAR 0.71-1.20% aiming at 0.5%) and depends on the gallery size; issue 24 saw a fixed weight
fail on other strangers: not adopted. The cohort score needs 6+ enrolled people and its tail
also overshoots (0.69-0.82%). Centring probes and gallery on the mean face (b = 0.75) is the
strongest (70.6%, FAR 0.61%, worst 1.67%; on A 66.4% at 0.42%) but changes every score of
every gallery (all tails, calibration, many-photo people): left for a change of its own.
With every variant the worst of the 20 draws passes 1% FAR (about 550 strangers a draw: one
false accept is 0.18%); the mean stays near the 0.5% aimed at. Since then
(small_gallery.md): the strangers are every photo of the people not enrolled, and
one-photo people count as 1.5 people in the FAR budget on top of the offset
(BUCKET_FAR_WEIGHTS, chosen on half A)."""


def jitter(chip: np.ndarray, dx: float, dy: float, scale: float, degrees: float,
           mirrored: bool) -> np.ndarray:
    """``chip`` shifted, scaled and rotated about its centre (edges replicated), mirrored."""
    import cv2

    h, w = chip.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, scale)
    m[:, 2] += (dx, dy)
    out = cv2.warpAffine(chip, m, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
    return np.ascontiguousarray(out[:, ::-1] if mirrored else out)


class JitterViews:
    """A dlib embedder whose ``embed_views`` also knows the :data:`JITTERS` views."""

    def __init__(self, base) -> None:
        self.base, self.name, self.dim = base, base.name, base.dim

    def settings(self) -> dict:
        return self.base.settings()

    def embed_views(self, images, faces=None, views=("orig",)) -> dict[str, np.ndarray]:
        from celebface.recognition.base import l2_normalize

        faces = faces if faces is not None else [None] * len(images)
        chips = [self.base.chip(i, f) for i, f in zip(images, faces, strict=True)]
        out = {}
        for v in views:
            batch = (chips if v == "orig" else
                     [np.ascontiguousarray(c[:, ::-1]) for c in chips] if v == "flip" else
                     [jitter(c, *JITTERS[v]) for c in chips])
            out[v] = l2_normalize(self.base.embed_chips(batch))
        return out

    def embed(self, images, faces=None) -> np.ndarray:
        return self.embed_views(images, faces)["orig"]


def embed_views(paths: list[str], rows: np.ndarray, cache: Path) -> np.ndarray:
    """``(len(VIEWS), len(paths), 128)`` vectors, filled for ``rows`` (default pipeline:
    ``--detector none``, dlib), through the embedding engine and its cache."""
    from celebface.gallery.faces import FaceSetConfig, build_detector, open_faces
    from celebface.recognition.engine import EmbedConfig, EmbeddingEngine

    dataset = open_faces(DATA)
    where = {Path(it.path).parts[-2:]: it for it in dataset.items}
    items = [where[Path(paths[r]).parts[-2:]] for r in rows]
    config = FaceSetConfig(detector="none")
    embedder, finder = config.spec.build(config.device), build_detector(config)
    run = EmbedConfig(embedder=config.embedder, workers=1, batch_size=32,
                      faces=config.face_rule, progress=True)
    engine = EmbeddingEngine(JitterViews(embedder), cache, run, views=VIEWS, detector=finder,
                             max_side=config.max_side)
    list(engine.run(dataset, items))
    if engine.errors:
        raise SystemExit(f"could not embed: {engine.errors}")
    keys, _ = engine._keys(dataset, items)
    out = np.zeros((len(VIEWS), len(paths), 128), np.float32)
    for v, view in enumerate(VIEWS):
        out[v, rows] = np.stack([engine.caches[view].get(k) for k in keys])
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class Experiment:
    """The draws (A: tails and choices, B: report) and the scoring of a variant."""

    def __init__(self, vec, ids, split, names) -> None:
        self.vec, self.ids, self.split = vec, ids, split
        self.half_a, self.half_b = halves(names)
        rng = np.random.default_rng(99)  # thresholds.py's one-photo tail draws
        self.tail_draws = [(list(self.half_a), enrolled_rows(ids, split, self.half_a, 1, rng))
                           for _ in range(TAIL_DRAWS)]
        self.b_draws = [self._draw(self.half_b, np.random.default_rng(s), None)
                        for s in range(DRAWS)]
        self.a_draws = [self._draw(self.half_a, np.random.default_rng(100 + s),
                                   self.tail_draws[s % TAIL_DRAWS][1]) for s in range(DRAWS)]
        rows = self.split == "train"
        self.mean_face = unit(vec[rows & np.isin(ids, self.half_a)].mean(0))

    def _draw(self, people, rng, enrolled):
        """As small_gallery.py draws (B); on A from the tail draws' enrolled photos."""
        known = list(rng.choice(people, PEOPLE, replace=False))
        if enrolled is None:
            rows = enrolled_rows(self.ids, self.split, known, 1, rng)
        else:
            rows = enrolled & np.isin(self.ids, known)
        gen = np.concatenate([rng.choice(np.flatnonzero((self.ids == p) & (self.split == "val")),
                                         PROBES, replace=False) for p in known])
        return known, rows, gen

    def needed_rows(self) -> np.ndarray:
        need = np.zeros(len(self.ids), bool)
        for _, rows, *_ in self.tail_draws + self.b_draws:
            need |= rows
        return np.flatnonzero(need)

    def gallery(self, enrol, known, rows) -> np.ndarray:
        r = np.flatnonzero(rows)
        return enrol[[int(r[self.ids[r] == p][0]) for p in known]]

    def tail(self, enrol, score, size: int | None = None):
        """One-person impostor tail of ``score`` on half A (``size``: from galleries of that
        many A people, 4 random ones per tail draw, for scores that depend on the gallery)."""
        rng, out = np.random.default_rng(7), []
        for known, rows in self.tail_draws:
            for sub in ([known] if size is None else
                        [list(rng.choice(known, size, replace=False)) for _ in range(4)]):
                probes = np.isin(self.ids, known) & (self.split == "val")
                s = score(self.gallery(enrol, sub, rows), self.vec[probes])
                own = np.array([sub.index(i) if i in sub else -1 for i in self.ids[probes]])
                mask = np.ones_like(s, bool)
                mask[np.flatnonzero(own >= 0), own[own >= 0]] = False
                out.append(s[mask])
        return tail(np.concatenate(out))

    def rates(self, enrol, score, tail_, far: float, half: str = "B") -> dict:
        from celebface.gallery.policy import tail_threshold

        draws, people = (self.b_draws, self.half_b) if half == "B" else (self.a_draws,
                                                                         self.half_a)
        t = tail_threshold(tail_, far / PEOPLE)
        tar, fa, ideal = [], [], []
        for known, rows, gen in draws:
            g = self.gallery(enrol, known, rows)
            strangers = np.isin(self.ids, [p for p in people if p not in known]) & (
                self.split == "val")
            sg, ss = score(g, self.vec[gen]), score(g, self.vec[strangers]).max(1)
            right = sg.argmax(1) == np.array([known.index(i) for i in self.ids[gen]])
            tar.append(np.mean(right & (sg.max(1) >= t)))
            fa.append(np.mean(ss >= t))
            ideal.append(np.mean(right & (sg.max(1) > np.quantile(ss, 0.99, method="higher"))))
        return {"threshold": t, "tar": float(np.mean(tar)), "tar_sd": float(np.std(tar)),
                "far": float(np.mean(fa)), "far_worst": float(np.max(fa)),
                "ideal_tar": float(np.mean(ideal)), "tar_draws": [float(x) for x in tar]}


def cosine(g, p):
    return p @ g.T


def offset(face, ref, w):
    return lambda g, p: p @ g.T - w * (g @ face - ref)[None, :]


def gap(base, w):
    def score(g, p):
        s = base(g, p)
        top2 = np.sort(s, 1)[:, -2:]
        other = np.where(s >= top2[:, [1]], top2[:, [0]], top2[:, [1]])
        return s + w * (s - other)
    return score


def cohort(b, k: int = 5):
    def score(g, p):
        sim = g @ g.T
        np.fill_diagonal(sim, -1)
        return p @ g.T - b * np.sort(sim, 1)[:, -k:].mean(1)[None, :]
    return score


def centred(face, b):
    return lambda g, p: unit(p - b * face) @ unit(g - b * face).T


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, required=True, help="celebface embed of pins105-dev")
    p.add_argument("--cache", type=Path, required=True, help="cache of the embedded views")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from celebface.gallery.policy import DEFAULT_FAR, ONE_PHOTO_MEAN_FACE_WEIGHT
    from celebface.recognition.registry import measured
    from embeddings import labels_of, load

    e, vec, model, tta = load(args.emb)
    names, ids, split = labels_of(e)
    x = Experiment(vec, ids, split, names)
    views = embed_views(list(e.paths), x.needed_rows(), args.cache)
    rows = x.needed_rows()
    agree = float(np.min(np.sum(views[0, rows] * vec[rows], 1)))
    logging.info("orig view vs %s: min cosine %.6f", args.emb, agree)

    def enrol(names_):
        return unit(np.mean([views[VIEWS.index(v)] for v in names_], 0))

    mirror = enrol(("orig", "flip"))
    mean = measured(model, tta)["mean_face"]
    ref, face = mean["reference"], mean["vector"]
    face, w0 = np.asarray(face, np.float32), ONE_PHOTO_MEAN_FACE_WEIGHT
    far0 = DEFAULT_FAR
    variants = [  # (label, enrolment, score, far, tail gallery size)
        ("photo alone", enrol(("orig",)), cosine, far0, None),
        ("photo + mirror (before)", mirror, cosine, far0, None),
        (f"photo + mirror, mean-face offset w={w0} (adopted)", mirror, offset(face, ref, w0),
         far0, None),
        ("photo + mirror, mean-face offset w=0.5", mirror, offset(face, ref, 0.5), far0, None),
        (f"+ 4 shifted/rotated views (j1-4), offset w={w0}",
         enrol(("orig", "flip", "j1", "j2", "j3", "j4")), offset(face, ref, w0), far0, None),
        (f"+ 4 scaled views (j5-8), offset w={w0}",
         enrol(("orig", "flip", "j5", "j6", "j7", "j8")), offset(face, ref, w0), far0, None),
        (f"+ 8 jittered views, offset w={w0}", enrol(VIEWS), offset(face, ref, w0), far0, None),
        ("+ 8 jittered views, no offset", enrol(VIEWS), cosine, far0, None),
        (f"photo + mirror, offset w={w0}, FAR budget 0.75%", mirror, offset(face, ref, w0),
         0.0075, None),
        ("photo + mirror, no offset, FAR budget 0.75%", mirror, cosine, 0.0075, None),
    ]
    for w in (0.1, 0.25, 0.5):
        variants.append((f"photo + mirror, offset w={w0}, gap w={w} (tail: 30-person A)",
                         mirror, gap(offset(face, ref, w0), w), far0, PEOPLE))
    for b in (0.25, 0.5):
        variants.append((f"photo + mirror, cohort b={b} (tail: 30-person A)", mirror,
                         cohort(b), far0, PEOPLE))
    for b in (0.5, 0.75):
        variants.append((f"photo + mirror, centred b={b}", mirror, centred(face, b), far0,
                         None))
    results = []
    for label, enrolment, score, far, size in variants:
        t = x.tail(enrolment, score, size)
        results.append({"variant": label, "far_budget": far,
                        "A": x.rates(enrolment, score, t, far, "A"),
                        "B": x.rates(enrolment, score, t, far, "B")})
        logging.info("%s: B TAR %.3f", label, results[-1]["B"]["tar"])
    base = results[2]["B"]["tar_draws"]
    for r in results:
        r["B"]["better_draws"] = int(np.sum(np.array(r["B"]["tar_draws"]) > np.array(base)))
        r["B"]["worse_draws"] = int(np.sum(np.array(r["B"]["tar_draws"]) < np.array(base)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {"embeddings": str(args.emb), "embedder": f"{model}, tta {tta}",
            "orig_view_min_cosine": agree, "results": results}
    (RESULTS / "small_gallery_variants.json").write_text(json.dumps(meta, indent=1))
    lines = ["# One-photo galleries, uncalibrated: variants (issue 24)", "",
             f"`benchmarks/small_gallery_variants.py --emb {args.emb}` ({model}, tta {tta}): "
             f"{PEOPLE} held-out people (half B) enrolled from one random train photo each, "
             f"{PROBES} val probes each, strangers the other B people's val photos, the "
             f"{DRAWS} draws of benchmarks/small_gallery.py; every threshold from the "
             "variant's own impostor tail measured on half A (module doc). Half A columns: "
             f"{DRAWS} draws of {PEOPLE} A people (where weights were chosen). *vs adopted*: "
             "draws with higher / lower B TAR than the adopted row (paired).", "",
             "| variant | FAR budget | threshold | TAR (B) | FAR (B, worst) | ideal TAR at 1% "
             "FAR (B) | vs adopted | TAR (A) | FAR (A, worst) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        a, b = r["A"], r["B"]
        lines.append(
            f"| {r['variant']} | {100 * r['far_budget']:.2f}% | {b['threshold']:.4f} | "
            f"{100 * b['tar']:.1f}% ± {100 * b['tar_sd']:.1f} | {100 * b['far']:.2f}% "
            f"({100 * b['far_worst']:.2f}%) | {100 * b['ideal_tar']:.1f}% | "
            f"+{b['better_draws']} / -{b['worse_draws']} | {100 * a['tar']:.1f}% | "
            f"{100 * a['far']:.2f}% ({100 * a['far_worst']:.2f}%) |")
    lines += ["", NOTES]
    (RESULTS / "small_gallery_variants.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
