"""dlib, SFace and their fusion compared on pins105-dev, in one run: the fusion weight chosen
on half A, then pairs, one-photo galleries (oracle thresholds) and speed on half B.

Halves are ``thresholds.halves`` (the people the uncalibrated tails are measured on, A, and the
held-out rest, B). Embeddings: ``celebface embed`` outputs of the same photos, one folder per
embedder (``benchmarks/split_fused.py`` makes them from one fused run).

1. **Fusion weight** (half A only): the SFace weight ``w`` of ``(1 - w) dlib + w SFace`` (the
   cosine of two fused vectors is that weighted mean, :mod:`celebface.recognition.fusion`)
   that maximises TAR at FAR 0.1% over every pair of half A's val photos; swept 0..1 by 0.05.
2. **Pairs** (half B val photos, every pair): EER, TAR at FAR 1% and 0.1%, and the accuracy on
   balanced pairs at the threshold tuned on half A pairs at FAR 1% (as ``verify`` uses it).
3. **One photo a person** (half B, ``--draws`` random draws): ``--people`` people enrolled from
   one random train photo (with its mirror image: the flip folders, as ``enroll`` does),
   ``--probes`` val photos each; closed-set top-1 over the enrolled; open set with every
   photo of the other half-B people as strangers: TAR at the threshold that gives FAR 1% and
   0.1% on those very strangers (oracle: this compares the networks, not threshold rules;
   ``small_gallery.py`` measures the uncalibrated rules).
4. **Speed**: faces a second of each embedder (chip cut + network, 1 torch thread, batches of
   ``--speed-batch``) on ``--speed-faces`` pins crops whose landmarks MTCNN found.

    .venv/bin/python benchmarks/embedders.py --emb runs/pins_emb

Writes ``benchmarks/results/embedders.md``/``.json`` and ``embedders.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from thresholds import halves

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
EMBEDDERS = ("dlib", "sface", "dlib+sface")


def roc(scores: np.ndarray, same: np.ndarray) -> dict:
    """EER and TAR at FAR 1% / 0.1% of pair ``scores`` (``same``: genuine pairs)."""
    imp = np.sort(scores[~same])[::-1]
    gen = scores[same]
    out = {}
    for far in (0.01, 0.001):
        t = imp[max(int(far * len(imp)) - 1, 0)]
        out[f"tar@{far:g}"] = float(np.mean(gen > t))
    ts = np.quantile(scores, np.linspace(0, 1, 2001))
    frr = np.array([np.mean(gen < t) for t in ts])
    far_ = np.array([np.mean(scores[~same] >= t) for t in ts])
    k = int(np.argmin(np.abs(frr - far_)))
    out["eer"] = float((frr[k] + far_[k]) / 2)
    return out


def all_pairs(vec: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    iu = np.triu_indices(len(vec), 1)
    s = np.einsum("ij,ij->i", vec[iu[0]], vec[iu[1]]) if len(vec) < 3000 else \
        (vec @ vec.T)[iu]
    return s, ids[iu[0]] == ids[iu[1]]


def threshold_at(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    imp = np.sort(scores[~same])[::-1]
    return float(imp[max(int(far * len(imp)) - 1, 0)])


def one_photo(vec, enrol, ids, split, half, people, probes, draws) -> dict:
    """Closed-set top-1 and oracle open-set TAR of one-photo galleries (module doc, 3)."""
    top1, tar1, tar01 = [], [], []
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        known = list(rng.choice(half, people, replace=False))
        gallery = []
        for person in known:
            rows = np.flatnonzero((ids == person) & (split == "train"))
            gallery.append(enrol[rng.choice(rows)])
        g = np.stack(gallery)
        probe_rows = np.concatenate([
            rng.choice(np.flatnonzero((ids == p) & (split == "val")), probes, replace=False)
            for p in known])
        s = vec[probe_rows] @ g.T
        truth = np.array([known.index(i) for i in ids[probe_rows]])
        best = s.argmax(1)
        top1.append(float(np.mean(best == truth)))
        strangers = np.isin(ids, [x for x in half if x not in known])
        ss = (vec[strangers] @ g.T).max(1)
        right = best == truth
        for far, acc in ((0.01, tar1), (0.001, tar01)):
            t = np.sort(ss)[::-1][max(int(far * len(ss)) - 1, 0)]
            acc.append(float(np.mean(right & (s.max(1) > t))))
    return {"top1": float(np.mean(top1)), "tar@0.01": float(np.mean(tar1)),
            "tar@0.001": float(np.mean(tar01)), "tar@0.01_std": float(np.std(tar1))}


def speed(names: list[str], paths: list[str], faces: int, batch: int) -> dict:
    """Faces a second of each embedder on the same faces (module doc, 4)."""
    import torch

    from celebface.detection import get_finder
    from celebface.io import read_image
    from celebface.recognition import EmbedderSpec

    torch.set_num_threads(1)
    finder = get_finder(device="cpu")
    images, found = [], []
    for p in paths:
        img = read_image(p, 1024).rgb
        f = finder.find(img)
        if f and f[0].landmarks is not None:
            images.append(img)
            found.append(f[0])
        if len(images) == faces:
            break
    out = {}
    for name in names:
        emb = EmbedderSpec(name).build("cpu")
        emb.embed(images[:batch], found[:batch])  # warm-up (weights loaded)
        t0 = time.perf_counter()
        for lo in range(0, len(images), batch):
            emb.embed(images[lo:lo + batch], found[lo:lo + batch])
        out[name] = len(images) / (time.perf_counter() - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, default=ROOT / "runs" / "pins_emb",
                   help="folder holding dlib, sface, dlib_flip and sface_flip")
    p.add_argument("--people", type=int, default=30)
    p.add_argument("--probes", type=int, default=5)
    p.add_argument("--draws", type=int, default=50)
    p.add_argument("--speed-faces", type=int, default=256)
    p.add_argument("--speed-batch", type=int, default=16)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from celebface.recognition.fusion import fuse
    from embeddings import labels_of, load

    parts = {}
    for tta in ("none", "flip"):
        for name in ("dlib", "sface"):
            e, vec, _, _ = load(args.emb / (name + ("_flip" if tta == "flip" else "")))
            parts[(name, tta)] = vec
    names, ids, split = labels_of(e)
    ids, split = np.asarray(ids), np.asarray(split)
    half_a, half_b = halves(names)

    # 1. fusion weight on half A
    rows_a = np.flatnonzero(np.isin(ids, half_a) & (split == "val"))
    sweep = []
    for w in np.round(np.arange(0, 1.0001, 0.05), 2):
        v = fuse([parts[("dlib", "flip")][rows_a], parts[("sface", "flip")][rows_a]],
                 (1 - w, w)) if 0 < w < 1 else parts[("sface" if w else "dlib", "flip")][rows_a]
        s, same = all_pairs(v, ids[rows_a])
        sweep.append({"w": float(w), **roc(s, same)})
        logging.info("w %.2f: %s", w, sweep[-1])
    best = max(sweep, key=lambda r: (r["tar@0.001"], -r["eer"]))
    w = best["w"]

    def vectors(name: str, tta: str) -> np.ndarray:
        if name == "dlib+sface":
            return fuse([parts[("dlib", tta)], parts[("sface", tta)]], (1 - w, w))
        return parts[(name, tta)]

    # 2. pairs and 3. one-photo galleries on half B
    rows_b = np.flatnonzero(np.isin(ids, half_b) & (split == "val"))
    results = {}
    for name in EMBEDDERS:
        for tta in ("none", "flip"):
            v = vectors(name, tta)
            s_a, same_a = all_pairs(v[rows_a], ids[rows_a])
            t = threshold_at(s_a, same_a, 0.01)
            s, same = all_pairs(v[rows_b], ids[rows_b])
            rng = np.random.default_rng(0)
            gen = np.flatnonzero(same)
            imp = rng.choice(np.flatnonzero(~same), len(gen), replace=False)
            bal = np.r_[s[gen] >= t, s[imp] < t]
            results[f"{name}/{tta}"] = {"pairs": {**roc(s, same), "threshold_A": t,
                                                  "accuracy": float(bal.mean()),
                                                  "genuine": int(same.sum()),
                                                  "impostor": int((~same).sum())}}
        results[f"{name}/flip"]["one_photo"] = one_photo(
            vectors(name, "none"), vectors(name, "flip"), ids, split, half_b, args.people,
            args.probes, args.draws)
        logging.info("%s: %s", name, results[f"{name}/flip"])
    # 4. speed
    e_paths = list(e.paths)
    order = np.random.default_rng(0).permutation(len(e_paths))
    fps = speed(list(EMBEDDERS), [e_paths[i] for i in order], args.speed_faces,
                args.speed_batch)
    meta = {"emb": str(args.emb), "fusion_weight_sface": w, "sweep": sweep,
            "half_a": len(half_a), "half_b": len(half_b), "people": args.people,
            "probes": args.probes, "draws": args.draws, "faces_per_second": fps,
            "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores (shared)",
            "load_average": list(__import__("os").getloadavg()), "results": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embedders.json").write_text(json.dumps(meta, indent=1))
    plot(sweep, w)
    (RESULTS / "embedders.md").write_text(report(meta))
    print(report(meta))
    return 0


def plot(sweep: list[dict], w: float) -> None:
    from celebface.plots import subplots

    fig, ax = subplots(1, 1, figsize=(6, 3.5))
    ws = [r["w"] for r in sweep]
    ax.plot(ws, [100 * r["tar@0.001"] for r in sweep], "o-", label="TAR at FAR 0.1%")
    ax.plot(ws, [100 * r["tar@0.01"] for r in sweep], "s-", label="TAR at FAR 1%")
    ax.axvline(w, color="k", ls="--", label=f"chosen w = {w:g}")
    ax.set_xlabel("SFace weight w (0 = dlib alone, 1 = SFace alone)")
    ax.set_ylabel("% of genuine pairs")
    ax.set_title("Fusion weight, half A val pairs (flip)")
    ax.legend(fontsize=8)
    fig.savefig(RESULTS / "embedders.png", dpi=110, bbox_inches="tight")


def report(m: dict) -> str:
    r = m["results"]
    lines = [
        "# dlib, SFace and dlib+SFace on pins105-dev", "",
        f"Embeddings `{m['emb']}`. Half A ({m['half_a']} people) chose the fusion weight; "
        f"everything below is on half B ({m['half_b']} held-out people). Machine: "
        f"{m['machine']}, load {m['load_average'][0]:.1f}. "
        "Reproduce: `python benchmarks/embedders.py --emb runs/pins_emb`.", "",
        f"**Fusion weight** (TAR at FAR 0.1% over every pair of half A val photos, flip): "
        f"SFace {m['fusion_weight_sface']:g}, dlib {1 - m['fusion_weight_sface']:g} "
        "(`embedders.png`).", "",
        "**Pairs** (every pair of half B val photos; the threshold tuned on half A pairs at "
        "FAR 1%; accuracy on balanced pairs):", "",
        "| embedder | TTA | EER | TAR @ FAR 1% | TAR @ FAR 0.1% | accuracy (A threshold) |",
        "|---|---|---|---|---|---|"]
    for key, v in r.items():
        name, tta = key.split("/")
        pr = v["pairs"]
        lines.append(f"| {name} | {tta} | {100 * pr['eer']:.2f}% | {100 * pr['tar@0.01']:.1f}% "
                     f"| {100 * pr['tar@0.001']:.1f}% | {100 * pr['accuracy']:.2f}% |")
    lines += ["", f"**One photo a person** ({m['people']} half-B people enrolled from one "
              f"random train photo and its mirror, {m['probes']} val probes each, strangers "
              f"every photo of the other half-B people, {m['draws']} draws; oracle "
              "thresholds on those strangers, so this compares the networks):", "",
              "| embedder | closed-set top-1 | TAR @ FAR 1% | TAR @ FAR 0.1% | faces/s (1 "
              "thread) |", "|---|---|---|---|---|"]
    for name in EMBEDDERS:
        o = r[f"{name}/flip"]["one_photo"]
        lines.append(f"| {name} | {100 * o['top1']:.1f}% | {100 * o['tar@0.01']:.1f}% "
                     f"± {100 * o['tar@0.01_std']:.1f} | {100 * o['tar@0.001']:.1f}% | "
                     f"{m['faces_per_second'][name]:.1f} |")
    lines += ["", "Faces/s: chip cut + network, no TTA, one torch thread, on MTCNN-located "
              "pins crops, on the shared machine (compare within the run).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
