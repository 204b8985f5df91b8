"""`celebface audit`: each check on synthetic vectors, and a planted dataset of real crops."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from celebface.audit import (
    AuditConfig,
    audit,
    balance,
    exact_duplicates,
    mislabels,
    near_duplicates,
    too_few,
)
from celebface.cli.main import main


def test_exact_duplicates_by_scope() -> None:
    paths = ["a/1", "a/2", "b/1", "a/3", "a/4"]
    ids = ["a", "a", "b", "a", "a"]
    splits = ["train", "train", "train", "val", None]
    hashes = ["h1", "h1", "h1", "h2", "h2"]
    kinds = sorted(f.kind for f in exact_duplicates(hashes, paths, ids, splits))
    assert kinds == ["exact_duplicate_across_people", "exact_duplicate_within_person",
                     "exact_duplicate_within_person"]  # unknown split: within person
    splits[4] = "train"
    kinds = {f.kind for f in exact_duplicates(hashes, paths, ids, splits)}
    assert "exact_duplicate_across_splits" in kinds


def test_near_duplicates_skip_exact_copies(rng: np.random.Generator) -> None:
    v = rng.normal(size=(4, 8))
    v[1] = v[0] + 1e-4
    v[2] = v[0]  # exact copy (same hash) is not a near duplicate
    found = near_duplicates(v, 0.999, ["x", "y", "x", "z"], ["p0", "p1", "p2", "p3"],
                            ["a", "b", "a", "a"], [None] * 4)
    assert {f.files for f in found} == {("p0", "p1"), ("p1", "p2")}
    assert all(f.kind == "near_duplicate_across_people" for f in found)
    assert found[0].person == "a | b" and found[0].score > 0.999


def test_mislabel_too_few_and_balance(rng: np.random.Generator) -> None:
    centres = rng.normal(size=(2, 16))
    v = np.concatenate([centres[0] + 0.1 * rng.normal(size=(6, 16)),
                        centres[1] + 0.1 * rng.normal(size=(6, 16))])
    ids = ["a"] * 6 + ["b"] * 6
    v[2] = centres[1] + 0.1 * rng.normal(size=16)  # a photo of b filed under a
    paths = [f"p{k}" for k in range(12)]
    found = mislabels(v, paths, ids)
    assert [f.files for f in found] == [("p2",)]
    assert found[0].person == "a" and "b" in found[0].detail and found[0].score > 0
    assert [f.person for f in too_few([*ids, "c"], 2)] == ["c"]
    assert balance([*ids, "c"]) == {"people": 3, "min": 1, "median": 6.0, "max": 6,
                                    "max_over_min": 6.0}


@pytest.mark.slow
@pytest.mark.integration
def test_planted_problems_are_found(pins: Path, tmp_path: Path) -> None:
    people = sorted(p for p in pins.iterdir() if p.is_dir())[:3]
    data = tmp_path / "data"
    rows = ["split,identity,filename"]
    for person in people:
        (data / person.name).mkdir(parents=True)
        for k, src in enumerate(sorted(person.iterdir())[:6]):
            shutil.copy(src, data / person.name / src.name)
            rows.append(f"{'val' if k == 5 else 'train'},{person.name},{src.name}")
    a, b, c = (data / p.name for p in people)
    first_a = sorted(a.iterdir())[0]
    shutil.copy(first_a, b / "copied_from_a.jpg")  # exact duplicate across people
    rows.append(f"train,{b.name},copied_from_a.jpg")
    img = Image.open(first_a).convert("RGB")  # near duplicate: resized and re-encoded, val
    img.resize((img.width * 3 // 4, img.height * 3 // 4)).save(a / "near.jpg", quality=70)
    rows.append(f"val,{a.name},near.jpg")
    shutil.copy(sorted(people[2].iterdir())[10], a / "really_c.jpg")  # mislabel: c under a
    rows.append(f"train,{a.name},really_c.jpg")
    Image.new("RGB", (120, 160), (90, 120, 150)).save(c / "blank.jpg")  # no face
    rows.append(f"train,{c.name},blank.jpg")
    (data / "splits.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")

    out = tmp_path / "audit"
    assert main(["audit", str(data), "--out", str(out), "--device", "cpu",
                 "--min-photos", "8"]) == 0
    with open(out / "findings.csv", newline="", encoding="utf-8") as fh:
        found = list(csv.DictReader(fh))
    exact = [r for r in found if r["kind"] == "exact_duplicate_across_people"]
    assert len(exact) == 1 and "copied_from_a.jpg" in exact[0]["files"]
    near = [r for r in found if r["kind"].startswith("near_duplicate")]
    assert any("near.jpg" in r["files"] and first_a.name in r["files"] for r in near)
    assert any(r["kind"] == "near_duplicate_across_splits" for r in near)
    assert any(r["kind"] == "likely_mislabelled" and "really_c.jpg" in r["files"]
               for r in found)
    assert [r["files"] for r in found if r["kind"] == "no_face"] == [str(c / "blank.jpg")]
    assert {r["person"] for r in found if r["kind"] == "too_few_photos"} == {b.name, c.name}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| no_face | 1 |" in report
    assert (out / "sheets" / "likely_mislabelled.png").is_file()
    assert AuditConfig().detector == "mtcnn"
    result = audit(data, tmp_path / "again", AuditConfig(detector="none", device="cpu",
                                                         min_photos=1), progress=False)
    assert result.counts.get("exact_duplicate_across_people") == 1
    assert "no_face" not in result.counts  # crops: no face checks
