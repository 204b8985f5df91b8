"""Entry point: ``celebface <command> ...``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from celebface import __version__
from celebface.errors import CelebfaceError

#: Subcommands in pipeline order: (name, module under celebface.cli, one-line help).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("crop", "crop", "find faces in photos and save square face crops"),
    ("pack", "pack", "pack a folder of face crops into .npy arrays"),
    ("embed", "embed", "compute a face embedding per image"),
    ("train", "train", "train an identity classifier"),
    ("evaluate", "evaluate", "evaluate a trained model and write a report"),
    ("synth", "synth", "composite face photos onto backgrounds, with true boxes"),
    ("enroll", "enroll", "build or edit a gallery of known people"),
    ("calibrate", "calibrate", "pick a gallery's unknown threshold for a false-accept rate"),
    ("recognize", "recognize", "name the faces in photos, videos or a camera"),
    ("verify", "verify", "are two photos of the same person? (exit 0 same, 1 not, 2 error)"),
    ("cluster", "cluster", "group the faces of unlabelled photos into people"),
    ("audit", "audit", "find duplicates, mislabels and bad photos in a face dataset"),
    ("serve", "serve", "a REST API and a web page to recognise faces and manage the gallery"),
)


class CLIError(CelebfaceError):
    """A user-facing error: printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celebface", description="Face identification from folders of celebrity photos."
    )
    parser.add_argument("--version", action="version", version=f"celebface {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module, help_text in COMMANDS:
        mod = importlib.import_module(f"celebface.cli.{module}")
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: what was written so far is kept; rerun to resume", file=sys.stderr)
        return 130
    except (CelebfaceError, FileNotFoundError, NotADirectoryError, ValueError, RuntimeError) as exc:
        if args.verbose:
            raise
        print(f"celebface {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
