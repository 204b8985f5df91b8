"""The ray engine writes what the local engine writes (one local Ray session for the module)."""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from celebface.cropping import CropConfig, crop_dataset
from celebface.recognition import EmbedConfig, embed_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    except Exception:  # its raylet has 30 s to start: a very busy machine may need two tries
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(five_celeb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three photos of each of two people (links) and one unreadable file."""
    root = tmp_path_factory.mktemp("photos")
    for person in ("ben_afflek", "madonna"):
        (root / person).mkdir()
        for p in sorted((five_celeb / person).glob("*.jpg"))[:3]:
            (root / person / p.name).symlink_to(p)
    (root / "madonna" / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "crop.json" and ".cache" not in p.parts}


CROP = {"batch_size": 2, "preview": 0, "progress": False, "size": 150}


@pytest.fixture(scope="module")
def local_crops(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "crops"
    crop_dataset(photos, out, CropConfig(**CROP))
    return out


def test_crop_on_ray_resumes_and_writes_the_local_outputs(ray_session, photos: Path,
                                                          local_crops: Path,
                                                          tmp_path: Path) -> None:
    # an interrupted run: the local engine's output with only its first two sources recorded
    dst = tmp_path / "ray"
    shutil.copytree(local_crops, dst)
    manifest = (dst / "manifest.csv").read_text().splitlines(keepends=True)
    (dst / "manifest.csv").write_text("".join(manifest[:3]))
    for row in csv.reader(manifest[3:]):  # the crops not recorded yet are not there either
        (dst / row[1]).unlink()
    summary = crop_dataset(photos, dst, CropConfig(**CROP, engine="ray"))
    assert summary.skipped == 2 and summary.processed == summary.images - 2
    assert summary.errors == 1 and len(manifest) - 1 >= 4
    want, got = _files(local_crops), _files(dst)
    assert sorted(got) == sorted(want)
    for name in want:  # manifest, errors.txt, no_faces.txt and every crop, byte for byte
        assert got[name] == want[name], name
    assert "broken.jpg" in got["errors.txt"].decode()


def test_embed_on_ray_gives_the_local_vectors(ray_session, local_crops: Path,
                                              tmp_path: Path) -> None:
    crops = tmp_path / "crops"
    for p in local_crops.rglob("*.jpg"):
        (crops / p.parent.name).mkdir(parents=True, exist_ok=True)
        (crops / p.parent.name / p.name).symlink_to(p)
    # the crop folder's records come along, so both engines embed the face each crop carries
    # (with no records MTCNN runs first, and its float order, which depends on the thread
    # count, moves landmarks by ~1e-4 px: vectors then agree within ~1e-4, not 1e-5)
    for name in ("crop.json", "manifest.csv"):
        (crops / name).symlink_to(local_crops / name)
    (crops / "madonna" / "broken.jpg").write_bytes(b"not a jpeg")
    local = embed_dataset(crops, tmp_path / "local", EmbedConfig(batch_size=2, progress=False))
    config = EmbedConfig(batch_size=2, progress=False, engine="ray")
    remote = embed_dataset(crops, tmp_path / "ray", config)
    assert remote.meta["computed"] == local.meta["computed"] >= 4
    assert remote.paths == local.paths and (remote.labels == local.labels).all()
    assert np.abs(remote.embeddings - local.embeddings).max() < 1e-5
    for name in ("errors.txt", "paths.json", "label_mapping.json"):
        assert (tmp_path / "ray" / name).read_text() == (tmp_path / "local" / name).read_text()
    assert "broken.jpg" in (tmp_path / "ray" / "errors.txt").read_text()
    # resumable: vectors come from the cache
    assert embed_dataset(crops, tmp_path / "ray", config).meta["computed"] == 0


def test_missing_ray_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.engines.ray_engine import RayMissingError, connect

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(RayMissingError, match=r"pip install 'celebface\[ray\]'"):
        connect()
