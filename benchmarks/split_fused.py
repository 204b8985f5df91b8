"""Split a fused ``celebface embed`` output (``--embedder a+b``) into one folder per part.

A fused vector is ``[sqrt(w_1) v_1, ..., sqrt(w_k) v_k]`` renormalised (each ``v_i`` a unit
vector, :func:`celebface.recognition.fusion.fuse`), and flip TTA averages the fused views, so
each part's slice, renormalised, is exactly that part's own vector (with the same TTA). One
fused run therefore gives every part's embeddings with one face search per photo; the
benchmarks fuse part folders again with other weights (``benchmarks/embeddings.py``: ``A+B``).

    .venv/bin/python benchmarks/split_fused.py runs/pins_emb/fused_flip runs/pins_emb
    # -> runs/pins_emb/dlib_flip, runs/pins_emb/sface_flip (suffix from the fused folder's TTA)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> int:
    from celebface.recognition import load_embeddings
    from celebface.recognition.base import l2_normalize
    from celebface.recognition.dataset import _write_outputs
    from celebface.recognition.spec import EmbedderSpec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("fused", type=Path)
    p.add_argument("out", type=Path, help="parent folder of the part folders")
    args = p.parse_args()
    e = load_embeddings(args.fused)
    spec = EmbedderSpec.from_dict(e.meta.get("embedder"))
    names = spec.name.split("+")
    dims = {"dlib": 128, "sface": 128, "facenet": 512}
    start = 0
    for name in names:
        part = l2_normalize(e.embeddings[:, start:start + dims[name]])
        start += dims[name]
        out = args.out / (name + ("_flip" if spec.tta == "flip" else ""))
        meta = {**e.meta, "model": name, "split_from": str(args.fused),
                "embedder": EmbedderSpec(name, spec.tta).to_dict()}
        meta.pop("sha256", None)
        _write_outputs(out, part.astype(np.float32), np.asarray(e.labels), list(e.paths),
                       list(e.label_names), meta, list(e.splits or [None] * len(e.paths)), [])
        print(out, part.shape)
    if start != e.embeddings.shape[1]:
        raise SystemExit(f"{args.fused}: parts add up to {start} columns, not "
                         f"{e.embeddings.shape[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
