"""`celebface crop SRC DST`."""

from __future__ import annotations

import argparse
from pathlib import Path

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.main import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", metavar="SRC", help="folder with one sub-folder of photos per identity")
    p.add_argument("dst", metavar="DST", help="output folder (crops, manifest.csv, ...)")
    p.add_argument("--detector", choices=("mtcnn", "hog"), default="mtcnn",
                   help="face detector (default: mtcnn)")
    add_device(p, threads=False)
    p.add_argument("--faces", choices=("largest", "all"), default="largest",
                   help="largest: one crop of the largest confident face; all: one per face "
                        "(suffixed _1, _2, ...)")
    p.add_argument("--min-score", type=t.unit_float, default=None,
                   help="minimum detector score (default: 0.9 for mtcnn, 0.0 for hog)")
    p.add_argument("--min-size", type=t.nonneg_float, default=0.0,
                   help="minimum face size (shorter box side) in source pixels (default: 0)")
    p.add_argument("--margin", type=t.nonneg_float, default=0.2,
                   help="margin around the face on each side, as a fraction of the box "
                        "(default: 0.2)")
    p.add_argument("--size", type=t.int_range(8), default=224,
                   help="crop side in pixels (default: 224)")
    p.add_argument("--align", action="store_true",
                   help="5-point similarity-aligned crops (ArcFace template) instead of boxes")
    p.add_argument("--pad", type=t.nonneg_float, default=None,
                   help="border added around each photo before detection, as a fraction of its "
                        "longer side, so faces that fill the frame are found (default: 0.15)")
    p.add_argument("--preview", type=t.nonneg_int, default=16, metavar="N",
                   help="draw N sources with boxes into DST/preview.png (0: none; default: 16)")
    p.add_argument("--batch-size", type=t.positive_int, default=32,
                   help="images per detector batch")
    p.add_argument("--workers", type=t.positive_int, default=2, help="image decoding threads")
    p.add_argument("--detect-workers", type=t.positive_int, default=2,
                   help="batches detected at once, in threads (mtcnn only; default: 2)")
    p.add_argument("--threads", type=t.positive_int, default=None,
                   help="torch CPU threads per detection worker (default: cores / workers)")
    p.add_argument("--overwrite", action="store_true",
                   help="start over instead of resuming (needed when settings changed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray: run on a Ray cluster (pip install "
                        "'celebface[ray]'); outputs are the same")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. HEAD:6379; default: RAY_ADDRESS or a new "
                        "local instance)")


def run(args: argparse.Namespace) -> int:
    from celebface.cropping import CropConfig, crop_dataset
    from celebface.io import check_output_dir

    if not Path(args.src).is_dir():
        raise CLIError(f"{args.src}: no such folder" if not Path(args.src).exists()
                       else f"{args.src}: not a folder")
    check_output_dir(args.dst, [args.src], flag="DST")
    options = {} if args.pad is None else {"pad": args.pad}
    config = CropConfig(
        detector=args.detector,
        device=args.device,
        faces=args.faces,
        min_score=args.min_score,
        min_size=args.min_size,
        margin=args.margin,
        size=args.size,
        align=args.align,
        batch_size=args.batch_size,
        workers=args.workers,
        preview=args.preview,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        torch_threads=args.threads,
        detect_workers=args.detect_workers,
        detector_options=options,
        engine=args.engine,
        address=args.address,
    )
    summary = crop_dataset(args.src, args.dst, config)
    print(summary.format())
    if config.preview:
        print(f"  preview     {Path(args.dst) / 'preview.png'}")
    return 0
