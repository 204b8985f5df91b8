"""The local crop engine: decode in threads, detect batches in threads, write in order."""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from celebface.cropping.config import CropConfig
from celebface.cropping.plan import Writer
from celebface.data import FaceItem
from celebface.io import ImageReadError, LoadedImage, read_image
from celebface.types import Face

log = logging.getLogger(__name__)


def _prefetch(
    items: list[FaceItem], workers: int, max_side: int, depth: int
) -> Iterator[tuple[FaceItem, LoadedImage | ImageReadError]]:
    """Decode images in a thread pool, ``depth`` ahead, yielding in order."""
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="decode")
    pending: collections.deque[tuple[FaceItem, Future]] = collections.deque()
    it = iter(items)

    def fill() -> None:
        while len(pending) < depth:
            item = next(it, None)
            if item is None:
                return
            pending.append((item, pool.submit(read_image, item.path, max_side)))

    try:
        fill()
        while pending:
            item, fut = pending.popleft()
            fill()
            try:
                yield item, fut.result()
            except ImageReadError as exc:
                yield item, exc
            except Exception as exc:  # never stop the run on one file
                yield item, ImageReadError(item.path, f"{type(exc).__name__}: {exc}")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def detect_each(detector, images: list[np.ndarray]) -> list[list[Face] | Exception]:
    """Batched detection; if the batch fails, per image, so one bad image costs only itself."""
    try:
        return list(detector.detect_batch(images))
    except Exception as exc:
        log.debug("batch detection failed (%s); retrying image by image", exc)
    out: list[list[Face] | Exception] = []
    for im in images:
        try:
            out.append(detector.detect(im))
        except Exception as exc:
            out.append(exc)
    return out


def crop_local(todo: list[FaceItem], config: CropConfig, detector, writer: Writer,
                bar) -> None:
    """Decode in threads, detect batches of ``config.batch_size`` sources (less the
    unreadable ones) in threads, write in input order."""
    workers = max(1, config.detect_workers) if getattr(detector, "thread_safe", False) else 1
    restore = _limit_torch_threads(config.torch_threads, workers, config.device)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="detect")
    inflight: collections.deque[tuple[list, Future]] = collections.deque()

    def drain(keep: int) -> None:
        while len(inflight) > keep:
            done_batch, fut = inflight.popleft()
            writer.write(done_batch, fut.result())
            bar.update(len(done_batch))

    try:
        batch: list[tuple[FaceItem, LoadedImage]] = []
        stream = _prefetch(todo, config.workers, config.max_side, config.batch_size * 2)
        for n, (item, loaded) in enumerate(stream, 1):
            if isinstance(loaded, ImageReadError):
                writer.error(writer.rel[item.path], loaded.reason)
                log.warning("%s", loaded)
                bar.update(1)
            else:
                batch.append((item, loaded))
            # batches are fixed slices of the sources, so every engine detects the same sets
            if (n % config.batch_size == 0 or n == len(todo)) and batch:
                images = [im.rgb for _, im in batch]
                inflight.append((batch, pool.submit(detect_each, detector, images)))
                batch = []
                drain(workers - 1)
        drain(0)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        restore()


def _limit_torch_threads(threads: int | None, workers: int, device: str):
    """Set torch's CPU threads per detection worker (``threads``, else the free cores shared
    by the workers: :func:`celebface.device.pick_threads`); returns a function restoring the
    old value."""
    import torch

    from celebface.device import set_torch_threads

    if threads is None and device not in ("auto", "cpu"):
        return lambda: None
    old = set_torch_threads(threads, workers)
    return lambda: torch.set_num_threads(old)
