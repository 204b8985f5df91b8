"""Synthetic box-and-identity data: face photos composited onto backgrounds, true boxes kept.

Also reads crop-stage outputs as box datasets (:func:`load_box_dataset`).
"""

from celebface.synth.boxdata import (
    BoxDataset,
    BoxItem,
    is_box_dataset,
    load_box_dataset,
)
from celebface.synth.synthesize import SynthConfig, SynthSummary, synthesize

__all__ = [
    "BoxDataset",
    "BoxItem",
    "SynthConfig",
    "SynthSummary",
    "is_box_dataset",
    "load_box_dataset",
    "synthesize",
]
