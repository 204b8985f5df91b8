"""A new user's first run: enroll five_celeb's ``train`` photos with every default, then name
its 25 ``val`` photos with every default and no calibration (issue: the uncalibrated threshold
turned away a known person).

    .venv/bin/python benchmarks/five_celeb.py [--aligner landmarks|predictor]

Results: ``benchmarks/results/five_celeb.md``/``.json`` (one row per photo: the largest face's
name, similarity and runner-up).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "five_celeb"
RESULTS = ROOT / "benchmarks" / "results"


def run(aligner: str | None) -> dict:
    import celebface
    from celebface.gallery import EnrollConfig, enroll, policy_for
    from celebface.gallery.store import Gallery
    from celebface.io import read_splits

    options = {"aligner": aligner} if aligner else {}
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(tmp) / "gallery"
        enroll(DATA, gallery, config=EnrollConfig(split="train", embedder_options=options),
               progress=False)
        threshold = policy_for(Gallery.load(gallery), "centroid").threshold
        rows = []
        for (person, name), split in sorted(read_splits(DATA / "splits.csv").items()):
            if split != "val":
                continue
            faces = celebface.recognize(DATA / person / name, gallery)
            face = max(faces, key=lambda f: f.area) if faces else None
            rows.append({"person": person, "photo": name,
                         "named": face.identity if face else None,
                         "similarity": None if face is None else round(face.similarity, 4),
                         "runner_up": face.runner_up if face else None})
    right = sum(r["named"] == r["person"] for r in rows)
    return {"aligner": aligner or "default", "threshold": threshold, "named_right": right,
            "photos": len(rows), "rows": rows}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--aligner", choices=("landmarks", "predictor"), default=None)
    args = p.parse_args()
    res = run(args.aligner)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "five_celeb.json").write_text(json.dumps(res, indent=1))
    lines = ["# five_celeb with every default", "",
             f"Enrolled the 93 `train` photos, named the {res['photos']} `val` photos, no "
             f"calibration (aligner: {res['aligner']}; uncalibrated centroid threshold "
             f"{res['threshold']:.3f} for a {5}-person gallery). Command: "
             "`.venv/bin/python benchmarks/five_celeb.py`.", "",
             f"**Named right: {res['named_right']} of {res['photos']}.**", "",
             "| person | named | similarity | runner-up |", "|---|---|---|---|"]
    lines += [f"| {r['person']} | {r['named']} | {r['similarity']} | {r['runner_up']} |"
              for r in res["rows"]]
    (RESULTS / "five_celeb.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:6]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
