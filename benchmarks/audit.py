"""Measure the near-duplicate bound, then audit the whole of pins105-dev.

Bound: --photos random pins105-dev TRAIN crops, each altered three ways (JPEG quality 60;
shrunk to 75% and re-encoded; 5% cut off the left and top edges) and paired with another photo
of the same person, embedded whole with dlib as ``celebface audit --detector none`` does. The
bound is the cosine that best separates photo-vs-copy from photo-vs-other-photo (balanced
accuracy), rounded down to 0.001.

Audit: ``audit(pins105-dev, --detector none)`` with that bound (embeddings cached: run
``celebface embed ../shared/data/pins105-dev --out runs/pins_emb`` first to share its cache).
Writes benchmarks/results/audit.md/.json; the sheets and findings stay in runs/pins_audit.

    python benchmarks/audit.py
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from celebface.audit import AuditConfig, audit
from celebface.io import atomic_write_text
from face_cache import DATA, ROOT, rows


def altered(path: str) -> list[np.ndarray]:
    img = Image.open(path).convert("RGB")
    out = []
    for kind in ("jpeg60", "shrink75", "cut5"):
        x = img
        if kind == "shrink75":
            x = img.resize((img.width * 3 // 4, img.height * 3 // 4), Image.Resampling.BILINEAR)
        elif kind == "cut5":
            x = img.crop((img.width // 20, img.height // 20, img.width, img.height))
        buf = io.BytesIO()
        x.save(buf, format="JPEG", quality=60 if kind == "jpeg60" else 85)
        out.append(np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")))
    return out


def measure_bound(data: Path, n: int, seed: int, embedder_name: str = "dlib") -> dict:
    """Cosines of photo vs altered copy (positives) and of photo vs another photo of the same
    person (negatives, nearly all distinct photos); the bound best separates them (balanced
    accuracy)."""
    from celebface.detection import get_finder
    from celebface.recognition import EmbedderSpec

    table = [(i, p) for s, i, p in rows(data) if s == "train"]
    rng = np.random.default_rng(seed)
    picked = [table[k] for k in rng.choice(len(table), n, replace=False)]
    others = []
    for identity, path in picked:
        same = [p for i, p in table if i == identity and p != path]
        others.append(same[int(rng.integers(len(same)))])
    embedder = EmbedderSpec(embedder_name).build("cpu")
    locate_faces = get_finder(device="cpu", rule="auto").locate
    copy_sims, other_sims = [], []
    for lo in range(0, n, 16):
        part = [p for _, p in picked[lo:lo + 16]]
        load = [np.asarray(Image.open(p).convert("RGB")) for p in part + others[lo:lo + 16]]
        v = embedder.embed(load, locate_faces(load))  # faces found as every stage finds them
        v0, v2 = v[:len(part)], v[len(part):]
        copies = [c for p in part for c in altered(p)]
        v1 = embedder.embed(copies, locate_faces(copies)).reshape(len(part), 3, -1)
        copy_sims.append(np.einsum("id,ikd->ik", v0, v1))
        other_sims.append(np.einsum("id,id->i", v0, v2))
    s, o = np.concatenate(copy_sims), np.concatenate(other_sims)
    cands = np.unique(np.r_[s.ravel(), o])
    bal = [((s >= t).mean() + (o < t).mean()) / 2 for t in cands]
    bound = float(np.floor(cands[int(np.argmax(bal))] * 1000) / 1000)
    names = ("jpeg60", "shrink75", "cut5")
    return {"photos": n, "copies": int(s.size), "bound": bound,
            "copies_caught": round(float((s >= bound).mean()), 4),
            "other_photos_above": round(float((o >= bound).mean()), 4),
            "copy_percentiles": {str(q): round(float(np.percentile(s, q)), 4)
                                 for q in (1, 5, 10, 25, 50)},
            "other_percentiles": {str(q): round(float(np.percentile(o, q)), 4)
                                  for q in (50, 90, 95, 99)},
            "per_alteration_median": dict(zip(names, np.round(np.median(s, 0), 4).tolist(),
                                              strict=True)),
            "caught_at_0.995": round(float((s >= 0.995).mean()), 4),
            "other_above_0.995": round(float((o >= 0.995).mean()), 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--photos", type=int, default=100)
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "runs" / "pins_emb" / ".cache")
    ap.add_argument("--audit-out", type=Path, default=ROOT / "runs" / "pins_audit")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bound-file", type=Path, default=ROOT / "runs" / "near_bound.json",
                    help="the measured bound is kept here and reused by a rerun")
    ap.add_argument("--bound-only", action="store_true", help="measure the bound and stop")
    ap.add_argument("--embedder", default="dlib",
                    help="the embedder whose bound is measured (with --bound-only: written to "
                         "benchmarks/results/near_bound_<embedder>.json)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.embedder != "dlib" and not args.bound_only:
        raise SystemExit("--embedder goes with --bound-only (the audit itself is dlib's)")
    bound_file = args.bound_file if args.embedder == "dlib" else \
        args.out / f"near_bound_{args.embedder}.json"
    if bound_file.is_file():
        bound = json.loads(bound_file.read_text(encoding="utf-8"))
    else:
        bound = measure_bound(args.data, args.photos, args.seed, args.embedder)
        bound["seconds"] = round(time.perf_counter() - t0, 1)
        bound["embedder"] = args.embedder
        atomic_write_text(bound_file, json.dumps(bound, indent=2) + "\n")
    print(json.dumps(bound))
    if args.bound_only:
        return
    t1 = time.perf_counter()
    result = audit(args.data, args.audit_out, AuditConfig(
        detector="none", device="cpu", near_duplicate=bound["bound"],
        cache_dir=str(args.cache_dir)))
    seconds = time.perf_counter() - t1
    val_with_train_twin = {
        b: len({f for x in result.findings if x.kind == "near_duplicate_across_splits"
                and x.score >= b for f in x.files if _split(args.data, f) == "val"})
        for b in sorted({bound["bound"], 0.995})}
    out = {"bound": bound, "audit_seconds": round(seconds, 1),
           "photos": result.photos,
           "val_photos": sum(s == "val" for s, _, _ in rows(args.data)),
           "balance": result.balance, "counts": result.counts,
           "val_photos_with_a_train_near_duplicate": {str(k): v
                                                      for k, v in val_with_train_twin.items()},
           "examples": {k: [{"files": [Path(p).parent.name + "/" + Path(p).name
                                       for p in f.files],
                             "person": f.person, "score": round(f.score, 4)}
                            for f in result.findings if f.kind == k][:5]
                        for k in result.counts},
           "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared, busy)"}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "audit.json", json.dumps(out, indent=2) + "\n")
    atomic_write_text(args.out / "audit.md", report(out))
    print(report(out))


_SPLITS: dict[tuple[str, str], str] = {}


def _split(data: Path, path: str) -> str | None:
    if not _SPLITS:
        _SPLITS.update({(i, Path(p).name): s for s, i, p in rows(data)})
    p = Path(path)
    return _SPLITS.get((p.parent.name, p.name))


def report(r: dict) -> str:
    b, bal = r["bound"], r["balance"]
    lines = [
        "# Audit of pins105-dev (dlib, whole crops)", "",
        f"Near-duplicate bound, measured: {b['photos']} train crops, each altered three ways "
        f"({b['copies']} copies) and paired with another photo of the same person; the cosine "
        f"best separating copies from other photos is **{b['bound']:.3f}**: it catches "
        f"{b['copies_caught']:.1%} of the copies and {b['other_photos_above']:.1%} of the other"
        f" photos are above it (at 0.995: {b['caught_at_0.995']:.1%} and "
        f"{b['other_above_0.995']:.1%}). Copy cosine percentiles {b['copy_percentiles']}; "
        f"other-photo percentiles {b['other_percentiles']}; median per alteration "
        f"{b['per_alteration_median']}.", "",
        f"{r['photos']} photos of {bal['people']} people, {bal['min']}-{bal['max']} per person "
        f"(median {bal['median']}, max/min {bal['max_over_min']}). Audit time {r['audit_seconds']}"
        f" s (embeddings cached), machine: {r['machine']}.", "",
        "| finding | count |", "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in r["counts"].items()]
    lines += ["", "VAL photos with a near-identical TRAIN photo (any person): " + ", ".join(
        f"{v} at cosine >= {float(k):.3f}"
        for k, v in r["val_photos_with_a_train_near_duplicate"].items())
        + f" (of {r['val_photos']} val photos).", "", "Examples (highest score first):", ""]
    for kind, ex in r["examples"].items():
        lines.append(f"- **{kind}**: " + "; ".join(
            f"{' / '.join(e['files'])} ({e['score']})" for e in ex[:3]))
    lines += ["", "Reproduce: `celebface embed ../shared/data/pins105-dev --out runs/pins_emb` "
              "(cache), then `python benchmarks/audit.py`; sheets in runs/pins_audit/sheets/.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
