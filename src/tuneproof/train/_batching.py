"""Length-grouped batches under a token budget, so little compute goes to padding.

Each batch is built once, from examples of similar length, and the Trainer's (seeded)
sampler shuffles the order of the batches. The dataset handed to ``Trainer`` therefore
holds whole batches and the Trainer's per-device batch size is 1; the collator pads the
examples of one batch together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["BatchedDataset", "UnitWeightedLoss", "length_grouped_batches", "pad_batch", "padding_stats", "per_unit"]


def length_grouped_batches(
    lengths: Sequence[int], *, batch_size: int, max_tokens: int | None = None
) -> list[list[int]]:
    """Group example indices into batches of similar length.

    Examples are sorted by length; a batch takes the next examples until it holds
    ``batch_size`` of them or its padded size (longest x count) would pass ``max_tokens``.
    An example longer than ``max_tokens`` gets a batch of its own.

    Example:
        >>> length_grouped_batches([5, 1, 4, 2], batch_size=2)
        [[1, 3], [2, 0]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        longest = lengths[i]  # sorted ascending: the newest example is the longest
        too_big = max_tokens is not None and current and longest * (len(current) + 1) > max_tokens
        if current and (len(current) >= batch_size or too_big):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def padding_stats(lengths: Sequence[int], batches: list[list[int]]) -> dict[str, float]:
    """Real and padded token counts of a batching, for the log and the benchmark."""
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    return {"tokens": real, "padded_tokens": padded, "padding_share": 1 - real / padded if padded else 0.0}


class BatchedDataset:
    """A map-style dataset whose items are whole batches (lists of feature dicts)."""

    def __init__(self, features: list[dict[str, Any]], batches: list[list[int]]):
        self.batches = [[features[i] for i in b] for b in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> list[dict[str, Any]]:
        return self.batches[i]


def per_unit(total: Any, units: int, num_items_in_batch: Any = None) -> Any:
    """A summed loss divided by its units, or by the whole accumulated batch's when given.

    Trainer passes ``num_items_in_batch`` (the units of every micro-batch of one optimizer
    step) in training, so that gradient accumulation gives the loss of one big batch.
    """
    denom = num_items_in_batch if num_items_in_batch is not None else units
    if hasattr(denom, "to"):
        denom = denom.to(total.device)
    return total / denom


@dataclass
class UnitWeightedLoss:
    """A ``Trainer(compute_loss_func=...)`` whose evaluation loss is a mean over units, not batches.

    ``loss(outputs, labels, num_items_in_batch=None)`` is the mean over the batch's units
    (completion tokens for SFT, records for classification) and ``units(labels)`` counts
    them. Trainer averages evaluation losses over batches, each counting as one since our
    dataset items are whole length-grouped batches, which would weigh a unit of a small
    batch more than one of a large batch. In evaluation (``model`` not in training mode),
    each batch's mean is scaled by ``units / eval_units_per_batch``, so that the mean over
    batches is the mean over every unit of the validation set. Under torchrun each rank
    scores its own batches and Trainer averages them all, which keeps that true as long
    as Trainer does not rescale the loss (``average_tokens_across_devices=False``).

    Example:
        >>> import torch
        >>> class Model:
        ...     training = False
        >>> mean = lambda outputs, labels, num_items_in_batch=None: labels.float().mean()
        >>> f = UnitWeightedLoss(mean, lambda labels: labels.numel(), eval_units_per_batch=2.0, model=Model())
        >>> per_batch = [f(None, torch.tensor([1.0])), f(None, torch.tensor([4.0, 4.0, 4.0]))]
        >>> float(sum(per_batch) / len(per_batch))  # (1 + 4 + 4 + 4) / 4 records, not (1 + 4) / 2
        3.25
    """

    loss: Callable[..., Any]
    units: Callable[[Any], int]
    eval_units_per_batch: float
    model: Any

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        if self.model.training:
            return self.loss(outputs, labels, num_items_in_batch)
        return self.loss(outputs, labels) * (self.units(labels) / self.eval_units_per_batch)


def pad_batch(examples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Right-pad ``input_ids`` (with ``pad_id``), ``attention_mask`` (0) and ``labels`` (-100)."""
    import torch

    longest = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), longest), dtype=torch.long)
    out: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
    seq_labels = "labels" in examples[0] and isinstance(examples[0]["labels"], list)
    if seq_labels:
        out["labels"] = torch.full((len(examples), longest), -100, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[row, :n] = torch.tensor(e["input_ids"])
        mask[row, :n] = 1
        if seq_labels:
            out["labels"][row, :n] = torch.tensor(e["labels"])
    if "labels" in examples[0] and not seq_labels:
        out["labels"] = torch.tensor([e["labels"] for e in examples], dtype=torch.long)
    return out
