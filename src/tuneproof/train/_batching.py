"""Length-grouped batches under a token budget, so little compute goes to padding.

Each batch is built once, from examples of similar length, and the Trainer's (seeded)
sampler shuffles the order of the batches. The dataset handed to ``Trainer`` therefore
holds whole batches and the Trainer's per-device batch size is 1; the collator pads the
examples of one batch together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["BatchedDataset", "length_grouped_batches", "pad_batch", "padding_stats"]


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
