"""Shared fixtures: real data (the repository's examples/five_celeb; ../shared/data, skipped when
absent) and synthetic images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
#: The demo's photos, kept in the repository (a copy of ../shared/data/five_celeb).
EXAMPLES = ROOT / "examples"


def _shared(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.is_dir():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="session")
def five_celeb() -> Path:
    """The raw 5-celebrity photos (uncropped), from the repository's examples/."""
    return EXAMPLES / "five_celeb"


@pytest.fixture(scope="session")
def pins() -> Path:
    """The 105-identity Pins face crops."""
    return _shared("pins105-dev")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
