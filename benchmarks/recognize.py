"""Recognition benchmark: open-set accuracy on pins105-dev and video speed.

Open set: 80 identities enrolled from their train rows, 25 held out as strangers. The
threshold is calibrated on half of the strangers (all their photos) and tested on the other
half (2-fold over the strangers, so no threshold is tuned on the strangers it is tested on),
repeated over several random identity splits. Genuine probes: the val rows of the 80 enrolled
identities. Uses precomputed embeddings (``celebface embed``) from runs/pins_emb/.

Speed: a synthetic 640x480 video (real pins face crops pasted on a background, moving) with 1
and 4 faces; frames/s per stage and end to end, with and without the tracker.

    .venv/bin/python benchmarks/recognize.py [--emb runs/pins_emb/dlib] [--frames 60]
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

from celebface.gallery import Gallery, GalleryMatcher, open_set_rates, policy_for
from celebface.gallery.calibration import (
    CV_FOLDS,
    choose_gap_weight,
    cross_validate_gap_weights,
    stranger_folds,
    truth_indices,
)
from celebface.gallery.policy import best_scores, threshold_for_far
from celebface.io import atomic_write_json, atomic_write_text, read_image
from celebface.recognition import load_embeddings
from embeddings import load

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
#: The gap weight `celebface calibrate` used before it chose one by cross-validation.
FIXED_GAP = 1 / 3
#: name: (match method, k, gap weight of the decision score, see celebface.gallery.matching;
#: None: chosen as `celebface calibrate` does, by cross-validation over the calibration
#: strangers' people)
METHODS = {"centroid": ("centroid", 1, 0.0), "knn": ("knn", 1, 0.0), "topk3": ("topk", 3, 0.0),
           "topk5": ("topk", 5, 0.0),
           "centroid + gap 1/3": ("centroid", 1, FIXED_GAP),
           "centroid + CV gap": ("centroid", 1, None),
           "topk5 + gap 1/3": ("topk", 5, FIXED_GAP),
           "topk5 + CV gap": ("topk", 5, None)}
#: The gap weights compared (calibrated TAR).
GAP_GRID = (0.0, 0.1, 0.2, 1 / 3, 0.5, 0.7)
GAP_METHODS = {f"{m} gap {g:.2g}": (kind, k, g) for m, (kind, k) in
               (("centroid", ("centroid", 1)), ("topk5", ("topk", 5))) for g in GAP_GRID}
FARS = (0.01, 0.001)
#: Photos per enrolled person for the gallery-size table (None: all train rows, ~116).
CAPS = (5, 10, 20, 50, None)
CAP_METHODS = {m: METHODS[m] for m in ("centroid", "topk5", "centroid + CV gap",
                                        "topk5 + CV gap")}


def cv_gap(gen_scores: np.ndarray, truth_gen: np.ndarray, cal_scores: np.ndarray,
           cal_ids: np.ndarray, far: float) -> float:
    """The gap weight `celebface calibrate` would choose: cross-validation over the people of
    the calibration strangers, with the even-numbered genuine probes for the TAR (all genuine
    probes are scored afterwards: a 5-way choice seen by half of them)."""
    half = np.arange(len(gen_scores)) % 2 == 0
    scores = np.concatenate([gen_scores[half], cal_scores])
    truth = np.concatenate([truth_gen[half], -np.ones(len(cal_scores), np.int64)])
    fold = np.concatenate([np.full(half.sum(), -1),
                           stranger_folds(list(cal_ids), min(CV_FOLDS, len(set(cal_ids))))])
    return choose_gap_weight(cross_validate_gap_weights(scores, truth, fold, far), far).gap_weight


def open_set(emb_dir: Path, seeds: int, cap: int | None = None,
             methods: dict[str, tuple[str, int, float]] = METHODS) -> dict:
    """Open-set rates with 80 people enrolled (their first ``cap`` train rows when given)."""
    e, vec, model, tta = load(emb_dir)
    embedder = {"name": model, "options": {"tta": tta} if tta != "none" else {}}
    names = list(e.label_names)
    ids = np.array([names[int(i)] for i in e.labels], dtype=object)
    splits = np.array(e.splits if e.splits is not None else ["?"] * len(ids), dtype=object)
    train_rank = np.zeros(len(ids), np.int64)  # a row's place among its person's train rows
    for name in names:
        rows = np.flatnonzero((ids == name) & (splits == "train"))
        train_rank[rows] = np.arange(len(rows))
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        order = rng.permutation(names)
        known, strangers = set(order[:80]), list(order[80:])
        halves = [set(strangers[:12]), set(strangers[12:])]
        enrolled = np.array([i in known for i in ids]) & (splits == "train")
        if cap is not None:
            enrolled &= train_rank < cap
        genuine = np.array([i in known for i in ids]) & (splits == "val")
        g = Gallery(embedder=embedder)
        g.add(vec[enrolled], list(ids[enrolled]), [str(i) for i in np.flatnonzero(enrolled)])
        truth_gen = truth_indices(list(ids[genuine]), g.names)
        for method, (kind, k, fixed_gap) in methods.items():
            m = GalleryMatcher(g, kind, k)
            gen_scores = m.scores(vec[genuine])
            acc = float((gen_scores.argmax(1) == truth_gen).mean())
            row: dict = {"closed_set_accuracy": acc}
            default_thr = policy_for(g, kind).threshold  # uncalibrated: on the similarity (gap 0)
            stranger_scores = m.scores(vec[np.array([i in set(strangers) for i in ids])])
            r = open_set_rates(
                np.concatenate([gen_scores, stranger_scores]),
                np.concatenate([truth_gen, -np.ones(len(stranger_scores), np.int64)]),
                default_thr)
            row.update({"default_threshold": default_thr, "tar@default": r.tar,
                        "far@default": r.far})
            for far in FARS:
                tars, fars, thrs, gaps = [], [], [], []
                for cal, test in ((0, 1), (1, 0)):
                    cal_mask = np.array([i in halves[cal] for i in ids])
                    test_mask = np.array([i in halves[test] for i in ids])
                    cal_scores = m.scores(vec[cal_mask])
                    weight = (cv_gap(gen_scores, truth_gen, cal_scores, ids[cal_mask], far)
                             if fixed_gap is None else fixed_gap)
                    gaps.append(weight)
                    thr = threshold_for_far(best_scores(cal_scores, weight)[0], far)
                    scores = np.concatenate([gen_scores, m.scores(vec[test_mask])])
                    truth = np.concatenate([truth_gen, -np.ones(test_mask.sum(), np.int64)])
                    r = open_set_rates(scores, truth, thr, weight)
                    tars.append(r.tar)
                    fars.append(r.far)
                    thrs.append(thr)
                row[f"threshold@{far:g}"] = float(np.mean(thrs))
                row[f"gap@{far:g}"] = float(np.mean(gaps))
                row[f"tar@{far:g}"] = float(np.mean(tars))
                row[f"measured_far@{far:g}"] = float(np.mean(fars))
            runs[method].append(row)
        logging.info("seed %d done", seed)
    n_gen = int(genuine.sum())
    summary = {}
    for method, rows in runs.items():
        summary[method] = {
            key: {"mean": float(np.mean([r[key] for r in rows])),
                  "std": float(np.std([r[key] for r in rows]))}
            for key in rows[0]
        }
    return {"embeddings": str(emb_dir), "embedder": model, "tta": tta, "seeds": seeds,
            "cap": cap, "genuine_probes_last_seed": n_gen, "methods": summary}


def speed(n_frames: int, emb_dir: Path) -> dict:
    from celebface.detection import get_detector
    from celebface.recognition import EmbedderSpec
    from celebface.recognizer import Recognizer, RecognizerConfig
    from celebface.streaming import VideoTracker
    from celebface.streaming.synthetic import moving_faces

    e = load_embeddings(emb_dir)
    g = Gallery(embedder={"name": "dlib"})
    g.add(e.embeddings, [e.label_names[int(i)] for i in e.labels], list(e.paths))
    g.thresholds["centroid"] = 0.9
    val = [p for p, s in zip(e.paths, e.splits or [], strict=False) if s == "val"]
    rng = np.random.default_rng(0)
    picks = [val[i] for i in rng.choice(len(val), 4, replace=False)]
    crops = [read_image(p).rgb for p in picks]
    detector = get_detector("mtcnn", device="cpu")
    embedder = EmbedderSpec("dlib").build("cpu")
    out = {}
    for n_faces in (1, 4):
        video = moving_faces(crops[:n_faces], n_frames=n_frames, size=(640, 480),
                             face_height=150 if n_faces == 1 else 110, seed=n_faces)
        for track in (True, False):
            rec = VideoTracker(Recognizer(g, detector=detector, embedder=embedder, config=(
                RecognizerConfig(track=track, video_detect_side=320))))
            rec.process_frame(video.frames[0])  # warm-up (model loading)
            rec.reset()
            rec.stats.reset()
            found = 0
            start = time.perf_counter()
            for f in video.frames:
                found += len(rec.process_frame(f))
            total = time.perf_counter() - start
            ms = rec.stats.per_frame_ms()
            mode = "tracker" if track else "no_tracker"
            key = f"{n_faces}_face{'s' if n_faces > 1 else ''}_{mode}"
            out[key] = {
                "frames": len(video.frames),
                "fps_end_to_end": len(video.frames) / total,
                "ms_per_frame": {**{k: round(v, 2) for k, v in ms.items()},
                                 "total": round(1000 * total / len(video.frames), 2)},
                "faces_found_per_frame": found / len(video.frames),
                "embedded_per_frame": rec.stats.embedded / len(video.frames),
            }
            logging.info("%s: %.1f fps", key, out[key]["fps_end_to_end"])
    return out


def gap(r: dict, far: str) -> str:
    """The row's gap weight (mean over splits and folds)."""
    g = r.get(f"gap@{far}")
    return "-" if g is None else f"{g['mean']:.2f}"


