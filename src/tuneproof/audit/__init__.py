"""Data audit and curation.

:func:`audit` runs a plain list of checks over a dataset and reports findings (record id,
check, severity, reason); it changes nothing. :func:`curate` applies the configured
decision per check (remove, flag or keep) and writes kept, removed (with reasons) and
unreadable records plus a manifest, so that kept + removed + unreadable = input rows.

Example:
    >>> from tuneproof.audit import audit, curate
    >>> result = audit("train.jsonl", domain="refs.jsonl", out="runs/audit")  # doctest: +SKIP
    >>> summary = curate("train.jsonl", domain="refs.jsonl", out="runs/curated")  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.audit._audit import CHECKS, AuditResult, audit
from tuneproof.audit._base import CheckNotRun, Context, Finding
from tuneproof.audit.curate import CurateResult, curate

__all__ = ["CHECKS", "AuditResult", "CheckNotRun", "Context", "CurateResult", "Finding", "audit", "curate"]

