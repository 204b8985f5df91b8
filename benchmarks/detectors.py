"""Detectors compared: YuNet against MTCNN (and HOG for speed) on real photos and 1080p footage.

    PYTHONPATH=src .venv/bin/python benchmarks/detectors.py [--pins-per-person 3]

1. **Agreement on photos** (five_celeb, all 118 raw photos; pins105-dev ``val``, the first
   ``--pins-per-person`` photos of each of the 105 people: tight crops): each detector
   through the one finder (its default minimum score, ``detect`` rule). Recall against MTCNN:
   the share of MTCNN's faces that YuNet finds too (a pair: box IoU >= 0.4, the two framings
   differ); on each pair the box IoU and the landmark error (mean point distance over the
   inter-ocular distance); photos with a face at all; the cosine between the dlib embeddings
   made from each detector's landmarks of the same face (how far the measured embedder
   constants move when the detector changes).
2. **Speed per image** at 360p and 1080p (crowd.mp4 frames resized; the finder's
   ``max_side`` set to the frame's longer side, so each detector sees every pixel).
3. **crowd.mp4** (1920x1080, 105 frames): faces found per frame by each detector and
   detection size (MTCNN at the video default of 320 px, larger sizes, YuNet at several
   sizes), against a count made by hand on frames 0, 50 and 100 (``HAND_COUNT``; annotated
   frames are written to ``results/detectors/`` to check each box by eye).
4. **The video pipeline on crowd.mp4** with a pins105-dev gallery (5 ``train`` photos of
   each of the 105 people; nobody in the clip is in it): faces a frame, named tracks (must be
   0) and frames/s end to end (decode, detect, track, embed, name), per detector.

Results: ``benchmarks/results/detectors.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
CROWD = DATA / "video" / "crowd.mp4"
#: Faces counted by hand on crowd.mp4 (looked at the full frames and 1000 x 380 zooms of the
#: middle): a face counts when at least one eye is visible (frontal or profile), not the back
#: of a head; ``partial``: faces mostly hidden or a few pixels wide in the background.
HAND_COUNT = {
    0: {"clear": 8, "partial": 1, "note": "woman front left, grey-haired woman, bald man "
        "with glasses, red-haired man, curly-haired woman, boy in blue hood, older man, man "
        "in profile on the right; partial: a small face behind the boy"},
    50: {"clear": 6, "partial": 1, "note": "white-haired woman, red-haired man, boy, older "
         "man, man with glasses, woman on the phone (small, right); partial: a face behind "
         "the older man"},
    100: {"clear": 7, "partial": 3, "note": "red-haired man, boy, curly-haired woman, older "
          "man, man with glasses, bald man on the right (turned), small woman behind him; "
          "partial: white-haired woman behind the red-haired man, a face in the doorway, "
          "one behind the man with glasses"},
}


def rgb_frames(step: int = 1) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(CROWD))
    out, i = [], 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if i % step == 0:
            out.append(np.ascontiguousarray(frame[:, :, ::-1]))
        i += 1
    return out


def iod(face) -> float:
    lm = np.asarray(face.landmarks, np.float64)
    return float(np.linalg.norm(lm[0] - lm[1]))


def pair_up(ref: list, other: list, min_iou: float = 0.4) -> list[tuple]:
    """Greedy pairs (ref face, other face) by box IoU."""
    from celebface.types import box_iou

    pairs, used = [], set()
    for r in sorted(ref, key=lambda f: -f.area):
        best, j = 0.0, None
        for k, o in enumerate(other):
            if k not in used and (v := box_iou(r.box, o.box)) > best:
                best, j = v, k
        if j is not None and best >= min_iou:
            used.add(j)
            pairs.append((r, other[j], best))
    return pairs


def agreement(name: str, images: list[np.ndarray]) -> dict:
    from celebface.detection import get_finder
    from celebface.recognition import EmbedderSpec

    mt = get_finder(detector="mtcnn", device="cpu")
    yu = get_finder(detector="yunet", device="cpu")
    emb = EmbedderSpec("dlib").build("cpu")
    t0 = time.perf_counter()
    a = [mt.find(im) for im in images]
    t1 = time.perf_counter()
    b = [yu.find(im) for im in images]
    t2 = time.perf_counter()
    ious, errs, cos, found = [], [], [], 0
    for im, fa, fb in zip(images, a, b, strict=True):
        pairs = pair_up(fa, fb)
        found += len(pairs)
        for r, o, v in pairs:
            ious.append(v)
            errs.append(float(np.linalg.norm(np.asarray(r.landmarks) - np.asarray(o.landmarks),
                                             axis=1).mean() / max(iod(r), 1e-6)))
        if pairs:
            r, o, _ = pairs[0]  # the largest MTCNN face
            va, vb = emb.embed([im, im], [r, o])
            cos.append(float(va @ vb))
    n_mt = sum(map(len, a))

    def q(x: list[float], p: float) -> float:
        return round(float(np.percentile(x, p)), 4) if x else float("nan")

    return {
        "set": name, "images": len(images),
        "photos_with_face": {"mtcnn": sum(1 for f in a if f), "yunet": sum(1 for f in b if f)},
        "faces": {"mtcnn": n_mt, "yunet": sum(map(len, b))},
        "recall_vs_mtcnn": round(found / max(n_mt, 1), 4),
        "box_iou": {"median": q(ious, 50), "p5": q(ious, 5)},
        "landmark_error_iod": {"median": q(errs, 50), "p95": q(errs, 95)},
        "dlib_cosine_same_face": {"median": q(cos, 50), "p5": q(cos, 5), "min": q(cos, 0)},
        "ms_per_image": {"mtcnn": round(1000 * (t1 - t0) / len(images), 1),
                         "yunet": round(1000 * (t2 - t1) / len(images), 1)},
    }


def transfer(per_person: int, embedder: str = "dlib") -> dict:
    """Whether ``embedder``'s measured pair threshold transfers to YuNet's landmarks (and to
    YuNet's faces with MTCNN's O-net landmarks, ``yunet+onet``):
    pins105-dev ``val`` photos embedded from each detector's largest face; same-person and
    different-person pairs scored at the registry's pair threshold (no TTA), and each
    detector's own TAR at a FAR of 0.1% and 1% (how well its landmarks separate people)."""
    from celebface.detection import get_finder
    from celebface.detection.finder import pick_face
    from celebface.recognition import EmbedderSpec
    from celebface.recognition.registry import embedder_config

    threshold = embedder_config(embedder).pair_threshold["none"]
    emb = EmbedderSpec(embedder).build("cpu")
    paths = pins_slice(per_person)
    people = np.array([p.parent.name for p in paths])
    images = load_rgb_files(paths)
    out: dict = {"embedder": embedder, "photos": len(paths), "threshold": threshold}
    vecs: dict[str, dict[int, np.ndarray]] = {}
    for det in ("mtcnn", "yunet", "yunet+onet"):
        finder = get_finder(detector=det, device="cpu")
        faces = [pick_face(finder.find(im)) for im in images]
        keep = [i for i, f in enumerate(faces) if f is not None]
        emb_ = emb.embed([images[i] for i in keep], [faces[i] for i in keep])
        vecs[det] = dict(zip(keep, np.asarray(emb_, np.float32), strict=True))
    # each detector with itself, and mtcnn (enrolled photos) x the others (video faces):
    # pairs of two different photos
    for name, (a, b) in {"mtcnn": ("mtcnn", "mtcnn"), "yunet": ("yunet", "yunet"),
                         "yunet+onet": ("yunet+onet", "yunet+onet"),
                         "mtcnn x yunet": ("mtcnn", "yunet"),
                         "mtcnn x yunet+onet": ("mtcnn", "yunet+onet")}.items():
        ia, ib = sorted(vecs[a]), sorted(vecs[b])
        sims = np.stack([vecs[a][i] for i in ia]) @ np.stack([vecs[b][i] for i in ib]).T
        same = people[ia][:, None] == people[ib][None, :]
        pairs = np.asarray(ia)[:, None] < np.asarray(ib)[None, :]
        s, d = sims[same & pairs], sims[~same & pairs]
        out[name] = {"faces": (len(ia), len(ib)), "same_pairs": int(s.size),
                     "diff_pairs": int(d.size),
                     "tar_at_threshold": round(float((s >= threshold).mean()), 4),
                     "far_at_threshold": round(float((d >= threshold).mean()), 5),
                     "same_median": round(float(np.median(s)), 4),
                     "diff_p99": round(float(np.percentile(d, 99)), 4),
                     **{f"tar_at_far_{far}": round(float((s >= np.quantile(d, 1 - far)).mean()),
                                                   4) for far in (0.001, 0.01)}}
        print(name, out[name], flush=True)
    return out


