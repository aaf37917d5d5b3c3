"""Tiny, randomly initialised models for fast tests (ours and yours).

They are real Hugging Face models and tokenizers saved to a directory, so they go
through the same :func:`tuneproof.models.load_model` path as a real model. A step of
the tiny Llama takes about 10 ms on a CPU.

Example:
    >>> from tuneproof.testing import tiny_llama
    >>> from tuneproof.models import load_model
    >>> model, tok = load_model(tiny_llama("/tmp/tiny"), "sft")
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CHATML_TEMPLATE", "tiny_bert", "tiny_llama", "tiny_tokenizer"]

# The ChatML template SmolLM2 uses, so chat data is formatted the same way in tests.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = """\
The capital of France is Paris. The capital of Italy is Rome. The capital of Spain is Madrid.
Water boils at one hundred degrees. The sun rises in the east and sets in the west.
Question: who wrote the play? Answer: Shakespeare wrote it in the sixteenth century.
This movie was wonderful, moving and funny. That film was dull, slow and far too long.
Please summarize the article in one sentence. The market rose today after the bank cut rates.
How do I reset my password? Open the settings page and choose the reset option.
One two three four five six seven eight nine ten eleven twelve thirteen fourteen.
"""
_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]


def tiny_tokenizer(vocab_size: int = 1000):
    """A byte-level BPE tokenizer trained on a few sentences, with ChatML special tokens.

    Byte-level, so any text encodes without unknown tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS.splitlines() * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<pad>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_llama(
    path: str | os.PathLike,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    vocab_size: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama causal LM and its tokenizer to ``path``; return it.

    The vocabulary is kept small on purpose: with SmolLM2's 49k vocabulary a step takes
    ~200 ms instead of ~10 ms, because the LM head dominates.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    return _save_random(path, LlamaForCausalLM, config, tokenizer, seed)


def tiny_bert(
    path: str | os.PathLike,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    vocab_size: int = 1000,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT encoder (no head) and its tokenizer to ``path``; return it.

    Load it with ``load_model(path, "classification", num_labels=k)``: like MiniLM, only
    the classification head is new.
    """
    from transformers import BertConfig, BertModel

    path = Path(path)
    tokenizer = tiny_tokenizer(vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    return _save_random(path, BertModel, config, tokenizer, seed)


def _save_random(path: Path, model_cls, config, tokenizer, seed: int) -> Path:
    """Initialise ``model_cls(config)`` from ``seed`` (global RNG untouched) and save it."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path
