"""Leakage: a training record that overlaps an evaluation record.

Two kinds: the same text (or the same prompt) after normalizing whitespace and case,
or a shared run of ``config.leakage_ngram`` words (GPT-3-style n-gram contamination).

Template text is not leakage. When every prompt starts with the same instruction
("Answer the question in a few words."), an 8-word run made of the instruction and the
first words of two different questions is shared by most train/eval pairs. So words that
sit inside a frequent short phrase (a 4-gram found in at least 2% of all records, and in
at least 5 of them) are masked first, and only runs of ``leakage_ngram`` unmasked words
count. Genuine content leaks (a copied sentence) stay visible; a leak made only of
boilerplate is not reported.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from tuneproof.audit._base import SEVERE, CheckNotRun, Context, Finding, normalize, prompt_text, record_text, words
from tuneproof.data import Record

__all__ = ["LeakageCheck", "template_grams"]

TEMPLATE_N = 4
TEMPLATE_SHARE = 0.02
TEMPLATE_MIN_RECORDS = 5


def _grams(toks: list[str], n: int) -> list[int]:
    return [hash(tuple(toks[i : i + n])) for i in range(len(toks) - n + 1)]


def template_grams(token_lists: Sequence[list[str]]) -> set[int]:
    """Hashes of the ``TEMPLATE_N``-grams found in at least 2% of the texts (and at least 5)."""
    df: Counter[int] = Counter()
    for toks in token_lists:
        df.update(set(_grams(toks, TEMPLATE_N)))
    floor = max(TEMPLATE_MIN_RECORDS, TEMPLATE_SHARE * len(token_lists))
    return {g for g, c in df.items() if c >= floor}


def _content_ngrams(toks: list[str], n: int, template: set[int]) -> Iterator[int]:
    """Hashes of the n-grams whose words are all outside template phrases."""
    masked = [False] * len(toks)
    for i, g in enumerate(_grams(toks, TEMPLATE_N)):
        if g in template:
            masked[i : i + TEMPLATE_N] = [True] * TEMPLATE_N
    run = 0
    for i, m in enumerate(masked):
        run = 0 if m else run + 1
        if run >= n:
            yield hash(tuple(toks[i - n + 1 : i + 1]))


class LeakageCheck:
    """Train records whose text, prompt or a long n-gram of content also appears in the eval data."""

    name = "leakage"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        if not context.eval_records:
            raise CheckNotRun("no eval data given (pass --eval EVALDATA, or data.eval_path in a config)")
        n = context.config.leakage_ngram
        eval_toks = [words(record_text(ev)) for ev in context.eval_records]
        train_toks = [words(record_text(rec)) for rec in records]
        template = template_grams(eval_toks + train_toks)
        texts: dict[str, str] = {}
        prompts: dict[str, str] = {}
        grams: dict[int, str] = {}
        for ev, toks in zip(context.eval_records, eval_toks):
            texts.setdefault(normalize(record_text(ev)), ev.id)
            prompts.setdefault(normalize(prompt_text(ev)), ev.id)
            for g in _content_ngrams(toks, n, template):
                grams.setdefault(g, ev.id)
        for i, (rec, toks) in enumerate(zip(records, train_toks)):
            text = record_text(rec)
            if (other := texts.get(normalize(text))) is not None:
                code, why = "same text", f"Its text is identical to eval record {other}."
            elif (other := prompts.get(normalize(prompt_text(rec)))) is not None and prompt_text(rec).strip():
                code, why = "same prompt", f"Its prompt is identical to that of eval record {other}."
            else:
                shared = [grams[g] for g in _content_ngrams(toks, n, template) if g in grams]
                if not shared:
                    continue
                other = shared[0]
                code = "shared n-gram"
                why = (f"It shares {len(shared)} run(s) of {n} words (outside template phrases) "
                       f"with eval record {other}.")  # fmt: skip
            yield Finding(rec.id, self.name, SEVERE, why, code, {"eval_id": other}, i)
