"""Too long: the real tokenizer's count against the model's maximum length.

Training and evaluation cut a prompt with one completion as
:func:`tuneproof.train.sft.fit_prompt` does: the prompt's middle gives way and the completion
is kept whole, unless it alone is over the limit. The finding says how many prompt and
completion tokens would be lost. Text records and chats with several assistant turns are
cut from the right, which can cut completion tokens (all of them means the record teaches
nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tuneproof.audit._base import (
    SEVERE,
    WARNING,
    CheckNotRun,
    Context,
    Finding,
    _chat_turns,
    completion_text,
    prompt_text,
)
from tuneproof.data import Record, Schema
from tuneproof.errors import TuneproofError

__all__ = ["TooLongCheck", "model_max_tokens"]

_BATCH = 512


def model_max_tokens(tokenizer: Any) -> int | None:
    """The tokenizer's ``model_max_length``, unless it is the 'unset' sentinel (~1e30)."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**7:
        return limit
    return None


def _counts(tokenizer: Any, texts: list[str]) -> list[int]:
    out: list[int] = []
    for s in range(0, len(texts), _BATCH):
        enc = tokenizer(texts[s : s + _BATCH], add_special_tokens=False)["input_ids"]
        out.extend(len(ids) for ids in enc)
    return out


class TooLongCheck:
    """Records longer than the model's maximum length, in real tokens."""

    name = "too_long"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        tok = context.tokenizer
        if tok is None:
            if not context.tokenizer_name:
                raise CheckNotRun("no model given to measure tokens with (pass --model NAME)")
            try:
                from tuneproof.models import load_tokenizer

                tok = context.tokenizer = load_tokenizer(context.tokenizer_name)
            except (TuneproofError, ImportError) as exc:
                raise CheckNotRun(f"the tokenizer of {context.tokenizer_name!r} could not be loaded: {exc}") from None
        # Without an explicit limit, measure against what training will truncate to: the
        # default model.max_length, or the tokenizer's own limit when that is smaller.
        from tuneproof.config import ModelConfig

        default = ModelConfig.model_fields["max_length"].default
        limit = context.config.max_tokens or min(x for x in (default, model_max_tokens(tok)) if x)
        prompts = [prompt_text(r) for r in records]
        completions = [completion_text(r) or "" for r in records]
        p_counts = _counts(tok, prompts)
        c_counts = _counts(tok, completions)
        context.extras["token_counts"] = [p + c for p, c in zip(p_counts, c_counts)]
        context.extras["max_tokens"] = limit
        for i, (rec, p, c) in enumerate(zip(records, p_counts, c_counts)):
            total = p + c
            if total <= limit:
                continue
            has_completion = completion_text(rec) is not None
            if has_completion and _one_completion(rec):
                kept = min(c, max(1, limit - 1))
                cut, prompt_cut = c - kept, p - min(p, max(1, limit - kept))
                details = {"tokens": total, "max_tokens": limit, "prompt_tokens_cut": prompt_cut, "completion_tokens_cut": cut}
                if cut:
                    why = (f"{total} tokens, over the limit of {limit}: the completion alone is over it, so {cut} of "
                           f"its {c} tokens would be cut, and the prompt kept to {p - prompt_cut} tokens.")  # fmt: skip
                    yield Finding(rec.id, self.name, WARNING, why, "completion truncated", details, i)
                else:
                    why = (f"{total} tokens, over the limit of {limit}: {prompt_cut} of the prompt's {p} tokens would be "
                           f"cut from its middle; the completion is kept whole.")  # fmt: skip
                    yield Finding(rec.id, self.name, WARNING, why, "prompt truncated", details, i)
                continue
            cut = min(c, total - limit) if has_completion else 0
            details = {"tokens": total, "max_tokens": limit, "completion_tokens_cut": cut}
            if has_completion and cut == c and c > 0:
                severity, code = SEVERE, "completion cut entirely"
                why = f"{total} tokens, over the limit of {limit}: truncation would cut all {c} completion tokens."
            elif has_completion:
                severity, code = WARNING, "completion truncated"
                why = f"{total} tokens, over the limit of {limit}: truncation would cut {cut} of {c} completion tokens."
            else:
                severity, code = WARNING, "text truncated"
                why = f"{total} tokens, over the limit of {limit}: the last {total - limit} tokens would be cut."
            yield Finding(rec.id, self.name, severity, why, code, details, i)


def _one_completion(record: Record) -> bool:
    """Whether training cuts this record's prompt rather than its end: one prompt, one completion."""
    if record.schema in (Schema.PROMPT_COMPLETION, Schema.ALPACA):
        return True
    roles = [m.get("role") for m in _chat_turns(record)]
    return record.schema == Schema.CHAT and roles.count("assistant") == 1 and roles[-1] == "assistant"
