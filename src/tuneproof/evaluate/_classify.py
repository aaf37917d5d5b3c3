"""Classification scoring and the linear-probe reference.

A base model loaded for classification has a random head, so beating it proves nothing.
The reference is a logistic regression on the base model's frozen embeddings, fit on the
training split; the raw base (seeded head) is scored too, for the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tuneproof.data import Record, Schema
from tuneproof.errors import DataError
from tuneproof.models import inference_device, model_device

__all__ = ["ClassScores", "check_text_label", "classification_metrics", "embed", "fit_probe", "label_ids", "predict_proba"]


class ClassScores:
    """Class probabilities of one model on the test records, with its predictions."""

    def __init__(self, proba: np.ndarray):
        self.proba = np.asarray(proba, dtype=float)
        self.pred = self.proba.argmax(axis=1)


def label_ids(records: Sequence[Record], labels: list[str], source: str) -> np.ndarray:
    """Map each record's label to its index in ``labels``.

    Raises:
        DataError: records without a label (wrong schema), or a label the model doesn't know.
    """
    check_text_label(records, source)
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for r in records:
        key = str(r.label)
        if key not in index:
            raise DataError(
                f"{r.id}: label {key!r} is not one of the model's labels {labels}. Fix: relabel the "
                "record, or pass the label names in the model's index order (--labels / labels.json)."
            )
        out.append(index[key])
    return np.asarray(out, dtype=int)


def check_text_label(records: Sequence[Record], source: str) -> None:
    """Raise a DataError that names the fix unless the records are text+label records."""
    if records and records[0].schema != Schema.TEXT_LABEL:
        raise DataError(
            f"{source}: the records are {records[0].schema.value} records, but classification "
            "evaluation needs text and label columns. Fix: map your columns with "
            "fields={'text': ..., 'label': ...}, or use --task sft for prompt/completion data."
        )


def _batched_texts(texts: Sequence[str], batch_size: int):
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def predict_proba(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int, progress: Any = None, label: str = ""
) -> np.ndarray:
    """Softmax class probabilities, ``(n, num_labels)``."""
    import torch

    out = np.zeros((len(texts), model.config.num_labels))
    task = progress.add_task(f"classify {label}", total=len(texts), rate="") if progress else None
    model.eval()
    for batch in _batched_texts(texts, batch_size):
        enc = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        if "token_type_ids" not in _accepted(model):
            enc.pop("token_type_ids", None)
        with torch.inference_mode():
            logits = model(**enc.to(model_device(model))).logits.float()
        out[batch] = torch.softmax(logits, dim=-1).cpu().numpy()
        if task is not None:
            progress.advance(task, len(batch))
    return out


def _accepted(model: Any) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)


def embed(
    base_dir: str | Path | None, model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int
) -> tuple[np.ndarray, str]:
    """Frozen sentence embeddings of the base model, and how they were pooled.

    A sentence-transformers directory (``modules.json``) uses its own pooling; any other
    model the mean of its last hidden state over real tokens.
    """
    import torch

    if base_dir is not None and (Path(base_dir) / "modules.json").is_file():
        from sentence_transformers import SentenceTransformer

        from tuneproof.models import allow_pickle, require_safetensors

        require_safetensors(base_dir, "the sentence-transformers model")  # its Dense modules may be pickled
        st = SentenceTransformer(str(base_dir), device=str(inference_device()), trust_remote_code=False,
                                 model_kwargs={"use_safetensors": None if allow_pickle() else True})
        st.max_seq_length = min(st.max_seq_length or max_length, max_length)
        return np.asarray(st.encode(list(texts), batch_size=batch_size, show_progress_bar=False)), "sentence-transformers"
    out: np.ndarray | None = None
    for batch in _batched_texts(texts, batch_size):
        enc = tokenizer([texts[i] for i in batch], padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        if "token_type_ids" not in _accepted(model):
            enc.pop("token_type_ids", None)
        enc = enc.to(model_device(model))
        with torch.inference_mode():
            hidden = model(**enc, output_hidden_states=True).hidden_states[-1].float()
        m = enc["attention_mask"].unsqueeze(-1).float()
        pooled = ((hidden * m).sum(1) / m.sum(1).clamp(min=1)).cpu().numpy()
        if out is None:
            out = np.zeros((len(texts), pooled.shape[1]))
        out[batch] = pooled
    assert out is not None
    return out, "mean of last hidden state"


def fit_probe(train_x: np.ndarray, train_y: np.ndarray, n_classes: int, seed: int) -> Any:
    """Logistic regression on standardised frozen embeddings.

    Dimensions whose spread is float rounding rather than signal (std below 1e-6 x the median
    dimension's) are dropped first: MiniLM's mean-pooled output has one whose values are about
    1e-31 (std 2e-33 on SpamAssassin), which standardising would blow up into a unit-variance
    random feature; scikit-learn's own constant-feature guard misses it.

    Raises:
        DataError: the training split holds fewer than two classes.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    present = np.unique(train_y)
    if len(present) < 2:
        raise DataError(
            f"the training split holds only one class ({present.tolist()}), so the linear-probe "
            "reference cannot be fit. Fix: pass a training split with examples of every class."
        )
    from sklearn.feature_selection import VarianceThreshold

    floor = 1e-6 * float(np.median(np.std(train_x, axis=0)))
    if not (np.var(train_x, axis=0) > floor**2).any():
        raise DataError(
            f"the {len(train_x)} training embeddings are identical in every dimension, so the linear-probe "
            "reference cannot be fit. Fix: check that the training texts differ and were not truncated to nothing "
            "(model.max_length)."
        )
    probe = make_pipeline(VarianceThreshold(floor**2), StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(train_x, train_y)
    return probe


def probe_proba(probe: Any, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Probe probabilities laid out over all ``n_classes`` (classes absent in training get 0)."""
    out = np.zeros((len(x), n_classes))
    out[:, probe.classes_] = probe.predict_proba(x)
    return out


def classification_metrics(y: np.ndarray, scores: ClassScores, n_classes: int, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """accuracy, macro_f1 and (binary tasks) auroc; each an array with one value per weight row."""
    from tuneproof.evaluate._metrics import accuracy, auroc, macro_f1

    out = {
        "accuracy": accuracy(y, scores.pred, weights),
        "macro_f1": macro_f1(y, scores.pred, n_classes, weights),
    }
    if n_classes == 2:
        out["auroc"] = auroc(y, scores.proba[:, 1], weights)
    return out
