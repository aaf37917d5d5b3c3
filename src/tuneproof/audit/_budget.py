"""The removal budget: curation may not silently remove a large share of the data.

A check's threshold is a judgement. When it is wrong for the data at hand (a domain
sentence that misses half the domain, text-quality limits set on web text applied to legal
prose), the check removes good records by the hundred, and nothing downstream can tell. The
budget turns such a removal into a decision that the user sees:

- **Per check.** A check that would remove more than ``audit.max_check_removed_share`` of
  the rows, beyond the share its calibration expects to remove from clean in-domain data,
  is over budget: its rows are flagged and kept.
- **All checks together.** When the rows removed by the budgeted checks exceed
  ``audit.max_removed_share`` beyond their expected shares together, the check with the
  largest share beyond its expected one is flagged and kept instead, then the next, until the
  rest fits. That check's removals are the least explained by its calibration, so it is the
  most likely to be miscalibrated, and suspending it first overrules the fewest checks.

Some removals lose nothing or protect the evaluation, so they are exempt: they are always
applied, and reported with their share (the preflight's duplicate and leakage risks say
when they are large):

- ``exact_duplicate``: each removed row is an identical copy of a row that stays, so no
  content is lost, whatever the share.
- ``leakage``: a training record that copies an evaluation record makes the test score
  measure memory; keeping it would make the run's decision unsound.
- ``select``: the user asked for that fraction explicitly.

A budgeted check's share counts only the rows that no exempt check removes anyway (an
exact copy that is also off-domain goes as a copy either way). Shares are of the readable
rows, and kept + removed + unreadable = input rows still holds: a suspended row moves from
removed to kept, with its finding flagged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from tuneproof.audit._audit import AuditResult
from tuneproof.audit._base import SEVERE, Finding, record_text

__all__ = ["EXEMPT", "OVER_BUDGET", "WITHIN_BUDGET", "apply_budget", "expected_shares"]

OVER_BUDGET = "over budget: flagged and kept"
WITHIN_BUDGET = "within budget"
EXEMPT = {
    "exact_duplicate": "exempt: each removed row is an identical copy of a kept row, so no content is lost",
    "leakage": "exempt: records that copy the evaluation data would make the test measure memory",
    "select": "exempt: the fraction to keep was asked for explicitly",
}
N_EXAMPLES, SNIPPET_CHARS = 3, 100


def expected_shares(result: AuditResult) -> dict[str, float]:
    """Per check, the share of clean in-domain rows its calibration expects it to remove.

    Read from ``result.context.extras["calibration"][check]``: a number, or a dict with
    ``expected_false_positive_rate``. A check that reports none expects 0 (duplicates, for example, have
    no false-positive rate to predict).
    """
    out: dict[str, float] = {}
    for check, info in (result.context.extras.get("calibration") or {}).items():
        value = info.get("expected_false_positive_rate") if isinstance(info, Mapping) else info
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[check] = min(max(float(value), 0.0), 1.0)
    return out


def apply_budget(
    result: AuditResult,
    removed: dict[int, list[dict[str, Any]]],
    flagged: dict[int, list[Finding]],
    expected: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Suspend the removals of checks over the budget, in place; return the manifest's ``budget``.

    Args:
        result: the audit (its config holds the limits, its records the rows).
        removed: record index -> removal reasons (``{"check", "code", "reason", ...}``);
            a suspended check's reasons leave it, and a row with none left is kept.
        flagged: record index -> flagged findings; a suspended check's findings join it,
            their reason starting with "over the removal budget".
        expected: per check, the share its calibration expects to remove from clean data
            (default :func:`expected_shares`; 0 for a check not named).

    Returns:
        ``{"rows", "max_check_removed_share", "max_removed_share", "checks": {check: {"would_remove"
        (rows no exempt check removes anyway), "also_removed_as_exempt", "share" (would_remove / rows),
        "expected_share", "limit", "verdict", "why", "flagged_and_kept", "examples"}},
        "total": {...}, "suspended", "flagged_and_kept", "rule"}``.
    """
    cfg = result.config
    expected = expected_shares(result) if expected is None else dict(expected)
    n = len(result.records)
    rows_by_check, all_rows = _rows_by_check(removed)
    share = {c: len(rows) / n for c, rows in rows_by_check.items()}
    excess = {c: share[c] - expected.get(c, 0.0) for c in share}
    budgeted = [c for c in rows_by_check if c not in EXEMPT]
    total_before = _total(removed, n, budgeted, expected)
    why = _choose(cfg, removed, n, budgeted, excess, expected, rows_by_check)
    kept_back = _suspend(result, removed, flagged, {c: all_rows[c] for c in why})
    checks = {}
    for c, rows in rows_by_check.items():
        entry = {"would_remove": len(rows), "also_removed_as_exempt": len(all_rows[c]) - len(rows),
                 "share": round(share[c], 4), "expected_share": round(expected.get(c, 0.0), 4),
                 "limit": None if c in EXEMPT else cfg.max_check_removed_share,
                 "verdict": EXEMPT.get(c) or (OVER_BUDGET if c in why else WITHIN_BUDGET)}  # fmt: skip
        if c in why:
            entry.update(why=why[c], flagged_and_kept=sum(1 for i in rows if i in kept_back), examples=_examples(result, rows))
        checks[c] = entry
    by_total = [c for c, w in why.items() if "total limit" in w]
    total_verdict = (f"{OVER_BUDGET} ({', '.join(by_total)})" if by_total else WITHIN_BUDGET
                     if total_before[0] - total_before[1] <= cfg.max_removed_share
                     else f"{WITHIN_BUDGET} once the checks over their own limit were flagged and kept")  # fmt: skip
    after = _total(removed, n, [c for c in budgeted if c not in why], expected)
    return {
        "rows": n,
        "max_check_removed_share": cfg.max_check_removed_share,
        "max_removed_share": cfg.max_removed_share,
        "checks": checks,
        "total": {"share": round(total_before[0], 4), "expected_share": round(total_before[1], 4),
                  "limit": cfg.max_removed_share, "share_after": round(after[0], 4), "verdict": total_verdict},
        "suspended": list(why),
        "flagged_and_kept": len(kept_back),
        "rule": "a check over the per-check limit (beyond its expected share) is flagged and kept; then, while the "
                "budgeted checks together exceed the total limit, the one with the largest share beyond its expected "
                "is flagged and kept; exact duplicates, leakage and select are exempt. Their findings: findings.jsonl",
    }  # fmt: skip


