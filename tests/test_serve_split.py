"""The service's inference path with stand-in models (fast): faces beyond ``limit`` or under
``det_prob_threshold`` are never embedded, the best people of every face come from one index
query, and the response model of a face is made from :class:`celebface.types.Face`."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.io import LoadedImage
from celebface.types import Face

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")
from fastapi.testclient import TestClient

from celebface.serve import ServeConfig, create_app, schemas
from celebface.serve.service import face_out
from fakes import BlobDetector, MeanColourEmbedder
from test_stream import COLOURS, colour_gallery


class SizeScoredBlobs(BlobDetector):
    """Blobs scored by size: the largest 0.99, the others 0.5."""

    def detect_batch(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        return [[f.with_(score=0.99 if i == 0 else 0.5) for i, f in enumerate(faces)]
                for faces in super().detect_batch(images)]


@contextmanager
def colour_service(tmp_path: Path) -> Iterator[tuple[TestClient, MeanColourEmbedder]]:
    colour_gallery().save(tmp_path / "g")
    embedder = MeanColourEmbedder()
    app = create_app(ServeConfig(gallery=tmp_path / "g", device="cpu"),
                     models=(embedder, SizeScoredBlobs()))
    with TestClient(app, base_url="http://localhost") as client:
        embedder.faces_seen = 0  # the warm-up's
        yield client, embedder


def three_blobs() -> bytes:
    """Red (largest), green and blue (smallest) patches on grey, as a PNG."""
    img = np.full((200, 300, 3), 128, np.uint8)
    img[20:100, 20:90] = COLOURS["red"]
    img[30:90, 130:180] = COLOURS["green"]
    img[40:80, 220:255] = COLOURS["blue"]
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(("query", "named", "embedded"), [
    ("", ["red", "green", "blue"], 3),
    ("?limit=1", ["red"], 1),
    ("?limit=2", ["red", "green"], 2),
    ("?det_prob_threshold=0.9", ["red"], 1),
])
def test_limit_and_min_score_apply_before_embedding(tmp_path: Path, query: str,
                                                    named: list[str], embedded: int) -> None:
    with colour_service(tmp_path) as (client, embedder):
        r = client.post("/v1/recognize" + query, content=three_blobs())
        assert r.status_code == 200, r.text
        assert [f["identity"] for f in r.json()["faces"]] == named
        assert embedder.faces_seen == embedded  # the others were never embedded


def test_the_best_people_of_all_faces_come_from_one_index_query(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from celebface.gallery.matching import GalleryMatcher

    calls: list[int] = []
    real = GalleryMatcher.top
    monkeypatch.setattr(GalleryMatcher, "top",
                        lambda self, emb, n=2: calls.append(len(emb)) or real(self, emb, n))
    with colour_service(tmp_path) as (client, _):
        r = client.post("/v1/recognize?prediction_count=3", content=three_blobs())
    faces = r.json()["faces"]
    assert calls == [3]  # one query for the three faces: their decisions and predictions
    for face in faces:
        assert len(face["predictions"]) == 3
        assert face["predictions"][0]["name"] == face["identity"]
        sims = [p["similarity"] for p in face["predictions"]]
        assert sims == sorted(sims, reverse=True)
        assert face["similarity"] == pytest.approx(sims[0], abs=1e-4)
        assert face["runner_up"] == face["predictions"][1]["name"]


def every_field_set() -> Face:
    return Face(box=(1.0, 2.0, 30.0, 40.0), score=0.9, landmarks=np.ones((5, 2), np.float32),
                embedding=np.ones(3, np.float32), identity="red", similarity=0.95,
                runner_up="blue", runner_up_similarity=0.5, track_id=None, age=31.0,
                gender="female", gender_probability=0.8, pose=(1.0, 2.0, 3.0))


def test_the_face_response_model_covers_every_face_field() -> None:
    shown = set(schemas.FaceOut.model_fields)
    hidden = schemas.HIDDEN_FACE_FIELDS
    assert {f.name for f in dataclasses.fields(Face)} - hidden <= shown
    face = every_field_set()
    assert {f.name for f in dataclasses.fields(Face)
            if getattr(face, f.name) is None} <= hidden  # the test sets every shown field
    img = LoadedImage("photo", np.zeros((50, 40, 3), np.uint8), 2.0, (80, 100))
    out = face_out(face, img, label="Red")
    # every key the service writes is in the model, with the value it wrote
    assert schemas.FaceOut.model_validate(out).model_dump(exclude_none=True) == out
    assert out["box"] == [2.0, 4.0, 60.0, 80.0]  # in the photo's pixels


def test_a_field_face_gains_is_in_the_response_model_at_once() -> None:
    @dataclasses.dataclass(frozen=True)
    class Richer(Face):
        quality: float | None = None

    model = schemas.face_model(Richer, "RicherOut")
    assert "quality" in model.model_fields
    assert model.model_validate({"box": [0, 0, 1, 1], "score": 1, "quality": 0.5}).quality == 0.5
    assert list(model.model_fields)[: len(schemas.FaceOut.model_fields)] == list(
        schemas.FaceOut.model_fields)
