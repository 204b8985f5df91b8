"""A video track's appearance gate and name drop, measured on pins105-dev (any embedder).

**Gate** (``EmbedderConfig.track_gate``): a tracked face's new embedding stays on its track
when its cosine with one of the track's m latest views (m = 1 .. ``RECENT``,
:data:`celebface.streaming.tracker.RECENT`: all it has, up to that many) reaches the gate for
m; otherwise the track splits. Measured on the people of half A (``thresholds.halves``; the
video benchmark uses half B): each photo of each person is a probe; m other photos of the
same person (same person) and m photos of another person (different person), drawn at
random, stand for the track; the probe's best cosine with them is the score. Rule, for each
m: **the gate is the lowest cosine at which at most** ``--diff-rate`` **(1%) of the
different-person scores reach it** (the best of more views is higher, so the gate rises with
m); the same-person rejection there is reported. Photos of one person in pins105-dev are far more
varied than the frames of one track, so a video's same-person rejection is lower than this.

**Name drop** (``EmbedderConfig.name_drop``): a track's new view that scores more than the
drop under the one-view threshold for the track's name ends the name. Measured on galleries
of half A (up to 10 train photos a person, and one), their uncalibrated centroid threshold,
scored with the val photos: **the drop is the shortfall (threshold - own score) that at most**
``--genuine-rate`` **(1%) of the enrolled people's own val photos exceed**, the larger of the
two galleries'; reported: the share of other people's views it ends (each scored for the
enrolled person closest to it).

    .venv/bin/python benchmarks/track_gate.py --emb runs/pins_emb/dlib
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import numpy as np

from celebface.gallery import Gallery, policy_for
from celebface.gallery.matching import GalleryMatcher
from celebface.io import atomic_write_text
from celebface.streaming.tracker import RECENT
from embeddings import labels_of, load
from thresholds import halves

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def gate_scores(vec: np.ndarray, ids: np.ndarray, people: list[str], recent: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(same-person, different-person) best cosines of each probe with ``recent`` photos."""
    rows = {p: np.flatnonzero(ids == p) for p in people}
    same, diff = [], []
    for p in people:
        others = [q for q in people if q != p]
        for r in rows[p]:
            mates = rows[p][rows[p] != r]
            if len(mates) < recent:
                continue
            same.append(float(np.max(vec[rng.choice(mates, recent, replace=False)] @ vec[r])))
            q = others[int(rng.integers(len(others)))]
            diff.append(float(np.max(vec[rng.choice(rows[q], recent, replace=False)] @ vec[r])))
    return np.array(same), np.array(diff)


def gate_at(diff: np.ndarray, rate: float) -> float:
    """The lowest cosine (to 4 decimals) that at most ``rate`` of ``diff`` reach."""
    ordered = np.sort(diff)[::-1]
    k = int(np.floor(rate * len(ordered)))  # this many may reach it
    return float(np.ceil(ordered[k] * 1e4 + 1e-9) / 1e4)


