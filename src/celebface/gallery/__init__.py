"""A gallery of known people: enrolment, matching, the unknown threshold and its calibration."""

from celebface.gallery.calibrate_gallery import calibrate
from celebface.gallery.calibration import (
    Calibration,
    OpenSetRates,
    calibrate_scores,
    open_set_rates,
)
from celebface.gallery.enroll import EnrollConfig, EnrollSummary, enroll, get_matcher
from celebface.gallery.faces import FaceSet, FaceSetConfig, embed_faces
from celebface.gallery.matching import (
    MATCH_METHODS,
    GalleryMatcher,
    Match,
    Matcher,
    ModelMatcher,
    match,
)
from celebface.gallery.policy import OpenSetPolicy, policy_for, threshold_for_far
from celebface.gallery.store import Gallery, GalleryError

__all__ = [
    "MATCH_METHODS",
    "Calibration",
    "EnrollConfig",
    "EnrollSummary",
    "FaceSet",
    "FaceSetConfig",
    "Gallery",
    "GalleryError",
    "GalleryMatcher",
    "Match",
    "Matcher",
    "ModelMatcher",
    "OpenSetPolicy",
    "OpenSetRates",
    "calibrate",
    "calibrate_scores",
    "embed_faces",
    "enroll",
    "get_matcher",
    "match",
    "open_set_rates",
    "policy_for",
    "threshold_for_far",
]
