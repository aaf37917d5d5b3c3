"""``curate()``: apply the audit's decisions and write kept, removed and unreadable records.

Every input row ends up in exactly one of ``kept.jsonl``, ``removed.jsonl`` (with its
reasons) or ``unreadable.jsonl`` (rows the loader could not read, with why), so
kept + removed + unreadable = input rows; this is checked before anything is written.
Kept rows keep their original content and column names, so a training config can point
at ``kept.jsonl`` directly.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof._io import atomic_open, atomic_write
from tuneproof.audit._audit import AuditResult, audit
from tuneproof.audit._budget import apply_budget
from tuneproof.audit._base import SEVERE, CheckNotRun, Finding
from tuneproof.audit.relevance import record_embeddings
from tuneproof.config import AuditConfig, resolve_decision
from tuneproof.data import LoadResult, load_records

__all__ = ["CurateResult", "curate", "select_records"]

_WARNING_PENALTY = 0.1  # selection score lost per flagged problem


@dataclass
class CurateResult:
    """What :func:`curate` decided.

    Attributes:
        audit: the audit it acted on.
        kept: indices of kept records.
        removed: record index -> the findings that removed it.
        flagged: record index -> findings that were kept but flagged.
        unreadable: number of rows the loader rejected.
        manifest: the content of manifest.json.
        out: the folder written, or None for a dry run.
    """

    audit: AuditResult
    kept: list[int]
    removed: dict[int, list[dict[str, Any]]]
    flagged: dict[int, list[Finding]]
    unreadable: int
    manifest: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None

    def dry_run_rows(self) -> list[tuple[str, str, str, int]]:
        """(check, decision, threshold or rule, records it would remove) for each check."""
        cfg = self.audit.config
        counts: Counter[str] = Counter()
        for reasons in self.removed.values():
            for check in {r["check"] for r in reasons}:
                counts[check] += 1
        rules = {
            "near_duplicate": f"Jaccard >= {cfg.jaccard_threshold:g}, {cfg.shingle_size}-word shingles",
            "off_domain": _threshold_text(self.audit),
            "low_quality": "severe findings only",
            "leakage": f"same text/prompt or a shared {cfg.leakage_ngram}-gram",
            "too_long": f"over {self.audit.context.extras.get('max_tokens', cfg.max_tokens) or 'the model maximum'} tokens",
            "select": "not in the selected fraction",
        }
        rows = []
        for name, info in [*self.audit.checks.items(), ("select", {"status": "ran"})]:
            if name == "select" and "select" not in self.manifest.get("counts", {}).get("removed_by_check", {}):
                continue
            decision = "remove" if name == "select" else resolve_decision(cfg.decisions[name], name, self.audit.context.task)
            if name in self.manifest.get("budget", {}).get("suspended", []):
                decision = "flag: over budget"
            status = info["status"]
            if status == "ran":
                rows.append((name, decision, rules.get(name, ""), counts.get(name, 0)))
            else:
                rows.append((name, status, "", 0))
        return rows


def _threshold_text(result: AuditResult) -> str:
    t = result.context.extras.get("off_domain_threshold")
    return f"score < {t['value']:.3f} ({t['source']})" if t else ""


def _sha256(path: Path) -> str:
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(p.relative_to(path).as_posix().encode())
                h.update(_sha256(p).encode())
        return h.hexdigest()
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _decide(result: AuditResult) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[Finding]]]:
    decisions = result.config.decisions
    removed: dict[int, list[dict[str, Any]]] = defaultdict(list)
    flagged: dict[int, list[Finding]] = defaultdict(list)
    for f in result.findings:
        decision = resolve_decision(decisions[f.check], f.check, result.context.task)
        # Low-quality warnings (e.g. "too short"), partial eval overlaps and near copies with
        # another answer (a conflict) are never grounds for removal on their own.
        if decision == "remove" and (f.check not in ("low_quality", "leakage", "near_duplicate") or f.severity == SEVERE):
            removed[f.index].append({"check": f.check, "code": f.code, "reason": f.reason, **f.details})
        elif decision != "keep":
            flagged[f.index].append(f)
    return dict(removed), dict(flagged)


def _select(result: AuditResult, candidates: list[int], flagged: dict[int, list[Finding]], fraction: float) -> tuple[list[int], str]:
    """The best ``fraction`` of ``candidates`` by relevance minus a penalty per flag, with at
    most twice its fair share from any embedding cluster (so near-identical top scorers do
    not crowd out the rest)."""
    n_keep = max(1, round(fraction * len(candidates)))
    relevance = result.context.extras.get("relevance")
    score = np.array(
        [(float(relevance[i]) if relevance is not None else 0.0) - _WARNING_PENALTY * len(flagged.get(i, [])) for i in candidates]
    )
    order = np.argsort(-score, kind="stable")
    try:
        emb = record_embeddings(result.records, result.context)[candidates]
    except CheckNotRun as exc:
        how = f"diversity not applied ({exc})"
        return sorted(candidates[k] for k in order[:n_keep]), how
    from sklearn.cluster import MiniBatchKMeans

    # About 2*sqrt(n) clusters (no more than records to keep), each capped at twice its share.
    k = max(1, min(n_keep, int(2 * math.sqrt(len(candidates)))))
    labels = MiniBatchKMeans(n_clusters=k, random_state=0, n_init=3).fit_predict(emb) if k > 1 else np.zeros(len(candidates), int)
    cap = max(1, math.ceil(2 * n_keep / k))
    taken: Counter[int] = Counter()
    chosen, spill = [], []
    for pos in order:
        if taken[labels[pos]] < cap:
            taken[labels[pos]] += 1
            chosen.append(pos)
        else:
            spill.append(pos)
        if len(chosen) == n_keep:
            break
    chosen += spill[: n_keep - len(chosen)]
    how = (
        f"score = relevance{'' if relevance is not None else ' (not measured: no domain given)'} "
        f"- {_WARNING_PENALTY} per flag; at most {cap} per embedding cluster ({k} clusters)"
    )
    return sorted(candidates[p] for p in chosen), how


def select_records(result: AuditResult, n: int) -> tuple[list[int], str]:
    """The ``n`` best records of an audit by the rule ``curate(select=...)`` keeps: relevance
    minus a penalty per flag, with the per-cluster diversity cap.

    ``curate(select=F)`` keeps ``round(F x candidates)`` of the records no check removes; this
    keeps exactly ``n`` of them instead, so a subset can match another of the same size (a
    random one, in a learning curve). Past the candidates, the records a check would remove
    follow, best first by the same score.

    Returns:
        ``(indices, rule)``: sorted record indices and the rule in words.

    Example:
        >>> select_records(audit("train.jsonl", domain="refs.jsonl"), 100)  # doctest: +SKIP
    """
    removed, flagged = _decide(result)
    apply_budget(result, removed, flagged)
    candidates = [i for i in range(len(result.records)) if i not in removed]
    n = max(0, min(n, len(result.records)))
    if 0 < n <= len(candidates):
        return _select(result, candidates, flagged, n / len(candidates))
    rest = [] if n <= len(candidates) else _select(result, sorted(removed), flagged, (n - len(candidates)) / len(removed))[0]
    return sorted(candidates[:n] + rest), f"all {min(n, len(candidates))} records no check removes, then the best of the rest"


def _original_rows(loaded: LoadResult) -> dict[str, Any]:
    """Record id -> the row as it was in the file (JSONL: the line's text, exactly)."""
    if loaded.format == "jsonl":
        out = {}
        wanted = {r.id for r in loaded.records}
        with loaded.path.open("rb") as f:
            for line_no, data in enumerate(f, 1):
                rid = f"{loaded.name}:{line_no}"
                if rid in wanted:
                    text = data.decode("utf-8").rstrip("\r\n")
                    out[rid] = text.lstrip("\ufeff") if line_no == 1 else text
        return out
    return {
        r.id: json.dumps({**{loaded.field_map.get(k, k): v for k, v in r.fields.items()}, **r.extra}, ensure_ascii=False, default=str)
        for r in loaded.records
    }


def curate(
    data: str | Path,
    *,
    out: str | Path | None = None,
    domain: str | Path | None = None,
    domain_text: str | None = None,
    eval_data: str | Path | None = None,
    model: str | None = None,
    task: str = "sft",
    fields: dict[str, str] | None = None,
    config: AuditConfig | None = None,
    dry_run: bool = False,
    select: float | None = None,
    progress: bool = True,
    tokenizer: Any = None,
    embedder: Any = None,
    audited: AuditResult | None = None,
) -> CurateResult:
    """Audit the data, then keep the clean records and write the rest with their reasons.

    Decisions per check come from ``config.decisions`` (defaults: remove duplicates,
    severe low quality, off-domain and leakage; flag label issues, PII and too-long).
    A removal budget then keeps what a check would remove beyond ``audit.max_check_removed_share``
    of the rows, or all checks together beyond ``audit.max_removed_share``: those rows are
    flagged and kept, and the manifest's ``budget`` says which, why, with examples
    (:func:`tuneproof.audit._budget.apply_budget`).

    Args:
        data: the dataset path.
        out: the folder for kept.jsonl, removed.jsonl, unreadable.jsonl, manifest.json
            (plus the audit's findings.jsonl and audit.json). Not needed for a dry run.
        domain, domain_text, eval_data, model, task, fields, config, progress, tokenizer, embedder:
            as for :func:`~tuneproof.audit.audit`.
        dry_run: decide but write nothing (see :meth:`CurateResult.dry_run_rows`).
        select: keep only this best fraction (0 < select <= 1) of the records that survive
            the checks, by relevance and quality, with diversity.
        audited: the :func:`~tuneproof.audit.audit` result of this very file with these
            settings (the pipeline's audit stage): curate acts on it instead of auditing again.

    Returns:
        A :class:`CurateResult`.

    Raises:
        DataError: the data cannot be read.
        ValueError: ``select`` outside (0, 1], no ``out`` without ``dry_run``, or ``audited`` of
            another file.

    Example:
        >>> res = curate("train.jsonl", domain="refs.jsonl", out="curated/")  # doctest: +SKIP
        >>> res.manifest["counts"]["kept"]  # doctest: +SKIP
        812
    """
    if select is not None and not 0 < select <= 1:
        raise ValueError(f"select={select}: must be a fraction in (0, 1], e.g. 0.2 to keep the best 20%")
    if out is None and not dry_run:
        raise ValueError("curate needs out= (a folder for kept.jsonl and removed.jsonl) unless dry_run=True")
    path = Path(data)
    if audited is not None:
        if audited.loaded.path.resolve() != path.resolve():
            raise ValueError(f"audited= is the audit of {audited.loaded.path}, not of {path}: pass the audit of the same file")
        loaded, result = audited.loaded, audited
    else:
        loaded = load_records(path, fields=fields)
        result = audit(
            loaded, domain=domain, domain_text=domain_text, eval_data=eval_data, model=model, task=task,
            fields=fields, config=config, progress=progress, tokenizer=tokenizer, embedder=embedder,
        )  # fmt: skip
    removed, flagged = _decide(result)
    budget = apply_budget(result, removed, flagged)
    candidates = [i for i in range(len(loaded.records)) if i not in removed]
    selection = None
    if select is not None and select < 1 and candidates:
        chosen, how = _select(result, candidates, flagged, select)
        chosen_set = set(chosen)
        reason = f"not among the best {select:.0%} by quality and relevance ({how})."
        for i in candidates:
            if i not in chosen_set:
                removed[i] = [{"check": "select", "code": "not selected", "reason": reason}]
        candidates = chosen
        selection = {"fraction": select, "kept": len(chosen), "rule": how}
    kept = candidates
    total = loaded.total_rows
    if len(kept) + len(removed) + len(loaded.rejected) != total:
        raise AssertionError(  # a bug, not bad input: the invariant must hold
            f"curate invariant broken: kept {len(kept)} + removed {len(removed)} + unreadable "
            f"{len(loaded.rejected)} != {total} input rows"
        )
    by_check: Counter[str] = Counter()
    by_reason: Counter[str] = Counter()
    for reasons in removed.values():
        for check in {r["check"] for r in reasons}:
            by_check[check] += 1
        for key in {f"{r['check']}: {r['code']}" for r in reasons}:
            by_reason[key] += 1
    flag_counts: Counter[str] = Counter(f.check for i in kept for f in {x.check: x for x in flagged.get(i, [])}.values())
    from tuneproof import __version__

    manifest = {
        "tool": "tuneproof",
        "version": __version__,
        "input": {"path": str(path.resolve()), "sha256": _sha256(path), "format": loaded.format, "schema": loaded.schema.value},
        "config": result.config.model_dump(mode="json"),
        "options": {"domain": str(domain) if domain else None, "domain_text": domain_text,
                    "eval": str(eval_data) if eval_data else None, "model": model, "task": task, "select": select},
        "checks": {k: v["status"] for k, v in result.checks.items()},
        "settings": result.report()["settings"],
        "selection": selection,
        "budget": budget,
        "counts": {
            "input_rows": total, "kept": len(kept), "removed": len(removed), "unreadable": len(loaded.rejected),
            "removed_by_check": dict(by_check.most_common()), "removed_by_reason": dict(by_reason.most_common()),
            "flagged_kept_by_check": dict(flag_counts.most_common()),
            "unreadable_by_reason": dict(Counter(r.kind or "unreadable" for r in loaded.rejected).most_common()),
        },
    }  # fmt: skip
    res = CurateResult(result, kept, removed, flagged, len(loaded.rejected), manifest)
    if dry_run:
        return res
    out = Path(out)  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    rows = _original_rows(loaded)
    records = loaded.records
    with atomic_open(out / "kept.jsonl") as f:
        for i in kept:
            f.write(rows[records[i].id] + "\n")
    with atomic_open(out / "removed.jsonl") as f:
        for i in sorted(removed):
            row = {"id": records[i].id, "reasons": removed[i], "record": json.loads(rows[records[i].id])}
            f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    loaded.write_rejects(out / "unreadable.jsonl")
    result.write(out)
    atomic_write(out / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False, default=str))
    res.out = out
    return res
