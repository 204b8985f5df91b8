"""Finding what is wrong with a face dataset (``celebface audit``)."""

from celebface.audit.checks import (
    KINDS,
    NEAR_DUPLICATE,
    Finding,
    balance,
    exact_duplicates,
    mislabels,
    near_duplicates,
    near_pairs,
    too_few,
)
from celebface.audit.run import AuditConfig, AuditResult, audit

__all__ = [
    "KINDS",
    "NEAR_DUPLICATE",
    "AuditConfig",
    "AuditResult",
    "Finding",
    "audit",
    "balance",
    "exact_duplicates",
    "mislabels",
    "near_duplicates",
    "near_pairs",
    "too_few",
]