def drop_scores(e: object, vec: np.ndarray, ids: np.ndarray, split: np.ndarray,
                people: list[str], per_person: int, model: str, tta: str
                ) -> tuple[float, np.ndarray, np.ndarray]:
    """(threshold, genuine shortfalls, other people's shortfalls to their closest person)."""
    g = Gallery(embedder={"name": model, "tta": tta})
    for p in people:
        rows = np.flatnonzero((ids == p) & (split == "train"))[:per_person]
        g.add(vec[rows], [p] * len(rows), [str(e.paths[i]) for i in rows])  # type: ignore[attr-defined]
    t = float(policy_for(g, "centroid").threshold)
    m = GalleryMatcher(g, "centroid", 5)
    names = list(m.names)
    gen = np.flatnonzero(np.isin(ids, people) & (split == "val"))
    s = np.asarray(m.scores(vec[gen]), np.float32)
    own = s[np.arange(len(gen)), [names.index(p) for p in ids[gen]]]
    strangers = np.flatnonzero(~np.isin(ids, people) & (split == "val"))
    closest = np.asarray(m.scores(vec[strangers]), np.float32).max(axis=1)
    return t, t - own, t - closest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, required=True)
    p.add_argument("--diff-rate", type=float, default=0.01)
    p.add_argument("--genuine-rate", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    e, vec, model, tta = load(args.emb)
    vec = vec / np.linalg.norm(vec, axis=1, keepdims=True)
    names, ids, split = labels_of(e)
    half_a, half_b = halves(names)
    rng = np.random.default_rng(args.seed)
    gates = {}
    for recent in range(1, RECENT + 1):
        same, diff = gate_scores(vec, ids, half_a, recent, rng)
        gate = gate_at(diff, args.diff_rate)
        gates[recent] = {
            "gate": gate, "pairs": len(same),
            "same_rejected": float(np.mean(same < gate)),
            "diff_accepted": float(np.mean(diff >= gate)),
            "diff_quantiles": {q: float(np.quantile(diff, q)) for q in (0.5, 0.9, 0.99, 0.999)},
            "same_quantiles": {q: float(np.quantile(same, q)) for q in (0.001, 0.01, 0.05, 0.5)},
            "old_0.88": {"same_rejected": float(np.mean(same < 0.88)),
                         "diff_accepted": float(np.mean(diff >= 0.88))}}
    track_gate = [gates[m]["gate"] for m in range(1, RECENT + 1)]
    # the people half A leaves out are strangers to its galleries; half A's val rows genuine
    shortfalls = {n: drop_scores(e, vec, ids, split, half_a, n, model, tta) for n in (10, 1)}
    own_drop = {n: float(np.ceil(np.quantile(g, 1 - args.genuine_rate) * 1e4) / 1e4)
                for n, (_, g, _) in shortfalls.items()}
    drop = max(own_drop.values())
    drops = {n: {"threshold": t, "drop": own_drop[n], "genuine": len(genuine),
                 "genuine_dropped": float(np.mean(genuine > drop)),
                 "genuine_under_threshold": float(np.mean(genuine > 0)),
                 "strangers": len(strangers),
                 "strangers_dropped": float(np.mean(strangers > drop))}
             for n, (t, genuine, strangers) in shortfalls.items()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    tag = "+".join(Path(part).name for part in str(args.emb).split("+"))
    load_avg = os.getloadavg()[0]
    meta = {"embeddings": str(args.emb), "embedder": model, "tta": tta, "recent": RECENT,
            "diff_rate": args.diff_rate, "genuine_rate": args.genuine_rate,
            "people_half_a": len(half_a), "people_half_b": len(half_b),
            "gates": gates, "drops": drops, "track_gate": track_gate,
            "name_drop": drop}
    atomic_write_text(RESULTS / f"track_gate_{tag}.json", json.dumps(meta, indent=1) + "\n")
    lines = [
        f"# Track gate and name drop: {model}, tta {tta}", "",
        f"`benchmarks/track_gate.py --emb {args.emb}` ({platform.machine()}, "
        f"{os.cpu_count()} cores, load {load_avg:.2f}); {len(half_a)} pins105-dev people "
        f"(half A; the video benchmark's people are half B). See the script's docstring.", "",
        "**track_gate = (" + ", ".join(f"{g:.4f}" for g in track_gate) + ")** (best cosine "
        f"with the track's 1 .. {RECENT} latest views; at most {100 * args.diff_rate:g}% of "
        "different-person probes reach it)."
        f" **name_drop = {drop:.4f}** (at most {100 * args.genuine_rate:g}% of a known "
        "person's views score this far under the threshold).", "",
        "| latest views | probes | gate | same person rejected | different person "
        "accepted | different: median / 99% / 99.9% | at the old 0.88: same rejected, "
        "different accepted |", "|---|---|---|---|---|---|---|"]
    for recent, r in gates.items():
        q = r["diff_quantiles"]
        lines.append(
            f"| {recent} | {r['pairs']} | {r['gate']:.4f} | {100 * r['same_rejected']:.2f}% | "
            f"{100 * r['diff_accepted']:.2f}% | {q[0.5]:.3f} / {q[0.99]:.3f} / {q[0.999]:.3f} "
            f"| {100 * r['old_0.88']['same_rejected']:.2f}%, "
            f"{100 * r['old_0.88']['diff_accepted']:.2f}% |")
    lines += ["", "| gallery photos a person | threshold | drop at 1% | own val views | "
              f"own views dropped at {drop:.4f} | own views under the threshold | "
              f"other people's views | their views dropped at {drop:.4f} |",
              "|---|---|---|---|---|---|---|---|"]
    for per_person, d in drops.items():
        lines.append(
            f"| {per_person} | {d['threshold']:.3f} | {d['drop']:.4f} | {d['genuine']} | "
            f"{100 * d['genuine_dropped']:.2f}% | "
            f"{100 * d['genuine_under_threshold']:.1f}% | {d['strangers']} | "
            f"{100 * d['strangers_dropped']:.1f}% |")
    atomic_write_text(RESULTS / f"track_gate_{tag}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
