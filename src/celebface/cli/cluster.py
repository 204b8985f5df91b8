"""`celebface cluster PHOTOS --out DIR`: group the faces of unlabelled photos into people."""

from __future__ import annotations

import argparse

from celebface.cli.common import add_device


def add_arguments(p: argparse.ArgumentParser) -> None:
    from celebface.clustering import LARGE, METHODS

    p.description = (
        "Find and embed every face in PHOTOS (searched recursively) and group the faces into "
        "people, without being told how many. Writes OUT/clusters.csv, a folder of face crops "
        "per cluster (OUT/people/cluster_000, ...), faces that joined no group in "
        "OUT/singletons, and a contact sheet per cluster in OUT/sheets. Rename the folders of "
        "OUT/people to the people's names, then 'celebface enroll OUT/people --out GALLERY'."
    )
    p.add_argument("photos", metavar="PHOTOS", help="folder of photos")
    p.add_argument("--out", required=True, metavar="DIR", help="new output folder")
    p.add_argument("--method", default="rerank", choices=METHODS,
                   help="rerank (default: average linkage on k-reciprocal re-ranked distances, "
                        "small groups also held to --threshold), agglomerative (average "
                        "linkage on cosine) or chinese_whispers (dlib; chains people together)")
    p.add_argument("--threshold", type=float, help="mean cosine at which groups merge (rerank: "
                   f"groups of fewer than {LARGE} faces; default: the embedder's measured one)")
    p.add_argument("--cut", type=float, help="rerank: the mean re-ranked distance at which "
                   "groups stop merging (default: the embedder's measured one)")
    p.add_argument("--min-size", type=int, default=2,
                   help="faces in smaller groups are singletons (default 2)")
    p.add_argument("--embedder", default="dlib", help="dlib (default) or facenet")
    p.add_argument("--tta", default="none", choices=("none", "flip"),
                   help="average each face with its mirror image")
    p.add_argument("--detector", default="mtcnn",
                   help="mtcnn (default), hog, or none when the photos are face crops")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from celebface.clustering import ClusterConfig, cluster_photos

    config = ClusterConfig(detector=args.detector, embedder=args.embedder, tta=args.tta,
                           device=args.device, threshold=args.threshold, method=args.method,
                           cut=args.cut, min_size=args.min_size)
    s = cluster_photos(args.photos, args.out, config, progress=not args.quiet)
    extra = f"; {s.whole_images} photo(s) without a detected face used whole" \
        if s.whole_images else ""
    how = f"{s.method}, cosine {s.threshold:.4f}" + (
        f", cut {s.cut:.3f}" if s.cut is not None else "")
    if s.unreadable:
        extra += f"; {len(s.unreadable)} unreadable photo(s) skipped"
    print(f"cluster: {s.faces} faces in {s.photos} photos -> {s.clusters} clusters, "
          f"{s.singletons} singletons ({how}){extra}; see "
          f"{s.out}/clusters.csv and {s.out}/sheets/")
    return 0
