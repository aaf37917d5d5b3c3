"""What every check shares: the finding it yields, the context it reads, and record text.

A check is a small unit (datatrove style): ``run(records, context)`` yields
:class:`Finding` objects. A check that cannot run raises :class:`CheckNotRun` with the
reason, and the audit reports it as ``"not run: <why>"``; nothing is skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from tuneproof.config import AuditConfig
from tuneproof.data import Record, Schema

__all__ = [
    "Check",
    "CheckNotRun",
    "Context",
    "Finding",
    "completion_text",
    "normalize",
    "progress",
    "prompt_text",
    "record_text",
    "words",
]

SEVERE = "severe"
WARNING = "warning"
INFO = "info"


@dataclass
class Finding:
    """One problem of one record.

    Attributes:
        id: the record id, ``<file name>:<line>``.
        check: the check's name, e.g. ``near_duplicate``.
        severity: ``severe``, ``warning`` or ``info``.
        reason: a sentence a person understands.
        code: a short stable reason key, used to count findings per reason.
        details: check-specific facts (``duplicate_of``, ``score``, ``suggested_label``, ``rank``,
            ``kind`` and ``start``/``end`` for PII, ``tokens``...). Never a PII value.
        index: the record's position in the loaded records (not written out).
    """

    id: str
    check: str
    severity: str
    reason: str
    code: str
    details: dict[str, Any] = field(default_factory=dict)
    index: int = -1

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "reason": self.reason,
            "code": self.code,
            **self.details,
        }


class CheckNotRun(Exception):
    """Raised by a check that cannot run; the message says why (and how to enable it)."""


@dataclass
class Context:
    """What checks may read besides the records.

    Attributes:
        config: thresholds and settings.
        task: ``sft`` or ``classification``.
        domain: reference texts of the target domain, or None.
        domain_records: the reference records themselves (their prompt and completion
            apart), or None; checks that need the parts fall back to ``domain`` as whole texts.
        domain_text: a sentence describing the domain, or None.
        eval_records: held-out records for the leakage check, or None.
        tokenizer_name: the model whose tokenizer measures length (too_long).
        embeddings: cache shared by the relevance, label and selection steps.
        extras: facts a check leaves for later stages (e.g. the calibrated threshold).
    """

    config: AuditConfig
    task: str = "sft"
    domain: list[str] | None = None
    domain_records: list[Record] | None = None
    domain_text: str | None = None
    eval_records: list[Record] | None = None
    tokenizer_name: str | None = None
    tokenizer: Any = None
    progress: bool = True
    embeddings: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


class Check(Protocol):
    """A check: a ``name`` and ``run(records, context) -> findings``."""

    name: str

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]: ...


_WORD = re.compile(r"\w+", re.UNICODE)
_SPACE = re.compile(r"\s+")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters, digits, underscore)."""
    return _WORD.findall(text.lower())


def normalize(text: str) -> str:
    """Whitespace collapsed and case folded: what exact duplicates are compared on."""
    return _SPACE.sub(" ", text).strip().casefold()


def _chat_turns(record: Record) -> list[dict[str, Any]]:
    return [m for m in record.fields.get("messages", []) if isinstance(m, dict)]


def prompt_text(record: Record) -> str:
    """The input part: the prompt, instruction + input, all chat turns but the last
    assistant one, or the whole text for text schemas."""
    f = record.fields
    if record.schema == Schema.PROMPT_COMPLETION:
        return str(f["prompt"])
    if record.schema == Schema.ALPACA:
        return "\n".join(x for x in (str(f["instruction"]), str(f.get("input") or "")) if x)
    if record.schema == Schema.CHAT:
        turns = _chat_turns(record)
        if turns and turns[-1].get("role") == "assistant":
            turns = turns[:-1]
        return "\n".join(str(m.get("content") or "") for m in turns)
    return str(f.get("text", ""))


def completion_text(record: Record) -> str | None:
    """The output part that training learns to produce; None for text schemas."""
    f = record.fields
    if record.schema == Schema.PROMPT_COMPLETION:
        return str(f["completion"])
    if record.schema == Schema.ALPACA:
        return str(f["output"])
    if record.schema == Schema.CHAT:
        turns = _chat_turns(record)
        if turns and turns[-1].get("role") == "assistant":
            return str(turns[-1].get("content") or "")
        return None
    return None


def record_text(record: Record) -> str:
    """All the record's text (prompt and completion joined by a newline)."""
    completion = completion_text(record)
    prompt = prompt_text(record)
    return prompt if completion is None else f"{prompt}\n{completion}"


def progress(items: Sequence[Any], description: str, enabled: bool) -> Any:
    """Iterate ``items`` with a transient rich progress bar when enabled and long enough."""
    if not enabled or len(items) < 5000:
        return items
    from rich.progress import track

    return track(items, description=description, transient=True)
