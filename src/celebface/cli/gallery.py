"""`celebface gallery export|import`: move a gallery between a folder and a PostgreSQL store."""

from __future__ import annotations

import argparse

from celebface.cli.main import CLIError


def store_or_folder(store: str | None, folder: str | None, flag: str) -> str:
    """The gallery a command works on: ``--store URL`` (a database) or the folder ``flag``
    names; exactly one of them."""
    from celebface.gallery.store import is_store_url

    if store is not None and folder is not None:
        raise CLIError(f"give {flag} or --store URL, not both")
    if store is not None:
        if not is_store_url(store):
            from celebface.gallery.store import redact

            raise CLIError(f"--store {redact(store)!r}: not a postgresql:// URL")
        return store
    if folder is None:
        raise CLIError(f"give {flag} (a folder) or --store URL (a database)")
    return folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = (
        "Copy a gallery between its two homes, vectors bit for bit: 'export URL FOLDER' "
        "writes a PostgreSQL gallery to a folder, 'import FOLDER URL' loads a folder into a "
        "database (either side may be a folder or a postgresql:// URL)."
    )
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, src, dst, text in (
        ("export", "STORE", "FOLDER", "copy the gallery at STORE into FOLDER"),
        ("import", "FOLDER", "STORE", "copy the gallery in FOLDER into STORE"),
    ):
        q = sub.add_parser(action, help=text, description=text)
        q.add_argument("source", metavar=src)
        q.add_argument("target", metavar=dst)
        q.add_argument("--replace", action="store_true",
                       help=f"replace a gallery already in {dst}")


def run(args: argparse.Namespace) -> int:
    from celebface.gallery.store import is_store_url
    from celebface.gallery.stores import copy_gallery

    if args.source == args.target:
        raise CLIError("source and target are the same gallery")
    if not is_store_url(args.target):
        from celebface.io import check_output_dir

        check_output_dir(args.target, [] if is_store_url(args.source) else [args.source],
                         flag=args.action.upper(), own="gallery.json")
    gallery = copy_gallery(args.source, args.target, replace=args.replace)
    from celebface.gallery.store import redact

    print(f"gallery {args.action}: {len(gallery.names)} people, {len(gallery)} faces from "
          f"{redact(args.source)} to {redact(args.target)}")
    return 0
