"""Which alignment gives dlib's ResNet the best chips? (issue: crop -> embed misaligns faces)

pins105-dev photos are tight crops; ``celebface crop`` on them (MTCNN, margin 0.2, 224 px,
``CROPS``) gives the crops a user of ``crop`` then ``embed`` has, plus every face's box and 5
landmarks in the manifest. For a subsample (``--train-per-id`` train rows per person, every val
row) each variant below makes a 150-px chip, dlib's network embeds it, and the variants are
compared by nearest-centroid and logistic-regression val accuracy and by open-set TAR at 1% FAR
(80 people enrolled, 25 strangers; thresholds calibrated on half of the strangers, 5 seeds).

Variants on the original photos: ``whole`` (the whole photo is the box given to dlib's 5-point
predictor: the old default for a folder of unknown origin), ``box`` (MTCNN's box), ``box+10``
(grown 10% a side), ``landmarks`` (a similarity transform from MTCNN's 5 landmarks straight to
dlib's chip template, no predictor). On the crops: ``crop-whole`` (the old default for
``crop`` -> ``embed``), ``crop-box`` and ``crop-landmarks`` (the face geometry the crop carries).

    .venv/bin/python benchmarks/align.py --crops runs/pins_crop [--train-per-id 30]

Results: ``benchmarks/results/align.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
log = logging.getLogger("align")


def load_rows(crops: Path, per_id: int) -> list[dict]:
    from celebface.data import list_dataset
    from celebface.data.crops import face_from_row, read_manifest
    from celebface.io import read_splits

    splits = read_splits(PINS / "splits.csv")
    manifest = {r["source"]: r for r in read_manifest(crops)}
    done = [r["identity"] for r in manifest.values()]
    # identities the crop run has finished (a run still going: all but its last one)
    finished = set(done) - ({done[-1]} if len(set(done)) < 105 else set())
    rows, seen = [], {}
    for it in list_dataset(PINS):
        if it.identity not in finished:
            continue
        split = splits.get(it.key)
        if split == "train":
            seen[it.identity] = seen.get(it.identity, 0) + 1
            if seen[it.identity] > per_id:
                continue
        rel = Path(it.path).relative_to(PINS).as_posix()
        m = manifest.get(rel)
        rows.append({"path": str(it.path), "identity": it.identity, "split": split,
                     "face": face_from_row(m) if m else None,
                     "crop": str(crops / m["output"]) if m else None})
    return rows


def make_chips(rows: list[dict], variant: str, embedder, template: np.ndarray | None) -> list:
    from celebface.geometry import crop_matrix, map_face, similarity_transform, warp
    from celebface.io import read_image
    from celebface.types import Face

    chips = []
    for r in rows:
        face: Face | None = r["face"]
        on_crop = variant.startswith("crop-")
        if on_crop:
            if face is None:  # no crop made: the photo stands in (same for every variant)
                image, f = read_image(r["path"]).rgb, None
            else:
                image = read_image(r["crop"]).rgb
                f = map_face(face, crop_matrix(face, 0.2, 224))
            kind = variant[5:]
        else:
            image, f, kind = read_image(r["path"]).rgb, face, variant
        if kind == "whole" or f is None:
            chips.append(embedder.chip(image, None))
        elif kind == "box":
            chips.append(embedder.chip(image, f.with_(landmarks=None)))
        elif kind == "box+10":
            x1, y1, x2, y2 = f.box
            dx, dy = (x2 - x1) * 0.1, (y2 - y1) * 0.1
            chips.append(embedder.chip(image, Face((x1 - dx, y1 - dy, x2 + dx, y2 + dy))))
        elif kind == "landmarks":
            m = similarity_transform(f.landmarks, template)
            chips.append(warp(image, m, 150))
        else:
            raise ValueError(variant)
    return chips


def dlib_pipeline_chips(n: int) -> list[np.ndarray]:
    """Chips of ``n`` random pins photos made the way dlib itself does (HOG detector on the
    photo with a 25% border, 5-point predictor, ``get_face_chip``, padding 0.25)."""
    import random

    import dlib

    from celebface.data import list_dataset
    from celebface.io import read_image
    from celebface.models.store import dlib_model_path

    items = list_dataset(PINS)
    random.Random(0).shuffle(items)
    hog = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(dlib_model_path("shape_predictor_5")))
    chips = []
    for it in items[:n]:
        im = read_image(it.path).rgb
        pad = int(0.25 * max(im.shape[:2]))
        padded = np.pad(im, ((pad, pad), (pad, pad), (0, 0)))
        found = hog(padded, 1)
        if len(found) == 1:
            chips.append(dlib.get_face_chip(padded, sp(padded, found[0]), size=150,
                                            padding=0.25))
    return chips


def derive_template(chips: list[np.ndarray]) -> np.ndarray:
    """Mean MTCNN landmarks found in dlib-aligned chips (where one confident face is found)."""
    from celebface.detection import get_detector

    det = get_detector("mtcnn")
    pts = []
    for lo in range(0, len(chips), 64):
        for faces in det.detect_batch(chips[lo:lo + 64]):
            if faces and faces[0].score > 0.95 and faces[0].landmarks is not None:
                pts.append(faces[0].landmarks)
    arr = np.stack(pts)
    med = np.median(arr, 0)
    keep = np.abs(arr - med).max(axis=(1, 2)) < 6  # drop odd detections
    log.info("template from %d of %d chips", int(keep.sum()), len(chips))
    return arr[keep].mean(0)


def scores(vec: np.ndarray, ids: np.ndarray, split: np.ndarray, seeds: int = 5) -> dict:
    from sklearn.linear_model import LogisticRegression

    from celebface.gallery.calibration import open_set_rates
    from celebface.gallery.policy import threshold_for_far
    from celebface.recognition.base import l2_normalize

    tr, va = split == "train", split == "val"
    names = sorted(set(ids))
    cent = l2_normalize(np.stack([vec[tr & (ids == n)].mean(0) for n in names]))
    truth = np.array([names.index(i) for i in ids[va]])
    out = {"centroid": float(((vec[va] @ cent.T).argmax(1) == truth).mean())}
    clf = LogisticRegression(C=30.0, max_iter=2000).fit(vec[tr], ids[tr])
    out["logreg"] = float((clf.predict(vec[va]) == ids[va]).mean())
    tars = []
    for seed in range(seeds):
        order = np.random.default_rng(seed).permutation(names)
        n_known = round(len(names) * 80 / 105)
        n_cal = (len(names) - n_known) // 2
        known = order[:n_known]
        halves = (order[n_known:n_known + n_cal], order[n_known + n_cal:])
        k_idx = {n: i for i, n in enumerate(known)}
        c = cent[[names.index(n) for n in known]]
        gen = va & np.isin(ids, known)
        g_scores = vec[gen] @ c.T
        g_truth = np.array([k_idx[i] for i in ids[gen]])
        for cal, test in ((0, 1), (1, 0)):
            thr = threshold_for_far((vec[va & np.isin(ids, halves[cal])] @ c.T).max(1), 0.01)
            s = vec[va & np.isin(ids, halves[test])] @ c.T
            r = open_set_rates(np.concatenate([g_scores, s]),
                               np.concatenate([g_truth, -np.ones(len(s), np.int64)]), thr)
            tars.append(r.tar)
    out["tar@0.01"] = float(np.mean(tars))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--crops", type=Path, required=True, help="celebface crop output of pins")
    p.add_argument("--train-per-id", type=int, default=30)
    p.add_argument("--derive-template", type=int, default=0, metavar="N",
                   help="print the MTCNN-landmark template of dlib chips from N photos, exit")
    p.add_argument("--variants", nargs="+", default=[
        "whole", "box", "box+10", "landmarks", "crop-whole", "crop-box", "crop-landmarks"])
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from celebface.recognition.base import l2_normalize
    from celebface.recognition.dlib_resnet import DlibEmbedder, chip_template

    if args.derive_template:  # how CHIP_TEMPLATE_150 was made: MTCNN on dlib's own chips
        print(np.round(derive_template(dlib_pipeline_chips(args.derive_template)), 3).tolist())
        return 0
    rows = load_rows(args.crops, args.train_per_id)
    ids = np.array([r["identity"] for r in rows], dtype=object)
    split = np.array([r["split"] for r in rows], dtype=object)
    log.info("%d rows (%d without an MTCNN face)", len(rows),
             sum(r["face"] is None for r in rows))
    emb = DlibEmbedder()
    template = None
    results: dict = {}
    for variant in args.variants:
        t0 = time.perf_counter()
        if variant.endswith("landmarks") and template is None:
            template = chip_template()  # the shipped one (see --derive-template)
        chips = make_chips(rows, variant, emb, template)
        t1 = time.perf_counter()
        vec = l2_normalize(emb.embed_chips(chips))
        t2 = time.perf_counter()
        results[variant] = {**scores(vec, ids, split), "chip_ms": 1000 * (t1 - t0) / len(rows),
                            "net_ms": 1000 * (t2 - t1) / len(rows)}
        log.info("%s: %s", variant, results[variant])
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"rows": len(rows), "train_per_id": args.train_per_id,
           "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
           "template": None if template is None else np.round(template, 3).tolist(),
           "variants": results}
    (RESULTS / "align.json").write_text(json.dumps(doc, indent=1))
    lines = ["# Alignment study (dlib ResNet, pins105-dev)", "",
             f"{len(rows)} photos: {args.train_per_id} train rows per person enrolled/fitted, "
             "every val row scored; open set: 80 of 105 people enrolled, 25 strangers "
             "(thresholds on half of them), 5 seeds. `crops` = `celebface crop` of pins105-dev "
             f"(MTCNN, margin 0.2, 224 px). Command: `.venv/bin/python benchmarks/align.py "
             f"{' '.join(sys.argv[1:])}` ({doc['machine']}, shared with other jobs).", "",
             "| variant | centroid val | logreg val | TAR @ 1% FAR | chip ms |",
             "|---|---|---|---|---|"]
    for v, r in results.items():
        lines.append(f"| {v} | {100 * r['centroid']:.2f}% | {100 * r['logreg']:.2f}% | "
                     f"{100 * r['tar@0.01']:.1f}% | {r['chip_ms']:.1f} |")
    (RESULTS / "align.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
