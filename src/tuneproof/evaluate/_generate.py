"""Greedy generation for evaluation: a KV cache, the shared prompt prefix run once, finished rows dropped.

What it saves against ``model.generate`` with its defaults, each a plain cost of the
evaluation's shape (many short prompts that share a chat template, short answers):

- the prompt part every prompt of a batch shares (the chat template's system turn, an
  instruction) is run once and its keys and values copied to every row, instead of once per
  row; the rows' own tokens follow it with padding *between* the shared part and them, so
  every token keeps the position it has when the prompt runs alone;
- a row that has produced an end-of-sequence token leaves the batch (its cache rows are
  dropped), so the batch does not keep computing for answers already finished;
- only the last position's logits are computed (``logits_to_keep=1``), never the
  prompt's 49k-wide logits;
- the prefill runs in small groups, each padded to its own longest prompt, and the groups
  then decode as one large batch (see :func:`generation_rows`);
- under bf16, the linear layers' weights are cast once instead of at every call, and on a
  CPU the attention runs in fp32 (there its bf16 kernel is the slower one).

Decoding is greedy: the next token is the argmax of the logits (ties to the lowest id, as
``torch.argmax`` and ``model.generate`` both break them), with no logits processor.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["generation_rows", "greedy_generate"]

# Memory the generation batch may use for its KV cache and prefill activations, as a share
# of what is free: the rest stays for the model, the evaluation's other data and other jobs.
_MEMORY_SHARE = 0.25


def generation_rows(model: Any, width: int, max_new_tokens: int, n_prompts: int, at_least: int = 1) -> int:
    """The largest generation batch whose KV cache and prefill activations fit in memory.

    Larger batches spread each decoding step's weight reads over more rows, and rows that
    finish leave the batch, so the largest batch that fits is the fastest. A row holds
    ``width + max_new_tokens`` tokens of keys and values, its prefill activations (the MLP's
    widest layer counted three times over the prompt) and one row of logits; the budget is a
    quarter of the memory free on the model's device.

    Args:
        model: the model (its config gives the sizes).
        width: the longest prompt, in tokens.
        max_new_tokens: the generation budget.
        n_prompts: how many prompts there are (no batch is larger).
        at_least: the smallest batch to return (the evaluation's batch size).
    """
    cfg = model.config
    text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    hidden = int(getattr(text, "hidden_size", 1024))
    layers = int(getattr(text, "num_hidden_layers", 24))
    heads = int(getattr(text, "num_attention_heads", 16))
    kv_dim = int(getattr(text, "num_key_value_heads", heads)) * int(getattr(text, "head_dim", None) or hidden // heads)
    wide = int(getattr(text, "intermediate_size", 4 * hidden))
    # fp32 bytes: keys and values of every layer, prefill activations, attention scores, one logits row
    per_row = 4 * (2 * layers * kv_dim * (width + max_new_tokens) + width * (hidden * 4 + wide * 3)
                   + heads * width * width + int(getattr(text, "vocab_size", 50_000)))  # fmt: skip
    rows = int(_free_bytes(model) * _MEMORY_SHARE // per_row)
    return max(1, min(n_prompts, max(rows, at_least)))


def _free_bytes(model: Any) -> int:
    """Bytes free on the model's device: the GPU's free memory, else the host's available RAM."""
    import torch

    from tuneproof.models import model_device

    device = model_device(model)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # no sysconf names here (macOS, Windows): assume 4 GiB
        return 4 << 30


def greedy_generate(
    model: Any, prompts: Sequence[list[int]], batches: Sequence[list[int]], *,
    max_new_tokens: int, eos: Sequence[int], pad: int, bf16: bool = False, prefill_rows: int | None = None,
) -> Iterator[tuple[list[int], list[list[int]]]]:  # fmt: skip
    """Greedy continuations, batch by batch: yields ``(batch, token ids per prompt of it)``.

    Each continuation ends at its first end-of-sequence token (kept) or after
    ``max_new_tokens`` tokens. Under ``bf16`` the model's linear weights and attention are
    switched until the generator is exhausted or closed: use the model for nothing else
    in between.

    Args:
        model: a causal LM whose forward takes a KV cache, ``position_ids`` and
            ``logits_to_keep`` (any Hugging Face decoder, merged or PEFT-wrapped).
        prompts: the prompt token ids.
        batches: indices into ``prompts``, one list per batch (e.g. length-sorted).
        max_new_tokens: most tokens generated per prompt.
        eos: end-of-sequence ids.
        pad: the id put in padding columns (masked out, never attended to).
        bf16: run under bf16 autocast.
        prefill_rows: prompts run together in the prefill (each group padded to its own
            longest); None runs the whole batch at once.
    """
    import torch

    from tuneproof.models import model_device

    device = model_device(model)
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16), \
            _bf16_linears(model, bf16), _fp32_attention(model, bf16 and device.type == "cpu"):  # fmt: skip
        for batch in batches:
            rows = _greedy_batch(model, [prompts[i] for i in batch], max_new_tokens, set(eos), pad, device,
                                 prefill_rows or len(batch))  # fmt: skip
            yield batch, rows


