"""crowd.mp4 through the whole video pipeline: faces found, strangers named, frames/s.

    PYTHONPATH=src .venv/bin/python benchmarks/crowd.py

Real footage (``../shared/data/video/crowd.mp4``: 1920x1080, 25 fps, 105 frames, a street of
passers-by, none of them in pins105-dev), recognised by ``celebface recognize`` with each
detector at its video size and the default embedder, against two pins105-dev galleries: 5
``train`` photos of each of the 105 people, and one photo of each (the riskier gallery: a
one-photo person's impostor scores run higher). Every track is a stranger's, so a named track
is a false accept: the stranger-track FAR is named tracks / tracks, with its exact (Clopper-
Pearson) 95% upper bound. Faces a frame are compared with the count made by hand on frames 0,
50 and 100 (``detectors.HAND_COUNT``). Frames/s (reading, detecting, tracking, embedding,
naming) at 1080p and on a 640x360 copy of the clip, from the command's own time for the clip
less its time for the first frame alone (``--max-frames 1``: the models are loaded on the
first frame), over the other 104 frames. Results: ``benchmarks/results/crowd.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from detectors import CROWD, HAND_COUNT, RESULTS, ROOT, pins_gallery

#: (detector, the video frames' detection size): the default first.
CONFIGS = (("mtcnn", 320), ("yunet", 640), ("yunet+onet", 640))


def upper_bound(named: int, n: int, conf: float = 0.95) -> float:
    """The exact one-sided upper ``conf`` bound of a rate seen ``named`` times in ``n``."""
    from scipy.stats import beta

    return 1.0 if named >= n else float(beta.ppf(conf, named + 1, n - named))


def small_copy(src: Path, dst: Path, size: tuple[int, int] = (640, 360)) -> Path:
    """``src`` resized to ``size`` (the same frames), written once."""
    import cv2

    if dst.exists():
        return dst
    cap = cv2.VideoCapture(str(src))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    ok, frame = cap.read()
    while ok:
        out.write(cv2.resize(frame, size, interpolation=cv2.INTER_AREA))
        ok, frame = cap.read()
    cap.release()
    out.release()
    return dst


def one_photo_gallery(gallery: Path, dst: Path) -> Path:
    """A copy of ``gallery`` keeping each person's first photo."""
    from celebface.gallery import Gallery

    if dst.exists():
        return dst
    g = Gallery.load(gallery)
    first: dict[str, int] = {}
    for i, lab in enumerate(g.labels.tolist()):
        first.setdefault(g.names[lab], i)
    rows = sorted(first.values())
    one = Gallery(names=list(g.names), embeddings=g.embeddings[rows], labels=g.labels[rows],
                  sources=[g.sources[i] for i in rows], embedder=g.embedder)
    one.save(dst)
    return dst


def recognize(video: Path, gallery: Path, detector: str, side: int, jsonl: Path,
              *more: str) -> tuple[int, float]:
    """``celebface recognize`` of ``video``: (frames, its own seconds)."""
    cmd = [str(Path(sys.executable).parent / "celebface"), "recognize", str(video),
           "--gallery", str(gallery), "--detector", detector, "--detect-size", str(side),
           "--jsonl", str(jsonl), "--device", "cpu", *more]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) frame\(s\), \d+ face\(s\) in ([\d.]+) s", out)
    if found is None:
        raise SystemExit(f"unexpected output of {' '.join(cmd)}: {out}")
    return int(found.group(1)), float(found.group(2))


def run(video: Path, gallery: Path, detector: str, side: int, jsonl: Path) -> dict:
    """One clip through ``celebface recognize``: its faces, tracks, names and frames/s."""
    t = time.perf_counter()
    frames, seconds = recognize(video, gallery, detector, side, jsonl)
    wall = time.perf_counter() - t
    _, first = recognize(video, gallery, detector, side, jsonl.with_suffix(".first"),
                         "--max-frames", "1")
    fps = round((frames - 1) / max(seconds - first, 1e-6), 1)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    faces = [len(r["faces"]) for r in records]
    tracks = {f.get("track_id") for r in records for f in r["faces"]}
    named = {f.get("track_id") for r in records for f in r["faces"]
             if f.get("identity") not in (None, "unknown")}
    return {"frames": len(records), "faces_per_frame": round(float(np.mean(faces)), 2),
            "hand_frames": {i: faces[i] for i in HAND_COUNT if i < len(faces)},
            "tracks": len(tracks), "named_tracks": len(named),
            "named_faces": sum(1 for r in records for f in r["faces"]
                               if f.get("identity") not in (None, "unknown")),
            "stranger_track_far": round(len(named) / max(len(tracks), 1), 4),
            "far_upper_95": round(upper_bound(len(named), len(tracks)), 4),
            "fps": fps, "first_frame_s": round(first, 1), "wall_s": round(wall, 1)}


def fmt(r: dict) -> str:
    hand = " / ".join(f"{h['clear']}+{h['partial']}" for h in HAND_COUNT.values())
    lines = ["# crowd.mp4 through the video pipeline", "",
             f"`PYTHONPATH=src .venv/bin/python benchmarks/crowd.py` on {r['machine']}, shared "
             "with other jobs (load average at the start "
             f"{r['load']}): compare frames/s only within this table. Total {r['seconds']:.0f} s."
             " Default embedder; every track is a stranger's (nobody in the clip is in "
             "pins105-dev), so a named track is a false accept.", "",
             f"| clip | detector @ detect size | gallery | faces / frame | frames 0 / 50 / 100 "
             f"(hand: {hand}) | tracks | named tracks | stranger-track FAR (95% upper) | "
             "frames/s (first frame, s) |", "|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        h = " / ".join(str(v) for v in x["hand_frames"].values())
        lines.append(f"| {x['clip']} | {x['detector']} @ {x['side']} | {x['gallery']} | "
                     f"{x['faces_per_frame']} | {h} | {x['tracks']} | {x['named_tracks']} | "
                     f"{x['stranger_track_far']:.1%} ({x['far_upper_95']:.1%}) | {x['fps']} "
                     f"({x['first_frame_s']}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "crowd")
    ap.add_argument("--out", type=Path, default=RESULTS / "crowd")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    t0, load = time.perf_counter(), round(os.getloadavg()[0], 1)
    five = args.work / "gallery"
    if not five.exists():
        built = pins_gallery(args.work / "build")
        built.rename(five)
    galleries = {"5 photos": five, "1 photo": one_photo_gallery(five, args.work / "gallery1")}
    clips = {"1080p": CROWD, "360p": small_copy(CROWD, args.work / "crowd_360p.mp4")}
    rows = []
    for clip, video in clips.items():
        for det, side in CONFIGS:
            for name, gallery in galleries.items():
                if clip == "360p" and name != "5 photos":
                    continue  # naming does not depend on the frame size: speed only
                tag = f"{clip}_{det}_{side}_{name.split()[0]}"
                row = {"clip": clip, "detector": det, "side": side, "gallery": name,
                       **run(video, gallery, det, side, args.work / f"{tag}.jsonl")}
                print(row, flush=True)
                rows.append(row)
    r = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "load": load, "rows": rows,
         "seconds": time.perf_counter() - t0}
    args.out.with_suffix(".json").write_text(json.dumps(r, indent=1))
    args.out.with_suffix(".md").write_text(fmt(r))
    print(fmt(r))


if __name__ == "__main__":
    main()
