"""One base for every error celebface raises on bad input: the CLI prints it as one line."""

from __future__ import annotations


class CelebfaceError(Exception):
    """A user-facing error; ``str()`` is one line naming what is wrong (a file, a flag, a
    folder) and why. Subclasses keep their builtin base too, so ``except ValueError`` code
    written against earlier versions still works."""


class InputError(CelebfaceError, ValueError):
    """Bad input that no more specific error names: an unknown name or option, an empty or
    inconsistent folder, settings that do not fit the data."""
