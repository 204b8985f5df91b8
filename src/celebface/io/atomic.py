"""Atomic file writes: a crash leaves the old file or the new one, never half of one.

Only regular files (and new paths) are replaced by renaming a finished temporary file over
them. A character device (``/dev/null``, a terminal) or a FIFO is written in place, since
renaming would replace the device with a plain file. A symlink is never written through: the
link itself is replaced by the new file (its target, perhaps an input, stays as it was), unless
it points at a device or FIFO (``/dev/stdout``); folders, block devices and sockets are
refused. A new file gets the usual mode for the umask; a replaced file keeps its mode. Errors
name the file.
Text is UTF-8; file names that are not (surrogate escapes from the OS) are written back as
their original bytes, and JSON escapes them (``\\udcff``) so it stays valid UTF-8.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import stat
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, TypedDict

log = logging.getLogger(__name__)

class TextEncoding(TypedDict):
    """Keyword arguments of ``open`` for text."""

    encoding: str
    errors: str


#: How text files are encoded: names the OS gave as undecodable bytes are written back as is.
TEXT_ENCODING = TextEncoding(encoding="utf-8", errors="surrogateescape")


def resolve_target(path: str | Path) -> tuple[Path, bool]:
    """Where writing ``path`` really goes, and whether to replace it atomically (``True``:
    a regular file, a new path, or a symlink to either, which is replaced itself) or write it
    in place (a character device or FIFO, also behind a symlink). Folders, block devices and
    sockets raise ``OSError``."""
    target = Path(path)
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:  # a new path, or a dangling link (replaced)
        return target, True
    if stat.S_ISREG(mode):
        return target, True
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):  # opened by its own name: /dev/stdout
        return target, False  # of a pipe resolves to no real path, but opens
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    raise OSError(errno.EINVAL, "not a regular file, device or FIFO; refusing to write it",
                  str(path))


def _named(exc: OSError, path: Path, tmp: str | None) -> OSError:
    """``exc`` naming ``path`` (not the temporary file, and not no file at all)."""
    if exc.filename not in (None, tmp):
        return exc
    new = type(exc)(exc.errno, exc.strerror or str(exc), str(path))
    return new if isinstance(new, OSError) else exc


class OutputFile:
    """A file being written: ``fh`` is open; :meth:`commit` publishes it (renames the
    temporary file over the target, or just flushes a device/FIFO), :meth:`abort` drops it."""

    def __init__(self, path: str | Path, mode: str = "wb"):
        self.path = Path(path)
        self.target, self.atomic = resolve_target(path)
        self._tmp: str | None = None
        text = "b" not in mode
        encoding, errors = (TEXT_ENCODING["encoding"], TEXT_ENCODING["errors"]) if text else (
            None, None)
        try:
            if not self.atomic:
                self.fh: IO[Any] = open(self.target, mode, encoding=encoding,  # noqa: SIM115
                                        errors=errors)
                return
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(dir=self.target.parent,
                                             prefix=f".{self.target.name}.", suffix=".tmp")
            self.fh = os.fdopen(fd, mode, encoding=encoding, errors=errors)
        except OSError as exc:  # creating the output: name it, not a temporary file
            self._discard()
            if exc.filename == str(self.target.parent):
                raise
            raise _named(exc, self.path, exc.filename) from None

    def publish(self) -> None:
        """Put the file under its final name now and keep writing it there (a log that a
        kill -9 must not lose: what was flushed stays, no hidden temporary file is left)."""
        try:
            self.fh.flush()
            self._move_into_place()
        except OSError as exc:
            tmp = self._tmp
            self.abort()
            raise _named(exc, self.path, tmp) from None

    def commit(self) -> None:
        try:
            self.fh.flush()
            if not self.atomic:
                self.fh.close()
                return
            os.fsync(self.fh.fileno())
            self.fh.close()
            self._move_into_place()
        except OSError as exc:
            tmp = self._tmp
            self.abort()
            raise _named(exc, self.path, tmp) from None

    def _move_into_place(self) -> None:
        """The temporary file (if still there) under the final name, with the final mode."""
        if self._tmp is not None:
            os.chmod(self._tmp, _mode_for(self.target))
            os.replace(self._tmp, self.target)
            self._tmp = None

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.fh.close()
        self._discard()

    def _discard(self) -> None:
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            self._tmp = None


def remove_leftovers(folder: str | Path) -> int:
    """Delete the temporary files (``.NAME.XXXXXXXX.tmp``, :class:`OutputFile`'s) that a
    killed writer left in ``folder`` and below; how many. Only for a folder whose writers
    take turns under its lock, called with the lock held: no live writer has one open."""
    removed = 0
    for path in Path(folder).rglob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) of an interrupted run", folder, removed)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Write ``path`` through :class:`OutputFile`: published only when the block succeeds."""
    out = OutputFile(path, mode)
    try:
        yield out.fh
    except OSError as exc:
        tmp = out._tmp
        out.abort()
        raise _named(exc, out.path, tmp) from None
    except BaseException:
        out.abort()
        raise
    out.commit()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path, "wb") as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_write(path, "w") as fh:
        fh.write(text)


def json_text(obj: Any, indent: int | None = None) -> str:
    """JSON, readable UTF-8 when possible; strings holding undecodable file-name bytes
    (surrogate escapes) are written as ``\\u`` escapes, which load back to the same str."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(obj, indent=indent, ensure_ascii=True)
    return text


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    atomic_write_text(path, json_text(obj, indent) + "\n")


def _mode_for(target: Path) -> int:
    """A replaced file keeps its permission bits; a new one gets 0666 less the umask."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return 0o666 & ~_umask()


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask (reading it means setting it: the lock keeps our threads from seeing
    the temporary 0)."""
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask
