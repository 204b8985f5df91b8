"""Synthetic box-and-identity data: face photos composited onto backgrounds, true boxes kept.

Reading a synth output (or a crop output's source photos) as a box dataset:
``celebface.data.open_dataset(path, boxes=True)``.
"""

from celebface.synth.synthesize import SynthConfig, SynthSummary, synthesize

__all__ = ["SynthConfig", "SynthSummary", "synthesize"]
