"""Where model weights live, and checks that they are really there."""

from celebface.models.store import MissingWeightsError, dlib_model_path, find_weights

__all__ = ["MissingWeightsError", "dlib_model_path", "find_weights"]
