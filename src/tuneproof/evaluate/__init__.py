"""Evaluation with proof: the tuned model against its reference, with intervals and a verdict.

:func:`evaluate` scores the tuned model and its reference on the same held-out records,
computes a paired bootstrap interval for the primary metric's difference, and says
``improved``, ``no_change`` or ``regressed``. For SFT the reference is the base model
zero-shot with the same prompt format; for classification it is a linear probe on the
base model's frozen embeddings. A forgetting check compares perplexity on general text.

Example:
    >>> from tuneproof.evaluate import evaluate
    >>> result = evaluate("smollm2-135m", "runs/qa/adapter", "test.jsonl", "runs/qa/eval",
    ...                   metric="exact_match", forgetting_text="xsum")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
"""

from __future__ import annotations

from tuneproof.evaluate._api import EvalResult, evaluate
from tuneproof.evaluate._bootstrap import Delta, paired_bootstrap, paired_bootstrap_means, verdict
from tuneproof.evaluate._metrics import (
    METRICS,
    accuracy,
    auroc,
    exact_match,
    label_accuracy,
    macro_f1,
    normalize_answer,
    rouge_l,
    token_f1,
)
from tuneproof.evaluate._references import MAX_LABELS, AnswerSet, answer_set
from tuneproof.evaluate._sft import SftExample, encode_example, sft_examples

__all__ = [
    "MAX_LABELS",
    "METRICS",
    "AnswerSet",
    "Delta",
    "EvalResult",
    "SftExample",
    "accuracy",
    "answer_set",
    "auroc",
    "encode_example",
    "evaluate",
    "exact_match",
    "label_accuracy",
    "macro_f1",
    "normalize_answer",
    "paired_bootstrap",
    "paired_bootstrap_means",
    "rouge_l",
    "sft_examples",
    "token_f1",
    "verdict",
]
