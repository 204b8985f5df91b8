"""The multi-output model: backbone features (InceptionV3 or MobileNetV2, see
:mod:`celebface.training.backbones`) shared by a face-box head and an identity head.

Trained on a box-and-identity dataset (``celebface synth`` or ``celebface crop`` output, read by
:func:`celebface.data.open_dataset` with ``boxes=True``) with the shared fit loop
(:func:`celebface.training.loop.fit`). Boxes are predicted as normalised ``(x1, y1, x2, y2)``
in ``[0, 1]`` of the input image (the image is resized to a square, so normalised coordinates
map back to any aspect ratio); :meth:`MultiOutputModel.predict` returns them in the input
image's pixels. This package imports torch: it is only imported when the model is used.
"""

from celebface.lazy import lazy_getattr
from celebface.training.multi_output.config import (
    KIND,
    MultiOutputConfig,
)

#: the rest imports torch: imported on first use, so reading the config stays light
_LAZY = {
    "BoxArrays": "celebface.training.multi_output.data",
    "BoxTensorDataset": "celebface.training.multi_output.data",
    "augment": "celebface.training.multi_output.data",
    "load_box_arrays": "celebface.training.multi_output.data",
    "normalise": "celebface.training.multi_output.data",
    "split_items": "celebface.training.multi_output.data",
    "to_input": "celebface.training.multi_output.data",
    "giou_loss": "celebface.training.multi_output.losses",
    "make_step": "celebface.training.multi_output.losses",
    "multi_output_metrics": "celebface.training.multi_output.losses",
    "WEIGHTS": "celebface.training.multi_output.model",
    "MultiOutputModel": "celebface.training.multi_output.model",
    "MultiOutputNet": "celebface.training.multi_output.net",
    "build_net": "celebface.training.multi_output.net",
    "train": "celebface.training.multi_output.trainer",
    "paired_iou": "celebface.types",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


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