def markdown(res: dict) -> str:
    lines = ["# Recognition benchmark", "",
             f"Machine: {res['machine']}. Run: `{res['command']}`.", ""]
    if "open_set" in res:
        o = res["open_set"]
        lines += [
            "## Open set (pins105-dev)", "",
            f"Run: `{o['command']}`"
            + "".join(f", then `{c}`" for c in o.get("appended", []))
            + ". 80 identities enrolled from their train rows; 25 held out as strangers. "
            "Genuine probes: val rows of the 80. Threshold calibrated on 12 (or 13) "
            "stranger identities and tested on the other 13 (or 12) - 2-fold over strangers, so "
            "no threshold sees its test strangers; mean ± std over "
            f"{o['runs'][0]['seeds']} random identity splits. `default` is the threshold an "
            "uncalibrated gallery uses, scored on all 25 strangers. `+ gap 1/3`: the "
            "calibrated threshold applies to the decision score similarity + 1/3 x "
            "(similarity - runner-up similarity) (`celebface.gallery.policy`; the weight "
            "`celebface calibrate` used to fix); `+ CV gap`: the weight chosen as `celebface "
            "calibrate` now does, by cross-validation over the calibration strangers' people "
            "(its TAR on half of the genuine probes; the mean chosen weight is in the "
            "`gap` columns); the uncalibrated default stays on the similarity.", ""]
        for run in o["runs"]:
            lines += [
                f"### {run.get('embedder', 'dlib')}, {run['tta']} TTA", "",
                "| method | closed-set acc | TAR @ 1% FAR | measured FAR | threshold | gap | "
                "TAR @ 0.1% FAR | measured FAR | threshold | gap | default: threshold, TAR, "
                "FAR |", "|---|---|---|---|---|---|---|---|---|---|---|"]
            for m, r in run["methods"].items():
                def f(key: str, r: dict = r) -> str:
                    return f"{r[key]['mean']:.4f} ± {r[key]['std']:.4f}"
                lines.append(
                    f"| {m}{' (reference)' if m == 'centroid' else ''} | "
                    f"{f('closed_set_accuracy')} | {f('tar@0.01')} | {f('measured_far@0.01')} | "
                    f"{r['threshold@0.01']['mean']:.3f} | {gap(r, '0.01')} | {f('tar@0.001')} | "
                    f"{f('measured_far@0.001')} | {r['threshold@0.001']['mean']:.3f} | "
                    f"{gap(r, '0.001')} | "
                    f"{r['default_threshold']['mean']:.3f}, {r['tar@default']['mean']:.4f}, "
                    f"{r['far@default']['mean']:.4f} |")
            lines.append("")
        if "gap_grid" in o:
            lines += ["### Gap weight (calibrated)", "",
                      "| embeddings | method | gap weight | TAR @ 1% FAR | TAR @ 0.1% FAR |",
                      "|---|---|---|---|---|"]
            for run in o["gap_grid"]:
                for m, r in run["methods"].items():
                    name, _, g = m.rpartition(" gap ")
                    lines.append(f"| {run.get('embedder', 'dlib')}, {run['tta']} TTA | {name} | "
                                 f"{g} | "
                                 f"{r['tar@0.01']['mean']:.4f} | {r['tar@0.001']['mean']:.4f} |")
            lines.append("")
        lines += [
            f"### Photos per enrolled person ({o['gallery_sizes'][0]['tta']} TTA)", "",
            "The same protocol with each of the 80 people enrolled from their first N train "
            "rows only.", "",
            "| photos per person | method | closed-set acc | TAR @ 1% FAR (calibrated) | "
            "default threshold: TAR, FAR |", "|---|---|---|---|---|"]
        for run in o["gallery_sizes"]:
            for m, r in run["methods"].items():
                lines.append(
                    f"| {run['cap'] or 'all (~116)'} | {m} | "
                    f"{r['closed_set_accuracy']['mean']:.4f} | {r['tar@0.01']['mean']:.4f} | "
                    f"{r['tar@default']['mean']:.4f}, {r['far@default']['mean']:.4f} |")
        lines.append("")
    if "speed" in res:
        lines += ["## Speed (synthetic 640x480 video, MTCNN on a 320-px copy + dlib, CPU)", "",
                  f"Run: `{res['speed_run']}`, torch threads {res.get('speed_torch_threads')}.",
                  "",
                  "| case | frames/s end to end | detect ms | embed ms | match ms | track ms | "
                  "total ms | embedded faces/frame |", "|---|---|---|---|---|---|---|---|"]
        for k, r in res["speed"].items():
            ms = r["ms_per_frame"]
            lines.append(f"| {k} | {r['fps_end_to_end']:.1f} | {ms['detect']} | {ms['embed']} | "
                         f"{ms['match']} | {ms['track']} | {ms['total']} | "
                         f"{r['embedded_per_frame']:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", nargs="+", type=Path,
                   default=[ROOT / "runs" / "pins_emb" / d for d in ("dlib", "dlib_flip")],
                   help="embedding folders (celebface embed of pins105-dev), one open-set "
                        "table each; the first one is also the speed test's gallery")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads for the speed test (default 0: torch's own default, "
                        "as the CLI uses; on a busy 2-core box 1 is faster)")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-open-set", action="store_true")
    p.add_argument("--append", action="store_true",
                   help="add the open-set tables of --emb to the stored results (no gallery-size "
                        "table) instead of replacing them")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for emb in args.emb:
        for part in str(emb).split("+"):
            if not (Path(part) / "face_embeddings.npy").is_file():
                print(f"{part}: no embeddings; run: celebface embed {DATA} --out {part}",
                      file=sys.stderr)
                return 2
    load = __import__("os").getloadavg()[0]
    res: dict = {"machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores "
                            f"(1-minute load average {load:.1f} at the start)",
                 "command": " ".join(["python", *sys.argv])}
    previous = RESULTS / "recognize.json"
    if previous.is_file():  # keep the part that is not rerun
        old = __import__("json").loads(previous.read_text(encoding="utf-8"))
        res.update({k: old[k] for k in ("open_set", "speed", "speed_torch_threads") if k in old})
        if "speed" in old:
            res["speed_run"] = old.get("speed_run", f"{old['command']}; {old['machine']}")
    if args.append and not args.skip_open_set:  # more embeddings, the rest kept
        o = res["open_set"]
        o["runs"] += [open_set(emb, args.seeds) for emb in args.emb]
        o["gap_grid"] += [open_set(emb, args.seeds, None, GAP_METHODS) for emb in args.emb]
        o["appended"] = [*o.get("appended", []), res["command"]]
    elif not args.skip_open_set:
        res["open_set"] = {"command": res["command"],
                           "runs": [open_set(emb, args.seeds) for emb in args.emb],
                           "gap_grid": [open_set(emb, args.seeds, None, GAP_METHODS)
                                        for emb in args.emb],
                           "gallery_sizes": [open_set(args.emb[0], args.seeds, cap, CAP_METHODS)
                                             for cap in CAPS]}
    if not args.skip_speed:
        import torch

        if args.threads > 0:
            torch.set_num_threads(args.threads)
        res["speed_torch_threads"] = torch.get_num_threads()
        res["speed"] = speed(args.frames, args.emb[0])
        res["speed_run"] = f"{res['command']}; {res['machine']}"
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "recognize.json", res)
    atomic_write_text(RESULTS / "recognize.md", markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
