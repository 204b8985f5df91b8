"""The same photo gets the same faces, vectors and names through every door: ``celebface
recognize`` (CLI, JSON Lines), ``celebface.recognize`` (facade), ``POST /v1/recognize``
(FastAPI), one video frame (the video recogniser with the stills' detection size), and
enrolment by ``celebface enroll`` and by ``POST /v1/people/{name}/photos``. No face below the
minimum score or nested in another face comes out anywhere (celebface.detection.finder).

A small gallery (2 train photos of each five_celeb person, by the CLI) is built once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from celebface.detection.finder import HEAD_MARGIN, NESTED, inside
from celebface.detection.registry import DEFAULT_DETECTOR
from celebface.types import Face

pytestmark = [pytest.mark.integration]

PEOPLE = ("ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling")
#: five_celeb photos where the surfaces used to disagree.
JACKET = "elton_john/httpftqncomymusicLxZeltonjohnjpg.jpg"  # train: a 0.767 box on his jacket
CHIN = "elton_john/httpcdncdnjustjaredcomwpcontentuploadsheadlineseltonjohnemmysperformancewatchnowjpg.jpg"  # noqa: E501  val: a 0.963 box on his chin and neck
#: Pins crop no face is found in: the whole image stands for it (``auto``).
TIGHT = "pins_Morgan Freeman/Morgan Freeman10_3028.jpg"


def _train(root: Path, person: str, n: int) -> list[Path]:
    from celebface.io import read_splits

    rows = read_splits(root / "splits.csv")
    names = sorted(f for (who, f), s in rows.items() if who == person and s == "train")
    return [root / person / f for f in names[:n]]


def _val(root: Path, person: str, k: int = 0) -> Path:
    from celebface.io import read_splits

    rows = read_splits(root / "splits.csv")
    return root / person / sorted(f for (who, f), s in rows.items()
                                  if who == person and s == "val")[k]


@pytest.fixture(scope="module")
def setup(five_celeb: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The CLI-enrolled gallery (the jacket photo among Elton John's) and the photos."""
    from celebface.cli.main import main

    tmp = tmp_path_factory.mktemp("consistency")
    data = tmp / "data"
    for person in PEOPLE:
        (data / person).mkdir(parents=True)
        chosen = _train(five_celeb, person, 2)
        if person == "elton_john":
            chosen = [five_celeb / JACKET, *[p for p in chosen if p.name != Path(JACKET).name]]
        for p in chosen[:2]:
            (data / person / p.name).symlink_to(p)
    gallery = tmp / "gallery"
    assert main(["enroll", str(data), "--out", str(gallery), "--device", "cpu"]) == 0
    photos = [five_celeb / CHIN, five_celeb / JACKET, _val(five_celeb, "ben_afflek"),
              _val(five_celeb, "madonna", 2), _val(five_celeb, "jerry_seinfeld")]
    return {"tmp": tmp, "data": data, "gallery": gallery, "photos": photos}


@pytest.fixture(scope="module")
def client(setup: dict[str, Any]):
    """The service on a copy of the CLI's gallery, models built by its own default path."""
    import shutil

    from fastapi.testclient import TestClient

    from celebface.serve import create_app
    from celebface.serve.config import ServeConfig

    copy = setup["tmp"] / "served"
    shutil.copytree(setup["gallery"], copy)
    with TestClient(create_app(ServeConfig(gallery=copy, device="cpu", workers=1)),
                    base_url="http://localhost") as c:
        yield c


