"""Output paths that cannot destroy their inputs, and one lock per folder for writers.

:func:`check_output_dir` is called by every command that writes a folder, before any work:
an output folder must not be an input folder, lie inside one (its outputs would be read as
input by the next run), or contain one (outputs could overwrite it), and must not be a file.
:func:`check_output_file` is the same rule for an output file (``--jsonl``, each annotated
image): never an input, nor a file inside a gallery, model or dataset folder.
:func:`folder_lock` serialises the processes that update one folder (a gallery, a crop
output, ...): the second waits for the first, then re-reads what it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from celebface.errors import CelebfaceError
from celebface.io.datasets import is_image_file

log = logging.getLogger(__name__)

LOCK_FILE = ".celebface.lock"


class OutputPathError(CelebfaceError, ValueError):
    """An output path that would overwrite or re-read an input, or that is not a folder."""


def _real(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _inside(child: Path, parent: Path) -> bool:
    return child != parent and parent in child.parents


def check_output_dir(
    dst: str | Path, inputs: Iterable[str | Path | None] = (), *, flag: str = "output folder",
    guarded: bool = False, own: str | None = None,
) -> None:
    """Refuse (one line, :class:`OutputPathError`) an output folder ``dst`` that is a file,
    is an input folder, lies inside one or contains one; or that is the folder of an input
    file, or of a link to one (its annotated copy would replace it). Inputs that do not exist
    are ignored. ``guarded``: also refuse a folder inside a gallery, model or dataset folder
    (:func:`guarded_folder`; for outputs that are not a stage of their own). ``own``: the
    file that marks this output's kind (``gallery.json``): a folder that holds photos
    (:func:`holds_photos`) and not that file is refused, so no output is mixed into a
    dataset."""
    if os.path.lexists(dst) and not os.path.isdir(dst):
        raise OutputPathError(f"{flag} {dst}: exists and is not a folder")
    if own is not None and not os.path.lexists(os.path.join(dst, own)) and holds_photos(dst):
        raise OutputPathError(f"{flag} {dst} holds photos: writing there would mix the "
                              "output into a dataset; choose an empty or new folder")
    out = _real(dst)
    guard = guarded_folder(out / "-") if guarded else None
    if guard is not None:
        raise OutputPathError(f"{flag} {dst} is in the {guard[1]} folder {guard[0]}: writing "
                              "there would damage it; choose a folder outside")
    for inp in inputs:
        if inp is None or "://" in str(inp) or not os.path.exists(inp):
            continue
        src = _real(inp)
        if src.is_dir():
            if out == src:
                raise OutputPathError(f"{flag} {dst} is the input folder {inp}: its files "
                                      "would be overwritten; choose another folder")
            if _inside(out, src):
                raise OutputPathError(f"{flag} {dst} is inside the input folder {inp}: its "
                                      "outputs would be read as input; choose a folder outside")
            if _inside(src, out):
                raise OutputPathError(f"{flag} {dst} contains the input folder {inp}: outputs "
                                      "could overwrite it; choose a folder outside")
        elif out in (src.parent, _real(Path(inp).parent)):  # also a link to it in ``dst``
            raise OutputPathError(f"{flag} {dst} holds the input file {inp}: its output would "
                                  "replace it; choose another folder")


def holds_photos(folder: str | Path) -> bool:
    """Whether ``folder`` holds images itself or in a folder just below it (a dataset: a
    folder-per-person of photos); hidden files and folders are not looked at."""
    folder = Path(folder)
    if not folder.is_dir():
        return False
    for pattern in ("*", "*/*"):
        for path in folder.glob(pattern):
            if not any(p.startswith(".") for p in path.relative_to(folder).parts) \
                    and is_image_file(path):
                return True
    return False


def check_writable(folder: str | Path, flag: str = "output folder") -> None:
    """Refuse (one line, :class:`OutputPathError`) a folder that exists and cannot be written
    (a read-only mount, no permission), before any slow work: a temporary file is made and
    removed there, as the atomic writes will (a permission check would pass as root)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".celebface-probe.", suffix=".tmp")
    except OSError as exc:
        raise OutputPathError(f"{flag} {folder}: cannot write there "
                              f"({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


#: Files that mark a folder celebface reads back: a stage output (``celebface.json``, or the
#: marker of a folder written before it: see :mod:`celebface.data.stage`).
GUARD_FILES = {"gallery.json": "gallery", "model.json": "model",
               "face_embeddings.npy": "embeddings", "all_images.npy": "pack",
               "crop.json": "crops", "synth.json": "synth", "celebface.json": "dataset"}


def guarded_folder(path: str | Path) -> tuple[Path, str] | None:
    """The gallery, model or dataset folder that ``path`` (resolved) lies in, and its kind;
    None when it lies in none."""
    for folder in _real(path).parents:
        for marker, kind in GUARD_FILES.items():
            if (folder / marker).is_file():
                return folder, kind
    return None


def check_output_file(
    dst: str | Path, inputs: Iterable[str | Path | None] = (), *, flag: str = "output file"
) -> None:
    """Refuse (:class:`OutputPathError`) an output file ``dst`` that is, or resolves to, an
    input file or an existing file inside an input folder, or that lies inside a gallery,
    model or dataset folder; ``-`` (standard output) passes. A symlink at ``dst`` is replaced
    when written, never written through (:class:`celebface.io.OutputFile`)."""
    if str(dst) == "-":
        return
    if os.path.isdir(dst):
        raise OutputPathError(f"{flag} {dst}: is a folder, not a file")
    here = _real(Path(dst).parent) / Path(dst).name  # the name itself (a link is replaced)
    spots = {here, _real(dst)}  # ... and where it points
    for inp in inputs:
        if inp is None or "://" in str(inp) or not os.path.exists(inp):
            continue
        src = _real(inp)
        for spot in spots:
            if spot == src:
                raise OutputPathError(f"{flag} {dst} is the input {inp}: it would be "
                                      "overwritten; choose another file")
            if src.is_dir() and _inside(spot, src) and os.path.lexists(spot):
                raise OutputPathError(f"{flag} {dst} is a file in the input folder {inp}: it "
                                      "would be overwritten; choose another file")
    for spot in spots:
        guard = guarded_folder(spot)
        if guard is not None:
            raise OutputPathError(f"{flag} {dst} is inside the {guard[1]} folder {guard[0]}: "
                                  "writing there would damage it; choose a file outside")


def _wait_flock(fd: int, timeout: float | None, what: str) -> None:
    """Block until ``fd``'s exclusive ``flock`` is ours; at most ``timeout`` seconds."""
    if timeout is None:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise LockTimeoutError(f"{what} is being updated by another writer (waited "
                                       f"{timeout:g} s)") from None
            time.sleep(0.05)


_HELD: dict[tuple[Path, int], list[int]] = {}  # (lock path, thread) -> [fd, depth]
_HELD_LOCK = threading.Lock()


class LockTimeoutError(CelebfaceError, TimeoutError):
    """A lock another process held longer than the caller would wait; the message names the
    folder and how long it waited."""


@contextlib.contextmanager
def folder_lock(folder: str | Path, what: str = "folder", timeout: float | None = None
                ) -> Iterator[None]:
    """An exclusive ``flock`` on ``folder/.celebface.lock`` (the folder is created): other
    processes (and other threads) wait, at most ``timeout`` seconds when it is given (then
    :class:`LockTimeoutError`). Re-entrant: nested calls in one thread share it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = (_real(folder / LOCK_FILE), threading.get_ident())
    with _HELD_LOCK:
        held = _HELD.get(key)
        if held is not None:
            held[1] += 1
    if held is None:
        fd = os.open(key[0], os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("%s %s is being updated by another run: waiting for it", what,
                            folder)
                _wait_flock(fd, timeout, f"{what} {folder}")
        except BaseException:
            os.close(fd)
            raise
        with _HELD_LOCK:
            _HELD[key] = [fd, 1]
    try:
        yield
    finally:
        with _HELD_LOCK:
            entry = _HELD[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _HELD[key]
        if entry[1] == 0:
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])
