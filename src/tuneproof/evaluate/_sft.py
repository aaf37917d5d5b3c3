"""SFT scoring: completion NLL (teacher forcing) and batched greedy generation.

Both the base and the tuned model see the same prompt format: the tokenizer's chat
template applied to the prompt as the user turn (with the generation prompt), the
completion as the assistant turn. Only completion tokens count in the NLL.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneproof.data import Record, Schema
from tuneproof.errors import DataError
from tuneproof.models import model_device

__all__ = ["SftExample", "encode_example", "generate", "score_nll", "sft_examples", "text_nll"]

SFT_SCHEMAS = (Schema.PROMPT_COMPLETION, Schema.ALPACA, Schema.CHAT)


@dataclass
class SftExample:
    """One test record as a conversation: the prompt turns, the completion and the accepted answers."""

    id: str
    messages: list[dict[str, str]]
    completion: str
    references: list[str] = field(default_factory=list)


def sft_examples(records: Sequence[Record], source: str) -> list[SftExample]:
    """Turn prompt/completion, Alpaca or chat records into :class:`SftExample`.

    Raises:
        DataError: the records are of a schema without a completion (text, text+label),
            or a chat record does not end with an assistant turn.
    """
    out = []
    for r in records:
        if r.schema not in SFT_SCHEMAS:
            raise DataError(
                f"{source}: the records are {r.schema.value} records, but sft evaluation needs a "
                "prompt and the expected answer: prompt/completion, instruction/output (Alpaca) or "
                "chat messages. "
                + (
                    "Text+label records are for classification. Fix: run with --task classification."
                    if r.schema == Schema.TEXT_LABEL
                    else "Fix: add prompt and completion columns, or map yours with fields={'prompt': ..., 'completion': ...}."
                )
            )
        f = r.fields
        if r.schema == Schema.PROMPT_COMPLETION:
            messages, completion = [{"role": "user", "content": str(f["prompt"])}], str(f["completion"])
        elif r.schema == Schema.ALPACA:
            prompt = str(f["instruction"]) + (f"\n\n{f['input']}" if f.get("input") else "")
            messages, completion = [{"role": "user", "content": prompt}], str(f["output"])
        else:
            turns = [{"role": str(m["role"]), "content": str(m["content"])} for m in f["messages"]]
            if len(turns) < 2 or turns[-1]["role"] != "assistant":
                raise DataError(
                    f"{r.id}: a chat record must end with an assistant turn to be scored (that turn is "
                    f"the expected answer), but it ends with a {turns[-1]['role']!r} turn. Fix: add the "
                    "expected assistant reply, or drop the record from the test set."
                )
            messages, completion = turns[:-1], turns[-1]["content"]
        answers = r.extra.get("answers")
        if isinstance(answers, list) and answers and all(isinstance(a, (str, int, float)) for a in answers):
            references = [str(a) for a in answers]
        else:
            references = [completion]
        out.append(SftExample(r.id, messages, completion, references))
    return out


def encode_example(tokenizer: Any, example: SftExample, max_length: int) -> tuple[list[int], int, bool]:
    """Token ids of prompt + completion, how many of them are prompt, and whether any were cut.

    Cut as training cuts (:func:`tuneproof.train.sft.fit_prompt`): when the whole is longer
    than ``max_length``, the prompt's middle gives way, so the completion is always scored in
    full (a completion alone over ``max_length`` is cut from the right).
    """
    from tuneproof.train.sft import fit_prompt

    prompt_ids, completion_ids, cut = fit_prompt(*_split_ids(tokenizer, example), max_length)
    return prompt_ids + completion_ids, len(prompt_ids), cut


def prompt_text(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt as the model sees it: chat template with the generation prompt, or plain text."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return "\n".join(m["content"] for m in messages) + "\n"


def _split_ids(tokenizer: Any, example: SftExample) -> tuple[list[int], list[int]]:
    prompt = prompt_text(tokenizer, example.messages)
    if getattr(tokenizer, "chat_template", None):
        full = tokenizer.apply_chat_template(
            [*example.messages, {"role": "assistant", "content": example.completion}], tokenize=False
        )
        # The completion part is what the template adds after the generation prompt
        # (the answer and its end-of-turn tokens), tokenized on its own so that the prompt
        # tokens are exactly those that generation starts from.
        rest = full[len(prompt):] if full.startswith(prompt) else example.completion + (tokenizer.eos_token or "")
    else:
        rest = example.completion + (tokenizer.eos_token or "")
    enc = tokenizer([prompt, rest], add_special_tokens=False)["input_ids"]
    return list(enc[0]), list(enc[1])


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    # Length-sorted batches waste little compute on padding.
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _token_nll(model: Any, seqs: list[list[int]], pad_id: int, bf16: bool) -> tuple[Any, Any]:
    """Per-token NLL of each next token, right-padded: ``(nll, valid)`` of shape (B, L-1)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    device = model_device(model)
    ids, mask = ids.to(device), mask.to(device)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids, attention_mask=mask).logits
        logits = logits[:, :-1].float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
    return nll.cpu(), mask[:, 1:].bool().cpu()


