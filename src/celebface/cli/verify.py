"""`celebface verify A B`: are two photos of the same person? Exit 0 same, 1 not, 2 error."""

from __future__ import annotations

import argparse
import json

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, defaults
from celebface.detection import FinderConfig
from celebface.recognition.spec import EmbedderSpec
from celebface.verification import verify
from celebface.verification.compare import face_finder, gallery_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Compare the largest face of photo A with the largest face of photo B (--all: every "
        "face of A with every face of B) and print one line per comparison: same or not, the "
        "cosine score and the threshold used. Exit status: 0 same person (any pair with --all), "
        "1 not the same, 2 error. A photo without a detected face is an error (exit 2), unless "
        "--crop says the photos are face crops: it is then used whole (the line says so)."
    )
    p.add_argument("image_a", metavar="A", help="first photo")
    p.add_argument("image_b", metavar="B", help="second photo")
    p.add_argument("--gallery", metavar="GALLERY",
                   help="use this gallery's embedder and calibrated threshold (a folder or a "
                        "postgresql:// URL)")
    p.add_argument("--all", action="store_true", help="compare every face of A with every "
                   "face of B")
    p.add_argument("--crop", action="store_true",
                   help="the photos are face crops: one without a detected face is used whole")
    p.add_argument("--embedder", default=defaults(EmbedderSpec)["name"],
                   help=t.embedder_help(False))
    add_option(p, EmbedderSpec, "tta", choices=t.TTA_CHOICES,
               help="average each face with its mirror image")
    t.add_detector(p, FinderConfig, crops="when both photos are face crops")
    p.add_argument("--threshold", type=t.probability,
                   help="same-person cosine threshold (default: the gallery's calibrated one "
                        "with --gallery, else the embedder's measured one)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    add_device(p)


def _describe(face: object, whole: bool) -> str:
    if whole:
        return "whole image (no face found)"
    x1, y1, x2, y2 = face.box  # type: ignore[attr-defined]
    return f"face [{x1:.0f},{y1:.0f},{x2:.0f},{y2:.0f}]"


def run(args: argparse.Namespace) -> int:

    threshold = args.threshold
    if args.gallery:
        embedder, calibrated = gallery_settings(args.gallery, args.device)
        threshold = calibrated if threshold is None else threshold
    else:
        embedder = EmbedderSpec(args.embedder, args.tta).build(args.device)
    detector = face_finder(args.detector, args.device)
    out = verify(args.image_a, args.image_b, detector=detector or "none", embedder=embedder,
                 threshold=threshold, all_faces=args.all, crop=args.crop)
    results = out if isinstance(out, list) else [out]
    for r in results:
        if args.json:
            print(json.dumps({"a": args.image_a, "b": args.image_b, **r.to_dict()}))
            continue
        print(f"{'same' if r.same else 'different'}\tscore {r.score:.4f}\tthreshold "
              f"{r.threshold:.4f}\tA: {_describe(r.face_a, r.whole_a)}\t"
              f"B: {_describe(r.face_b, r.whole_b)}")
    return 0 if any(r.same for r in results) else 1
