"""CompreFace's calls that the service lacked (issue 31): delete all subjects, list every
example, delete several examples, verify against a stored photo by id, recognise by
embedding, the photo ids in the add reply. Fake models (no model files)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="serve needs fastapi (requirements.txt)")

from test_store_faults import BLUE, GREEN, RED, client, photo


@pytest.fixture
def c(tmp_path: Path):
    with client(str(tmp_path / "g")) as c:
        yield c


def add(c, name: str, *colours) -> list[str]:
    files = [("file", (f"{name}{i}.jpg", photo(col, 100 + 10 * i), "image/jpeg"))
             for i, col in enumerate(colours)]
    r = c.post(f"/v1/people/{name}/photos", files=files)
    assert r.status_code == 200, r.text
    return [p["id"] for p in r.json()["added_photos"]]


def test_add_reply_names_the_photo_ids(c) -> None:
    ids = add(c, "ann", RED, RED)
    assert len(ids) == 2 and len(set(ids)) == 2
    listed = c.get("/v1/people/ann/photos").json()["photos"]
    assert [p["id"] for p in listed] == ids
    assert c.post("/v1/people/ann/photos", content=photo(RED)).json()["added_photos"][0][
        "source"] == "image"


def test_list_every_photo_and_delete_several(c) -> None:
    a = add(c, "ann", RED, RED)
    b = add(c, "bob", GREEN)
    page = c.get("/v1/photos?size=2").json()
    assert page["total"] == 3 and page["pages"] == 2
    every = page["photos"] + c.get("/v1/photos?size=2&page=1").json()["photos"]
    assert [(p["id"], p["name"], p["label"]) for p in every] == [
        (a[0], "ann", "Ann"), (a[1], "ann", "Ann"), (b[0], "bob", "Bob")]
    r = c.post("/v1/photos/delete", json={"ids": [a[0], b[0], "0123456789abcdef"]})
    assert r.status_code == 200, r.text
    assert r.json()["removed"] == 2 and r.json()["missing"] == ["0123456789abcdef"]
    assert {p["name"]: p["photos"] for p in c.get("/v1/people").json()["people"]} == {"ann": 1}


def test_delete_all_subjects(c) -> None:
    add(c, "ann", RED)
    add(c, "bob", GREEN, GREEN)
    r = c.delete("/v1/people")
    assert r.status_code == 200 and r.json()["removed_people"] == 2 and r.json()["removed"] == 3
    assert c.get("/v1/people").json()["total"] == 0
    assert add(c, "cy", BLUE)  # the empty gallery takes new people


def test_verify_against_a_stored_photo(c) -> None:
    [ann] = add(c, "ann", RED)
    same = c.post(f"/v1/photos/{ann}/verify", content=photo(RED, 90)).json()
    other = c.post(f"/v1/photos/{ann}/verify", content=photo(BLUE)).json()
    assert same["same"] is True and same["score"] > 0.99 and same["photo"] == ann
    assert other["same"] is False and other["score"] < same["score"]
    missing = c.post("/v1/photos/0123456789abcdef/verify", content=photo(RED))
    assert missing.status_code == 404 and missing.json()["code"] == "no_such_photo"


def test_recognize_by_embedding(c) -> None:
    add(c, "ann", RED)
    add(c, "bob", GREEN)
    [face] = c.post("/v1/embed", content=photo(GREEN)).json()["faces"]
    r = c.post("/v1/recognize/embeddings", json={"embeddings": [face["embedding"]],
                                                 "prediction_count": 2})
    assert r.status_code == 200, r.text
    [got] = r.json()["results"]
    assert got["identity"] == "bob" and got["label"] == "Bob"
    assert [p["name"] for p in got["predictions"]] == ["bob", "ann"]
    bad = c.post("/v1/recognize/embeddings", json={"embeddings": [[1.0, 2.0]]})
    assert bad.status_code == 400 and bad.json()["code"] == "bad_embedding"


def test_a_person_without_photos(c) -> None:
    add(c, "ann", RED)
    r = c.post("/v1/people", json={"name": "zoe_kim"})
    assert r.status_code == 201 and r.json() == {"name": "zoe_kim", "label": "Zoe Kim",
                                                 "photos": 0}
    assert c.post("/v1/people", json={"name": "Zoe Kim"}).status_code == 409  # one card a name
    listed = {p["name"]: p["photos"] for p in c.get("/v1/people").json()["people"]}
    assert listed == {"ann": 1, "zoe_kim": 0}
    assert c.get("/v1/people/zoe_kim/photos").json()["photos"] == []
    # never matched: a face like no one enrolled stays unknown, a face of Ann is Ann
    assert c.post("/v1/recognize", content=photo(RED)).json()["faces"][0]["identity"] == "ann"
    assert c.patch("/v1/people/zoe_kim", json={"name": "zoe"}).status_code == 200
    assert add(c, "zoe", GREEN)  # photos make her enrolled
    assert {p["name"]: p["photos"] for p in c.get("/v1/people").json()["people"]} == {
        "ann": 1, "zoe": 1}
    assert c.post("/v1/people", json={"name": "max"}).status_code == 201
    assert c.delete("/v1/people/max").json()["removed"] == 0
    assert c.post("/v1/people", json={"name": "max"}).status_code == 201
    assert c.delete("/v1/people").json()["removed_people"] == 3
    assert c.get("/v1/people").json()["total"] == 0
