"""Writing an audit: findings.csv, report.md and a contact sheet per kind of finding."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from celebface.audit.checks import KINDS, Finding
from celebface.io import ImageReadError, atomic_write_text, read_image
from celebface.plots import plot_grid

log = logging.getLogger(__name__)

EXPLAIN = {
    "exact_duplicate_across_people": "the same file under two people: one is mislabelled",
    "exact_duplicate_across_splits": "the same file in two splits: inflates test accuracy",
    "exact_duplicate_within_person": "the same file twice for one person",
    "near_duplicate_across_people": "the same photo (re-encoded/resized) under two people",
    "near_duplicate_across_splits": "the same photo in two splits: inflates test accuracy",
    "near_duplicate_within_person": "the same photo twice for one person",
    "likely_mislabelled": "closer to another person's centre than to its own",
    "no_face": "no face detected",
    "several_faces": "more than one face: which one is the person?",
    "tiny_face": "the face is very small",
    "unreadable": "the file cannot be read",
    "too_few_photos": "too few photos for this person",
}


def _thumb(path: str) -> np.ndarray | None:
    try:
        return read_image(path, max_side=160).rgb
    except ImageReadError as exc:
        log.debug("sheet: %s", exc)
        return None


def _short(path: str) -> str:
    p = Path(path)
    return f"{p.parent.name[:18]}/{p.name[:18]}"


def write_sheets(out: Path, findings: list[Finding], limit: int) -> list[str]:
    """``out/sheets/<kind>.png`` for every kind with files; returns the kinds drawn."""

    drawn = []
    for kind in KINDS:
        rows = [f for f in findings if f.kind == kind and f.files][:limit]
        if not rows:
            continue
        pairs = max(len(f.files) for f in rows) > 1
        images, captions = [], []
        for f in rows:
            thumbs = [t for t in map(_thumb, f.files) if t is not None]
            if len(thumbs) < len(f.files):
                continue
            for k, (p, t) in enumerate(zip(f.files, thumbs, strict=True)):
                images.append(t)
                captions.append(f"{_short(p)}\n{f.score:.3f}" if k == 0 else _short(p))
        if plot_grid(images, captions, out / "sheets" / f"{kind}.png",
                     f"{kind}: {EXPLAIN.get(kind, '')}" + (" (pairs side by side)" if pairs
                                                            else ""),
                     columns=6 if pairs else 8):
            drawn.append(kind)
    return drawn


def report_md(result: Any, data: Path, drawn: list[str]) -> str:
    b = result.balance
    lines = [f"# Audit of {data}", "",
             f"{result.photos} photos of {b.get('people', 0)} people; photos per person: min "
             f"{b.get('min')}, median {b.get('median')}, max {b.get('max')} (max/min "
             f"{b.get('max_over_min')}). Near-duplicate bound: cosine >= "
             f"{result.near_duplicate:.4f}.", "",
             "| finding | count | meaning |", "|---|---|---|"]
    for kind in KINDS:
        lines.append(f"| {kind} | {result.counts.get(kind, 0)} | {EXPLAIN[kind]} |")
    for kind in KINDS:
        rows = [f for f in result.findings if f.kind == kind]
        if not rows:
            continue
        lines += ["", f"## {kind} ({len(rows)})", ""]
        if kind in drawn:
            lines += [f"![{kind}](sheets/{kind}.png)", ""]
        lines += ["| files | person | score | detail |", "|---|---|---|---|"]
        for f in rows[:10]:
            files = " / ".join(_short(p) for p in f.files)
            lines.append(f"| {files} | {f.person} | {f.score:.4f} | {f.detail} |")
        if len(rows) > 10:
            lines.append(f"| ... {len(rows) - 10} more in findings.csv | | | |")
    return "\n".join(lines) + "\n"


def write_outputs(result: Any, data: Path, config: Any) -> None:

    out = result.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "findings.csv", findings_csv(result.findings))
    drawn = write_sheets(out, result.findings, config.sheet_max)
    atomic_write_text(out / "report.md", report_md(result, data, drawn))


def findings_csv(findings: list[Finding]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["kind", "files", "person", "score", "detail"])
    for f in findings:
        writer.writerow([f.kind, " | ".join(f.files), f.person, f"{f.score:.4f}", f.detail])
    return buf.getvalue()
