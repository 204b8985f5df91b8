"""Loading ``celebface embed`` outputs for the benchmarks, fused when asked (``A+B``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from celebface.recognition import load_embeddings


def load(emb_dir: Path) -> tuple[object, np.ndarray, str, str]:
    """``(embeddings, vectors, embedder name, tta)``; ``A+B`` (two folders of the same photos,
    e.g. ``runs/pins_emb2/dlib+runs/pins_emb2/facenet``) fuses them as ``--embedder
    dlib+facenet`` does (:func:`celebface.recognition.fusion.fuse`, its default weights)."""
    from celebface.recognition.fusion import fuse
    from celebface.recognition.registry import embedder_config

    parts = [load_embeddings(Path(p)) for p in str(emb_dir).split("+")]
    e = parts[0]
    if len(parts) == 1:
        return e, np.asarray(e.embeddings, np.float32), e.meta.get("model", "dlib"), \
            e.meta.get("tta", "none")
    for other in parts[1:]:
        if list(other.paths) != list(e.paths):
            raise SystemExit(f"{emb_dir}: the folders do not hold the same photos in order")
    name = "+".join(p.meta.get("model", "?") for p in parts)
    vec = fuse([np.asarray(p.embeddings, np.float32) for p in parts],
               embedder_config(name).fusion_weights)
    ttas = {p.meta.get("tta", "none") for p in parts}
    return e, vec, name, "/".join(sorted(ttas))


def labels_of(e: object) -> tuple[list[str], np.ndarray, np.ndarray]:
    """``(names, each row's person, each row's split)`` of a loaded embed output."""
    names = list(e.label_names)  # type: ignore[attr-defined]
    ids = np.array([names[int(i)] for i in e.labels], dtype=object)  # type: ignore[attr-defined]
    return names, ids, np.array(e.splits, dtype=object)  # type: ignore[attr-defined]
