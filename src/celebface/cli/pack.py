"""`celebface pack DATA DST`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.main import CLIError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of face crops, one sub-folder per identity")
    p.add_argument("dst", help="output folder (all_images.npy, all_labels.npy, ...)")
    p.add_argument("--size", type=t.int_range(8),
                   default=224, help="side of the square images (224)")
    p.add_argument("--fit", default="stretch", choices=("stretch", "pad", "crop"),
                   help="how a non-square crop becomes square (default: stretch)")
    p.add_argument("--val", type=t.fraction, default=0.15,
                   help="validation fraction when DATA has no splits.csv (0.15)")
    p.add_argument("--test", type=t.fraction, default=0.15,
                   help="test fraction when DATA has no splits.csv (0.15)")
    p.add_argument("--seed", type=int, default=0, help="seed of the stratified split (0)")
    p.add_argument("--workers", type=t.nonneg_int, default=0, help="decoding threads (0 = auto)")


def run(args: argparse.Namespace) -> int:
    from celebface.io import check_output_dir, folder_lock
    from celebface.packing import PackConfig, pack_dataset

    try:
        config = PackConfig(size=args.size, fit=args.fit, val_fraction=args.val,
                            test_fraction=args.test, seed=args.seed, workers=args.workers)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    check_output_dir(args.dst, [args.data], flag="DST")
    with folder_lock(args.dst, "pack output"):
        summary = pack_dataset(args.data, args.dst, config)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(summary.splits.items()))
    print(f"packed {summary.count} images of {summary.identities} identities into "
          f"{summary.dst} ({splits}); {len(summary.skipped)} skipped")
    for line in summary.skipped:
        print(f"  skipped {line}")
    return 0
