"""Head pose (yaw, pitch, roll in degrees) from a face's 5 landmarks, no model.

The 5 points (image-left eye, right eye, nose tip, mouth left, mouth right) are read as a weak
perspective view of a mean face (:data:`MEAN_FACE`, in units of the inter-ocular distance,
its frontal proportions those of the detector's landmarks on a typical celebrity photo: the
mean of MTCNN's landmarks on 298 pins105-dev photos aligned by dlib,
:data:`celebface.recognition.dlib_resnet.CHIP_TEMPLATE_150`: eyes 1 apart, mouth corners 0.82
apart and 1.07 below the eyes, the nose tip 0.56 of the way down; the nose tip 0.5 in front of
the eye-mouth plane, a typical adult's):

- **roll**: the angle of the eye line (positive: the image-right eye lower, clockwise in the
  image).
- The points are then turned by -roll about the eyes' midpoint.
- **yaw**: the nose tip's offset from the face's midline (the line from the eyes' midpoint
  to the mouth's), at the nose's height, over the eye distance ``w``: a nose ``D`` in front of
  the plane turned by yaw moves ``D sin(yaw)`` while ``w`` shrinks by ``cos(yaw)``, so
  ``yaw = atan(offset / D)`` (positive: the nose towards image-right).
- **pitch**: where the nose sits between the eyes and the mouth (``r``, frontal ``r0`` =
  0.56): ``r = r0 + (D / H) tan(pitch)``, ``H`` the eye-mouth height, so ``pitch = atan((r -
  r0) H / D)`` (positive: the nose lower, the head tilted down).

Each angle is exact for a rotation about its own axis of a face shaped like the mean face
(tests project it and recover the angles); real faces differ from the mean by some degrees,
and beyond about 60 degrees of yaw the detector's landmarks themselves are guesses.
"""

from __future__ import annotations

import math

import numpy as np

#: Frontal proportions (module doc, in inter-ocular distances) and the nose depth.
NOSE_DOWN = 0.564  # the nose tip's height between the eyes (0) and the mouth (1)
EYE_MOUTH = 1.07  # eye-to-mouth height
MOUTH_WIDTH = 0.82
NOSE_DEPTH = 0.5  # the nose tip in front of the eye-mouth plane
#: The mean face (x right, y down, z towards the camera), in inter-ocular distances.
MEAN_FACE = np.array([
    [-0.5, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, NOSE_DOWN * EYE_MOUTH, NOSE_DEPTH],
    [-MOUTH_WIDTH / 2, EYE_MOUTH, 0.0], [MOUTH_WIDTH / 2, EYE_MOUTH, 0.0]])


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """``(yaw, pitch, roll)`` in degrees from 5 landmarks in MTCNN's order (module doc)."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    le, re = p[0], p[1]
    roll = math.atan2(re[1] - le[1], re[0] - le[0])
    c, s = math.cos(-roll), math.sin(-roll)
    centre = (le + re) / 2
    q = (p - centre) @ np.array([[c, s], [-s, c]])  # rows turned by -roll
    w = max(q[1, 0] - q[0, 0], 1e-6)
    mouth = (q[3] + q[4]) / 2
    h = mouth[1] if abs(mouth[1]) > 1e-6 else 1e-6
    nose = q[2]
    t = nose[1] / h
    offset = (nose[0] - t * mouth[0]) / w
    yaw = math.atan2(offset, NOSE_DEPTH)
    # the eye-mouth height over the eye distance is EYE_MOUTH * cos(pitch) / cos(yaw)
    pitch = math.atan((t - NOSE_DOWN) * EYE_MOUTH / NOSE_DEPTH)
    return (math.degrees(yaw), math.degrees(pitch), math.degrees(roll))


def project(yaw: float, pitch: float, roll: float, scale: float = 60.0,
            centre: tuple[float, float] = (100.0, 100.0)) -> np.ndarray:
    """:data:`MEAN_FACE` turned by the angles (degrees; yaw, then pitch, then roll) and seen
    in weak perspective: its 5 image points (tests, and a check of :func:`head_pose`)."""
    y, x, z = (math.radians(a) for a in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(x), math.sin(x)], [0, -math.sin(x), math.cos(x)]])
    rz = np.array([[math.cos(z), -math.sin(z), 0], [math.sin(z), math.cos(z), 0], [0, 0, 1]])
    pts = MEAN_FACE @ (rz @ rx @ ry).T
    return (pts[:, :2] * scale + np.asarray(centre)).astype(np.float32)