def score_nll(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SftExample],
    *,
    max_length: int,
    batch_size: int,
    bf16: bool = False,
    progress: Any = None,
    label: str = "",
) -> tuple[list[float], list[int], int]:
    """Mean NLL over each example's completion tokens.

    Returns:
        ``(nll per example, completion tokens per example, examples whose prompt was cut)``.
    """
    encoded = [encode_example(tokenizer, ex, max_length) for ex in examples]
    truncated = sum(1 for _, _, cut in encoded if cut)
    nll = [0.0] * len(examples)
    counts = [0] * len(examples)
    task = progress.add_task(f"NLL {label}", total=len(examples), rate="") if progress else None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for batch in _batches([len(ids) for ids, _, _ in encoded], batch_size):
        token_nll, valid = _token_nll(model, [encoded[i][0] for i in batch], pad, bf16)
        for row, i in enumerate(batch):
            ids, n_prompt, _ = encoded[i]
            # position t predicts token t+1: completion tokens are n_prompt .. len-1
            values = token_nll[row, n_prompt - 1 : len(ids) - 1]
            nll[i], counts[i] = float(values.mean()), int(values.numel())
        if task is not None:
            progress.advance(task, len(batch))
    return nll, counts, truncated


def text_nll(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int, bf16: bool = False
) -> tuple[list[float], list[int]]:
    """Summed NLL and predicted-token count of each plain text (for perplexity)."""
    seqs = [tokenizer(t, add_special_tokens=False)["input_ids"][:max_length] for t in texts]
    sums, counts = [0.0] * len(texts), [0] * len(texts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for batch in _batches([len(s) for s in seqs], batch_size):
        usable = [i for i in batch if len(seqs[i]) >= 2]
        if not usable:
            continue
        token_nll, valid = _token_nll(model, [seqs[i] for i in usable], pad, bf16)
        for row, i in enumerate(usable):
            sums[i] = float(token_nll[row][valid[row]].sum())
            counts[i] = int(valid[row].sum())
    return sums, counts


def generate(
    model: Any,
    tokenizer: Any,
    examples: Sequence[SftExample],
    *,
    max_new_tokens: int,
    max_length: int,
    batch_size: int,
    bf16: bool = False,
    progress: Any = None,
    label: str = "",
    streamer: Any = None,
) -> tuple[list[str], dict[str, float]]:
    """Greedy generations for each example's prompt (:func:`greedy_generate`), in length-sorted batches.

    A batch holds at least ``batch_size`` prompts, more when memory allows
    (:func:`generation_rows`): the decoding steps of a small model are dominated by reading
    its weights, which a larger batch shares. The prompts' prefill still runs
    ``batch_size`` at a time, so a long prompt pads only its own group.

    ``streamer``: a transformers streamer that receives the tokens as they come (one example
    per batch then, as streamers take a single sequence).

    Returns:
        ``(generations, stats)`` where stats holds ``tokens`` generated, ``seconds``,
        ``tokens_per_s`` and ``batch_rows`` (the generation batch size used).
    """
    from tuneproof.evaluate._generate import generation_rows, greedy_generate

    prompts = []
    for ex in examples:
        ids, n_prompt, _ = encode_example(tokenizer, ex, max_length)
        prompts.append(ids[:n_prompt])
    eos = _eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos[0]
    rows = generation_rows(model, max(len(p) for p in prompts), max_new_tokens, len(prompts), at_least=batch_size)
    outputs = [""] * len(examples)
    n_tokens, t0 = 0, time.perf_counter()
    task = progress.add_task(f"generate {label}", total=len(examples), rate="") if progress else None
    if streamer is not None:
        for batch, news in _streamed(model, prompts, eos, pad, max_new_tokens, bf16, streamer):
            n_tokens += len(news[0])
            outputs[batch[0]] = tokenizer.decode(news[0], skip_special_tokens=True).strip()
            if task is not None:
                progress.update(task, advance=1, rate=f"{n_tokens / max(time.perf_counter() - t0, 1e-9):,.0f} tok/s")
        seconds = time.perf_counter() - t0
        return outputs, {"tokens": n_tokens, "seconds": seconds, "tokens_per_s": n_tokens / max(seconds, 1e-9), "batch_rows": 1}
    batches = _batches([len(p) for p in prompts], rows)
    for batch, news in greedy_generate(model, prompts, batches, max_new_tokens=max_new_tokens, eos=eos, pad=pad,
                                       bf16=bf16, prefill_rows=batch_size):  # fmt: skip
        for i, new in zip(batch, news):
            n_tokens += len(new)  # each ends at its first end-of-sequence token, counted
            outputs[i] = tokenizer.decode(new, skip_special_tokens=True).strip()
        if task is not None:
            rate = n_tokens / max(time.perf_counter() - t0, 1e-9)
            progress.update(task, advance=len(batch), rate=f"{rate:,.0f} tok/s")
    seconds = time.perf_counter() - t0
    stats = {"tokens": n_tokens, "seconds": seconds, "tokens_per_s": n_tokens / max(seconds, 1e-9), "batch_rows": rows}
    return outputs, stats


def _streamed(model: Any, prompts: list[list[int]], eos: list[int], pad: int, max_new_tokens: int, bf16: bool,
              streamer: Any) -> Any:  # fmt: skip
    """One prompt at a time through ``model.generate`` with a transformers ``streamer`` (it
    takes a single sequence): for interactive use, where the first tokens matter more than the
    throughput. Yields ``([index], [new token ids up to and including the first end token])``."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1, pad_token_id=pad, eos_token_id=eos)
    device = model_device(model)
    for i, p in enumerate(prompts):
        ids = torch.tensor([p], device=device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config, streamer=streamer)
        new = out[0, len(p):].tolist()
        cut = next((k + 1 for k, t in enumerate(new) if t in eos), len(new))
        yield [i], [new[:cut]]


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, gen_eos):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None and v not in ids:
                ids.append(int(v))
    if not ids:
        raise DataError("the tokenizer defines no end-of-sequence token, so generation cannot stop. Fix: set eos_token.")
    return ids