def load_rgb_files(paths: list[Path]) -> list[np.ndarray]:
    from celebface.io import read_image

    return [read_image(p).rgb for p in paths]


def five_celeb() -> list[np.ndarray]:
    return load_rgb_files(sorted(p for p in (DATA / "five_celeb").rglob("*")
                                 if p.suffix.lower() in (".jpg", ".jpeg", ".png")))


def pins_slice(per_person: int, split: str = "val") -> list[Path]:
    from celebface.io import read_splits

    root = DATA / "pins105-dev"
    by_person: dict[str, list[str]] = {}
    for (person, name), s in sorted(read_splits(root / "splits.csv").items()):
        if s == split:
            by_person.setdefault(person, []).append(name)
    return [root / p / n for p, names in sorted(by_person.items()) for n in names[:per_person]]


def speed(frames: list[np.ndarray], reps: int = 8) -> list[dict]:
    import cv2

    from celebface.detection import get_finder

    rows = []
    for label, size in (("360p", (640, 360)), ("1080p", (1920, 1080))):
        ims = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames[:reps]]
        for det in ("mtcnn", "yunet", "hog"):
            finder = get_finder(detector=det, device="cpu", max_side=max(size))
            finder.find(ims[0])  # warm
            t = time.perf_counter()
            n = sum(len(finder.find(im)) for im in ims)
            ms = 1000 * (time.perf_counter() - t) / len(ims)
            rows.append({"size": label, "detector": det, "ms_per_image": round(ms, 1),
                         "faces_per_image": round(n / len(ims), 2)})
            print(rows[-1], flush=True)
    return rows


