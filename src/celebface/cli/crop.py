"""`celebface crop SRC DST`."""

from __future__ import annotations

import argparse
from pathlib import Path

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.main import CLIError
from celebface.cli.options import add_option, config_from
from celebface.cropping import POLICIES, CropConfig, crop_dataset
from celebface.detection import detector_info, detector_names
from celebface.detection.base import PaddingConfig
from celebface.io import check_output_dir


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder with one sub-folder of photos per identity")
    p.add_argument("dst", metavar="DST", help="output folder (crops, manifest.csv, ...)")
    t.add_detector(p, CropConfig)
    add_device(p, threads=False)
    add_option(p, CropConfig, "faces", choices=POLICIES,
               help="largest: one crop of the largest confident face; all: one per face "
                    "(suffixed _1, _2, ...)")
    add_option(p, CropConfig, "min_score", type=t.unit_float,
               help="minimum detector score (default: " + ", ".join(
                   f"{detector_info(k).min_score:g} for {k}" for k in detector_names()) + ")")
    add_option(p, CropConfig, "min_size", type=t.nonneg_float,
               help="minimum face size (shorter box side) in source pixels (default: "
                    "%(default)g)")
    add_option(p, CropConfig, "margin", type=t.nonneg_float,
               help="margin around the face on each side, as a fraction of the box "
                    "(default: %(default)g)")
    add_option(p, CropConfig, "size",
               help="crop side in pixels (default: %(default)s)")
    add_option(p, CropConfig, "align",
               help="5-point similarity-aligned crops (ArcFace template) instead of boxes")
    p.add_argument("--pad", type=t.nonneg_float, default=None,
                   help="border added around each photo before detection, as a fraction of its "
                        "longer side, so faces that fill the frame are found (default: "
                        f"{PaddingConfig.pad:g})")
    add_option(p, CropConfig, "preview", type=t.nonneg_int, default=16, metavar="N",
               help="draw N sources with boxes into DST/preview.png (0: none; default: "
                    "%(default)s)")
    add_option(p, CropConfig, "batch_size", type=t.positive_int,
               help="images per detector batch")
    add_option(p, CropConfig, "workers", type=t.positive_int, help="image decoding threads")
    add_option(p, CropConfig, "detect_workers", type=t.positive_int,
               help="batches detected at once, in threads (mtcnn only; default: %(default)s)")
    add_option(p, CropConfig, "torch_threads", "--threads",
               help="torch CPU threads per detection worker (default: cores / workers)")
    add_option(p, CropConfig, "overwrite",
               help="start over instead of resuming (needed when settings changed)")
    add_option(p, CropConfig, "progress", "--no-progress", help="no progress bar")
    t.add_engine(p, CropConfig)


def run(args: argparse.Namespace) -> int:

    if not Path(args.src).is_dir():
        raise CLIError(f"{args.src}: no such folder" if not Path(args.src).exists()
                       else f"{args.src}: not a folder")
    check_output_dir(args.dst, [args.src], flag="DST")
    options = {} if args.pad is None else {"pad": args.pad}
    config = config_from(CropConfig, args, detector_options=options)
    summary = crop_dataset(args.src, args.dst, config)
    print(summary.format())
    if config.preview:
        print(f"  preview     {Path(args.dst) / 'preview.png'}")
    return 0
