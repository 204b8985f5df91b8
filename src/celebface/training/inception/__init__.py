"""``inception``: the reference head on an ImageNet backbone (InceptionV3, the reference's, or
MobileNetV2, whose ImageNet weights install offline), trained on face crops.

Reference head (the notebook's Keras model): Flatten of the final feature map, Dense 1024 ReLU,
Dropout 0.2, Dense 128 ELU, Dropout 0.1, Dense N. The 128-d ELU layer doubles as a face
embedder (:meth:`InceptionModel.as_embedder`). Inputs are RGB resized to ``input_size``
squared and scaled to [-1, 1] (the scaling Google's InceptionV3 was trained with, so
torchvision's ImageNet weights apply with ``transform_input=False``; MobileNetV2 converts them
to ImageNet mean/std inside the network).

``align`` trains and predicts on dlib-aligned face chips, with the frozen blocks' maps cached
once per chip and its mirror image (the CPU path, :mod:`celebface.training.inception.aligned`).
"""

from celebface.training.inception.config import EMBEDDING_DIM, WEIGHTS, InceptionConfig
from celebface.training.inception.data import FaceImages, resize_square, to_tensor
from celebface.training.inception.model import InceptionEmbedder, InceptionModel
from celebface.training.inception.net import build_network, load_imagenet
from celebface.training.inception.trainer import train

__all__ = [
    "EMBEDDING_DIM",
    "WEIGHTS",
    "FaceImages",
    "InceptionConfig",
    "InceptionEmbedder",
    "InceptionModel",
    "build_network",
    "load_imagenet",
    "resize_square",
    "to_tensor",
    "train",
]
