"""`celebface audit DATA`: duplicates, mislabels and bad photos of a face dataset."""

from __future__ import annotations

import argparse

from celebface.cli.common import add_device


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
    p.add_argument("--detector", default="mtcnn",
                   help="mtcnn (default), hog, or none when DATA holds face crops (embedded "
                        "whole and cached; no face checks)")
    p.add_argument("--embedder", default="dlib", help="dlib (default) or facenet")
    p.add_argument("--near-duplicate", type=float, metavar="COS",
                   help="cosine at or above which two photos are near duplicates (default: "
                        "the embedder's measured bound)")
    p.add_argument("--mislabel-margin", type=float, default=0.0,
                   help="flag photos this much closer to another person's centre (default 0)")
    p.add_argument("--tiny-face", type=float, default=40.0, metavar="PX",
                   help="a face with a shorter side below this is tiny (default 40)")
    p.add_argument("--min-photos", type=int, default=10,
                   help="people with fewer photos are reported (default 10)")
    p.add_argument("--cache-dir", help="embedding cache for --detector none (default "
                   "OUT/embeddings/.cache)")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from celebface.audit import AuditConfig, audit

    out = Path(args.out) if args.out else Path(str(Path(args.data).resolve()) + "_audit")
    config = AuditConfig(detector=args.detector, embedder=args.embedder, device=args.device,
                         near_duplicate=args.near_duplicate,
                         mislabel_margin=args.mislabel_margin, tiny_face=args.tiny_face,
                         min_photos=args.min_photos, cache_dir=args.cache_dir)
    result = audit(args.data, out, config, progress=not args.quiet)
    counts = ", ".join(f"{k} {v}" for k, v in result.counts.items()) or "nothing found"
    print(f"audit: {result.photos} photos: {counts}; see {out}/report.md")
    return 0
