"""One base for every error celebface raises on bad input: the CLI prints it as one line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


class CelebfaceError(Exception):
    """A user-facing error; ``str()`` is one line naming what is wrong (a file, a flag, a
    folder) and why. Subclasses keep their builtin base too, so ``except ValueError`` code
    written against earlier versions still works."""


class InputError(CelebfaceError, ValueError):
    """Bad input that no more specific error names: an unknown name or option, an empty or
    inconsistent folder, settings that do not fit the data."""


class MissingFileError(CelebfaceError, FileNotFoundError):
    """An input file or folder that does not exist (or lacks the file that makes it one)."""


class NotAFolderError(CelebfaceError, NotADirectoryError):
    """A path given as a folder that is a file."""


class UnknownNameError(CelebfaceError, KeyError):
    """A name (a model, a backbone, a metric) that is not among the known ones."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class OptionError(CelebfaceError, TypeError):
    """An option that the called function or model does not take."""


@contextlib.contextmanager
def reading(path: str | Path, what: str = "file") -> Iterator[None]:
    """Decoding errors of a damaged ``path`` (bad JSON, a truncated array, a missing key)
    become one :class:`InputError` naming it; a CelebfaceError or an OSError passes through."""
    try:
        yield
    except (CelebfaceError, OSError):
        raise
    except (ValueError, KeyError, IndexError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:200]
        raise InputError(f"{path}: damaged {what} ({type(exc).__name__}: {reason})") from None
