"""`celebface recognize`: name the faces in photos, folders, videos, cameras and streams."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.main import CLIError
from celebface.cli.options import add_option, config_from, defaults
from celebface.detection.registry import DEFAULT_DETECTOR, DEFAULT_VIDEO_DETECTOR
from celebface.gallery.matching import MATCH_METHODS
from celebface.io import check_output_dir, check_output_file
from celebface.recognizer import DECIDE, Recognizer, RecognizerConfig, TrackerConfig
from celebface.streaming import Source, VideoTracker, classify, output_sinks, run_inputs
from celebface.streaming.sources import StreamConfig

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Find and name every face. INPUT: image files, folders, video files or stream URLs "
        "(rtsp://, http://...); --camera N reads a camera. Faces below the gallery's threshold "
        "are 'unknown'. Video is tracked: detection on a downscaled copy of every K-th frame, "
        "embedding only for new or moved faces, one name per track (tracks end at shot cuts "
        "and when the face changes)."
    )
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="images, folders, videos, URLs")
    p.add_argument("--gallery", metavar="GALLERY",
                   help="gallery folder (celebface enroll) or postgresql:// URL of a gallery "
                        "database (celebface enroll --store)")
    p.add_argument("--model", metavar="DIR",
                   help="name faces with a trained classifier (celebface train) instead")
    p.add_argument("--camera", type=t.nonneg_int, action="append", default=[], metavar="N",
                   help="read camera N (repeatable)")
    p.add_argument("--jsonl", metavar="FILE", help="write one JSON line per frame ('-': stdout)")
    p.add_argument("--out", metavar="DIR", help="write annotated images and videos here")
    p.add_argument("--timeline", metavar="DIR",
                   help="video: write who appears when to DIR (one sub-folder per video when "
                        "there are several): appearances.csv/.json (person, track, start/end "
                        "s, frames, best/mean score, thumbnail), thumbnails/, timeline.png; "
                        "unknown tracks are unknown-N (rename them in the CSV, then 'celebface "
                        "enroll --from-timeline DIR')")
    p.add_argument("--show", action="store_true",
                   help="live window (only when a display exists; this headless OpenCV build "
                        "has none: it says so and continues)")
    add_option(p, RecognizerConfig, "threshold", type=t.probability,
               help="unknown threshold on the similarity, 0 to 1 (default: the gallery's "
               "calibrated one, on similarity plus a share of the lead over the runner-up)")
    add_option(p, RecognizerConfig, "match", choices=MATCH_METHODS,
               help="centroid = cosine to average embeddings (reference, robust with few "
                    "photos per person); knn = nearest enrolled face; topk = mean of the 5 "
                    "nearest (best with many photos per person, once calibrated) "
                    "(default %(default)s)")
    t.add_detector(p, Recognizer, default=f"{DEFAULT_DETECTOR} for photos, "
                   f"{DEFAULT_VIDEO_DETECTOR} for video frames")
    add_option(p, RecognizerConfig, "video_detect_side", "--detect-size", type=t.pixels,
               metavar="PX", help="video frames are shrunk to this longer side for detection "
               "(default: the detector's, 640 for yunet and yunet+onet, 320 for mtcnn)")
    add_option(p, RecognizerConfig, "detect_side", "--image-detect-size", type=t.pixels,
               metavar="PX", help="the same for still images (default %(default)s)")
    add_option(p, RecognizerConfig, "min_face", type=t.nonneg_float, metavar="PX",
               help="ignore faces smaller than this (pixels)")
    add_option(p, RecognizerConfig, "track", "--no-track",
               help="video: detect and embed every face of every frame and name it alone "
                    "(slower; no tracks)")
    add_option(p, TrackerConfig, "reembed_every", type=t.positive_int, metavar="K",
               help="video: re-embed a tracked face at least every K frames (default "
                    "%(default)s)")
    add_option(p, TrackerConfig, "detect_every", type=t.positive_int, metavar="K",
               help="video: detect faces on every K-th frame and at shot cuts, follow them "
                    "in between (default %(default)s)")
    add_option(p, TrackerConfig, "decide", choices=DECIDE,
               help="video: name a face from its whole track (track: the mean score of its "
                    "distinct views, a threshold a little lower once it has several; a name "
                    "changes only when two decisions in a row agree) or from each frame "
                    "alone (frame) (default %(default)s)")
    add_option(p, TrackerConfig, "cut_threshold", metavar="T",
               help="video: a PySceneDetect content change (mean change of hue, saturation "
                    "and brightness from the last frame, 0-255) of at least T is a shot cut "
                    "and ends every track; 0 never (default %(default)s)")
    add_option(p, TrackerConfig, "box_change", metavar="T",
               help="video: the same change inside a face's box means another face may have "
                    "taken its place: detect and embed it on that frame; 0 never (default "
                    "%(default)s)")
    add_option(p, TrackerConfig, "track_gate", type=t.float_range(-1, 1), metavar="COS",
               help="video: a face stays on its track only when its embedding's cosine with "
                    "one of the track's recent ones is at least COS, else the track splits "
                    "(default: the embedder's measured gate; -1 never splits)")
    add_option(p, StreamConfig, "max_frames", type=t.positive_int, metavar="N",
               help="stop each video after N frames")
    add_option(p, StreamConfig, "reconnects", type=t.nonneg_int,
               help="camera/stream: reopen attempts when it drops (default %(default)s)")
    p.add_argument("--timeout", type=t.positive_float, metavar="S",
                   default=defaults(StreamConfig)["open_timeout_s"],
                   help="stream open/read timeout in seconds (default %(default)g)")
    add_device(p)


def run(args: argparse.Namespace) -> int:

    if not args.inputs and not args.camera:
        raise CLIError("give at least one INPUT or --camera N")
    if not args.gallery and not args.model:
        raise CLIError("--gallery GALLERY (or --model DIR) is required")

    read = [*args.inputs, args.gallery, args.model]
    if args.out:
        check_output_dir(args.out, read, flag="--out", guarded=True)
    if args.jsonl:
        check_output_file(args.jsonl, read, flag="--jsonl")
    if args.timeline:
        # only folders matter: a timeline folder never replaces an input file
        check_output_dir(args.timeline, [i for i in read if i and Path(i).is_dir()],
                         flag="--timeline", own="appearances.csv")
    sources: list[Source] = []
    missing = []
    for inp in args.inputs:
        try:
            sources.append(classify(inp, args.timeout))
        except FileNotFoundError as exc:
            log.error("%s (skipped)", exc)
            missing.append(str(exc))
    sources += [Source("camera", str(n)) for n in args.camera]
    if not sources:
        raise CLIError("; ".join(missing) or "nothing to read")
    config = config_from(RecognizerConfig, args, tracker=config_from(TrackerConfig, args))
    recognizer = Recognizer.open(args.gallery, detector=args.detector, config=config,
                                 model=args.model)
    stream = config_from(StreamConfig, args, open_timeout_s=args.timeout,
                         read_timeout_s=args.timeout)
    sinks = output_sinks(sources, jsonl=args.jsonl, out=args.out, timeline=args.timeline,
                         show=args.show)
    s = run_inputs(VideoTracker(recognizer), sources, sinks, stream=stream)
    errors = len(s.errors) + len(missing)
    top = ", ".join(f"{k} {v}" for k, v in s.identities.most_common(8))
    print(
        f"recognize: {s.frames} frame(s), {s.faces} face(s) in {s.seconds:.1f} s "
        f"({s.fps:.1f} frames/s, threshold {recognizer.threshold:.3f}, "
        f"{recognizer.matcher.method})" + (f"; faces: {top}" if top else "")
        + (f"; {errors} input(s) failed" if errors else "")
        + (f"; outputs in {args.out}" if args.out else "")
        + (f"; {s.appearances} appearance(s) in {args.timeline}" if args.timeline else ""),
        file=sys.stderr if args.jsonl == "-" else sys.stdout,  # keep stdout pure JSON Lines
    )
    if args.jsonl and args.jsonl != "-":
        print(f"recognize: JSON Lines in {args.jsonl}")
    return 1 if errors and not s.sources_ok else 0