@contextmanager
def _bf16_linears(model: Any, enabled: bool) -> Iterator[None]:
    """Hold the linear layers' weights in bf16 while generating, then put the originals back.

    Autocast casts each linear layer's weight to bf16 on every call (it caches the cast only
    for weights that require grad, and never in inference mode); for a small model that
    cast is about a fifth of a decoding step. Casting once gives the same bf16 values, so
    the linear layers compute what they compute under autocast. Only ``nn.Linear`` weights change: an embedding tied
    to the LM head keeps its fp32 weight, as under autocast.
    """
    import torch

    if not enabled:
        yield
        return
    saved = []
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module.weight.dtype == torch.float32:
            saved.append((module, module.weight, module.bias))
            module.weight = torch.nn.Parameter(module.weight.detach().to(torch.bfloat16), requires_grad=False)
            if module.bias is not None:
                module.bias = torch.nn.Parameter(module.bias.detach().to(torch.bfloat16), requires_grad=False)
    try:
        yield
    finally:
        for module, weight, bias in saved:
            module.weight, module.bias = weight, bias


_FP32_SDPA = "tuneproof_fp32_sdpa"


@contextmanager
def _fp32_attention(model: Any, enabled: bool) -> Iterator[None]:
    """Run a model that uses sdpa attention with fp32 attention inputs while generating (CPU, under bf16 autocast).

    Autocast casts the attention's inputs to bf16, and on a CPU the bf16 kernel is the slow
    one: for a one-token query over a batch of 40 it took ~2.4 ms a layer against ~0.5 ms
    in fp32, a quarter of a decoding step. The linear layers stay in bf16; the attention
    itself (a small share of the FLOPs at these lengths) is computed in fp32.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    previous = getattr(inner.config, "_attn_implementation", None)
    if not enabled or previous != "sdpa" or not hasattr(inner, "set_attn_implementation"):
        yield
        return
    _register_fp32_sdpa()
    inner.set_attn_implementation(_FP32_SDPA)
    try:
        yield
    finally:
        inner.set_attn_implementation(previous)


def _register_fp32_sdpa() -> None:
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    def fp32_sdpa(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any) -> Any:
        with torch.autocast(query.device.type, enabled=False):
            return sdpa_attention_forward(module, query.float(), key.float(), value.float(), attention_mask, **kwargs)

    AttentionInterface.register(_FP32_SDPA, fp32_sdpa)
    AttentionMaskInterface.register(_FP32_SDPA, sdpa_mask)


def _shared_prefix(prompts: Sequence[list[int]]) -> int:
    """Length of the token prefix all prompts share, leaving each at least one token of its own."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for p in prompts[1:]:
        k = 0
        while k < n and p[k] == first[k]:
            k += 1
        n = k
    return max(n, 0)


