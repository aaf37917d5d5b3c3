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

How much is shared decides the severity. A record whose runs shared with one eval record
(the one it shares most runs with) cover at least ``config.leakage_min_coverage`` of its
content words (not template) is a near-copy of that eval record: severe, removed under the
default decision. Runs shared with other eval records do not add up: a mailing-list reply
with a signature found in one eval email and a quote found in another is a copy of neither. A smaller overlap (an email that
quotes two lines of an eval email, a shared famous quote) is a warning: reported and
flagged, not removed: removing every training email that shares any 8-word run with a test
email removes thread replies that quote a line or two, and can leave too little to train on.

A near-copy leaks only what the eval record would let a model memorize: its answer given
its prompt. So it is severe when it holds the eval record's answer text (a completion of at
least ``leakage_ngram`` content words, covered to ``leakage_min_coverage`` by shared runs
inside it), or else when it holds the eval input and gives the same answer:

- For records with a prompt and a completion, every part of the eval prompt (each line
  with content words) must be covered to ``leakage_min_coverage``. A prompt is often a
  question about a passage: a record that shares only the passage (another question about
  an overlapping excerpt) or only the question (the same question about another excerpt)
  does not hold the eval prompt, and a short answer depends on both. It is flagged as a
  ``partial overlap``.
- The answers must agree (:func:`~tuneproof.audit.dedup.answers_agree`: completions or
  labels). The same input with another answer does not teach the eval answer; it is a
  conflict, flagged as ``conflicting answer``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence

from tuneproof.audit._base import (
    SEVERE,
    WARNING,
    CheckNotRun,
    Context,
    Finding,
    completion_text,
    normalize,
    prompt_text,
    record_text,
    words,
)
from tuneproof.audit.dedup import answer_text, answers_agree
from tuneproof.config import AuditConfig
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


def _part_of_each_word(record: Record) -> list[int]:
    """For each word of ``record_text(record)``: the index of its prompt line, or -1 in the completion."""
    parts = [i for i, line in enumerate(prompt_text(record).split("\n")) for _ in words(line)]
    completion = completion_text(record)
    return parts + [-1] * (len(words(completion)) if completion is not None else 0)


def _eval_parts_covered(ev: Record, toks: list[str], train_grams: set[int], cfg: AuditConfig, template: set[int]) -> tuple[bool, bool]:
    """Whether a training record's runs (``train_grams``) cover every content line of the eval
    record's prompt, and whether they reproduce its completion (at least ``leakage_ngram``
    content words, covered by runs that lie inside it), each to ``leakage_min_coverage``."""
    n, need = cfg.leakage_ngram, cfg.leakage_min_coverage
    masked = _template_mask(toks, template)
    part = _part_of_each_word(ev)
    covered = [False] * len(toks)
    inside = [False] * len(toks)  # covered by a run that lies inside the completion
    for end, g in _content_ngrams(toks, n, template, masked):
        if g in train_grams:
            covered[end - n + 1 : end + 1] = [True] * n
            if part[end - n + 1] == -1:
                inside[end - n + 1 : end + 1] = [True] * n
    content: dict[int, list[int]] = {}
    for k, (p, m) in enumerate(zip(part, masked)):
        if not m:
            content.setdefault(p, []).append(k)
    prompt_ok = all(sum(covered[k] for k in ks) >= need * len(ks) for p, ks in content.items() if p >= 0)
    answer = content.get(-1, [])
    answer_ok = len(answer) >= n and sum(inside[k] for k in answer) >= need * len(answer)
    return prompt_ok, answer_ok


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
        grams: dict[int, int] = {}
        for k, (ev, toks) in enumerate(zip(context.eval_records, eval_toks)):
            texts.setdefault(normalize(record_text(ev)), ev.id)
            prompts.setdefault(normalize(prompt_text(ev)), ev.id)
            for _, g in _content_ngrams(toks, n, template):
                grams.setdefault(g, k)
        for i, (rec, toks) in enumerate(zip(records, train_toks)):
            text = record_text(rec)
            if (other := texts.get(normalize(text))) is not None:
                code, why = "same text", f"Its text is identical to eval record {other}."
            elif (other := prompts.get(normalize(prompt_text(rec)))) is not None and prompt_text(rec).strip():
                code, why = "same prompt", f"Its prompt is identical to that of eval record {other}."
            else:
                found = self._shared_runs(i, rec, toks, grams, template, eval_toks, context)
                if found is not None:
                    yield found
                continue
            yield Finding(rec.id, self.name, SEVERE, why, code, {"eval_id": other}, i)

    def _shared_runs(self, i: int, rec: Record, toks: list[str], grams: dict[int, int], template: set[int],
                     eval_toks: list[list[str]], context: Context) -> Finding | None:  # fmt: skip
        """The finding for a record that shares runs of content words with eval records, or None."""
        cfg, n = context.config, context.config.leakage_ngram
        masked = _template_mask(toks, template)
        mine = list(_content_ngrams(toks, n, template, masked))
        shared = [grams[g] for _, g in mine if g in grams]
        if not shared:
            return None
        # The eval record it shares most runs with, and the share of its content words inside
        # runs shared with that record: a near-copy is a copy of one eval record, not a patchwork
        # of a signature found in one, a list footer in another and a quote in a third.
        k = Counter(shared).most_common(1)[0][0]
        ev = context.eval_records[k]  # type: ignore[index]
        its = {g for _, g in _content_ngrams(eval_toks[k], n, template)}
        covered: set[int] = set()
        for end, g in mine:
            if g in its:
                covered.update(range(end - n + 1, end + 1))
        coverage = len(covered) / max(1, masked.count(False))
        runs = (f"It shares {sum(g in its for _, g in mine)} run(s) of {n} words (outside template phrases) with eval "
                f"record {ev.id}, covering {coverage:.0%} of its content words")  # fmt: skip
        details = {"eval_id": ev.id, "coverage": round(coverage, 3)}
        if coverage < cfg.leakage_min_coverage:
            why = f"{runs} (below {cfg.leakage_min_coverage:.0%}: flagged, not a near-copy)."
            return Finding(rec.id, self.name, WARNING, why, "partial overlap", details, i)
        if completion_text(ev) is not None:
            prompt_ok, answer_ok = _eval_parts_covered(ev, eval_toks[k], {g for _, g in mine}, cfg, template)
            if answer_ok:  # it holds the eval answer's own text: memorized whatever the prompt
                return Finding(rec.id, self.name, SEVERE, f"{runs}, including the eval record's answer.", "shared n-gram", details, i)
            if not prompt_ok:
                why = (f"{runs}, but holds only part of the eval prompt (e.g. its passage, not its question) and not "
                       "its answer: flagged, not a near-copy.")  # fmt: skip
                return Finding(rec.id, self.name, WARNING, why, "partial overlap", details, i)
        mine_answer, its_answer = answer_text(rec), answer_text(ev)
        if mine_answer is not None and its_answer is not None and not answers_agree(mine_answer, its_answer):
            why = f"{runs}, but gives another answer: it does not teach the eval answer (a conflict; flagged, not removed)."
            return Finding(rec.id, self.name, WARNING, why, "conflicting answer", details, i)
        return Finding(rec.id, self.name, SEVERE, f"{runs}.", "shared n-gram", details, i)
