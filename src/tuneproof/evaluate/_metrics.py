"""Metric functions, each checked against hand-computed values in the tests.

Text metrics score one generation against one or more acceptable references and return a
per-record score; the dataset score is the mean. Classification metrics are computed from
per-record predictions with *weights* (a row of bootstrap counts), so that one function
serves both the point estimate (weights all 1) and every bootstrap resample at once.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Metric",
    "METRICS",
    "accuracy",
    "auroc",
    "exact_match",
    "label_accuracy",
    "macro_f1",
    "normalize_answer",
    "predict_label",
    "rouge_l",
    "token_f1",
]

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


@dataclass(frozen=True)
class Metric:
    """How a metric reads: its name, its direction, and whether it is a mean of per-record scores."""

    name: str
    higher_is_better: bool
    per_record: bool  # the dataset score is the mean of per-record scores


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("nll", higher_is_better=False, per_record=True),
        Metric("exact_match", higher_is_better=True, per_record=True),
        Metric("token_f1", higher_is_better=True, per_record=True),
        Metric("rouge_l", higher_is_better=True, per_record=True),
        Metric("label_accuracy", higher_is_better=True, per_record=True),
        Metric("accuracy", higher_is_better=True, per_record=True),
        Metric("macro_f1", higher_is_better=True, per_record=False),
        Metric("auroc", higher_is_better=True, per_record=False),
    )
}


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation and articles, squeeze spaces.

    Example:
        >>> normalize_answer("The  Eiffel Tower!")
        'eiffel tower'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _as_list(references: str | Sequence[str]) -> list[str]:
    refs = [references] if isinstance(references, str) else [str(r) for r in references]
    if not refs:
        raise ValueError("no reference answer to score against; give at least one")
    return refs


def exact_match(prediction: str, references: str | Sequence[str]) -> float:
    """1.0 if the normalised prediction equals any normalised reference, else 0.0."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(r) for r in _as_list(references)))


def _f1_one(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    if not pred_tokens or not ref_tokens:
        # SQuAD convention: two empty answers agree; one empty answer scores 0.
        return float(pred_tokens == ref_tokens)
    common = Counter(pred_tokens) & Counter(ref_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, references: str | Sequence[str]) -> float:
    """SQuAD token F1 of the prediction against the best-matching reference."""
    pred = normalize_answer(prediction).split()
    return max(_f1_one(pred, normalize_answer(r).split()) for r in _as_list(references))


_rouge_scorer = None


def rouge_l(prediction: str, references: str | Sequence[str]) -> float:
    """ROUGE-L F-measure (``rouge-score``, with stemming) against the best reference."""
    global _rouge_scorer
    if _rouge_scorer is None:
        from rouge_score import rouge_scorer

        _rouge_scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return max(_rouge_scorer.score(r, prediction)["rougeL"].fmeasure for r in _as_list(references))


def predict_label(prediction: str, labels: Sequence[str]) -> str | None:
    """The label that the generation starts with (longest match, after normalisation), or None.

    Example:
        >>> predict_label("Positive, clearly.", ["positive", "negative"])
        'positive'
    """
    words = normalize_answer(prediction).split()
    best, best_len = None, 0
    for label in labels:
        lw = normalize_answer(label).split()
        if lw and words[: len(lw)] == lw and len(lw) > best_len:
            best, best_len = label, len(lw)
    return best


def label_accuracy(prediction: str, references: str | Sequence[str], labels: Sequence[str]) -> float:
    """1.0 if the label the generation starts with is one of the references."""
    predicted = predict_label(prediction, labels)
    refs = {normalize_answer(r) for r in _as_list(references)}
    return float(predicted is not None and normalize_answer(predicted) in refs)


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    return np.ones((1, n)) if weights is None else np.atleast_2d(np.asarray(weights, dtype=float))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Weighted accuracy; one value per row of ``weights`` (a single row when omitted)."""
    w = _weights(weights, len(y_true))
    return (w @ (np.asarray(y_true) == np.asarray(y_pred)).astype(float)) / w.sum(axis=1)


def macro_f1(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Macro-averaged F1 over the classes present in the truth or the predictions (sklearn's rule).

    Computed from weighted confusion counts, so each row of ``weights`` (a bootstrap
    resample) gets its own value in one matrix product.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    w = _weights(weights, len(y_true))
    f1s, present = [], []
    for k in range(n_classes):
        t, p = y_true == k, y_pred == k
        tp = w @ (t & p).astype(float)
        fp = w @ (~t & p).astype(float)
        fn = w @ (t & ~p).astype(float)
        denom = 2 * tp + fp + fn
        f1s.append(np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0))
        present.append(denom > 0)
    f1, mask = np.stack(f1s), np.stack(present)
    return (f1 * mask).sum(axis=0) / np.maximum(mask.sum(axis=0), 1)


def auroc(y_true: np.ndarray, score: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Binary AUROC (ties count one half), one value per row of ``weights``.

    NaN for a resample that holds only one class.
    """
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    w = _weights(weights, len(y))
    # Group equal scores: a positive beats every negative in a lower group, ties with its own.
    uniq, group = np.unique(s, return_inverse=True)
    onehot = np.zeros((len(s), len(uniq)))
    onehot[np.arange(len(s)), group] = 1.0
    neg_per_group = (w * ~y) @ onehot  # (B, groups)
    neg_below = np.cumsum(neg_per_group, axis=1) - neg_per_group
    wins = neg_below + 0.5 * neg_per_group  # for a positive in each group
    pos_per_group = (w * y) @ onehot
    n_pos, n_neg = pos_per_group.sum(axis=1), neg_per_group.sum(axis=1)
    total = (pos_per_group * wins).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), total / (n_pos * n_neg), np.nan)
