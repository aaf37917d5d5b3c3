"""Too long: the real tokenizer's count against the model's maximum length.

For prompt/completion records the prompt comes first, so truncation cuts the end of the
completion: the finding says how many completion tokens would be lost (all of them means
the record teaches nothing).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from tuneproof.audit._base import SEVERE, WARNING, CheckNotRun, Context, Finding, completion_text, prompt_text
from tuneproof.data import Record
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
