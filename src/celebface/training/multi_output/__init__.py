"""The multi-output model: backbone features (InceptionV3 or MobileNetV2, see
:mod:`celebface.training.backbones`) shared by a face-box head and an identity head.

Trained on a box-and-identity dataset (``celebface synth`` or ``celebface crop`` output, read by
:func:`celebface.data.open_dataset` with ``boxes=True``) with the shared fit loop
(:func:`celebface.training.loop.fit`). Boxes are predicted as normalised ``(x1, y1, x2, y2)``
in ``[0, 1]`` of the input image (the image is resized to a square, so normalised coordinates
map back to any aspect ratio); :meth:`MultiOutputModel.predict` returns them in the input
image's pixels. This package imports torch: it is only imported when the model is used.
"""

from celebface.training.multi_output.config import KIND, MultiOutputConfig
from celebface.training.multi_output.data import (
    BoxArrays,
    BoxTensorDataset,
    augment,
    load_box_arrays,
    normalise,
    split_items,
    to_input,
)
from celebface.training.multi_output.losses import giou_loss, make_step, multi_output_metrics
from celebface.training.multi_output.model import WEIGHTS, MultiOutputModel
from celebface.training.multi_output.net import MultiOutputNet, build_net
from celebface.training.multi_output.trainer import train
from celebface.types import paired_iou

__all__ = [
    "KIND",
    "WEIGHTS",
    "BoxArrays",
    "BoxTensorDataset",
    "MultiOutputConfig",
    "MultiOutputModel",
    "MultiOutputNet",
    "augment",
    "build_net",
    "giou_loss",
    "load_box_arrays",
    "make_step",
    "multi_output_metrics",
    "normalise",
    "paired_iou",
    "split_items",
    "to_input",
    "train",
]
