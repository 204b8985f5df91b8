"""`celebface synth`."""

from __future__ import annotations

import argparse
import os

from celebface.cli import common as t
from celebface.cli.options import add_option, config_from, defaults
from celebface.io import check_output_dir, folder_lock
from celebface.synth import SynthConfig, synthesize
from celebface.validate import MAX_OUTPUT_SIDE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Paste the face photos of DATA (a folder per identity, e.g. face crops) at random "
        "places, scales and small angles onto backgrounds, writing DST/<identity>/*.jpg, "
        "DST/manifest.csv with each true face box, and DST/splits.csv (the source's split). "
        "A rerun with the same settings resumes."
    )
    p.add_argument("data", metavar="DATA", help="folder of face photos, one sub-folder per person")
    p.add_argument("dst", metavar="DST", help="output folder")
    add_option(p, SynthConfig, "size", type=t.int_range(32, MAX_OUTPUT_SIDE),
               help="composite side in pixels (%(default)s)")
    add_option(p, SynthConfig, "copies", type=t.positive_int,
               help="composites per face photo (%(default)s)")
    lo, hi = (defaults(SynthConfig)[k] for k in ("min_scale", "max_scale"))  # one flag
    p.add_argument("--scale", type=t.float_range(0, 1, lo_open=True), nargs=2, default=(lo, hi),
                   metavar=("MIN", "MAX"),
                   help=f"face size as a share of the composite side ({lo:g} {hi:g})")
    add_option(p, SynthConfig, "max_rotation", type=t.float_range(0, 180),
               help="degrees (%(default)g)")
    add_option(p, SynthConfig, "backgrounds", type=t.comma_list,
               help="comma list of photo,gradient,noise (all three)")
    add_option(p, SynthConfig, "background_dir",
               help="folder of face-free photos to use as 'photo' backgrounds "
                    "(default: shuffled, blurred tiles of DATA's own photos)")
    add_option(p, SynthConfig, "splits", type=t.comma_list,
               help="comma list of DATA's splits.csv splits to use (default: all)")
    add_option(p, SynthConfig, "max_identities", type=t.positive_int,
               help="first N identities")
    add_option(p, SynthConfig, "max_per_identity", type=t.positive_int,
               help="first N photos each")
    add_option(p, SynthConfig, "seed")
    add_option(p, SynthConfig, "workers", type=t.positive_int,
               default=min(8, os.cpu_count() or 1),
               help="threads (the output is the same for any number)")


def run(args: argparse.Namespace) -> int:

    config = config_from(SynthConfig, args, min_scale=args.scale[0], max_scale=args.scale[1])
    check_output_dir(args.dst, [args.data, args.background_dir], flag="DST")
    with folder_lock(args.dst, "synth output"):
        summary = synthesize(args.data, args.dst, config)
    print(f"synth: {summary.total} composites in {summary.dst} "
          f"({summary.written} new, {summary.resumed} kept, {len(summary.failed)} unreadable)")
    return 0