CROWD_CONFIGS = [  # (detector, finder max_side, detector options)
    ("mtcnn", 320, {}), ("mtcnn", 1024, {}), ("mtcnn", 1920, {}),
    ("yunet", 320, {}), ("yunet", 640, {}), ("yunet", 1024, {}), ("yunet", 1920, {}),
    ("yunet", 1920, {"upscale": 1.5}),
]


#: The configurations whose hand-counted frames are drawn into results/detectors/.
SAVED = ("mtcnn@320", "yunet@640", "yunet@1024", "yunet@1920")


def crowd_counts(frames: list[np.ndarray], step: int) -> list[dict]:
    import cv2

    from celebface.detection import FaceFinder, FinderConfig, get_detector

    out_dir = RESULTS / "detectors"
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for det, side, options in CROWD_CONFIGS:
        detector = get_detector(det, device="cpu", max_side=0, **options)
        finder = FaceFinder(FinderConfig(detector=det, max_side=side, device="cpu"), detector)
        idx = list(range(0, len(frames), step))
        t = time.perf_counter()
        counts = {i: finder.find(frames[i]) for i in idx}
        ms = 1000 * (time.perf_counter() - t) / len(idx)
        label = f"{det}@{side}" + "".join(f",{k}={v}" for k, v in options.items())
        for i in HAND_COUNT if label in SAVED else ():
            if i in counts:
                im = np.ascontiguousarray(frames[i][:, :, ::-1])
                for f in counts[i]:
                    x1, y1, x2, y2 = (int(v) for v in f.box)
                    cv2.rectangle(im, (x1, y1), (x2, y2), (0, 255, 0), 3)
                    cv2.putText(im, f"{f.score:.2f}", (x1, y1 - 4), cv2.FONT_HERSHEY_SIMPLEX,
                                0.8, (0, 255, 0), 2)
                im = cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2),
                                interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(out_dir / f"crowd_{i:03d}_{label}.jpg"), im,
                            [cv2.IMWRITE_JPEG_QUALITY, 75])
        per = [len(counts[i]) for i in idx]
        rows.append({"config": label, "frames": len(idx),
                     "mean_faces": round(float(np.mean(per)), 2), "min": min(per),
                     "max": max(per), "ms_per_frame": round(ms, 1),
                     "hand_frames": {i: len(counts[i]) for i in HAND_COUNT if i in counts}})
        print(rows[-1], flush=True)
    return rows


