"""`celebface synth`."""

from __future__ import annotations

import argparse
import os

from celebface.cli import common as t
from celebface.cli.main import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Paste the face photos of DATA (a folder per identity, e.g. face crops) at random "
        "places, scales and small angles onto backgrounds, writing DST/<identity>/*.jpg, "
        "DST/manifest.csv with each true face box, and DST/splits.csv (the source's split). "
        "A rerun with the same settings resumes."
    )
    p.add_argument("data", metavar="DATA", help="folder of face photos, one sub-folder per person")
    p.add_argument("dst", metavar="DST", help="output folder")
    p.add_argument("--size", type=t.int_range(32),
                   default=256, help="composite side in pixels (256)")
    p.add_argument("--copies", type=t.positive_int, default=1, help="composites per face photo (1)")
    p.add_argument("--scale", type=t.float_range(0, 1, lo_open=True), nargs=2,
                   default=(0.22, 0.6), metavar=("MIN", "MAX"),
                   help="face size as a share of the composite side (0.22 0.6)")
    p.add_argument("--max-rotation", type=t.float_range(0, 180), default=15.0, help="degrees (15)")
    p.add_argument("--backgrounds", default="photo,gradient,noise",
                   help="comma list of photo,gradient,noise (all three)")
    p.add_argument("--background-dir", default=None,
                   help="folder of face-free photos to use as 'photo' backgrounds "
                        "(default: shuffled, blurred tiles of DATA's own photos)")
    p.add_argument("--splits", default=None,
                   help="comma list of DATA's splits.csv splits to use (default: all)")
    p.add_argument("--max-identities", type=t.positive_int, default=None, help="first N identities")
    p.add_argument("--max-per-identity", type=t.positive_int,
                   default=None, help="first N photos each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=t.positive_int, default=min(8, os.cpu_count() or 1),
                   help="threads (the output is the same for any number)")


def run(args: argparse.Namespace) -> int:
    from celebface.io import check_output_dir, folder_lock
    from celebface.synth import SynthConfig, synthesize

    try:
        config = SynthConfig(
            size=args.size, copies=args.copies, min_scale=args.scale[0],
            max_scale=args.scale[1], max_rotation=args.max_rotation,
            backgrounds=tuple(b.strip() for b in args.backgrounds.split(",") if b.strip()),
            background_dir=args.background_dir,
            splits=tuple(args.splits.split(",")) if args.splits else None,
            max_identities=args.max_identities, max_per_identity=args.max_per_identity,
            seed=args.seed, workers=args.workers,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    check_output_dir(args.dst, [args.data, args.background_dir], flag="DST")
    with folder_lock(args.dst, "synth output"):
        summary = synthesize(args.data, args.dst, config)
    print(f"synth: {summary.total} composites in {summary.dst} "
          f"({summary.written} new, {summary.resumed} kept, {len(summary.failed)} unreadable)")
    return 0
