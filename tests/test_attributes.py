"""Face attributes: head pose from landmarks, age and gender, ``analyze`` on every surface."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from celebface.attributes import check_plugins, head_pose
from celebface.attributes.pose import project
from celebface.errors import InputError
from celebface.types import Face


@pytest.mark.parametrize("angles", [(0, 0, 0), (35, 0, 0), (-50, 0, 0), (0, 20, 0),
                                    (0, -25, 0), (0, 0, 30), (0, 0, -12)])
def test_pose_recovers_a_turned_mean_face(angles) -> None:
    assert head_pose(project(*angles)) == pytest.approx(angles, abs=0.1)


def test_pose_of_a_mirrored_face_mirrors() -> None:
    pts = project(20, 10, 8)
    mirrored = pts.copy()
    mirrored[:, 0] = 300 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # image-left points first again
    yaw, pitch, roll = head_pose(pts)
    assert head_pose(mirrored) == pytest.approx((-yaw, pitch, -roll), abs=1e-4)
    # scale and position do not matter
    assert head_pose(pts * 3 + 7) == pytest.approx((yaw, pitch, roll), abs=1e-4)


def test_plugins_are_checked() -> None:
    assert check_plugins("pose, age") == ("age", "pose")
    assert check_plugins(None) == () and check_plugins("") == ()
    with pytest.raises(InputError, match=r"unknown face plugin.*emotion.*age, gender, pose"):
        check_plugins("age,emotion")


def test_face_dict_carries_attributes() -> None:
    f = Face(box=(0, 0, 10, 10), age=31.26, gender="female", gender_probability=0.98765,
             pose=(10.04, -3.0, 1.0))
    d = f.to_dict()
    assert d["age"] == 31.3 and d["gender"] == "female" and d["gender_probability"] == 0.9877
    assert d["pose"] == {"yaw": 10.0, "pitch": -3.0, "roll": 1.0}
    assert "age" not in Face(box=(0, 0, 1, 1)).to_dict()


def _photo(root: Path, person: str) -> Path:
    return sorted((root / person).glob("*.jpg"))[0]


@pytest.mark.integration
def test_analyze_a_real_photo(five_celeb: Path) -> None:
    import celebface

    woman = celebface.analyze(_photo(five_celeb, "madonna"), device="cpu")
    man = celebface.analyze(_photo(five_celeb, "jerry_seinfeld"), device="cpu")
    for faces, gender in ((woman, "female"), (man, "male")):
        assert len(faces) == 1
        f = faces[0]
        assert f.gender == gender and f.gender_probability > 0.8
        assert 18 < f.age < 75
        assert all(abs(a) < 45 for a in f.pose)  # press photos: near frontal
    only_pose = celebface.analyze(_photo(five_celeb, "madonna"), plugins="pose", device="cpu")
    assert only_pose[0].pose == woman[0].pose and only_pose[0].age is None


@pytest.mark.integration
def test_analyze_cli_writes_csv_jsonl_and_pictures(five_celeb: Path, tmp_path: Path,
                                                   capfd) -> None:
    from celebface.cli.main import main

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    good = _photo(five_celeb, "ben_afflek")
    out = tmp_path / "out"
    assert main(["analyze", str(good), str(bad), "--out", str(out), "--device", "cpu"]) == 0
    err = capfd.readouterr().err
    assert err.count("broken.jpg") == 1 and "not an image" in err  # named once; the run goes on
    rows = list(csv.DictReader((out / "faces.csv").open()))
    assert len(rows) == 1 and rows[0]["gender"] == "male" and float(rows[0]["age"]) > 18
    lines = [json.loads(x) for x in (out / "faces.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["faces"][0]["pose"].keys() == {"yaw", "pitch", "roll"}
    assert (out / "annotated" / f"{good.stem}.jpg").stat().st_size > 0


@pytest.mark.integration
@pytest.mark.slow
def test_service_face_plugins(five_celeb: Path, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from celebface.serve import ServeConfig, create_app

    data = _photo(five_celeb, "madonna").read_bytes()
    app = create_app(ServeConfig(gallery=tmp_path / "empty-gallery", device="cpu", workers=1,
                                 allowed_hosts=("testserver",)))
    with TestClient(app) as client:
        plain = client.post("/v1/detect", content=data).json()["faces"]
        assert plain and "age" not in plain[0]
        for route in ("/v1/detect", "/v1/recognize"):
            faces = client.post(f"{route}?face_plugins=age,gender,pose", content=data).json()
            f = faces["faces"][0]
            assert f["gender"] == "female" and 18 < f["age"] < 75, route
            assert set(f["pose"]) == {"yaw", "pitch", "roll"}
            assert f["box"] == plain[0]["box"]
        only = client.post("/v1/detect?face_plugins=gender", content=data).json()["faces"][0]
        assert "gender" in only and "age" not in only and "pose" not in only
        r = client.post("/v1/detect?face_plugins=emotion", content=data)
        assert r.status_code == 400 and r.json()["code"] == "bad_parameter"
        assert "emotion" in r.json()["detail"]