def pins_gallery(tmp: Path, per_person: int = 5) -> Path:
    from celebface.gallery import EnrollConfig, enroll

    src = tmp / "people"
    for p in pins_slice(per_person, "train"):
        (src / p.parent.name).mkdir(parents=True, exist_ok=True)
        (src / p.parent.name / p.name).symlink_to(p)
    gallery = tmp / "gallery"
    enroll(src, gallery, config=EnrollConfig(detector="none"), progress=False)
    return gallery


def video_runs(gallery: Path, tmp: Path) -> list[dict]:
    from celebface.recognizer import Recognizer, RecognizerConfig
    from celebface.streaming import Source, VideoTracker, output_sinks, run_inputs

    rows = []
    for det, side in (("mtcnn", 320), ("yunet", 320), ("yunet", 640), ("yunet", 1024)):
        rec = VideoTracker(Recognizer(gallery, detector=det, config=RecognizerConfig(
            video_detect_side=side, device="cpu")))
        jsonl = tmp / f"{det}_{side}.jsonl"
        t = time.perf_counter()
        src = [Source("video", str(CROWD))]
        s = run_inputs(rec, src, output_sinks(src, jsonl=jsonl, progress=False))
        wall = time.perf_counter() - t
        records = [json.loads(line) for line in jsonl.read_text().splitlines()]
        faces = [len(r["faces"]) for r in records]
        named = {f.get("track_id") for r in records for f in r["faces"]
                 if f.get("identity") not in (None, "unknown")}
        named_faces = sum(1 for r in records for f in r["faces"]
                          if f.get("identity") not in (None, "unknown"))
        tracks = {f.get("track_id") for r in records for f in r["faces"]}
        rows.append({"detector": det, "detect_side": side, "frames": s.frames,
                     "faces_per_frame": round(float(np.mean(faces)), 2),
                     "tracks": len(tracks), "named_tracks": len(named),
                     "named_faces": named_faces, "fps": round(s.frames / wall, 2),
                     "stage_ms_per_frame": {k: round(v, 1)
                                            for k, v in rec.stats.per_frame_ms().items()}})
        print(rows[-1], flush=True)
    return rows


