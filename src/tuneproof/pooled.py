"""A classifier on mean-pooled features whose head starts as the linear probe (LP-FT).

The classification reference is a logistic regression on the base model's frozen,
mean-pooled embeddings (``tuneproof.evaluate``). A sequence classifier loaded the usual way
classifies through another feature (BERT: the [CLS] token's pooler, which a sentence
encoder such as MiniLM never trained) with a random head, so fine-tuning starts far below
that reference and spends its first steps catching up. Here the model classifies the
reference's own features, and its head starts as that probe: fine-tuning starts where the
reference is (LP-FT: Kumar et al., "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR 2022).

Saved as the encoder's own ``save_pretrained`` output plus ``classifier.safetensors`` and
``tuneproof_head.json``; :func:`is_pooled` tells such a directory (or a LoRA adapter of
one) apart from a standard sequence classifier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["HEAD_FILE", "PooledClassifier", "is_pooled", "load_pooled", "probe_init"]

HEAD_FILE = "tuneproof_head.json"
_WEIGHTS = "classifier.safetensors"


def _normalizes(directory: str | Path | None) -> bool:
    """Whether a sentence-transformers directory L2-normalizes its embeddings (a Normalize module)."""
    modules = Path(directory) / "modules.json" if directory else None
    if modules is None or not modules.is_file():
        return False
    return any("Normalize" in str(m.get("type", "")) for m in json.loads(modules.read_text()))


class PooledClassifier(nn.Module):
    """Encoder -> mean over real tokens (-> L2 norm, as the sentence encoder does) -> dropout -> linear."""

    def __init__(self, encoder: Any, num_labels: int, *, normalize: bool = False, dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.normalize = normalize
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(encoder.config.hidden_size, num_labels)
        self.config = encoder.config
        self.config.num_labels = num_labels

    @classmethod
    def from_sequence_classifier(cls, model: Any, base_dir: str | Path | None) -> PooledClassifier:
        """Take the encoder out of a loaded sequence classifier; its own head and [CLS] pooler are dropped."""
        encoder = model.base_model
        if isinstance(getattr(encoder, "pooler", None), nn.Module):
            encoder.pooler = None  # unused here; left in, it would hold weights that get no gradient
        p = getattr(model.config, "hidden_dropout_prob", None)
        return cls(encoder, model.config.num_labels, normalize=_normalizes(base_dir), dropout=p if isinstance(p, float) else 0.1)

    def pooled(self, input_ids: Any, attention_mask: Any = None, token_type_ids: Any = None) -> Any:
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        mask = (attention_mask if attention_mask is not None else torch.ones_like(input_ids)).unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled

    def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None, labels: Any = None,
                **_: Any) -> Any:  # fmt: skip
        from transformers.modeling_outputs import SequenceClassifierOutput

        logits = self.classifier(self.dropout(self.pooled(input_ids, attention_mask, token_type_ids)))
        loss = nn.functional.cross_entropy(logits.float(), labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)

    def save_pretrained(self, directory: str | Path, **kwargs: Any) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        self.encoder.save_pretrained(str(directory), safe_serialization=True)
        save_file({k: v.detach().contiguous() for k, v in self.classifier.state_dict().items()}, str(directory / _WEIGHTS))
        write_head_file(directory, self)


def write_head_file(directory: str | Path, model: PooledClassifier) -> None:
    (Path(directory) / HEAD_FILE).write_text(json.dumps(
        {"head": "probe", "pooling": "mean", "normalize": model.normalize, "num_labels": model.classifier.out_features,
         "dropout": model.dropout.p}, indent=1))  # fmt: skip


def is_pooled(directory: str | Path) -> bool:
    return (Path(directory) / HEAD_FILE).is_file()


def load_pooled(directory: str | Path, *, base: Any = None) -> PooledClassifier:
    """A saved :class:`PooledClassifier`; with ``base`` (a loaded sequence classifier) only its shape.

    ``base`` is for a LoRA adapter directory: the adapter (with the head among its saved
    modules) is applied by the caller on top of the base's encoder.
    """
    from transformers import AutoModel

    meta = json.loads((Path(directory) / HEAD_FILE).read_text())
    if base is not None:
        model = PooledClassifier.from_sequence_classifier(base, None)
        model.normalize = bool(meta["normalize"])
        return model
    from safetensors.torch import load_file

    encoder = AutoModel.from_pretrained(str(directory), use_safetensors=True, dtype=torch.float32)
    model = PooledClassifier(encoder, int(meta["num_labels"]), normalize=bool(meta["normalize"]), dropout=float(meta["dropout"]))
    if isinstance(getattr(encoder, "pooler", None), nn.Module):
        encoder.pooler = None
    model.classifier.load_state_dict(load_file(str(Path(directory) / _WEIGHTS)))
    return model


@torch.inference_mode()
def probe_init(model: PooledClassifier, feats: list[dict[str, Any]], pad_id: int, *, seed: int, batch_size: int = 64) -> dict[str, Any]:
    """Fit the logistic-regression probe on the frozen pooled features of ``feats`` and make it the head.

    The probe is the reference's (standardised features, sklearn's defaults); the
    standardisation folds into the linear layer, so at step 0 the model predicts what the
    probe predicts. Classes absent from the training data get a bias far below the rest.
    """
    from tuneproof.evaluate._classify import fit_probe
    from tuneproof.train._batching import pad_batch

    was_training = model.training
    model.eval()
    xs, ys = [], []
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]["input_ids"]))
    for start in range(0, len(order), batch_size):
        batch = pad_batch([feats[i] for i in order[start : start + batch_size]], pad_id)
        xs.append(model.pooled(batch["input_ids"], batch["attention_mask"]).float().numpy())
        ys.append(batch["labels"].numpy())
    x, y = np.concatenate(xs), np.concatenate(ys)
    n_classes = model.classifier.out_features
    probe = fit_probe(x, y, n_classes, seed)
    scaler, lr = probe[0], probe[-1]
    coef, intercept = np.atleast_2d(lr.coef_), np.atleast_1d(lr.intercept_)
    if len(lr.classes_) == 2 and coef.shape[0] == 1:  # binary: one logit w.x+b = l1 - l0
        coef, intercept = np.vstack([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
    w = coef / scaler.scale_
    b = intercept - w @ scaler.mean_
    weight = np.zeros((n_classes, x.shape[1]))
    bias = np.full(n_classes, float(b.min()) - 20.0)
    weight[lr.classes_], bias[lr.classes_] = w, b
    model.classifier.weight.copy_(torch.as_tensor(weight, dtype=model.classifier.weight.dtype))
    model.classifier.bias.copy_(torch.as_tensor(bias, dtype=model.classifier.bias.dtype))
    model.train(was_training)
    return {"probe_train_accuracy": float((probe.predict(x) == y).mean()), "probe_records": len(y)}
