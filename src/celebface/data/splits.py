"""The one stratified splitter: every stage that has to invent a split uses it, so the same
folder gets the same val rows whether it is packed, embedded or trained on directly."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from celebface.errors import InputError


def stratified_splits(
    groups: Sequence[object] | np.ndarray,
    val_fraction: float = 0.15,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """``train``/``val``/``test`` per sample, stratified by ``groups`` (identities or labels)
    and reproducible for a ``seed``. Each group keeps at least one training sample; a group of
    two or more gives at least one val sample when ``val_fraction`` > 0."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1
            and val_fraction + test_fraction < 1):
        raise InputError("val and test fractions must be in [0, 1) and sum to less than 1")
    # groups in their natural order: label numbers numerically, names alphabetically, so a
    # folder's labels (sorted names) and its names give the same split
    _, inverse = np.unique(np.asarray(groups), return_inverse=True)
    inverse = inverse.reshape(-1)
    out = ["train"] * len(inverse)
    rng = np.random.default_rng(seed)
    for group in range(int(inverse.max()) + 1 if len(inverse) else 0):
        rows = np.flatnonzero(inverse == group)
        n = len(rows)
        order = rng.permutation(n)
        n_val = min(n - 1, max(1 if val_fraction > 0 else 0, round(n * val_fraction)))
        n_test = max(0, min(round(n * test_fraction), n - 1 - n_val))
        for k in order[:n_val]:
            out[rows[k]] = "val"
        for k in order[n_val:n_val + n_test]:
            out[rows[k]] = "test"
    return out
