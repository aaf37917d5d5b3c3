"""Label issues: cleanlab's ``find_label_issues`` on out-of-fold probabilities.

The probabilities come from a logistic regression on MiniLM embeddings and TF-IDF word
features, fitted with stratified k-fold so every record is scored by a model that never
saw it (cleanlab needs out-of-sample probabilities). The suggested label is the
model's most likely class.

Labels are a classification record's ``label``, or an SFT record's completion when the
completions form a small label set (yes/no/maybe, a handful of categories: the rule of
:func:`tuneproof.evaluate.answer_set`, answers compared after normalisation). An SFT label
is predicted from the prompt alone: the completion is the label, so it never enters the
features.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from tuneproof.audit._base import WARNING, CheckNotRun, Context, Finding, completion_text, prompt_text, record_text
from tuneproof.audit.relevance import embedder, record_embeddings
from tuneproof.data import Record, Schema

__all__ = ["LabelIssueCheck", "out_of_fold_probabilities"]


def out_of_fold_probabilities(
    features: np.ndarray | None, texts: Sequence[str], labels: np.ndarray, folds: int, seed: int = 0
) -> np.ndarray:
    """k-fold out-of-fold class probabilities from logistic regression.

    Args:
        features: dense features per record (e.g. embeddings), or None.
        texts: the texts, for TF-IDF word and bigram features.
        labels: integer labels 0..k-1.
        folds: number of folds.
    """
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    n_classes = int(labels.max()) + 1
    probs = np.zeros((len(labels), n_classes))
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in skf.split(np.zeros(len(labels)), labels):
        tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=50_000)
        parts_train = [tfidf.fit_transform([texts[i] for i in train])]
        parts_test = [tfidf.transform([texts[i] for i in test])]
        if features is not None:
            parts_train.append(csr_matrix(features[train]))
            parts_test.append(csr_matrix(features[test]))
        clf = LogisticRegression(max_iter=2000, C=4.0)
        clf.fit(hstack(parts_train).tocsr(), labels[train])
        p = clf.predict_proba(hstack(parts_test).tocsr())
        probs[np.ix_(test, clf.classes_)] = p
    return probs


def _classification_labels(records: Sequence[Record], context: Context) -> tuple[list[str], list[str], dict, Any]:
    """Texts, labels (as strings), label spelling and a features function for classification."""
    if not records or records[0].schema != Schema.TEXT_LABEL:
        raise CheckNotRun("the records have no labels (a text_label schema is needed)")
    raw = [str(r.label) for r in records]
    original = {str(r.label): r.label for r in records}  # keep ints as ints in the output
    return [record_text(r) for r in records], raw, original, lambda: record_embeddings(records, context)


def _sft_labels(records: Sequence[Record], context: Context) -> tuple[list[str], list[str], dict, Any]:
    """Prompts, normalised answers, their common spelling and a prompt-features function, for
    SFT whose completions form a label set."""
    from tuneproof.evaluate import answer_set, normalize_answer

    answers = [completion_text(r) for r in records]
    if not records or any(a is None for a in answers):
        raise CheckNotRun("the records have no completions to read as labels")
    found = answer_set(answers)
    if found is None:
        raise CheckNotRun(
            f"the completions are free text, not a label set (more than {_max_labels()} distinct answers, or "
            "more than half as many as records); label issues apply to classification and to SFT answers from a "
            "few labels"
        )
    prompts = [prompt_text(r) for r in records]

    def features() -> np.ndarray:
        if "prompts" not in context.embeddings:
            context.embeddings["prompts"] = embedder(context).encode(
                prompts, progress=context.progress, description="embedding prompts"
            )
        return context.embeddings["prompts"]

    return prompts, [normalize_answer(a) for a in answers], found.surface, features


def _max_labels() -> int:
    from tuneproof.evaluate import MAX_LABELS

    return MAX_LABELS


class LabelIssueCheck:
    """Records whose label disagrees with what the rest of the data predicts for them."""

    name = "label_issue"

    def run(self, records: Sequence[Record], context: Context) -> Iterator[Finding]:
        if context.task == "classification":
            texts, raw, original, features = _classification_labels(records, context)
            noun, verb = "label", "Labelled"
        elif context.task == "sft":
            texts, raw, original, features = _sft_labels(records, context)
            noun, verb = "answer", "Answered"
        else:
            raise CheckNotRun(f"the task {context.task!r} has no labels (classification, or SFT with a few answers)")
        try:
            from cleanlab.filter import find_label_issues
        except ImportError as exc:
            raise CheckNotRun(f"cleanlab is not installed ({exc}); pip install cleanlab (a tuneproof dependency: reinstall tuneproof)") from None
        classes = sorted(set(raw))
        counts = Counter(raw)
        folds = min(context.config.label_folds, min(counts.values()))
        if len(classes) < 2 or folds < 2:
            raise CheckNotRun(
                f"needs at least 2 classes with at least 2 records each (classes: {dict(counts)})"
            )
        labels = np.array([classes.index(x) for x in raw])
        try:
            emb = features()
        except CheckNotRun:
            emb = None  # TF-IDF alone still gives out-of-fold probabilities
            context.extras["label_features"] = "tf-idf only (embeddings unavailable)"
        probs = out_of_fold_probabilities(emb, texts, labels, folds)
        # Ranked by self-confidence (the given label's probability, lowest first). The
        # rank is what makes a long list usable: on Rotten Tomatoes with 10% of labels
        # flipped, 68-76% of the top 50 were flips against 24-26% of all flagged (docs/benchmarks/outcome-record-2026-12.md).
        ranked = [int(x) for x in find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")]
        rank = {i: k for k, i in enumerate(ranked, 1)}
        source = "the other records" if noun == "label" else "the other records' prompts"
        for i in sorted(ranked):
            suggested = original[classes[int(probs[i].argmax())]]
            given = str(original[raw[i]])
            given_p = float(probs[i, labels[i]])
            yield Finding(
                records[i].id, self.name, WARNING,
                f"{verb} {given!r}, but a model trained on {source} gives that {noun} "
                f"probability {given_p:.2f}; it suggests {suggested!r} (rank {rank[i]} of {len(ranked)}, "
                "1 = most likely mislabelled).",
                f"{noun} disagrees with the data",
                {"label": given, "suggested_label": suggested, "label_probability": round(given_p, 3),
                 "rank": rank[i]}, i,
            )  # fmt: skip
