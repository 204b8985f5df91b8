"""The ``ray`` engine: crop and embed computed by Ray Data pipelines, written by this process.

Both stages split their sources into the same fixed chunks as the local engine (``batch_size``
sources each) and send one chunk per Ray row:

- crop: ``read`` (Ray tasks decode the chunk's images) -> ``detect`` (an actor pool, one
  detector per worker, loaded once: the chunk's faces detected as one batch, crops cut and
  JPEG-encoded by :func:`celebface.cropping.plan.plan_crops`);
- embed: ``embed`` (an actor pool, one embedder per worker: the chunk read and embedded by
  :func:`celebface.recognition.batch.embed_chunk`).

The results come back in input order and go through the local engine's writers (crop records
and files, the embedding cache), so outputs, resumption and the logging of bad files are the
local engine's. Workers read the sources by path: on a cluster every node must see them at
the same path (a shared file system). Actors take a GPU each when the cluster has GPUs, else
one CPU each (one torch thread).
"""

from __future__ import annotations

import logging
import pickle
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from celebface.errors import CelebfaceError

log = logging.getLogger(__name__)


class RayMissingError(CelebfaceError, ImportError):
    """The ray engine was asked for but Ray is not installed."""


def connect(address: str | None = None) -> Any:
    """The ``ray`` module, connected to ``address`` (None: the running session, else
    ``RAY_ADDRESS`` or a new local instance)."""
    try:
        import ray
    except ImportError:
        raise RayMissingError("the ray engine needs Ray: pip install 'celebface[ray]' "
                              "(or ray[data])") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING)
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # results in input order, like local
    ctx.enable_progress_bars = False  # the caller's tqdm bar counts
    return ray


def _pool(ray: Any) -> dict[str, Any]:
    """Actor-pool resources: a GPU per actor when there are GPUs, else one CPU each (one CPU
    left for the read tasks)."""
    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    size = gpus or max(1, int(res.get("CPU", 1)) - 1)
    LAST_RUN["workers"] = size
    return {"compute": ray.data.ActorPoolStrategy(size=size), "num_cpus": 1,
            **({"num_gpus": 1} if gpus else {})}


def _rows(chunks: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"k": k, "payload": pickle.dumps(c)} for k, c in enumerate(chunks)]


def _batch(k: Any, payloads: list[Any]) -> dict[str, np.ndarray]:
    out = np.empty(len(payloads), dtype=object)
    out[:] = [pickle.dumps(p) for p in payloads]
    return {"k": np.asarray(k), "payload": out}


#: timings of the last run: ``workers``, ``first_s`` (until the first chunk's result: workers
#: starting and loading their models) and ``rest_s`` (the other ``chunks`` - 1 results)
LAST_RUN: dict[str, Any] = {}


def _results(ds: Any) -> Iterator[Any]:
    start = time.perf_counter()
    first, n = None, 0
    for row in ds.iter_rows():
        if first is None:
            first = time.perf_counter()
        n += 1
        yield pickle.loads(row["payload"])
    end = time.perf_counter()
    first = first or end
    LAST_RUN.update(first_s=first - start, rest_s=end - first, chunks=n)
    log.info("ray: first result after %.1f s (workers starting), %d more in %.1f s",
             first - start, max(0, n - 1), end - first)


def _device(ray: Any, device: str) -> str:
    return "cuda" if ray.get_gpu_ids() else device


# ------------------------------------------------------------------------ crop
def _read_chunk(batch: dict[str, np.ndarray], max_side: int) -> dict[str, np.ndarray]:
    from celebface.io import ImageReadError, read_image

    out = []
    for payload in batch["payload"]:
        loaded: list[Any] = []
        for path, *_ in pickle.loads(payload):
            try:  # an unreadable file becomes its reason (exceptions do not pickle)
                loaded.append(read_image(path, max_side))
            except ImageReadError as exc:
                loaded.append(exc.reason)
            except Exception as exc:  # never stop the run on one file
                loaded.append(f"{type(exc).__name__}: {exc}")
        out.append((pickle.loads(payload), loaded))
    return _batch(batch["k"], out)


