"""The embedding cache grows by new work only, and each image is read once (issue 22, item 7)."""

from __future__ import annotations

import builtins
import io
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from celebface.recognition import embed_dataset
from celebface.recognition.cache import EmbeddingCache
from faultkit import ColourEmbedder, write_people

SETTINGS = {"model": "test", "v": 1}


def _shards(root: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in root.rglob("shard-*.npz")}


def _vecs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_a_run_adds_one_shard_and_rewrites_nothing(tmp_path: Path) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob", "cat"], n=4)
    out = tmp_path / "emb"
    first = embed_dataset(src, out, embedder=ColourEmbedder(), batch_size=2, progress=False)
    assert first.meta["computed"] == 12
    before = _shards(out / ".cache")
    assert len(before) == 1  # the run's six chunk shards, merged into one at its end
    write_people(tmp_path / "more", ["amy"], n=3, size=30)  # other pixels
    for i in range(3):  # three new photos
        os.replace(tmp_path / "more" / "amy" / f"{i}.png", src / "amy" / f"new{i}.png")
    again = embed_dataset(src, out, embedder=ColourEmbedder(), batch_size=2, progress=False)
    assert again.meta["computed"] == 3 and again.meta["cached"] == 12
    after = _shards(out / ".cache")
    assert len(after) == 2
    assert {k: after[k] for k in before} == before  # the old shard untouched (same file)
    new = EmbeddingCache(out / ".cache", ColourEmbedder().settings(), "orig")
    assert len(new) == 15
    # a warm run writes nothing
    embed_dataset(src, out, embedder=ColourEmbedder(), batch_size=2, progress=False)
    assert _shards(out / ".cache") == after
    # asked to: one shard with everything
    last = embed_dataset(src, out, embedder=ColourEmbedder(), compact_cache=True,
                         progress=False)
    assert last.meta["computed"] == 0 and len(_shards(out / ".cache")) == 1
    np.testing.assert_array_equal(last.embeddings, again.embeddings)
    assert len(EmbeddingCache(out / ".cache", ColourEmbedder().settings(), "orig")) == 15


def test_past_the_bound_the_small_shards_merge_not_the_largest(tmp_path: Path) -> None:
    big = EmbeddingCache(tmp_path, SETTINGS, "orig")
    big.add([f"{i:040d}" for i in range(100)], _vecs(100))
    big.settle(max_shards=3)
    (largest,) = _shards(tmp_path)
    for run in range(3):  # three runs of one shard each: four shards, past 3
        cache = EmbeddingCache(tmp_path, SETTINGS, "orig")
        cache.add([f"{1000 + run:040d}"], _vecs(1, run))
        cache.settle(max_shards=3)
    shards = _shards(tmp_path)
    assert len(shards) == 2 and largest in shards
    full = EmbeddingCache(tmp_path, SETTINGS, "orig")
    assert len(full) == 103
    np.testing.assert_array_equal(full.get(f"{1002:040d}"), _vecs(1, 2)[0])


def test_damaged_shard_is_a_miss_and_a_merge_drops_it(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, SETTINGS, "orig")
    cache.add(["a" * 40], _vecs(1))
    cache.add(["b" * 40], _vecs(1, 1))
    cache.settle()
    (bad,) = tmp_path.rglob("shard-*.npz")
    bad.write_bytes(bad.read_bytes()[:50])
    again = EmbeddingCache(tmp_path, SETTINGS, "orig")
    assert len(again) == 0
    again.add(["c" * 40], _vecs(1, 2))
    again.compact()
    assert not bad.exists() and len(_shards(tmp_path)) == 1
    assert len(EmbeddingCache(tmp_path, SETTINGS, "orig")) == 1


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from celebface.recognition.cache import EmbeddingCache
    cache = EmbeddingCache(sys.argv[1], {"model": "test", "v": 1}, "orig")
    tag, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        keys = [f"{tag}{i:06d}{j:04d}".ljust(40, "0") for j in range(200)]
        cache.add(keys, np.full((200, 4), i, np.float32))
        print(i, flush=True)
    cache.settle(max_shards=4)
""")


def _writer(root: Path, tag: str, n: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-c", _WRITER, str(root), tag, str(n)],
                            stdout=subprocess.PIPE, text=True, env=env)


def test_kill_9_loses_at_most_the_shard_being_written(tmp_path: Path) -> None:
    proc = _writer(tmp_path, "k", 10_000)
    assert proc.stdout is not None
    for _ in range(5):
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sum(1 for line in proc.stdout.read().splitlines() if line) + 5
    cache = EmbeddingCache(tmp_path, SETTINGS, "orig")
    assert len(cache) >= 200 * done and len(cache) % 200 == 0


def test_concurrent_runs_keep_every_vector(tmp_path: Path) -> None:
    procs = [_writer(tmp_path, tag, 12) for tag in "pq"]
    deadline = time.monotonic() + 60
    for proc in procs:
        proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert proc.returncode == 0
    cache = EmbeddingCache(tmp_path, SETTINGS, "orig")
    assert len(cache) == 2 * 12 * 200
    assert len(_shards(tmp_path)) <= 4


def test_each_image_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = write_people(tmp_path / "src", ["amy", "bob"], n=3)
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file).startswith(str(src)) and str(file).endswith(".png"):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)  # PIL's
    monkeypatch.setattr(io, "open", counting_open)  # pathlib's
    first = embed_dataset(src, tmp_path / "emb", embedder=ColourEmbedder(), progress=False)
    assert first.meta["computed"] == 6
    assert sorted(opened) == sorted(str(p) for p in src.rglob("*.png"))  # each once
    opened.clear()
    embed_dataset(src, tmp_path / "emb", embedder=ColourEmbedder(), progress=False)
    assert len(opened) == 6  # warm: hashed only
    # past the read-ahead bound a file is read again when embedded, with the same result
    import celebface.recognition.engine as engine_mod

    monkeypatch.setattr(engine_mod, "READ_AHEAD_BYTES", 0)
    opened.clear()
    bounded = embed_dataset(src, tmp_path / "emb2", embedder=ColourEmbedder(),
                            cache_dir=str(tmp_path / "cache2"), progress=False)
    assert len(opened) == 12
    np.testing.assert_array_equal(bounded.embeddings, first.embeddings)
