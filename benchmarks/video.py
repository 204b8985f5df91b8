"""Video benchmark: naming people through shots, shot cuts, and speed (640x360, 30 fps).

The clip: ``--shots`` shots of ``--shot-frames`` frames, each on its own background
(:func:`celebface.streaming.synthetic.moving_faces`: pins105-dev val photos moving), with 2-3
people a shot, drawn from ``--known`` enrolled people and ``--strangers`` people not in the
gallery, all of half B of pins105-dev's people (``thresholds.halves``: the uncalibrated tails
were measured on half A); a person can come back in the next shot at the same place (a track
must not carry over the cut). The gallery: ``--gallery-people`` people (the known ones among
them) enrolled from their *train* photos' embeddings (``celebface embed`` output, ``--emb``):
every train photo up to 10 (many-photo) or one (one-photo); the uncalibrated threshold the
gallery gives.

For each face of each frame the truth is its person (a face counts as found when an output
box's centre lies in its pasted photo). Reported per setting (detect every k frames; names per
track, per track with the one-view threshold whatever views it saw, or per frame): the share
of known faces' frames named correctly, the share of faces' frames given a wrong name
(strangers included), name changes inside a track, tracks that span a cut or two people, cut
detection (false/missed), frames/s, detector/embedder ms per frame and the share of faces
embedded.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/video.py --emb runs/pins_emb/dlib --threads 1
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from celebface.gallery import Gallery
from celebface.io import atomic_write_json, atomic_write_text, read_image
from celebface.types import UNKNOWN
from embeddings import load
from thresholds import halves

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SIZE = (640, 360)


@dataclass
class Clip:
    frames: list[np.ndarray]
    truth: list[list[tuple[str, tuple[float, float, float, float]]]]  # per frame: (person, box)
    shot_of: list[int]
    cuts: list[int]  # first frame of each shot but the first
    strangers: set[str]


def make_clip(e: object, known: list[str], strangers: list[str], shots: int, shot_frames: int,
              seed: int, views: int = 1, switch_every: int = 15) -> Clip:
    """Shots of 2-3 people moving over a background; each shows ``views`` val photos of its
    person in turn, ``switch_every`` frames each (1: one photo for the whole shot)."""
    from celebface.streaming.synthetic import moving_faces

    rng = np.random.default_rng(seed)  # who is in which shot: the same for any ``views``
    pick = np.random.default_rng(seed + 1)  # which photos
    names = [e.label_names[int(i)] for i in e.labels]  # type: ignore[attr-defined]
    val = defaultdict(list)
    for path, name, split in zip(e.paths, names, e.splits, strict=True):  # type: ignore[attr-defined]
        if split == "val":
            val[name].append(path)
    frames, truth, shot_of, cuts = [], [], [], []
    previous: list[str] = []
    for shot in range(shots):
        n = int(rng.integers(2, 4))
        pool = known if shot % 2 == 0 else known + strangers
        people = list(rng.choice(pool, n, replace=False))
        if shot and previous and shot % 3 == 1:  # the same person, same place, next shot
            people[0] = previous[0]
        if shot % 2 == 1 and not set(people) & set(strangers):
            people[-1] = str(rng.choice(strangers))
        crops = [[read_image(str(f)).rgb
                  for f in pick.choice(val[p], min(views, len(val[p])), replace=False)]
                 for p in people]
        video = moving_faces(crops, n_frames=shot_frames, size=SIZE, face_height=130,
                             speed=float(rng.uniform(2, 5)), seed=seed * 1000 + shot,
                             switch_every=switch_every if views > 1 else 0)
        if shot:
            cuts.append(len(frames))
        frames += video.frames
        truth += [list(zip(people, boxes, strict=True)) for boxes in video.boxes]
        shot_of += [shot] * shot_frames
        previous = people
    return Clip(frames, truth, shot_of, cuts, set(strangers))


def build_gallery(e: object, vec: np.ndarray, people: list[str], per_person: int,
                  embedder: dict | None = None) -> Gallery:
    names = np.array([e.label_names[int(i)] for i in e.labels])  # type: ignore[attr-defined]
    splits = np.array(e.splits)  # type: ignore[attr-defined]
    g = Gallery(embedder=embedder or {"name": "dlib"})
    for p in people:
        rows = np.flatnonzero((names == p) & (splits == "train"))[:per_person]
        g.add(vec[rows], [p] * len(rows), [str(e.paths[i]) for i in rows])  # type: ignore[attr-defined]
    return g


def score(clip: Clip, outputs: list[list]) -> dict:
    """Per-face-frame naming, switches inside tracks, tracks across cuts or people."""
    known_total = known_right = known_unknown = known_missed = wrong = faces_total = found = 0
    per_person: dict[str, Counter] = defaultdict(Counter)
    track_names: dict[int, list[str]] = defaultdict(list)
    track_shots: dict[int, set[int]] = defaultdict(set)
    track_people: dict[int, Counter] = defaultdict(Counter)
    for truth, faces, shot in zip(clip.truth, outputs, clip.shot_of, strict=True):
        for person, (x1, y1, x2, y2) in truth:
            faces_total += 1
            hit = [f for f in faces if x1 <= (f.box[0] + f.box[2]) / 2 <= x2
                   and y1 <= (f.box[1] + f.box[3]) / 2 <= y2]
            name = hit[0].identity if hit else None
            found += bool(hit)
            if person not in clip.strangers:
                known_total += 1
                known_right += name == person
                known_unknown += name == UNKNOWN
                known_missed += name is None
                per_person[person][name or "(not found)"] += 1
            if name not in (None, UNKNOWN, person):
                wrong += 1
            if hit and hit[0].track_id is not None:
                tid = hit[0].track_id
                track_names[tid].append(name or UNKNOWN)
                track_shots[tid].add(shot)
                track_people[tid][person] += 1
    changes = [(a, b) for v in track_names.values() for a, b in itertools.pairwise(v) if a != b]
    switches = sum(UNKNOWN not in pair for pair in changes)
    return {
        "face_frames": faces_total,
        "found": found / faces_total,
        "known_named_right": known_right / max(known_total, 1),
        "known_unknown": known_unknown / max(known_total, 1),
        "known_not_found": known_missed / max(known_total, 1),
        "known_per_person": {p: dict(c) for p, c in per_person.items()},
        "wrong_names": wrong / faces_total,
        "tracks": len(track_names),
        "switches": switches,
        "unknown_changes": len(changes) - switches,
        "switches_per_track": switches / max(len(track_names), 1),
        "tracks_across_cuts": sum(len(s) > 1 for s in track_shots.values()),
        "tracks_over_two_people": sum(len(c) > 1 for c in track_people.values()),
    }


def run_setting(clip: Clip, gallery: Gallery, detector: object, embedder: object, k: int,
                side: int, threshold: float | None = None, views: bool = True) -> list[dict]:
    """One pass; names per track (what the recogniser shows) and per frame (each face's
    latest embedding's own decision: what ``decide='frame'`` shows), scored alike.
    ``views=False``: the track's threshold stays the one-view threshold, whatever views it
    saw (the recogniser before the view offsets; its per-frame names are the same)."""
    from dataclasses import replace

    from celebface.recognizer import Recognizer, RecognizerConfig, TrackerConfig
    from celebface.streaming import VideoTracker

    cfg = RecognizerConfig(video_detect_side=side, threshold=threshold,
                           tracker=TrackerConfig(detect_every=k))
    rec = VideoTracker(Recognizer(gallery, detector=detector, embedder=embedder, config=cfg))
    if not views:
        rec.recognizer.policy = replace(rec.policy, same_view=-1.0, view_offsets=())
    rec.process_frame(clip.frames[0])  # warm-up
    rec.reset()
    rec.stats.reset()
    outputs, own = [], []
    seconds = 0.0
    for f in clip.frames:
        start = time.perf_counter()
        faces = rec.process_frame(f)
        seconds += time.perf_counter() - start
        outputs.append(faces)
        tracks = {t.id: t for t in rec.tracker.tracks}
        own.append([t.frame_match.apply(x) if (t := tracks.get(x.track_id)) and t.frame_match
                    else x for x in faces])
    n = len(clip.frames)
    true_cuts, found_cuts = set(clip.cuts), set(rec.cut_frames)
    ms = rec.stats.per_frame_ms()
    common = {
        "k": k, "detect_side": side, "threshold": rec.policy.threshold,
        "fps": n / seconds,
        "ms_per_frame": {key: round(v, 2) for key, v in ms.items()} | {
            "total": round(1000 * seconds / n, 2)},
        "embedded_share": rec.stats.embedded / max(rec.stats.faces, 1),
        "false_cuts": len(found_cuts - true_cuts), "missed_cuts": len(true_cuts - found_cuts),
    }
    if not views:
        return [{"decide": "track, 1 view", **common, **score(clip, outputs)}]
    return [{"decide": "track", **common, **score(clip, outputs)},
            {"decide": "frame", **common, **score(clip, own)}]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--emb", type=Path, default=ROOT.parent / "runs" / "pins_emb" / "dlib")
    p.add_argument("--shots", type=int, default=10)
    p.add_argument("--shot-frames", type=int, default=60)
    p.add_argument("--known", type=int, default=12)
    p.add_argument("--strangers", type=int, default=4)
    p.add_argument("--gallery-people", type=int, default=40)
    p.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 5])
    p.add_argument("--galleries", nargs="+", default=["many", "one"], choices=["many", "one"])
    p.add_argument("--views", type=int, nargs="+", default=[1, 3],
                   help="photos a person shows in a shot, in turn (1: one photo all shot)")
    p.add_argument("--detector", default="mtcnn", help="the video frames' face detector")
    p.add_argument("--detect-sides", type=int, nargs="+", default=[320],
                   help="longer side of the copy detection runs on")
    p.add_argument("--threshold", type=float,
                   help="unknown threshold (default: the gallery's uncalibrated one)")
    p.add_argument("--skip-one-view", action="store_true",
                   help="leave out the second pass whose tracks keep the one-view threshold")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "video")
    p.add_argument("--pool", type=Path, nargs="+", metavar="JSON",
                   help="only pool these runs' .json (clips of other seeds) into --out")
    args = p.parse_args()
    if args.pool:
        text = pooled_markdown([json.loads(f.read_text()) for f in args.pool])
        atomic_write_text(args.out.with_suffix(".md"), text)
        print(text)
        return
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("celebface").setLevel(logging.ERROR)
    import torch

    torch.set_num_threads(args.threads)
    from celebface.detection import get_detector
    from celebface.recognition import EmbedderSpec

    load_start = os.getloadavg()[0]
    e, vec, model, tta = load(args.emb)  # A+B: a fusion of two folders
    rng = np.random.default_rng(args.seed)
    # half B of benchmarks/thresholds.py: the uncalibrated tails were measured on half A
    held_out = sorted(halves(list(e.label_names))[1])
    order = list(rng.permutation(held_out))
    gallery_people = order[: args.gallery_people]
    known = gallery_people[: args.known]
    strangers = order[args.gallery_people: args.gallery_people + args.strangers]
    detector = get_detector(args.detector, device="cpu")
    embedder = EmbedderSpec(model, tta).build("cpu")
    rows, clips = [], {}
    for views in args.views:
        clip = clips[views] = make_clip(e, known, strangers, args.shots, args.shot_frames,
                                        args.seed, views)
        for gname in args.galleries:
            g = build_gallery(e, vec, gallery_people, 10 if gname == "many" else 1,
                              {"name": model, "tta": tta})
            for side, k in itertools.product(args.detect_sides, args.ks):
                one_view = [] if args.skip_one_view else run_setting(
                    clip, g, detector, embedder, k, side, args.threshold, views=False)
                for r in [*run_setting(clip, g, detector, embedder, k, side, args.threshold),
                          *one_view]:
                    r |= {"gallery": gname, "views": views}
                    rows.append(r)
                    logging.info(
                        "views=%d %s side=%d k=%d %s: %.1f fps, known right %.1f%%, wrong "
                        "%.2f%%, switches %d (unknown %d), across cuts %d, cuts false/missed "
                        "%d/%d", views, gname, side, k, r["decide"], r["fps"],
                        100 * r["known_named_right"], 100 * r["wrong_names"], r["switches"],
                        r["unknown_changes"], r["tracks_across_cuts"],
                        r["false_cuts"], r["missed_cuts"])
    res = {
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "?") + " "
                   + " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads "
                   f"{args.threads}, load average {load_start:.2f} at the start, "
                   f"{os.getloadavg()[0]:.2f} at the end",
        "clip": {"frames": len(clip.frames), "size": SIZE, "shots": args.shots,
                 "switch_every": 15,
                 "cuts": clip.cuts, "known": known, "strangers": strangers,
                 "gallery_people": len(gallery_people),
                 "stranger_face_frames": sum(p in strangers for t in clip.truth for p, _ in t),
                 "faces_per_frame": float(np.mean([len(t) for t in clip.truth]))},
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), res)
    atomic_write_text(args.out.with_suffix(".md"), markdown(res))
    print(markdown(res))


def pooled_markdown(runs: list[dict]) -> str:
    """Each run's table, then the quality columns pooled over the runs' clips (face-frame
    weighted) per setting."""
    lines = ["# Video benchmark, several clips", "",
             "Runs: " + "; ".join(f"`{r['command']}` ({r['machine']})" for r in runs), ""]
    pooled: dict[tuple, Counter] = defaultdict(Counter)
    for r in runs:
        for row in r["rows"]:
            known = sum(sum(c.values()) for c in row["known_per_person"].values())
            right = sum(c.get(person, 0) for person, c in row["known_per_person"].items())
            key = (row["views"], row["gallery"], row["k"], row["decide"])
            pooled[key].update({"known": known, "right": right, "clips": 1,
                                "wrong": round(row["wrong_names"] * row["face_frames"]),
                                "faces": row["face_frames"], "tracks": row["tracks"],
                                "switches": row["switches"],
                                "unknown": row["unknown_changes"],
                                "across": row["tracks_across_cuts"],
                                "two": row["tracks_over_two_people"],
                                "cuts": len(r["clip"]["cuts"]),
                                "cut_errors": row["false_cuts"] + row["missed_cuts"]})
    lines += ["## Pooled", "",
              "| views | gallery | k | names | clips | known right | wrong | tracks | switches "
              "| unknown | across cuts | two people | cuts wrong / all |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (views, gallery, k, decide), c in pooled.items():
        lines.append(
            f"| {views} | {gallery} | {k} | {decide} | {c['clips']} | "
            f"{100 * c['right'] / max(c['known'], 1):.1f}% | "
            f"{100 * c['wrong'] / max(c['faces'], 1):.2f}% | {c['tracks']} | {c['switches']} | "
            f"{c['unknown']} | {c['across']} | {c['two']} | {c['cut_errors']}/{c['cuts']} |")
    for r in runs:
        lines += ["", "## " + r["command"], "", *markdown(r).splitlines()[2:]]
    return "\n".join(lines) + "\n"


def markdown(res: dict) -> str:
    c = res["clip"]
    lines = [
        "# Video benchmark", "",
        f"Machine: {res['machine']}. Run: `{res['command']}`.", "",
        f"Clip: {c['frames']} frames of {c['size'][0]}x{c['size'][1]} in {c['shots']} shots "
        f"({len(c['cuts'])} cuts), {c['faces_per_frame']:.2f} faces a frame; "
        f"{len(c['known'])} people of a {c['gallery_people']}-person gallery and "
        f"{len(c['strangers'])} strangers. Gallery from train photos (many: up to 10 a person; "
        "one: 1), faces in the clip from val photos; uncalibrated threshold. Views: the val "
        f"photos a person shows in turn in a shot ({c['switch_every']} frames each; 1: one "
        "photo all shot). Names per track and per frame come from the same pass (per frame: "
        "each face's latest embedding's own decision, what `--decide frame` shows).", "",
        "Known right: share of a known person's face-frames named as them. Wrong: share of all "
        "face-frames given another person's name. Switches: changes from one name to another "
        "inside a track; unknown: changes between a name and unknown inside a track. "
        "Across cuts: tracks seen in two shots. Two people: tracks covering two people. "
        "Embedded: share of face-frames embedded. ms: per frame.", "",
        "| views | gallery | detect px | k | names | threshold | known right | wrong | found | "
        "tracks | switches | unknown | across cuts | two people | cuts false/missed | "
        "frames/s | detect ms | embed ms | total ms | embedded |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        ms = r["ms_per_frame"]
        lines.append(
            f"| {r['views']} | {r['gallery']} | {r['detect_side']} | {r['k']} | {r['decide']} | "
            f"{r['threshold']:.3f} | "
            f"{100 * r['known_named_right']:.1f}% | {100 * r['wrong_names']:.2f}% | "
            f"{100 * r['found']:.1f}% | {r['tracks']} | {r['switches']} | "
            f"{r['unknown_changes']} | "
            f"{r['tracks_across_cuts']} | {r['tracks_over_two_people']} | "
            f"{r['false_cuts']}/{r['missed_cuts']} | {r['fps']:.1f} | {ms['detect']:.1f} | "
            f"{ms['embed']:.1f} | {ms['total']:.1f} | {100 * r['embedded_share']:.1f}% |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
