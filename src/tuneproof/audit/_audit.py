"""``audit()``: load the data, run the checks, count findings, write the report."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneproof._io import atomic_open, atomic_write
from tuneproof.audit._base import Check, CheckNotRun, Context, Finding, record_text
from tuneproof.audit.dedup import ExactDuplicateCheck, NearDuplicateCheck
from tuneproof.audit.labels import LabelIssueCheck
from tuneproof.audit.leakage import LeakageCheck
from tuneproof.audit.length import TooLongCheck
from tuneproof.audit.pii import PiiCheck
from tuneproof.audit.quality import LowQualityCheck
from tuneproof.audit.relevance import OffDomainCheck
from tuneproof.audit.stats import dataset_stats
from tuneproof.config import AUDIT_CHECKS, AuditConfig
from tuneproof.data import LoadResult, load_records
from tuneproof.errors import DataError

__all__ = ["CHECKS", "AuditResult", "audit"]

CHECKS: dict[str, type] = {
    "exact_duplicate": ExactDuplicateCheck,
    "near_duplicate": NearDuplicateCheck,
    "low_quality": LowQualityCheck,
    "off_domain": OffDomainCheck,
    "label_issue": LabelIssueCheck,
    "leakage": LeakageCheck,
    "too_long": TooLongCheck,
    "pii": PiiCheck,
}
assert tuple(CHECKS) == AUDIT_CHECKS


@dataclass
class AuditResult:
    """What :func:`audit` found.

    Attributes:
        loaded: the loaded data (records and unreadable rows).
        findings: every finding, in check order then record order.
        checks: per check: ``status`` (``"ran"`` or ``"not run: <why>"``), ``findings``,
            ``records`` (distinct records), ``by_reason`` and ``seconds``.
        stats: dataset statistics (:func:`~tuneproof.audit.stats.dataset_stats`).
        config: the settings used.
        context: the check context (relevance scores, embeddings, thresholds).
    """

    loaded: LoadResult
    findings: list[Finding]
    checks: dict[str, dict[str, Any]]
    stats: dict[str, Any]
    config: AuditConfig
    context: Context = field(repr=False)

    @property
    def records(self):
        return self.loaded.records

    def by_check(self, check: str) -> list[Finding]:
        """The findings of one check."""
        return [f for f in self.findings if f.check == check]

    def report(self) -> dict[str, Any]:
        """The content of audit.json; ``calibration`` says, per text-judging check, how its
        thresholds were calibrated on the data at hand and its expected false-positive rate."""
        extras = {k: v for k, v in self.context.extras.items() if k in ("off_domain_threshold", "max_tokens", "label_features")}
        calibration = self.context.extras.get("calibration", {})
        return {
            "stats": self.stats, "checks": self.checks, "settings": extras, "calibration": calibration,
            "config": self.config.model_dump(mode="json"),
        }  # fmt: skip

    def write(self, out: str | Path) -> Path:
        """Write ``findings.jsonl`` and ``audit.json`` into ``out``; return the folder."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_open(out / "findings.jsonl") as f:
            for finding in self.findings:
                f.write(json.dumps(finding.to_json(), ensure_ascii=False, default=str) + "\n")
        atomic_write(out / "audit.json", json.dumps(self.report(), indent=2, ensure_ascii=False, default=str))
        return out

    def table(self):
        """A rich table: one row per check with its status, records flagged and top reasons."""
        from rich.table import Table

        n = len(self.records)
        t = Table(title=f"audit of {self.loaded.name}: {n} records, {self.stats['unreadable']} unreadable")
        for col in ("check", "status", "records", "share", "top reasons"):
            t.add_column(col, overflow="fold")
        for name, info in self.checks.items():
            if info["status"] != "ran":
                t.add_row(name, f"[yellow]{info['status']}[/yellow]", "-", "-", "")
                continue
            k = info["records"]
            reasons = ", ".join(f"{r} {c}" for r, c in list(info["by_reason"].items())[:3])
            t.add_row(name, "ran", str(k), f"{k / max(n, 1):.1%}", reasons)
        return t


