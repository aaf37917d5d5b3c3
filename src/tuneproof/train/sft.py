"""SFT task: prompt/completion, Alpaca and chat records as token ids with completion-only labels.

The loss is computed on completion tokens only: prompt tokens get the label -100. The
collator also tells the model which positions need logits (``logits_to_keep``, a boolean
mask transformers accepts), so the LM head runs on the completion positions only. On a
49k-token vocabulary the head and its logits are most of the cost of a LoRA step, and
most tokens of a QA example are prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneproof.data import Record, Schema
from tuneproof.errors import DataError

__all__ = ["SftCollator", "completion_loss", "completion_tokens", "encode_sft", "fit_prompt", "render_segments"]

IGNORE = -100


def render_segments(record: Record, tokenizer: Any) -> list[tuple[str, bool]]:
    """Split a record into ``(text, trained)`` pieces: prompt pieces False, completions True.

    With a chat template, prompts and completions are formatted as user and assistant
    turns; without one, the completion follows the prompt directly and ends with EOS.
    """
    f = record.fields
    if record.schema == Schema.TEXT:
        return [(str(f["text"]) + (tokenizer.eos_token or ""), True)]
    if record.schema == Schema.PROMPT_COMPLETION:
        messages = [{"role": "user", "content": str(f["prompt"])}, {"role": "assistant", "content": str(f["completion"])}]
    elif record.schema == Schema.ALPACA:
        prompt = str(f["instruction"]) + (f"\n\n{f['input']}" if f.get("input") else "")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(f["output"])}]
    elif record.schema == Schema.CHAT:
        messages = [{"role": m["role"], "content": str(m.get("content", ""))} for m in f["messages"]]
    else:
        raise DataError(
            f"record {record.id}: a {record.schema.value} record can't be used for task sft. Fix: use "
            "task: classification for text+label data, or give prompt/completion, Alpaca or chat records."
        )
    if not getattr(tokenizer, "chat_template", None):
        return _plain_segments(messages, tokenizer)
    return _template_segments(record, messages, tokenizer)


def _plain_segments(messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    out = []
    for m in messages:
        if m["role"] == "assistant":
            out.append((m["content"] + (tokenizer.eos_token or ""), True))
        else:
            out.append((m["content"] + "\n", False))
    return out


def _template_segments(record: Record, messages: list[dict[str, str]], tokenizer: Any) -> list[tuple[str, bool]]:
    # Render growing prefixes of the conversation; each assistant turn's text is the
    # difference between the conversation with it and the prompt that asks for it.
    out: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise DataError(
                f"record {record.id}: the tokenizer's chat template does not render a conversation as "
                "a growing prefix, so completion tokens can't be located. Fix: use a model whose chat "
                "template appends turns (e.g. ChatML), or give prompt/completion records."
            )
        out.append((prompt[len(done) :], False))
        out.append((full[len(prompt) :], True))
        done = full
    if not out:
        raise DataError(
            f"record {record.id}: the conversation has no assistant turn, so there is nothing to learn. "
            "Fix: add an assistant reply or remove the record."
        )
    return out


def fit_prompt(prompt: list[int], completion: list[int], max_length: int) -> tuple[list[int], list[int], bool]:
    """Cut prompt + completion token ids to ``max_length``, keeping the completion whole.

    The completion is what training learns and evaluation scores, so the prompt gives way:
    its middle is cut, keeping its start (system prompt, instruction, a document's opening)
    and its end (a trailing question, the chat template's assistant header), half the room
    each, the end taking the odd token. Only a completion longer than ``max_length - 1`` on
    its own is cut, from the right. Training and evaluation both cut this way, so a model
    is scored on prompts cut as it was trained on them.

    Returns:
        ``(prompt, completion, cut)``; ``cut`` is True when any token was dropped.

    Example:
        >>> fit_prompt([1, 2, 3, 4, 5, 6], [7, 8], 6)
        ([1, 2, 5, 6], [7, 8], True)
    """
    if len(prompt) + len(completion) <= max_length:
        return prompt, completion, False
    completion = completion[: max(1, max_length - 1)]
    room = max(1, max_length - len(completion))
    if len(prompt) > room:
        tail = (room + 1) // 2  # with room for one token, the last: it starts the answer
        prompt = prompt[: room - tail] + prompt[-tail:]
    return prompt, completion, True


def encode_sft(record: Record, tokenizer: Any, max_length: int) -> tuple[dict[str, list[int]], bool]:
    """Token ids and completion-only labels of one record, cut to ``max_length``.

    A prompt with one completion (prompt/completion, Alpaca, a chat ending in its only
    assistant turn) is cut by :func:`fit_prompt`: the prompt's middle gives way so the
    completion is learned whole. Text records and chats with several assistant turns are
    cut from the right.

    Returns:
        ``(features, truncated)``; ``features["labels"]`` is -100 on prompt tokens.
    """
    pieces: list[tuple[list[int], bool]] = []
    for text, trained in render_segments(record, tokenizer):
        piece = list(tokenizer(text, add_special_tokens=False)["input_ids"])
        if pieces and pieces[-1][1] == trained:  # e.g. system + user turns without a chat template
            pieces[-1] = (pieces[-1][0] + piece, trained)
        else:
            pieces.append((piece, trained))
    if len(pieces) == 2 and not pieces[0][1] and pieces[1][1]:
        prompt, completion, truncated = fit_prompt(pieces[0][0], pieces[1][0], max_length)
        ids, labels = prompt + completion, [IGNORE] * len(prompt) + completion
    else:
        ids, labels = [], []
        for piece, trained in pieces:
            ids.extend(piece)
            labels.extend(piece if trained else [IGNORE] * len(piece))
        truncated = len(ids) > max_length
        ids, labels = ids[:max_length], labels[:max_length]
    # Position 0 has no previous token to predict it from.
    if labels:
        labels[0] = IGNORE
    return {"input_ids": ids, "labels": labels}, truncated


@dataclass
class SftCollator:
    """Pad one length-grouped batch and mark the positions whose logits the loss needs."""

    pad_id: int
    logits_only_where_needed: bool = True

    def __call__(self, items: list[Any]) -> dict[str, Any]:
        from tuneproof.train._batching import pad_batch

        examples = items[0] if len(items) == 1 and isinstance(items[0], list) else items
        batch = pad_batch(examples, self.pad_id)
        if self.logits_only_where_needed:
            keep = batch["labels"].new_zeros(batch["labels"].shape, dtype=bool)
            keep[:, :-1] = batch["labels"][:, 1:] != IGNORE
            batch["logits_to_keep"] = keep
        return batch


def completion_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
    """Next-token cross-entropy on the completion tokens, summed and divided by their count.

    ``outputs.logits`` holds either every position ``(batch, seq, vocab)`` or only the
    kept ones ``(n_kept, vocab)`` (see :class:`SftCollator`). Dividing by the token count of
    the whole accumulated batch (``num_items_in_batch``) makes gradient accumulation give
    the same loss as one big batch.
    """
    import torch.nn.functional as F

    from tuneproof.train._batching import per_unit

    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    targets_all = labels[:, 1:]
    if logits.dim() == 3:
        logits = logits[:, :-1][targets_all != IGNORE]
    targets = targets_all[targets_all != IGNORE]
    loss = F.cross_entropy(logits.float(), targets.to(logits.device), reduction="sum")
    return per_unit(loss, targets.numel(), num_items_in_batch)


def completion_tokens(labels: Any) -> int:
    """The completion tokens the loss scores: labels past position 0 that are not -100."""
    return int((labels[:, 1:] != IGNORE).sum())
