"""`celebface analyze PHOTOS... --out DIR`: age, gender and head pose of every face."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
from pathlib import Path

from celebface.attributes import analyze_faces, check_plugins
from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.main import CLIError
from celebface.detection import FinderConfig
from celebface.errors import CelebfaceError
from celebface.io import atomic_write_text, check_output_dir, is_image_file, read_image
from celebface.streaming.output import annotate, write_image

log = logging.getLogger(__name__)

COLUMNS = ("photo", "face", "x1", "y1", "x2", "y2", "score", "age", "gender",
           "gender_probability", "yaw", "pitch", "roll")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("photos", nargs="+", metavar="PHOTOS",
                   help="photos, or folders of photos (searched recursively)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder: faces.csv, faces.jsonl (one line per photo) and "
                        "annotated/ (each photo with its faces drawn)")
    p.add_argument("--plugins", default="age,gender,pose", metavar="LIST",
                   help="comma-separated: age, gender, pose (default: %(default)s)")
    t.add_detector(p, FinderConfig)
    add_device(p)


def _photos(inputs: list[str]) -> tuple[list[Path], list[str]]:

    photos, missing = [], []
    for inp in inputs:
        path = Path(inp)
        if path.is_dir():
            photos += sorted(p for p in path.rglob("*") if p.is_file() and is_image_file(p))
        elif path.is_file():
            photos.append(path)
        else:
            missing.append(f"{inp}: no such file or folder")
    return photos, missing


def run(args: argparse.Namespace) -> int:
    from celebface.detection import get_finder

    plugins = check_plugins(args.plugins)
    photos, errors = _photos(args.photos)
    for e in errors:
        log.error("%s (skipped)", e)
    if not photos:
        raise CLIError("; ".join(errors) or "no photos found")
    out = Path(args.out)
    check_output_dir(out, args.photos, flag="--out")
    (out / "annotated").mkdir(parents=True, exist_ok=True)
    finder = get_finder(detector=args.detector, device=args.device)
    rows, lines, faces_seen = [], [], 0
    names: set[str] = set()
    for photo in photos:
        try:
            rgb = read_image(photo).rgb
            faces = analyze_faces(rgb, finder, plugins)
        except (CelebfaceError, OSError) as exc:
            reason = str(exc) if str(photo) in str(exc) else f"{photo}: {exc}"
            log.error("%s (skipped)", reason)
            errors.append(reason)
            continue
        faces_seen += len(faces)
        lines.append(json.dumps({"photo": str(photo), "faces": [f.to_dict() for f in faces]}))
        for i, f in enumerate(faces):
            pose = f.pose or (None, None, None)
            rows.append([str(photo), i, *(round(v, 1) for v in f.box), round(f.score, 4),
                         None if f.age is None else round(f.age, 1), f.gender,
                         None if f.gender_probability is None else round(f.gender_probability, 4),
                         *(None if v is None else round(v, 1) for v in pose)])
        name = photo.stem
        while name in names:  # two photos of one name in different folders
            name += "_"
        names.add(name)
        write_image(out / "annotated" / f"{name}.jpg", annotate(rgb, faces))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    atomic_write_text(out / "faces.csv", buf.getvalue())
    atomic_write_text(out / "faces.jsonl", "".join(line + "\n" for line in lines))
    print(f"analyze: {len(lines)} of {len(photos)} photo(s), {faces_seen} face(s); "
          f"{out / 'faces.csv'}, {out / 'faces.jsonl'}, {out / 'annotated'}"
          + (f"; {len(errors)} failed" if errors else ""))
    return 2 if errors and not lines else 0
