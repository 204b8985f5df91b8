"""Finding what is wrong with a face dataset (``celebface audit``)."""

from celebface.audit.checks import (
    KINDS,
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