def fmt(r: dict) -> str:
    def md(x):
        return json.dumps(x)

    lines = ["# Detectors: YuNet against MTCNN", "",
             "`PYTHONPATH=src .venv/bin/python benchmarks/detectors.py "
             f"--pins-per-person {r['pins_per_person']}` on this project's 2-core x86_64 "
             "machine (no GPU), shared with other jobs: compare ratios within the run. "
             f"Total {r['seconds']:.0f} s.", "",
             "## 1. Agreement with MTCNN on photos (each detector's default minimum score)", "",
             "| set | photos | with a face: MTCNN / YuNet | faces: MTCNN / YuNet | recall vs "
             "MTCNN | box IoU median (p5) | landmark error / IOD median (p95) | dlib cosine, "
             "same face, median (p5, min) | ms/photo MTCNN / YuNet |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a in r["agreement"]:
        lines.append(
            f"| {a['set']} | {a['images']} | {a['photos_with_face']['mtcnn']} / "
            f"{a['photos_with_face']['yunet']} | {a['faces']['mtcnn']} / {a['faces']['yunet']} "
            f"| {a['recall_vs_mtcnn']:.1%} | {a['box_iou']['median']} ({a['box_iou']['p5']}) | "
            f"{a['landmark_error_iod']['median']} ({a['landmark_error_iod']['p95']}) | "
            f"{a['dlib_cosine_same_face']['median']} ({a['dlib_cosine_same_face']['p5']}, "
            f"{a['dlib_cosine_same_face']['min']}) | {a['ms_per_image']['mtcnn']} / "
            f"{a['ms_per_image']['yunet']} |")
    lines += ["", "## 2. Speed per image (whole frame, no shrinking)", "",
              "| size | detector | ms / image | faces / image |", "|---|---|---|---|"]
    lines += [f"| {s['size']} | {s['detector']} | {s['ms_per_image']} | {s['faces_per_image']} |"
              for s in r["speed"]]
    lines += ["", "## 3. crowd.mp4: faces found per frame (detector alone)", "",
              "Hand count (faces with an eye visible; partial: mostly hidden or tiny): "
              + "; ".join(f"frame {i}: {h['clear']} clear + {h['partial']} partial"
                          for i, h in HAND_COUNT.items()) + ".", "",
              "| detector @ max_side | frames | mean faces / frame | min-max | frames 0 / 50 / "
              "100 (hand: 8+1 / 6+1 / 7+3) | ms / frame |", "|---|---|---|---|---|---|"]
    for c in r["crowd"]:
        h = c["hand_frames"]
        lines.append(f"| {c['config']} | {c['frames']} | {c['mean_faces']} | {c['min']}-"
                     f"{c['max']} | {h.get(0, '-')} / {h.get(50, '-')} / {h.get(100, '-')} | "
                     f"{c['ms_per_frame']} |")
    if r.get("video"):
        lines += ["", "## 4. crowd.mp4 through the video pipeline, pins105-dev gallery "
                  "(105 people x 5 train photos)", "",
                  "| detector | detect side | frames | faces / frame | tracks | named tracks | "
                  "named faces | frames/s (1080p, end to end) | ms/frame by stage |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v in r["video"]:
            lines.append(f"| {v['detector']} | {v['detect_side']} | {v['frames']} | "
                         f"{v['faces_per_frame']} | {v['tracks']} | {v['named_tracks']} | "
                         f"{v['named_faces']} | {v['fps']} | {md(v['stage_ms_per_frame'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pins-per-person", type=int, default=3)
    ap.add_argument("--crowd-step", type=int, default=5,
                    help="every k-th frame for the detector-alone counts")
    ap.add_argument("--skip-video", action="store_true")
    ap.add_argument("--transfer-only", type=int, metavar="N", default=0,
                    help="only the threshold-transfer check on N val photos a person "
                         "(results/detectors_transfer[_EMBEDDER].json)")
    ap.add_argument("--embedder", default="dlib", help="the embedder of --transfer-only")
    args = ap.parse_args()
    if args.transfer_only:
        r = transfer(args.transfer_only, args.embedder)
        tag = "" if args.embedder == "dlib" else f"_{args.embedder}"
        (RESULTS / f"detectors_transfer{tag}.json").write_text(json.dumps(r, indent=1))
        return
    t0 = time.perf_counter()
    r: dict = {"pins_per_person": args.pins_per_person}
    r["agreement"] = [agreement("five_celeb", five_celeb()),
                      agreement(f"pins105-dev val ({args.pins_per_person}/person)",
                                load_rgb_files(pins_slice(args.pins_per_person)))]
    print(r["agreement"], flush=True)
    frames = rgb_frames()
    r["speed"] = speed(frames)
    r["crowd"] = crowd_counts(frames, args.crowd_step)
    if not args.skip_video:
        with tempfile.TemporaryDirectory() as tmp:
            gallery = pins_gallery(Path(tmp))
            r["video"] = video_runs(gallery, Path(tmp))
    r["seconds"] = time.perf_counter() - t0
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "detectors.json").write_text(json.dumps(r, indent=1, default=str))
    (RESULTS / "detectors.md").write_text(fmt(r))
    print(fmt(r))


if __name__ == "__main__":
    main()
