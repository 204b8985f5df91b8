"""Face attributes: age and gender (dlib-models' Cydral networks), head pose from the 5
landmarks, and ``analyze`` (find every face, then give each its attributes).

``PLUGINS`` are the names the service's ``face_plugins`` parameter takes (CompreFace's).
"""

from __future__ import annotations

from celebface.attributes.age_gender import AgeGender, get_age_gender
from celebface.attributes.analyze import PLUGINS, add_attributes, analyze_faces, check_plugins
from celebface.attributes.pose import head_pose

__all__ = ["PLUGINS", "AgeGender", "add_attributes", "analyze_faces", "check_plugins",
           "get_age_gender", "head_pose"]
