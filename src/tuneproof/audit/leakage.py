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

How much is shared decides the severity. A record whose shared runs cover at least
``config.leakage_min_coverage`` of its content words (not template) is a near-copy of an
eval record: severe, removed under the default decision. A smaller overlap (an email that
quotes two lines of an eval email, a shared famous quote) is a warning: reported and
flagged, not removed. The first SpamAssassin outcome run removed 122 of 300 training
emails for sharing any 8-word run with a test email, most of them thread replies that
quote a line or two; it left too little to train on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from tuneproof.audit._base import SEVERE, WARNING, CheckNotRun, Context, Finding, normalize, prompt_text, record_text, words
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


def _template_mask(toks: list[str], template: set[int]) -> list[bool]:
    masked = [False] * len(toks)
    for i, g in enumerate(_grams(toks, TEMPLATE_N)):
        if g in template:
            masked[i : i + TEMPLATE_N] = [True] * TEMPLATE_N
    return masked


def _content_ngrams(toks: list[str], n: int, template: set[int], masked: list[bool] | None = None) -> Iterator[tuple[int, int]]:
    """``(end index, hash)`` of the n-grams whose words are all outside template phrases."""
    masked = _template_mask(toks, template) if masked is None else masked
    run = 0
    for i, m in enumerate(masked):
        run = 0 if m else run + 1
        if run >= n:
            yield i, hash(tuple(toks[i - n + 1 : i + 1]))


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
            for _, g in _content_ngrams(toks, n, template):
                grams.setdefault(g, ev.id)
        for i, (rec, toks) in enumerate(zip(records, train_toks)):
            text = record_text(rec)
            if (other := texts.get(normalize(text))) is not None:
                code, why = "same text", f"Its text is identical to eval record {other}."
            elif (other := prompts.get(normalize(prompt_text(rec)))) is not None and prompt_text(rec).strip():
                code, why = "same prompt", f"Its prompt is identical to that of eval record {other}."
            else:
                masked = _template_mask(toks, template)
                covered: set[int] = set()
                shared: list[str] = []
                for end, g in _content_ngrams(toks, n, template, masked):
                    if g in grams:
                        shared.append(grams[g])
                        covered.update(range(end - n + 1, end + 1))
                if not shared:
                    continue
                other = Counter(shared).most_common(1)[0][0]
                coverage = len(covered) / max(1, masked.count(False))
                near_copy = coverage >= context.config.leakage_min_coverage
                code = "shared n-gram" if near_copy else "partial overlap"
                why = (f"It shares {len(shared)} run(s) of {n} words (outside template phrases) with eval record {other}, "
                       f"covering {coverage:.0%} of its content words"
                       + ("." if near_copy else f" (below {context.config.leakage_min_coverage:.0%}: flagged, not a near-copy)."))  # fmt: skip
                yield Finding(rec.id, self.name, SEVERE if near_copy else WARNING, why, code,
                              {"eval_id": other, "coverage": round(coverage, 3)}, i)  # fmt: skip
                continue
            yield Finding(rec.id, self.name, SEVERE, why, code, {"eval_id": other}, i)
