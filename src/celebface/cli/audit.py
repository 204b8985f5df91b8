"""`celebface audit DATA`: duplicates, mislabels and bad photos of a face dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from celebface.audit import AuditConfig, audit
from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, config_from


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Check a folder-per-person dataset (raw photos, or face crops with --detector none): "
        "exact duplicates (same file content) and near duplicates (embeddings above a measured "
        "cosine) within a person, across people and across splits (DATA/splits.csv); likely "
        "mislabelled photos (closer to another person's centre than to their own); photos "
        "with no face, several faces or a tiny face; people with too few photos and the class "
        "balance. Writes OUT/findings.csv, OUT/report.md and OUT/sheets/<kind>.png."
    )
    p.add_argument("data", metavar="DATA", help="folder of people (one sub-folder each)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default "
                   "DATA_audit beside DATA)")
    t.add_detector(p, AuditConfig, crops="when DATA holds face crops (embedded whole and "
                   "cached; no face checks)")
    add_option(p, AuditConfig, "embedder", help=t.embedder_help(False))
    add_option(p, AuditConfig, "near_duplicate", metavar="COS",
               help="cosine at or above which two photos are near duplicates (default: "
                    "the embedder's measured bound)")
    add_option(p, AuditConfig, "mislabel_margin",
               help="flag photos this much closer to another person's centre (default "
                    "%(default)g)")
    add_option(p, AuditConfig, "tiny_face", metavar="PX",
               help="a face with a shorter side below this is tiny (default %(default)g)")
    add_option(p, AuditConfig, "min_photos",
               help="people with fewer photos are reported (default %(default)s)")
    add_option(p, AuditConfig, "cache_dir", help="embedding cache for --detector none "
               "(default OUT/embeddings/.cache)")
    add_device(p)


def run(args: argparse.Namespace) -> int:


    out = Path(args.out) if args.out else Path(str(Path(args.data).resolve()) + "_audit")
    result = audit(args.data, out, config_from(AuditConfig, args), progress=not args.quiet)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "nothing found"
    print(f"audit: {result.photos} photos: {counts}; see {out}/report.md")
    return 0
