"""One rule for a person's name (celebface.types.person_name), applied by enroll, the store and
the service alike (issue 31: names the CLI enrolled that the API could not open, ``unknown``
and its fullwidth form, folder names that are not UTF-8)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from celebface.gallery import EnrollConfig, Gallery, enroll
from celebface.types import InvalidNameError, person_name
from faultkit import ColourEmbedder, write_embedded, write_people

#: Folder names a file system holds that cannot name a person.
BAD = ["unknown", "\uff55\uff4e\uff4b\uff4e\uff4f\uff57\uff4e", "new\nline", "tab\tbed", " lead",
       "x" * 200, os.fsdecode(b"bad\xffname")]


def test_the_store_refuses_what_the_rule_refuses() -> None:
    g = Gallery()
    for name in BAD:
        with pytest.raises(InvalidNameError):
            g.add(np.ones((1, 4), np.float32), [name], ["a.jpg"])
    g.add(np.ones((1, 4), np.float32), ["amy"], ["a.jpg"])
    for name in BAD:
        with pytest.raises(InvalidNameError):
            g.rename("amy", name)
    assert g.names == ["amy"]


def test_enroll_refuses_bad_folders_one_line_each_and_enrols_the_rest(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = write_people(tmp_path / "data", ["amy", "bob", *BAD], n=1)
    with caplog.at_level(logging.ERROR):
        s = enroll(data, tmp_path / "g", config=EnrollConfig(detector="none"),
                   models=(ColourEmbedder(), None), progress=False)
    assert Gallery.load(tmp_path / "g").names == ["amy", "bob"]
    assert len(s.skipped) == len(BAD) and s.added == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == len(BAD) and all("\n" not in e for e in errors)
    assert any(e.startswith(f"{data}/bad\\xffname: not enrolled") for e in errors), errors
    assert any("reserved" in e for e in errors)


def test_enroll_from_embeddings_refuses_bad_names(tmp_path: Path) -> None:
    emb = write_embedded(tmp_path / "emb", ["amy", "unknown", "bad\udcffname"])
    s = enroll(emb, tmp_path / "g", progress=False)
    assert Gallery.load(tmp_path / "g").names == ["amy"] and len(s.skipped) == 6


def test_one_function_is_the_rule() -> None:
    """The service's check is the same function (no second copy of the rule)."""
    from celebface.serve import service

    with pytest.raises(service.RequestError) as err:
        service.FaceService.valid_name("\uff35nknown")
    assert err.value.code == "invalid_name"
    assert person_name("Zoe\u0301") == "Zo\u00e9"


@pytest.mark.slow
@pytest.mark.integration
def test_a_folder_not_utf8_is_refused_and_the_server_answers(five_celeb: Path,
                                                             tmp_path: Path) -> None:
    """Issue 31: a person folder named with bytes that are not UTF-8 was enrolled, then the
    server answered 500 to /v1/people and to /v1/recognize of someone else."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from serve_helpers import held_out, models, photos
    from test_serve import fastapi_app

    data = tmp_path / "data"
    for person, folder in (("madonna", "madonna"), ("ben_afflek", os.fsdecode(b"bad\xffname"))):
        (data / folder).mkdir(parents=True)
        for p in photos(five_celeb, person, "train", 2):
            (data / folder / p.name).symlink_to(p)
    s = enroll(data, tmp_path / "g", config=EnrollConfig(max_side=640), models=models(),
               progress=False)
    assert Gallery.load(tmp_path / "g").names == ["madonna"] and len(s.skipped) == 2
    with TestClient(fastapi_app(tmp_path / "g"), raise_server_exceptions=False) as client:
        people = client.get("/v1/people")
        assert people.status_code == 200, people.text
        assert [p["name"] for p in people.json()["people"]] == ["madonna"]
        r = client.post("/v1/recognize", content=held_out(five_celeb, "madonna").read_bytes())
        assert r.status_code == 200, r.text
        assert r.json()["faces"], r.json()


def test_copying_a_gallery_with_a_name_from_before_the_rule_is_one_line(tmp_path: Path) -> None:
    """`gallery import` of a folder gallery holding a name that is not UTF-8 (enrolled by an
    earlier version) crashed in the database driver; now one line names the person."""
    from celebface.gallery.store import GalleryError
    from celebface.gallery.stores import copy_gallery

    g = Gallery()
    g.add(np.eye(2, 4, dtype=np.float32), ["amy", "bo"], ["a.jpg", "b.jpg"])
    g.names[1] = "bad\udcffname"  # as an earlier version stored it
    g.save(tmp_path / "old")
    with pytest.raises(GalleryError, match=r"bad\\xffname': is not valid UTF-8"):
        copy_gallery(tmp_path / "old", tmp_path / "new")
    assert not (tmp_path / "new" / "gallery.json").exists()
