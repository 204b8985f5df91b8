"""`celebface cluster PHOTOS --out DIR`: group the faces of unlabelled photos into people."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, config_from
from celebface.clustering import LARGE, METHODS, ClusterConfig, cluster_photos


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Find and embed every face in PHOTOS (searched recursively) and group the faces into "
        "people, without being told how many. Writes OUT/clusters.csv, a folder of face crops "
        "per cluster (OUT/people/cluster_000, ...), faces that joined no group in "
        "OUT/singletons, and a contact sheet per cluster in OUT/sheets. Rename the folders of "
        "OUT/people to the people's names, then 'celebface enroll OUT/people --out GALLERY'."
    )
    p.add_argument("photos", metavar="PHOTOS", help="folder of photos")
    p.add_argument("--out", required=True, metavar="DIR", help="new output folder")
    add_option(p, ClusterConfig, "method", choices=METHODS,
               help="rerank (default: average linkage on k-reciprocal re-ranked distances, "
                    "small groups also held to --threshold), agglomerative (average linkage "
                    "on cosine) or chinese_whispers (dlib; chains people together)")
    add_option(p, ClusterConfig, "threshold", help="mean cosine at which groups merge (rerank: "
               f"groups of fewer than {LARGE} faces; default: the embedder's measured one)")
    add_option(p, ClusterConfig, "cut", help="rerank: the mean re-ranked distance at which "
               "groups stop merging (default: the embedder's measured one)")
    add_option(p, ClusterConfig, "min_size",
               help="faces in smaller groups are singletons (default %(default)s)")
    add_option(p, ClusterConfig, "embedder", help=t.embedder_help(False))
    add_option(p, ClusterConfig, "tta", choices=t.TTA_CHOICES,
               help="average each face with its mirror image")
    t.add_detector(p, ClusterConfig, crops="when the photos are face crops")
    add_device(p)


def run(args: argparse.Namespace) -> int:

    s = cluster_photos(args.photos, args.out, config_from(ClusterConfig, args),
                       progress=not args.quiet)
    extra = f"; {s.whole_images} image(s) used whole as face crops" if s.whole_images else ""
    if s.no_face:
        extra += f"; {len(s.no_face)} photo(s) without a face skipped"
    how = f"{s.method}, cosine {s.threshold:.4f}" + (
        f", cut {s.cut:.3f}" if s.cut is not None else "")
    if s.unreadable:
        extra += f"; {len(s.unreadable)} unreadable photo(s) skipped"
    print(f"cluster: {s.faces} faces in {s.photos} photos -> {s.clusters} clusters, "
          f"{s.singletons} singletons ({how}){extra}; see "
          f"{s.out}/clusters.csv and {s.out}/sheets/")
    return 0
