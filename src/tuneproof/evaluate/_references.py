"""Cheap references: predictors that cost nothing to build, which a tuned model must beat to ship.

A tuned model that scores below "always answer the most common training label" has learned
nothing a constant doesn't know, however far it beats the base model. The references here
need no model, only the training answers and the test records:

- ``majority``: the training data's most common answer, given to every test record (a
  constant). Applies to classification, and to SFT whose completions come from a small label
  set (see :func:`answer_set`). Gating.
- ``prior``: a random guess drawn from the training answers' distribution, scored by its
  expectation. For accuracy its expected score is sum_c p_train(c) * p_test(c); per record it
  is p_train(the record's answer), so the paired bootstrap applies unchanged. The majority is
  usually the stronger of the two for accuracy, but not when train and test disagree on the
  majority, so both gate. For macro-F1 the prior's F1 is computed from its expected confusion
  counts. For AUROC both a constant and a random guess rank nothing: AUROC 0.5, which is the
  ``majority`` reference there. Gating.
- ``lead``: for summarization (SFT scored by ROUGE-L), each source's first sentences, about as
  many words as the training summaries' median. Reported beside the verdict, not gating:
  on some sources (news) the lead is the summary by convention, on others (case law) it is
  boilerplate; whether beating it is required is the user's call.

Each is scored per record with the task's own metric and compared with the tuned model by the
same paired bootstrap and :func:`verdict` (with the same ``min_effect``) as the base or probe.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuneproof.evaluate._bootstrap import Delta, paired_bootstrap, paired_bootstrap_means, verdict
from tuneproof.evaluate._metrics import METRICS, exact_match, label_accuracy, macro_f1, normalize_answer, rouge_l, token_f1

__all__ = [
    "MAX_LABELS",
    "AnswerSet",
    "CheapReference",
    "answer_set",
    "classification_references",
    "combine_verdict",
    "compare",
    "lead_text",
    "not_beaten",
    "preflight_references",
    "sft_references",
    "sft_references_from",
]

# A label set is a small vocabulary that answers repeat from: at most this many distinct
# normalised answers, and at most half as many as there are records (each answer seen about
# twice on average), so that a handful of free-text answers never counts as labels.
MAX_LABELS = 20
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass
class AnswerSet:
    """Training answers as a label set: counts per normalised answer and its most common spelling."""

    counts: dict[str, int]  # most common first
    surface: dict[str, str]

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def majority(self) -> str:
        return next(iter(self.counts))

    def prior(self) -> dict[str, float]:
        return {k: v / self.n for k, v in self.counts.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts, "majority": self.surface[self.majority],
                "majority_share": self.counts[self.majority] / self.n, "n": self.n}  # fmt: skip


def answer_set(answers: Sequence[str], *, force: bool = False, normalize: bool = True) -> AnswerSet | None:
    """The answers as a label set, or None when they are free text.

    Answers form a label set when they take at most :data:`MAX_LABELS` distinct (normalised)
    values and at most half as many values as answers. ``force`` (the primary metric is
    ``label_accuracy``, or the task is classification) skips that test. Ties for the majority
    go to the answer seen first.

    Example:
        >>> answer_set(["Yes.", "yes", "no", "maybe"]).majority
        'yes'
    """
    keys = [normalize_answer(a) if normalize else str(a) for a in answers]
    counts = Counter(keys)
    if not counts or (not force and (len(counts) > MAX_LABELS or len(counts) > len(keys) / 2)):
        return None
    spellings: dict[str, Counter] = {}
    for key, raw in zip(keys, answers):
        spellings.setdefault(key, Counter())[str(raw).strip()] += 1
    ordered = dict(sorted(counts.items(), key=lambda kv: -kv[1]))  # stable: first seen wins a tie
    return AnswerSet(ordered, {k: spellings[k].most_common(1)[0][0] for k in ordered})


@dataclass
class CheapReference:
    """One cheap reference on the test records: per-record scores, or a weighted statistic."""

    name: str
    description: str
    gating: bool
    scores: np.ndarray | None = None  # per-record scores, for metrics that are means
    statistic: Callable[[np.ndarray], np.ndarray] | None = None  # (B, n) weights -> (B,), otherwise
    detail: dict[str, Any] = field(default_factory=dict)


# ---- SFT -------------------------------------------------------------------------------


def _scorer(primary: str, test_refs: list[list[str]]) -> Callable[[str, list[str]], float]:
    if primary == "label_accuracy":
        label_set = sorted({r for refs in test_refs for r in refs})  # as generation_scores does
        return lambda answer, refs: label_accuracy(answer, refs, label_set)
    return {"exact_match": exact_match, "token_f1": token_f1, "rouge_l": rouge_l}[primary]


def sft_references(train_examples: Sequence[Any], test_examples: Sequence[Any], primary: str) -> tuple[list[CheapReference], list[str]]:
    """The cheap references for an SFT test set, and notes on those that do not apply.

    Args:
        train_examples, test_examples: :class:`~tuneproof.evaluate.SftExample` lists.
        primary: the primary metric; ``nll`` has no cheap reference (a constant string has no
            likelihood), the generation metrics score each reference's answer per record.
    """
    notes: list[str] = []
    if primary not in ("label_accuracy", "exact_match", "token_f1", "rouge_l"):
        return [], [f"{primary}: a constant answer has no likelihood to compare, so no cheap reference applies"]
    test_refs = [list(ex.references) for ex in test_examples]
    score = _scorer(primary, test_refs)
    refs: list[CheapReference] = []
    answers = answer_set([ex.completion for ex in train_examples], force=primary == "label_accuracy")
    if answers is None:
        notes.append(f"the {len(train_examples)} training completions are free text (more than {MAX_LABELS} distinct "
                     "answers, or fewer than two records per answer), so no constant answer applies")  # fmt: skip
    else:
        refs += _label_references(answers, test_refs, score, "answer")
    if primary == "rouge_l":
        lead = _lead_reference(train_examples, test_examples, score)
        if lead is not None:
            refs.append(lead)
    return refs, notes


def _label_references(answers: AnswerSet, test_refs: list[list[str]], score: Callable, kind: str) -> list[CheapReference]:
    share = answers.counts[answers.majority] / answers.n
    const = answers.surface[answers.majority]
    majority = CheapReference("majority", f"a constant {kind} {const!r} (the training majority, {share:.0%} of "
                              f"{answers.n} training records)", True, np.array([score(const, r) for r in test_refs]),
                              detail={"answer": const, "train_share": share})  # fmt: skip
    if len(answers.counts) > MAX_LABELS:  # a declared label set (label_accuracy) too large to score every answer
        return [majority]
    by_answer = {k: np.array([score(answers.surface[k], r) for r in test_refs]) for k in answers.counts}
    prior = sum(p * by_answer[k] for k, p in answers.prior().items())
    return [
        majority,
        CheapReference("prior", f"a random {kind} drawn from the training distribution ({len(answers.counts)} "
                       "answers; its expected score)", True, np.asarray(prior, dtype=float),
                       detail={"train_counts": answers.counts}),
    ]  # fmt: skip


def _template(prompts: Sequence[str]) -> tuple[list[str], list[str]]:
    """The words every prompt starts and ends with (an instruction wrapped around the source)."""
    words = [p.split() for p in prompts]
    if len(words) < 2:
        return [], []
    head: list[str] = []
    for column in zip(*words):
        if len(set(column)) != 1:
            break
        head.append(column[0])
    tail: list[str] = []
    for column in zip(*(w[len(head):][::-1] for w in words)):
        if len(set(column)) != 1:
            break
        tail.insert(0, column[0])
    return head, tail


def lead_text(source: str, n_words: int, head: Sequence[str] = (), tail: Sequence[str] = ()) -> str:
    """The source's first whole sentences whose word count is closest to ``n_words`` (at least one).

    Words shared by every training prompt at its start (``head``) or end (``tail``) are the
    instruction, not the source, and are dropped first.

    Example:
        >>> lead_text("Summarize: A cat sat. It purred loudly. Then it slept.", 5, head=["Summarize:"])
        'A cat sat. It purred loudly.'
    """
    words = source.split()
    if head and words[: len(head)] == list(head):
        words = words[len(head):]
    if tail and len(words) > len(tail) and words[-len(tail):] == list(tail):
        words = words[: -len(tail)]
    sentences = [s for s in _SENTENCE_END.split(" ".join(words)) if s.strip()]
    best, best_gap, total = 1, None, 0
    for k, sentence in enumerate(sentences, start=1):
        total += len(sentence.split())
        gap = abs(total - n_words)
        if best_gap is None or gap < best_gap:
            best, best_gap = k, gap
    return " ".join(sentences[:best])


def _lead_reference(train_examples: Sequence[Any], test_examples: Sequence[Any], score: Callable) -> CheapReference | None:
    lengths = [len(ex.completion.split()) for ex in train_examples]
    if not lengths:
        return None
    n_words = max(1, round(statistics.median(lengths)))
    head, tail = _template([ex.messages[-1]["content"] for ex in train_examples])
    leads = [lead_text(ex.messages[-1]["content"], n_words, head, tail) for ex in test_examples]
    scores = np.array([score(lead, list(ex.references)) for lead, ex in zip(leads, test_examples)])
    return CheapReference("lead", f"each source's first sentences, about {n_words} words (the training summaries' "
                          "median length)", False, scores,
                          detail={"words": n_words, "instruction_words_dropped": len(head) + len(tail),
                                  "example": leads[0][:300] if leads else ""})  # fmt: skip


# ---- classification ------------------------------------------------------------------------


def classification_references(y_train: np.ndarray, y_test: np.ndarray, labels: list[str], primary: str) -> list[CheapReference]:
    """The majority class and the class prior of the training labels, for ``primary``."""
    k = len(labels)
    counts = np.bincount(y_train, minlength=k)
    p = counts / counts.sum()
    maj = int(np.argmax(counts))  # ties: the first label in the model's order
    desc = f"a constant answer {labels[maj]!r} (the training majority, {p[maj]:.0%} of {counts.sum()} training records)"
    detail = {"answer": labels[maj], "train_share": float(p[maj]), "train_counts": dict(zip(labels, counts.tolist()))}
    if primary == "auroc":
        half = np.full(len(y_test), 0.5)
        from tuneproof.evaluate._metrics import auroc

        return [CheapReference("majority", "a constant score (ranks nothing: AUROC 0.5, as does any random guess)", True,
                               statistic=lambda w: auroc(y_test, half, w), detail=detail)]  # fmt: skip
    const = np.full(len(y_test), maj)
    if primary == "accuracy":
        return [CheapReference("majority", desc, True, (y_test == maj).astype(float), detail=detail),
                CheapReference("prior", f"a random label drawn from the training distribution ({k} labels; its "
                               "expected score)", True, p[y_test].astype(float), detail=detail)]  # fmt: skip
    return [CheapReference("majority", desc, True, statistic=lambda w: macro_f1(y_test, const, k, w), detail=detail),
            CheapReference("prior", "a random label drawn from the training distribution (macro-F1 from its expected "
                           "confusion counts)", True, statistic=_prior_macro_f1(y_test, p), detail=detail)]  # fmt: skip


def _prior_macro_f1(y: np.ndarray, p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Macro-F1 of a guess drawn from ``p``, from expected counts: tp_c = n_c p_c, predicted_c = n p_c."""

    def stat(weights: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(weights)
        n_c = np.stack([w @ (y == c).astype(float) for c in range(len(p))], axis=1)  # (B, K)
        n = w.sum(axis=1, keepdims=True)
        tp, denom = n_c * p, n * p + n_c
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        present = denom > 0  # sklearn's rule: a class neither true nor predicted is left out
        return (f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1)

    return stat


# ---- comparison and the combined verdict --------------------------------------------------------


def compare(
    refs: Sequence[CheapReference], primary: str, tuned_scores: np.ndarray | None, tuned_stat: Callable | None, n: int,
    *, min_effect: float, resamples: int, confidence: float, seed: int,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Each reference against the tuned model: its score, the paired-bootstrap delta and verdict."""
    higher = METRICS[primary].higher_is_better
    out: dict[str, dict[str, Any]] = {}
    for ref in refs:
        if ref.scores is not None and tuned_scores is not None:
            d = paired_bootstrap_means(primary, ref.scores, tuned_scores, higher_is_better=higher,
                                       resamples=resamples, confidence=confidence, seed=seed)  # fmt: skip
        elif ref.statistic is not None and tuned_stat is not None:
            d = paired_bootstrap(primary, ref.statistic, tuned_stat, n, higher_is_better=higher,
                                 resamples=resamples, confidence=confidence, seed=seed)  # fmt: skip
        else:
            continue
        word, reason = verdict(d, min_effect)
        out[ref.name] = entry(ref.description, d, word, reason, ref.gating, ref.detail)
    return out


def entry(description: str, d: Delta, word: str, reason: str, gating: bool, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ``eval.json`` ``references`` entry."""
    return {"description": description, "score": d.reference, "tuned": d.tuned, "delta": d.to_dict(),
            "verdict": word, "verdict_reason": reason, "gating": gating, **({"detail": detail} if detail else {})}  # fmt: skip


def not_beaten(d: dict[str, Any]) -> str:
    """How a reference that the tuned model did not prove better than stands: below or level, or not proven."""
    value = d.get("value")
    if not isinstance(value, (int, float)):
        return "does not beat it"
    gain = value if d.get("higher_is_better", True) else -value
    return "is not proven better (the interval reaches 0 or the gain is below min_effect)" if gain > 0 else "does not beat it"


def combine_verdict(word: str, reason: str, refs: dict[str, dict[str, Any]], primary_ref: str) -> tuple[str, str, list[str]]:
    """The overall verdict: ``improved`` only when every gating reference is improved upon.

    The base model (SFT) or the probe (classification) stays the headline reference (``delta``);
    a gating cheap reference that the tuned model does not beat turns ``improved`` into
    ``no_change`` and is named first in the reason. A ``regressed`` verdict stays.

    Returns:
        ``(verdict, reason, names of the gating cheap references not beaten, strongest first)``.
    """
    failed = [k for k, v in refs.items() if v["gating"] and k != primary_ref and v["verdict"] != "improved"]
    higher = all(v["delta"]["higher_is_better"] for v in refs.values())
    failed.sort(key=lambda k: refs[k]["score"], reverse=higher)
    if not failed:
        return word, reason, []
    r = refs[failed[0]]
    d = r["delta"]
    ci = f"{d['confidence']:.0%} CI [{d['ci_low']:+.3g}, {d['ci_high']:+.3g}]"
    why = (f"{r['description']} scores {d['metric']} {r['score']:.3f}; the tuned model's {r['tuned']:.3f} "
           f"{not_beaten(d)} (delta {d['value']:+.3g}, {ci})")  # fmt: skip
    if len(failed) > 1:
        why += f"; also not beaten: {', '.join(failed[1:])}"
    if word == "improved":
        return "no_change", f"{why}; against the {primary_ref}: {reason}", failed
    return word, f"{reason}; and {why}", failed


def sft_references_from(train: Any, fields: Any, test_records: Sequence[Any], source: str, primary: str) -> tuple[list[CheapReference], list[str]]:
    """:func:`sft_references` from a training file (any format the loader reads) and the test records.

    Without training data nothing cheap is computed (the test answers must not choose the
    constant), and the note says so.
    """
    if train is None:
        return [], ["no training data was given (train=, --train), so the constant-answer, prior and lead references "
                    "were not computed; pass the training split to compare with them"]  # fmt: skip
    from tuneproof.data import load_records
    from tuneproof.evaluate._sft import sft_examples

    train_examples = sft_examples(load_records(train, fields=fields or None).records, str(train))
    return sft_references(train_examples, sft_examples(test_records, source), primary)


# ---- before training: the class balance and what a constant scores --------------------------------


def preflight_references(task: str, primary: str, train_records: Sequence[Any], test_records: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The class balance of train and test and what the cheap references score on test, before training.

    Returns:
        ``(report, measured)``. ``report`` is JSON for ``preflight.json``: the train and test
        answer counts, the constant answer (the training majority), its score on test with
        ``metric`` (the primary metric when it is a per-record one, else accuracy), the prior's
        expected score and, for summarization, the lead baseline's ROUGE-L; or a ``note`` when
        nothing applies. ``measured`` holds the per-record scores of the strongest cheap
        reference (``scores``), whether they are a constant's (``bounded``: the tuned model's
        variance is then bounded by its mean) or a continuous baseline's, and its name.
    """
    from tuneproof.errors import DataError

    try:
        if task == "classification":
            return _preflight_classification(primary, train_records, test_records)
        return _preflight_sft(primary, train_records, test_records)
    except DataError as exc:  # the wrong schema for the task: evaluation says so with its fix
        return {"note": f"not computed: {exc}"}, None


def _preflight_classification(primary: str, train_records: Sequence[Any], test_records: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    train = answer_set([str(r.label) for r in train_records], force=True, normalize=False)
    if train is None or not test_records:
        return {"note": "no training or test labels"}, None
    test = Counter(str(r.label) for r in test_records)
    maj, n_test = train.majority, sum(test.values())
    scores = np.array([float(str(r.label) == maj) for r in test_records])
    prior = sum(p * test.get(k, 0) / n_test for k, p in train.prior().items())
    report = {"kind": "classification labels", "train": train.counts, "test": dict(test.most_common()),
              "constant": maj, "metric": "accuracy", "constant_score": float(scores.mean()), "prior_score": float(prior)}  # fmt: skip
    measured = {"name": f"the constant answer {maj!r}", "scores": scores, "bounded": True} if primary == "accuracy" else None
    return report, measured


def _preflight_sft(primary: str, train_records: Sequence[Any], test_records: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from tuneproof.evaluate._sft import sft_examples

    train_ex, test_ex = sft_examples(train_records, "train"), sft_examples(test_records, "test")
    metric = primary if primary in ("label_accuracy", "exact_match", "token_f1", "rouge_l") else "exact_match"
    refs, notes = sft_references(train_ex, test_ex, metric)
    by_name = {r.name: r for r in refs}
    report: dict[str, Any] = {"metric": metric}
    measured = None
    if "majority" in by_name:
        answers = answer_set([ex.completion for ex in train_ex], force=primary == "label_accuracy")
        assert answers is not None  # sft_references built the majority from the same answers
        test = Counter(normalize_answer(ex.completion) for ex in test_ex)
        maj = by_name["majority"]
        report.update(kind=f"SFT completions from a label set ({len(answers.counts)} distinct answers)",
                      train=answers.counts, test=dict(test.most_common()), constant=maj.detail["answer"],
                      constant_score=float(np.mean(maj.scores)))  # fmt: skip
        if "prior" in by_name:
            report["prior_score"] = float(np.mean(by_name["prior"].scores))
        if metric == primary:
            measured = {"name": f"the constant answer {maj.detail['answer']!r}", "scores": maj.scores, "bounded": True}
    if "lead" in by_name:
        lead = by_name["lead"]
        report["lead"] = {"score": float(np.mean(lead.scores)), "words": lead.detail["words"], "metric": metric}
        measured = measured or {"name": "the lead baseline", "scores": lead.scores, "bounded": False}
    if notes:
        report["note"] = "; ".join(notes)
    return report, measured
