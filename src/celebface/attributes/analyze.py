"""``analyze``: every face of an image with its attributes (the ``Face`` fields ``age``,
``gender``, ``gender_probability``, ``pose``), for the facade, the CLI and the service's
``face_plugins``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from celebface.attributes.age_gender import get_age_gender
from celebface.attributes.pose import head_pose
from celebface.errors import InputError
from celebface.types import Face

#: What ``face_plugins`` may name (CompreFace's names): each fills its ``Face`` fields.
PLUGINS = ("age", "gender", "pose")


def check_plugins(plugins: str | Iterable[str] | None) -> tuple[str, ...]:
    """``plugins`` (a comma-separated string or names) checked, in :data:`PLUGINS` order."""
    if plugins is None:
        return ()
    names = [p.strip() for p in (plugins.split(",") if isinstance(plugins, str) else plugins)]
    names = [p for p in names if p]
    unknown = sorted(set(names) - set(PLUGINS))
    if unknown:
        raise InputError(f"unknown face plugin(s) {', '.join(unknown)}: choose from "
                         f"{', '.join(PLUGINS)}")
    return tuple(p for p in PLUGINS if p in names)


def add_attributes(image: np.ndarray, faces: Sequence[Face],
                   plugins: Iterable[str] = PLUGINS) -> list[Face]:
    """``faces`` of ``image`` (RGB uint8) with the attributes ``plugins`` name; a face without
    landmarks (a whole-image face) gets none."""

    plugins = check_plugins(list(plugins))
    out = list(faces)
    have = [i for i, f in enumerate(out) if f.landmarks is not None]
    if not plugins or not have:
        return out
    if "age" in plugins or "gender" in plugins:
        results = get_age_gender().predict(image, [out[i] for i in have])
        for i, r in zip(have, results, strict=True):
            changes: dict = {}
            if "age" in plugins:
                changes["age"] = r.age
            if "gender" in plugins:
                changes.update(gender=r.gender, gender_probability=r.gender_probability)
            out[i] = out[i].with_(**changes)
    if "pose" in plugins:
        for i in have:
            lm = out[i].landmarks
            if lm is not None:
                out[i] = out[i].with_(pose=head_pose(lm))
    return out


def analyze_faces(image: np.ndarray, finder, plugins: Iterable[str] = PLUGINS) -> list[Face]:
    """Every face of ``image`` that counts for ``finder``, with its attributes."""
    return add_attributes(image, finder.find(image), plugins)
