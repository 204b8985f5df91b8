"""Evaluation: a trained model on labelled face images, as metrics and pictures."""

from celebface.evaluation.evaluate import evaluate_model
from celebface.evaluation.report import format_summary
from celebface.evaluation.samples import load_eval_set

__all__ = ["evaluate_model", "format_summary", "load_eval_set"]
