"""`celebface calibrate`: the unknown threshold for a chosen false-accept rate."""

from __future__ import annotations

import argparse

from celebface.cli import common as t
from celebface.cli.common import add_device
from celebface.cli.options import add_option, config_from
from celebface.gallery import FaceSetConfig, calibrate
from celebface.gallery.calibration import GAP_WEIGHT_GRID, Calibration
from celebface.gallery.matching import MATCH_METHODS
from celebface.gallery.store import redact

EPILOG = """\
Recommended protocol: hold some people out of enrolment. Enroll the known people from part of
their photos (e.g. 'celebface enroll DATA --split train --out G' on a folder where some
identities are left out, or enroll a folder that lacks them), then calibrate on a folder that
holds (a) photos of people NOT in the gallery - they set the threshold: at most --far of them
may be accepted as someone - and (b) other photos of enrolled people, which give the
true-accept rate. Photos that are enrolled are ignored. Use different strangers to test than to
calibrate, or the measured false-accept rate is optimistic.
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("gallery", help="gallery folder (from 'celebface enroll') or postgresql:// "
                                  "URL of a gallery database ('celebface enroll --store')")
    p.add_argument("data", help="people to calibrate on: strangers plus enrolled people's other "
                               "photos (folder per person, or a 'celebface embed' output)")
    add_option(p, calibrate, "far", type=t.fraction,
               help="wanted false-accept rate on strangers (default %(default)s)")
    add_option(p, calibrate, "method", "--match", choices=MATCH_METHODS,
               help="match method to calibrate (default %(default)s)")
    add_option(p, calibrate, "model", metavar="DIR",
               help="calibrate a trained classifier's probability threshold instead")
    t.add_detector(p, FaceSetConfig, crops="for face crops")
    add_option(p, FaceSetConfig, "split", help="use only this split of DATA/splits.csv (e.g. val)")
    add_option(p, FaceSetConfig, "cache_dir",
               help="where computed vectors are cached for reruns (default GALLERY/.cache)")
    add_option(p, calibrate, "gap_weight", type=t.nonneg_float,
               help="weight of the lead over the runner-up in the decision score (default: "
               "chosen by cross-validation over the stranger people among "
               f"{', '.join(f'{w:g}' for w in GAP_WEIGHT_GRID)}; 0: the similarity alone; "
               "a classifier: 0)")
    p.add_argument("--dry-run", action="store_true", help="report only, do not store")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    config = config_from(FaceSetConfig, args)
    cal = calibrate(args.gallery, args.data, args.far, method=args.method, model=args.model,
                    config=config, save=not args.dry_run, gap_weight=args.gap_weight)
    print(
        f"calibrate ({cal.method}, gap weight {cal.gap_weight:.3g} {weight_note(cal)}): "
        f"threshold {cal.threshold:.4f} for FAR {cal.target_far:g}; {far_note(cal)}; "
        f"TAR {cal.tar:.4f} (accepted {cal.accept_rate:.4f}) on {cal.genuine} "
        f"faces of {cal.genuine_identities} enrolled people; closed-set accuracy "
        f"{cal.closed_set_accuracy:.4f}"
        + ("" if args.dry_run else f"; stored in {redact(args.gallery)}")
    )
    return 0


def weight_note(cal: Calibration) -> str:
    if cal.gap_weight_source == "cv":
        tried = ", ".join(f"{r['gap_weight']:g}: TAR {r['tar']:.4f} FAR {r['far']:.4f}"
                          for r in cal.cv)
        return f"chosen by {cal.folds}-fold cross-validation over strangers [{tried}]"
    return {"given": "as given", "classifier": "classifier",
            "default": "too few stranger people to choose"}.get(cal.gap_weight_source,
                                                              cal.gap_weight_source)


def far_note(cal: Calibration) -> str:
    seen = (f"measured FAR {cal.far:.4f} on {cal.strangers} faces of "
            f"{cal.stranger_identities} strangers (those it was set on)")
    if not cal.folds:
        return seen + "; no held-out FAR: fewer than 2 stranger people"
    return (f"{seen}; held-out FAR {cal.heldout_far:.4f} (95% CI {cal.far_low:.4f}-"
            f"{cal.far_high:.4f}; each fold's strangers scored at a threshold set on the "
            f"other {cal.folds - 1} folds)")
