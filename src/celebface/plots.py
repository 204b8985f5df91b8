"""Pictures of an evaluation: confusion matrix, training curves, worst mistakes (matplotlib,
Agg backend, written atomically)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from celebface.io import atomic_write_bytes


def display_name(name: str) -> str:
    """A label as people read it (the Pins set's ``pins_`` prefix dropped)."""
    return name[5:] if name.startswith("pins_") else name


def subplots(nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Any, Any]:
    """``pyplot.subplots`` without pyplot: a standalone Figure, so the caller's matplotlib
    backend (a notebook's, say) is left alone and nothing stays in pyplot's registry."""
    from matplotlib.figure import Figure

    figsize = kwargs.pop("figsize", None)
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def _save(fig: Any, path: Path, dpi: int = 120) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())


def plot_confusion(matrix: np.ndarray, names: Sequence[str], path: Path,
                   title: str = "Confusion matrix (rows normalised)") -> None:
    """Row-normalised heatmap; sized so that 100+ class names stay legible."""
    m = np.asarray(matrix, dtype=np.float64)
    m = m / np.maximum(m.sum(1, keepdims=True), 1)
    n = len(names)
    side = float(np.clip(n * 0.17 + 2.5, 5, 24))
    font = float(np.clip(220 / max(n, 1), 3.5, 10))
    fig, ax = subplots(figsize=(side + 1.2, side))
    im = ax.imshow(m, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    labels = [display_name(s) for s in names]
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 20:
        for i in range(n):
            for j in range(n):
                if m[i, j] >= 0.005:
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if m[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    _save(fig, path, dpi=150 if n > 40 else 120)


def plot_history(history: dict[str, Any], path: Path) -> bool:
    """Loss and accuracy per epoch (train and val) from a ``history.json``; False when it has
    no per-epoch records."""
    epochs = history.get("epochs") if isinstance(history, dict) else None
    if not epochs:
        return False
    x = [r["epoch"] for r in epochs]
    metrics = [("loss", "loss"), ("accuracy", "accuracy")]
    fig, axes = subplots(1, 2, figsize=(11, 4))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [r.get(f"{split}_{key}") for r in epochs]
            if any(v is not None for v in values):
                ax.plot(x, [np.nan if v is None else v for v in values], style, ms=3,
                        label=split)
        best = history.get("best_epoch")
        if best:
            ax.axvline(best, color="grey", ls="--", lw=1, label=f"best (epoch {best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Training history")
    _save(fig, path)
    return True


def plot_grid(
    images: Sequence[np.ndarray], captions: Sequence[str], path: Path, title: str = "",
    columns: int = 6, colors: Sequence[str] | None = None,
) -> int:
    """A contact sheet: ``images`` (RGB arrays) in a grid, each with its caption (optionally
    coloured). Returns how many were drawn (0: nothing written)."""
    if not images:
        return 0
    cols = min(columns, len(images))
    lines = math.ceil(len(images) / cols)
    fig, axes = subplots(lines, cols, figsize=(cols * 2.3, lines * 2.9), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, (ax, img, caption) in enumerate(zip(axes.flat, images, captions, strict=False)):
        ax.imshow(img)
        ax.set_title(caption, fontsize=7, color=colors[k] if colors else "black")
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return len(images)


def plot_errors(
    rows: Sequence[dict[str, Any]], load: Callable[[dict[str, Any]], np.ndarray | None],
    path: Path, columns: int = 6,
) -> int:
    """A grid of mistakes (thumbnail, true and predicted identity with probability); ``rows``
    best first. Returns how many were drawn."""
    shown = []
    for row in rows:
        img = load(row)
        if img is not None:
            shown.append((row, img))
    captions = [f"true: {display_name(row['true'])}\n"
                f"pred: {display_name(row['predicted'])} ({row['probability']:.2f})"
                for row, _ in shown]
    return plot_grid([img for _, img in shown], captions, path, "Most confident mistakes",
                     columns, ["firebrick"] * len(shown))
