"""Leakage: a training record that overlaps an evaluation record.

Two kinds: the same text (or the same prompt) after normalizing whitespace and case,
or a shared run of ``config.leakage_ngram`` words (GPT-3-style n-gram contamination).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tuneproof.audit._base import SEVERE, CheckNotRun, Context, Finding, normalize, prompt_text, record_text, words
from tuneproof.data import Record

__all__ = ["LeakageCheck"]


def _ngrams(toks: list[str], n: int) -> Iterator[int]:
    for i in range(len(toks) - n + 1):
        yield hash(tuple(toks[i : i + n]))


class LeakageCheck:
    """Train records whose text, prompt or a long n-gram also appears in the eval data."""

    name = "leakage"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        if not context.eval_records:
            raise CheckNotRun("no eval data given (pass --eval EVALDATA, or data.eval_path in a config)")
        n = context.config.leakage_ngram
        texts: dict[str, str] = {}
        prompts: dict[str, str] = {}
        grams: dict[int, str] = {}
        for ev in context.eval_records:
            texts.setdefault(normalize(record_text(ev)), ev.id)
            prompts.setdefault(normalize(prompt_text(ev)), ev.id)
            for g in _ngrams(words(record_text(ev)), n):
                grams.setdefault(g, ev.id)
        for i, rec in enumerate(records):
            text = record_text(rec)
            if (other := texts.get(normalize(text))) is not None:
                code, why = "same text", f"Its text is identical to eval record {other}."
            elif (other := prompts.get(normalize(prompt_text(rec)))) is not None and prompt_text(rec).strip():
                code, why = "same prompt", f"Its prompt is identical to that of eval record {other}."
            else:
                shared = [grams[g] for g in _ngrams(words(text), n) if g in grams]
                if not shared:
                    continue
                other = shared[0]
                code = "shared n-gram"
                why = f"It shares {len(shared)} run(s) of {n} words with eval record {other}."
            yield Finding(rec.id, self.name, SEVERE, why, code, {"eval_id": other}, i)
