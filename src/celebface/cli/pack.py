"""`celebface pack DATA DST`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.options import add_option, config_from
from celebface.io import check_output_dir, folder_lock
from celebface.packing import PackConfig, pack_dataset
from celebface.packing.pack import FITS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder of face crops, one sub-folder per identity")
    p.add_argument("dst", help="output folder (all_images.npy, all_labels.npy, ...)")
    add_option(p, PackConfig, "size",
               help="side of the square images (%(default)s)")
    add_option(p, PackConfig, "fit", choices=FITS,
               help="how a non-square crop becomes square (default: %(default)s)")
    add_option(p, PackConfig, "val_fraction", "--val", type=t.fraction,
               help="validation fraction when DATA has no splits.csv (%(default)s)")
    add_option(p, PackConfig, "test_fraction", "--test", type=t.fraction,
               help="test fraction when DATA has no splits.csv (%(default)s)")
    add_option(p, PackConfig, "seed", help="seed of the stratified split (%(default)s)")
    add_option(p, PackConfig, "workers", type=t.nonneg_int, help="decoding threads (0 = auto)")


def run(args: argparse.Namespace) -> int:

    config = config_from(PackConfig, args)
    check_output_dir(args.dst, [args.data], flag="DST")
    with folder_lock(args.dst, "pack output"):
        summary = pack_dataset(args.data, args.dst, config)
    splits = ", ".join(f"{k} {v}" for k, v in sorted(summary.splits.items()))
    print(f"packed {summary.count} images of {summary.identities} identities into "
          f"{summary.dst} ({splits}); {len(summary.skipped)} skipped")
    for line in summary.skipped:
        print(f"  skipped {line}")
    return 0