def _rows_by_check(removed: dict[int, list[dict[str, Any]]]) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Per check, (the rows the budget decides on, every row it removes).

    A budgeted check's share counts the rows that no exempt check removes anyway: an exact
    copy that is also off-domain goes as a copy, so it is not the budget's to keep.
    """
    decided: dict[str, list[int]] = {}
    every: dict[str, list[int]] = {}
    for i in sorted(removed):
        exempt = any(r["check"] in EXEMPT for r in removed[i])
        for check in dict.fromkeys(r["check"] for r in removed[i]):
            every.setdefault(check, []).append(i)
            decided.setdefault(check, [])
            if check in EXEMPT or not exempt:
                decided[check].append(i)
    return decided, every


def _choose(cfg: Any, removed: dict[int, list[dict[str, Any]]], n: int, budgeted: list[str], excess: dict[str, float],
            expected: Mapping[str, float], rows_by_check: dict[str, list[int]]) -> dict[str, str]:  # fmt: skip
    """The checks to suspend, each with why: first those over the per-check limit, then, while the
    rest exceed the total limit, the one with the largest share beyond its expected one."""
    per = cfg.max_check_removed_share
    why = {c: f"{excess[c]:.0%} of the rows beyond the {expected.get(c, 0.0):.0%} its calibration expects, over the "
              f"per-check limit {per:.0%}" for c in budgeted if excess[c] > per}  # fmt: skip
    active = [c for c in budgeted if c not in why]
    while active and (t := _total(removed, n, active, expected))[0] - t[1] > cfg.max_removed_share:
        worst = max(active, key=lambda c: (excess[c], len(rows_by_check[c]), c))
        why[worst] = (f"the budgeted checks together would remove {t[0]:.0%} of the rows ({t[0] - t[1]:.0%} beyond the "
                      f"expected), over the total limit {cfg.max_removed_share:.0%}, and this check had the largest "
                      f"share beyond its expected one ({excess[worst]:.0%})")  # fmt: skip
        active.remove(worst)
    return why


def _total(removed: dict[int, list[dict[str, Any]]], n: int, active: list[str], expected: Mapping[str, float]) -> tuple[float, float]:
    """(share of the n rows removed by an active check and by no exempt one, the active checks' expected shares summed)."""
    hit = sum(1 for reasons in removed.values()
              if any(r["check"] in active for r in reasons) and not any(r["check"] in EXEMPT for r in reasons))  # fmt: skip
    return (hit / n if n else 0.0), min(1.0, sum(expected.get(c, 0.0) for c in active))


def _suspend(result: AuditResult, removed: dict[int, list[dict[str, Any]]], flagged: dict[int, list[Finding]],
             rows_by_check: dict[str, list[int]]) -> set[int]:  # fmt: skip
    """Move the suspended checks' removals to flags; return the rows that are kept now."""
    if not rows_by_check:
        return set()
    originals = {(f.index, f.check): f for f in result.findings if f.check in rows_by_check}
    kept_back: set[int] = set()
    note = "over the removal budget, flagged and kept: "
    for check, rows in rows_by_check.items():
        for i in rows:
            mine = [r for r in removed[i] if r["check"] == check]
            finding = originals.get((i, check))
            for r in mine:  # every suspended removal stays on record as a flag
                details = {k: v for k, v in r.items() if k not in ("check", "code", "reason")}
                flagged.setdefault(i, []).append(Finding(
                    result.records[i].id, check, finding.severity if finding else SEVERE, note + r["reason"], r["code"],
                    {**details, "budget": OVER_BUDGET}, i))  # fmt: skip
            reasons = [r for r in removed[i] if r["check"] != check]
            if reasons:
                removed[i] = reasons
            else:
                del removed[i]
                kept_back.add(i)
    return kept_back


def _examples(result: AuditResult, rows: list[int]) -> list[dict[str, str]]:
    """A few of the rows, spread over the list: their ids and the start of their text."""
    step = max(1, len(rows) // N_EXAMPLES)
    picks = rows[::step][:N_EXAMPLES]
    out = []
    for i in picks:
        rec = result.records[i]
        text = " ".join(record_text(rec).split())
        out.append({"id": rec.id, "text": text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 3] + "..."})
    return out