def _texts_of(path: str | Path, what: str, fields: dict[str, str] | None = None) -> LoadResult:
    try:
        return load_records(path, fields=fields)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


def audit(
    data: str | Path | LoadResult,
    *,
    domain: str | Path | None = None,
    domain_text: str | None = None,
    eval_data: str | Path | None = None,
    model: str | None = None,
    task: str = "sft",
    fields: dict[str, str] | None = None,
    config: AuditConfig | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    tokenizer: Any = None,
    embedder: Any = None,
) -> AuditResult:
    """Audit a dataset: run every configured check and report what it finds. Changes nothing.

    Args:
        data: the dataset path (JSONL, CSV, Parquet, datasets dir) or an already loaded one.
        domain: a file of reference examples of the target domain (off_domain check).
        domain_text: a sentence describing the domain, instead of ``domain``.
        eval_data: held-out evaluation data (leakage check).
        model: the model whose tokenizer measures length (too_long check).
        task: ``sft`` or ``classification`` (label_issue runs for classification, and for SFT whose completions are a small label set).
        fields: canonical field -> column mapping for ``data`` and ``eval_data``.
        config: thresholds and decisions; defaults to :class:`AuditConfig()`.
        out: if given, write ``findings.jsonl`` and ``audit.json`` there.
        progress: show rich progress bars for the long steps.
        tokenizer: an already loaded tokenizer, instead of loading ``model``'s.
        embedder: an object with ``encode(texts) -> L2-normalized array`` for the relevance,
            label and selection steps; default: MiniLM (:class:`~tuneproof.audit.embed.Embedder`).

    Returns:
        An :class:`AuditResult`.

    Raises:
        DataError: the data, domain or eval file cannot be read.
        ValueError: both ``domain`` and ``domain_text``, or an unknown task.

    Example:
        >>> result = audit("train.jsonl", domain="refs.jsonl", out="audit/")  # doctest: +SKIP
        >>> result.checks["near_duplicate"]["records"]  # doctest: +SKIP
        12
    """
    if domain is not None and domain_text is not None:
        raise ValueError("give either domain (a file of examples) or domain_text (a sentence), not both")
    if task not in ("sft", "classification"):
        raise ValueError(f"task={task!r}: must be 'sft' or 'classification'")
    cfg = config or AuditConfig()
    loaded = data if isinstance(data, LoadResult) else load_records(data, fields=fields)
    records = loaded.records
    refs = _texts_of(domain, "--domain").records if domain is not None else None
    context = Context(
        config=cfg,
        task=task,
        domain=[record_text(r) for r in refs] if refs is not None else None,
        domain_records=refs,
        domain_text=domain_text,
        eval_records=_texts_of(eval_data, "--eval", fields).records if eval_data is not None else None,
        tokenizer_name=model,
        tokenizer=tokenizer,
        progress=progress,
    )
    if embedder is not None:
        context.embeddings["embedder"] = embedder
    findings: list[Finding] = []
    checks: dict[str, dict[str, Any]] = {}
    for name, cls in CHECKS.items():
        if name not in cfg.checks:
            checks[name] = {"status": "not run: left out of audit.checks in the config"}
            continue
        check: Check = cls()
        t0 = time.perf_counter()
        try:
            found = list(check.run(records, context))
        except CheckNotRun as exc:
            checks[name] = {"status": f"not run: {exc}"}
            continue
        findings.extend(found)
        checks[name] = {
            "status": "ran",
            "findings": len(found),
            "records": len({f.index for f in found}),
            "by_severity": dict(Counter(f.severity for f in found)),
            "by_reason": dict(Counter(f.code for f in found).most_common()),
            "seconds": round(time.perf_counter() - t0, 3),
        }
    stats = dataset_stats(loaded, records, context.extras.get("token_counts"))
    result = AuditResult(loaded, findings, checks, stats, cfg, context)
    if out is not None:
        result.write(out)
    return result