def _by_surface(setup: dict[str, Any], client: Any) -> dict[str, list[list[dict]]]:
    """Faces (``Face.to_dict``) of each photo, per surface."""
    from celebface import recognize
    from celebface.cli.main import main
    from celebface.io import read_image
    from celebface.recognizer import Recognizer, RecognizerConfig
    from celebface.streaming import VideoTracker

    photos, gallery = setup["photos"], setup["gallery"]
    out: dict[str, list[list[dict]]] = {}
    jsonl = setup["tmp"] / "recognize.jsonl"
    assert main(["recognize", *map(str, photos), "--gallery", str(gallery), "--jsonl",
                 str(jsonl), "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == len(photos)
    out["cli"] = [r["faces"] for r in rows]
    out["facade"] = [[f.to_dict() for f in recognize(p, gallery, device="cpu")]
                     for p in photos]
    out["service"] = []
    for p in photos:
        r = client.post("/v1/recognize", files={"image": (p.name, p.read_bytes())})
        assert r.status_code == 200, r.text
        out["service"].append(r.json()["faces"])
    # one video frame, the video recogniser detecting with the stills' detector at their
    # size (its detector and video_detect_side are the settings that differ, by default)
    config = RecognizerConfig(device="cpu", video_detect_side=RecognizerConfig().detect_side)
    video = VideoTracker(Recognizer(gallery, detector=DEFAULT_DETECTOR, config=config))
    out["video"] = []
    for p in photos:
        video.reset()
        out["video"].append([f.to_dict() for f in video.process_frame(read_image(p).rgb)])
    return out


def _check_counted(faces: list[dict], where: str) -> None:
    """Every face scores at least MTCNN's 0.9 and none lies in the head of a larger one."""
    found = [Face(tuple(f["box"]), f["score"]) for f in faces]  # type: ignore[arg-type]
    for f in found:
        assert f.score >= 0.9, (where, f)
        for g in found:
            if g is not f and g.area >= f.area:
                assert inside(f, g, HEAD_MARGIN) < NESTED, (where, f, g)


def test_recognize_same_faces_names_scores_everywhere(setup: dict[str, Any], client) -> None:
    surfaces = _by_surface(setup, client)
    ref = surfaces["cli"]
    for name, got in surfaces.items():
        for photo, want, faces in zip(setup["photos"], ref, got, strict=True):
            where = f"{name}: {photo.name}"
            _check_counted(faces, where)
            assert len(faces) == len(want), (where, faces, want)
            for a, b in zip(faces, want, strict=True):
                np.testing.assert_allclose(a["box"], b["box"], atol=0.5, err_msg=where)
                assert a["score"] == pytest.approx(b["score"], abs=1e-3), where
                assert a["identity"] == b["identity"], (where, a, b)
                assert a["similarity"] == pytest.approx(b["similarity"], abs=1e-3), where
    chin, jacket = ref[0], ref[1]
    assert len(chin) == 1 and chin[0]["score"] > 0.99, chin  # his face; no chin face
    assert len(jacket) == 1 and jacket[0]["identity"] == "elton_john", jacket
    assert jacket[0]["box"][0] > 100  # his face (x 106-142), not the jacket (x 43-80)
    named = [f["identity"] for faces in ref[2:] for f in faces]
    assert named[:3] == ["ben_afflek", "madonna", "jerry_seinfeld"], ref


def test_enrol_by_cli_and_service_store_the_same_vectors(setup: dict[str, Any], client,
                                                         five_celeb: Path) -> None:
    """Elton John's two photos (the jacket one among them) enrolled through the service get
    the vectors ``celebface enroll`` stored for them, and the jacket photo's is his face."""
    from celebface.detection import get_detector
    from celebface.gallery import Gallery
    from celebface.io import read_image

    cli = Gallery.load(setup["gallery"])
    label = cli.names.index("elton_john")
    by_source = {Path(s).resolve(): cli.embeddings[i]
                 for i, (s, lab) in enumerate(zip(cli.sources, cli.labels, strict=True))
                 if lab == label}
    photos = sorted((setup["data"] / "elton_john").iterdir())
    assert len(by_source) == len(photos) == 2
    for k, p in enumerate(photos):
        r = client.post("/v1/people/EltonTest/photos",
                        files=[("image", (p.name, p.read_bytes(), "image/jpeg"))])
        assert r.status_code == 200 and r.json()["added"] == 1 and r.json()["photos"] == k + 1
    served = Gallery.load(client.app.state.service.config.gallery)
    rows = [i for i, lab in enumerate(served.labels) if served.names[lab] == "EltonTest"]
    for p, i in zip(photos, rows, strict=True):
        a, b = served.embeddings[i], by_source[p.resolve()]
        assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.9999, p.name
    # the jacket photo: MTCNN's top-scoring box is his face; the 0.767 one is the jacket
    img = read_image(five_celeb / JACKET).rgb
    raw = get_detector("mtcnn", device="cpu").detect(img)
    assert [round(f.score, 2) for f in raw] == [0.99, 0.77]
    his = served.spec.build("cpu").embed([img], [raw[0]])[0]
    jacket = served.spec.build("cpu").embed([img], [raw[1]])[0]
    row = served.embeddings[rows[photos.index(setup["data"] / JACKET)]]
    assert float(row @ his) > 0.9999 and float(row @ jacket) < 0.9
    # and the people page's picture of him is cut around his face, not the jacket
    from celebface.detection import get_finder
    from celebface.gallery.store import FolderStore, photo_id
    from celebface.serve.thumbnails import Thumbnails, face_thumbnail

    thumbs = Thumbnails(FolderStore(setup["tmp"] / "thumbs"))
    source = str(five_celeb / JACKET)
    got = thumbs.first([(photo_id(source), source)], get_finder(device="cpu"), 1600)
    assert got == face_thumbnail(img, raw[0])


def test_service_verify_takes_a_tight_crop_whole_as_embed_auto_does(client, pins: Path
                                                                    ) -> None:
    """A crop MTCNN finds no face in is refused (400 ``no_face``) unless the caller says it
    is a crop: then it is compared whole (``embed --faces auto``'s rule); the score is the
    library's."""
    from celebface import verify
    from celebface.api import load_rgb
    from celebface.detection import get_finder

    crop = pins / TIGHT
    auto = get_finder(device="cpu").largest(load_rgb(crop), rule="auto")
    assert auto is not None and auto.score == 0.0  # the whole-image fallback
    other = sorted((pins / "pins_Morgan Freeman").iterdir())[0]
    files = {"image1": ("a", crop.read_bytes()), "image2": ("b", other.read_bytes())}
    r = client.post("/v1/verify", files=files)
    assert r.status_code == 400 and r.json()["code"] == "no_face", r.text
    r = client.post("/v1/verify", params={"crop": "true"}, files=files)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["faces"][0]["whole_image"] is True and out["faces"][1]["whole_image"] is False
    lib = verify(crop, other, threshold=out["threshold"], crop=True)
    assert out["score"] == pytest.approx(lib.score, abs=1e-3) and out["same"] == lib.same
