"""Entry point: ``celebface <command> ...``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

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
    ("gallery", "gallery", "export/import a gallery between a folder and PostgreSQL"),
    ("calibrate", "calibrate", "pick a gallery's unknown threshold for a false-accept rate"),
    ("recognize", "recognize", "name the faces in photos, videos or a camera"),
    ("verify", "verify", "are two photos of the same person? (exit 0 same, 1 not, 2 error)"),
    ("analyze", "analyze", "age, gender and head pose of every face in photos"),
    ("cluster", "cluster", "group the faces of unlabelled photos into people"),
    ("audit", "audit", "find duplicates, mislabels and bad photos in a face dataset"),
    ("serve", "serve", "a REST API and a web page to recognise faces and manage the gallery"),
)


class CLIError(CelebfaceError):
    """A user-facing error: printed as one line, exit code 2."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like Ctrl-C, so outputs are finalised."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: object) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _finalise_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` while a command runs (main thread only),
    so every ``finally`` runs: JSON Lines and records keep what was finished."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def describe_error(exc: BaseException) -> str:
    """One line for an error: ``FILE: reason`` for OS errors that name a file."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    return " ".join(str(exc).split()) or type(exc).__name__


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
    for noisy in ("matplotlib", "PIL", "faiss"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose, args.quiet)
    code = _run(args)
    if argv is None and getattr(args, "_exit_at_once", False):
        # a server is done once it returns (requests finished, workers drained): the models'
        # native libraries would take seconds to tear down, so the process ends now
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(args: argparse.Namespace) -> int:
    try:
        with _finalise_on_signals():
            if getattr(args, "_torch_threads", False):
                from celebface.device import set_torch_threads

                set_torch_threads(args.threads)
            return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted: what was written so far is kept; rerun to resume", file=sys.stderr)
        return 130
    except Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"celebface {args.command}: stopped by {name}: what was written so far is kept",
              file=sys.stderr)
        return 128 + exc.signum
    except (CelebfaceError, OSError) as exc:  # bad input, or a file that cannot be read/written
        if args.verbose:
            raise
        print(f"celebface {args.command}: error: {describe_error(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