def _greedy_batch(model: Any, prompts: list[list[int]], max_new_tokens: int, eos: set[int], pad: int,
                  device: Any, prefill_rows: int) -> list[list[int]]:  # fmt: skip
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # cache rows follow this order
    cache, logits, mask = _prefill(model, [prompts[i] for i in order], pad, device, prefill_rows)
    with_cache = {_cache_argument(model): cache, "use_cache": True}
    live = list(order)
    new: list[list[int]] = [[] for _ in prompts]
    position = mask.sum(-1, keepdim=True) - 1
    for step in range(max_new_tokens):
        tokens = logits.float().argmax(-1)
        keep = []
        for k, (row, token) in enumerate(zip(live, tokens.tolist())):
            new[row].append(token)
            if token not in eos:
                keep.append(k)
        if not keep or step + 1 == max_new_tokens:
            break
        if len(keep) < len(live):  # finished rows leave the batch and its cache
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            tokens, mask, position = tokens[index], mask[index], position[index]
            live = [live[k] for k in keep]
        mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
        position = position + 1
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position, **with_cache).logits[:, -1]
    return new


def _prefill(model: Any, prompts: list[list[int]], pad: int, device: Any, prefill_rows: int) -> tuple[Any, Any, Any]:
    """Run the length-sorted prompts: ``(cache, last logits, attention mask)`` for the whole batch.

    The shared prefix runs once. The rows' own tokens run ``prefill_rows`` at a time, each
    group padded only to its own longest prompt, and the groups' caches are then put side by
    side with the extra padding, masked, between the shared part and each row's tokens: a
    large decoding batch without a prefill padded to the batch's longest prompt. Caches
    other than plain per-layer keys and values (sliding windows) run as one group.
    """
    import torch
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache_arg = _cache_argument(model)
    shared = _shared_prefix(prompts)
    prefix: list[tuple[Any, Any]] = []
    if shared:
        cache = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([prompts[0][:shared]], device=device), logits_to_keep=1,
              **{cache_arg: cache, "use_cache": True})  # fmt: skip
        prefix = [(layer.keys, layer.values) for layer in cache.layers]
    plain = all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)
    step = prefill_rows if plain else len(prompts)
    groups = []
    for start in range(0, len(prompts), step):
        rests = [p[shared:] for p in prompts[start : start + step]]
        cache = DynamicCache(
            ddp_cache_data=[(k.expand(len(rests), -1, -1, -1), v.expand(len(rests), -1, -1, -1)) for k, v in prefix]
            or None, config=model.config,
        )  # fmt: skip
        ids, mask = _pad_between(rests, shared, pad)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1,
                       **{cache_arg: cache, "use_cache": True}).logits[:, -1]  # fmt: skip
        groups.append((cache, logits, mask))
    if len(groups) == 1:
        return groups[0]
    return _join(groups, shared, model.config)


def _join(groups: list[tuple[Any, Any, Any]], shared: int, config: Any) -> tuple[Any, Any, Any]:
    """One cache, logits and mask from groups of rows, the narrower groups padded after the shared part."""
    import torch
    from transformers import DynamicCache

    width = max(mask.shape[1] for _, _, mask in groups)

    def widen(t: Any, pad: int, dim: int) -> Any:
        if not pad:
            return t
        shape = list(t.shape)
        shape[dim] = pad
        return torch.cat([t.narrow(dim, 0, shared), t.new_zeros(shape), t.narrow(dim, shared, t.shape[dim] - shared)], dim)

    layers = []
    for i in range(len(groups[0][0].layers)):
        keys, values = [], []
        for cache, _, mask in groups:
            layer, pad = cache.layers[i], width - mask.shape[1]
            keys.append(widen(layer.keys, pad, 2))
            values.append(widen(layer.values, pad, 2))
        layers.append((torch.cat(keys), torch.cat(values)))
    masks = torch.cat([widen(mask, width - mask.shape[1], 1) for _, _, mask in groups])
    return DynamicCache(ddp_cache_data=layers, config=config), torch.cat([g[1] for g in groups]), masks


def _cache_argument(model: Any) -> str:
    """The forward's name for the KV cache: ``cache`` in newer transformers, ``past_key_values`` before."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def _pad_between(rests: list[list[int]], shared: int, pad: int) -> tuple[Any, Any]:
    """Input ids of each row's own tokens, left-padded, and the mask over shared part + them."""
    import torch

    width = max(len(r) for r in rests)
    ids = torch.full((len(rests), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rests), shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, r in enumerate(rests):
        ids[row, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[row, shared + width - len(r) :] = 1
    return ids, mask
