"""`celebface enroll`: build or edit a gallery of known people."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.gallery import store_or_folder
from celebface.cli.main import CLIError
from celebface.cli.options import add_option, config_from
from celebface.gallery import EnrollConfig, enroll
from celebface.gallery.index import KINDS as INDEX_KINDS
from celebface.io import check_output_dir
from celebface.streaming.timeline import renamed_faces


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Build a gallery from DATA: a folder per person of photos (raw photos, or face crops "
        "with --detector none) or a 'celebface embed' output folder. Without --add the gallery "
        "holds exactly DATA's faces (photos already enrolled are not embedded again, so an "
        "interrupted run resumes). Writes average_embeddings.json (name -> average "
        "embedding), gallery.json and an embeddings file, atomically."
    )
    p.add_argument("data", nargs="?", help="folder of people (one sub-folder each)")
    p.add_argument("--out", metavar="GALLERY", help="gallery folder")
    p.add_argument("--store", metavar="URL",
                   help="the gallery in a PostgreSQL database instead of --out "
                   "(postgresql://user@host/db; shared by 'celebface serve --store')")
    p.add_argument("--from-timeline", metavar="DIR",
                   help="enrol people named in a 'celebface recognize --timeline DIR' folder "
                        "instead of DATA: write a name over 'unknown-N' (or over a wrong name) "
                        "in the person column of DIR/appearances.csv; every row whose person "
                        "then differs from its 'shown' column is enrolled from its thumbnail "
                        "(use --add to keep the gallery's other people)")
    p.add_argument("--add", action="store_true", help="add DATA's people/photos to the gallery")
    p.add_argument("--remove", action="append", default=[], metavar="NAME",
                   help="remove a person (repeatable)")
    add_option(p, EnrollConfig, "embedder",
               help=t.embedder_help())
    add_option(p, EnrollConfig, "reembed",
               help="the gallery was made with another embedder: rebuild it from DATA with "
                    "this one (cached by content)")
    add_option(p, EnrollConfig, "tta", choices=t.TTA_CHOICES,
               help="average each face with its mirror image (slower)")
    t.add_detector(p, EnrollConfig, crops="when DATA holds face crops")
    add_option(p, EnrollConfig, "split",
               help="use only this split of DATA/splits.csv (e.g. train)")
    add_option(p, EnrollConfig, "max_side", type=t.int_range(16),
               help="shrink photos to this longer side before detection (default %(default)s)")
    add_option(p, EnrollConfig, "cache_dir",
               help="where computed vectors are cached for reruns (default GALLERY/.cache; "
               "an 'embed' output's .cache reuses what embed computed)")
    add_option(p, EnrollConfig, "index", choices=INDEX_KINDS,
               help="vector index for matching: flat (exact), hnsw or ivf (approximate, "
                        "for large galleries); auto (default for a new gallery): flat up to "
                        "50,000 vectors, ivf past that")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    if args.from_timeline is not None:
        if args.data is not None:
            raise CLIError("give DATA or --from-timeline DIR, not both")
        return _from_timeline(args)
    return _enroll(args)


def _from_timeline(args: argparse.Namespace) -> int:
    """Enrol the renamed tracks' thumbnails: copied into a person-per-folder tree first."""


    faces = renamed_faces(args.from_timeline)
    if not faces:
        raise CLIError(f"{args.from_timeline}: no renamed track in appearances.csv (write a "
                       "name over unknown-N in its person column)")
    with tempfile.TemporaryDirectory(prefix="celebface-timeline-") as tmp:
        for person, thumb in faces:
            (Path(tmp) / person).mkdir(exist_ok=True)
            shutil.copyfile(thumb, Path(tmp) / person / thumb.name)
        args.data = tmp
        return _enroll(args)


def _enroll(args: argparse.Namespace) -> int:

    if args.data is None and not args.remove and args.index is None:
        raise CLIError("give DATA to enroll, --remove NAME or --index KIND")
    out = store_or_folder(args.store, args.out, "--out GALLERY")
    if args.data is not None and args.store is None:

        check_output_dir(args.out, [args.data], flag="--out")
    config = config_from(EnrollConfig, args)
    s = enroll(args.data, out, add=args.add, remove=args.remove, config=config)
    parts = [f"{s.identities} people, {s.embeddings} faces in {s.gallery}"]
    if s.added or s.reused:
        parts.append(f"{s.added} embedded, {s.reused} already there")
    if s.dropped:
        parts.append(f"{s.dropped} dropped (not in DATA)")
    if s.removed:
        parts.append("removed " + ", ".join(f"{k} ({v})" for k, v in s.removed.items()))
    if s.skipped:
        parts.append(f"{len(s.skipped)} photo(s) skipped (unreadable, no face or a refused name)")
    print("enroll: " + "; ".join(parts))
    return 0