class _Detect:
    """A Ray actor: one detector, loaded once; detects and cuts the crops of a chunk."""

    def __init__(self, config: Any, min_score: float, detector: Any = None):
        import ray

        from celebface.detection import get_detector

        self.config, self.min_score = config, min_score
        self.detector = detector or get_detector(
            config.detector, _device(ray, config.device), **config.detector_options)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from celebface.cropping.local import detect_each
        from celebface.cropping.plan import plan_crops

        out = []
        for payload in batch["payload"]:
            sources, loaded = pickle.loads(payload)
            ok = [i for i, im in enumerate(loaded) if not isinstance(im, str)]
            found = detect_each(self.detector, [loaded[i].rgb for i in ok]) if ok else []
            plans: list[Any] = list(loaded)  # read errors stay as they are
            for i, f in zip(ok, found, strict=True):
                _, source, identity, stem = sources[i]
                plans[i] = plan_crops(self.config, self.min_score, source, identity, stem,
                                      loaded[i], f)
            out.append(plans)
        return _batch(batch["k"], out)


def crop_on_ray(todo: Sequence[Any], config: Any, writer: Any, bar: Any,
                detector: Any = None) -> None:
    """Crop ``todo`` (dataset items) on Ray; ``writer`` (the local engine's) writes."""
    from celebface.io import ImageReadError

    ray = connect(config.address)
    size = max(1, config.batch_size)
    chunks = [[(str(it.path), writer.rel[it.path], it.identity, writer.names[it.path])
               for it in todo[lo:lo + size]] for lo in range(0, len(todo), size)]
    if not chunks:
        return
    ds = ray.data.from_items(_rows(chunks), override_num_blocks=len(chunks))
    ds = ds.map_batches(_read_chunk, batch_size=1, fn_kwargs={"max_side": config.max_side})
    ds = ds.map_batches(_Detect, batch_size=1, fn_constructor_args=(
        config, writer.min_score, detector), **_pool(ray))
    for chunk, plans in zip(chunks, _results(ds), strict=True):
        rows: list[list[str]] = []
        for (path, source, *_), plan in zip(chunk, plans, strict=True):
            if isinstance(plan, str):  # unreadable: logged first, as the local engine does
                writer.error(source, plan)
                log.warning("%s", ImageReadError(path, plan))
        for (_path, source, *_), plan in zip(chunk, plans, strict=True):
            if not isinstance(plan, str):
                writer.apply(source, plan, rows)
        writer.records.add_faces(rows)
        writer.records.commit()
        bar.update(len(chunk))


# ------------------------------------------------------------------------ embed
class _Embed:
    """A Ray actor: one embedder, loaded once; reads and embeds a chunk."""

    def __init__(self, factory: Any):
        import ray

        self.embedder = factory(_device(ray, "cpu"))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from celebface.recognition.batch import embed_chunk

        out = [embed_chunk(self.embedder, *pickle.loads(p)) for p in batch["payload"]]
        return _batch(batch["k"], out)


class _Rebuild:
    """Builds a worker's embedder: a dlib embedder from its config (its network is loaded
    on the worker), anything else as shipped."""

    def __init__(self, embedder: Any):
        from celebface.recognition.dlib_resnet import DlibEmbedder

        self.dlib = embedder.config if isinstance(embedder, DlibEmbedder) else None
        self.device = getattr(embedder, "device", "cpu")
        self.embedder = None if self.dlib is not None else embedder

    def __call__(self, device: str) -> Any:
        if self.dlib is None:
            return self.embedder
        from celebface.recognition.dlib_resnet import DlibEmbedder

        return DlibEmbedder(self.dlib, device=device if device == "cuda" else self.device)


def embed_on_ray(embedder: Any, config: Any, tasks: Sequence[Any]) -> Iterator[Any]:
    """``embed_chunk`` results of ``tasks`` ((refs, views) each), in order, from Ray."""
    ray = connect(getattr(config, "address", None))
    if not tasks:
        return iter(())
    ds = ray.data.from_items(_rows(tasks), override_num_blocks=len(tasks))
    ds = ds.map_batches(_Embed, batch_size=1, fn_constructor_args=(_Rebuild(embedder),),
                        **_pool(ray))
    return _results(ds)
