"""The evaluation's generation path gives what plain one-by-one ``model.generate`` gives (fp32)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tuneproof.evaluate._generate import _bf16_linears, generation_rows, greedy_generate
from tuneproof.evaluate._loading import load_tuned
from tuneproof.evaluate._sft import SftExample, _eos_ids, encode_example, generate
from tuneproof.models import load_model

QUESTIONS = [
    "Where is the apple?",
    "Who wrote the play in the sixteenth century?",
    "Why?",
    "How do I reset my password on the settings page?",
    "Which river is longest?",
    "What is the capital of Spain and of Italy?",
    "One two three?",
]


def _examples() -> list[SftExample]:
    return [SftExample(f"q{i}", [{"role": "user", "content": q}], "x", ["x"]) for i, q in enumerate(QUESTIONS)]


def _prompts(tok, examples) -> list[list[int]]:
    return [ids[:n] for ids, n, _ in (encode_example(tok, ex, 128) for ex in examples)]


def _plain(model, prompts, max_new_tokens: int, eos: list[int], pad: int) -> list[list[int]]:
    """Plain ``model.generate``, one prompt at a time, cut after the first end-of-sequence token."""
    out = []
    for p in prompts:
        ids = torch.tensor([p])
        with torch.inference_mode():
            seq = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=eos, pad_token_id=pad)[0, len(p):].tolist()  # fmt: skip
        out.append(seq[: next((k + 1 for k, t in enumerate(seq) if t in eos), len(seq))])
    return out


def _fast(model, prompts, batches, max_new_tokens: int, eos: list[int], pad: int, prefill_rows: int | None = None,
          bf16: bool = False) -> list[list[int]]:  # fmt: skip
    out: list[list[int]] = [[] for _ in prompts]
    for batch, rows in greedy_generate(model, prompts, batches, max_new_tokens=max_new_tokens, eos=eos, pad=pad,
                                       prefill_rows=prefill_rows, bf16=bf16):  # fmt: skip
        for i, row in zip(batch, rows):
            out[i] = row
    return out


@pytest.fixture(scope="module")
def sharp_llama_dir(tiny_llama_dir, tmp_path_factory) -> Path:
    """The tiny Llama with its matrices redrawn at std 0.3, saved.

    At the default 0.02 init every prompt continues with one same token repeated, which
    would make any two generation paths agree; sharper weights give varied continuations.
    """
    model, tok = load_model(tiny_llama_dir, "sft")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.3)
    out = tmp_path_factory.mktemp("sharp-llama")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def llama(sharp_llama_dir):
    model, tok = load_model(sharp_llama_dir, "sft")
    return model.eval(), tok


@pytest.mark.parametrize("batch_size", [1, 3, len(QUESTIONS)])
def test_generate_matches_plain_generate_one_by_one(llama, batch_size):
    model, tok = llama
    examples = _examples()
    eos = _eos_ids(model, tok)
    expected = [tok.decode(s, skip_special_tokens=True).strip()
                for s in _plain(model, _prompts(tok, examples), 12, eos, tok.pad_token_id)]  # fmt: skip
    assert len(set(expected)) == len(expected), "the prompts must continue differently for the test to mean anything"
    outs, stats = generate(model, tok, examples, max_new_tokens=12, max_length=128, batch_size=batch_size)
    assert outs == expected
    assert stats["tokens"] > 0 and stats["batch_rows"] >= batch_size


def test_rows_that_finish_leave_the_batch_without_changing_the_others(llama):
    """A token the model produces mid-answer for some prompts is made the end-of-sequence token."""
    model, tok = llama
    prompts = _prompts(tok, _examples())
    free_run = _plain(model, prompts, 12, [tok.eos_token_id], tok.pad_token_id)

    def finish_steps(token: int) -> set[int]:
        return {run.index(token) + 1 if token in run else 12 for run in free_run}

    stop = max(sorted({t for run in free_run for t in run}), key=lambda t: len(finish_steps(t)))
    expected = _plain(model, prompts, 12, [stop], tok.pad_token_id)
    lengths = {len(s) for s in expected}
    assert len(lengths) > 1 and min(lengths) < 12, "the test needs rows that finish at different steps"
    assert _fast(model, prompts, [list(range(len(prompts)))], 12, [stop], tok.pad_token_id) == expected
    # The prefill in groups of 2, joined into one decoding batch, gives the same.
    assert _fast(model, prompts, [list(range(len(prompts)))], 12, [stop], tok.pad_token_id, prefill_rows=2) == expected
    # Prompts with no shared prefix at all (plain left padding) give the same.
    no_prefix = [[i + 5, *p] for i, p in enumerate(prompts)]
    assert _fast(model, no_prefix, [list(range(len(prompts)))], 12, [stop], tok.pad_token_id) == _plain(
        model, no_prefix, 12, [stop], tok.pad_token_id
    )


def test_bf16_weights_give_the_autocast_values_and_are_put_back(llama):
    model, tok = llama
    ids = torch.tensor([_prompts(tok, _examples())[1]])
    params = {n: p for n, p in model.named_parameters()}
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = model(input_ids=ids).logits
        with _bf16_linears(model, True):
            assert model.lm_head.weight.dtype == torch.bfloat16
            assert model.model.embed_tokens.weight.dtype == torch.float32  # the tied embedding stays fp32
            cast_once = model(input_ids=ids).logits
    assert torch.equal(autocast, cast_once)
    assert all(p is params[n] and p.dtype == torch.float32 for n, p in model.named_parameters())
    assert model.lm_head.weight is model.model.embed_tokens.weight


def test_bf16_generation_on_cpu_puts_the_attention_back(llama):
    model, tok = llama
    prompts = _prompts(tok, _examples())
    before = model.config._attn_implementation
    outs = _fast(model, prompts, [list(range(len(prompts)))], 6, [tok.eos_token_id], tok.pad_token_id, bf16=True)
    assert model.config._attn_implementation == before
    assert all(len(o) == 6 for o in outs)


def test_generation_rows_grow_with_memory_and_stay_within_the_prompts(llama):
    model, _ = llama
    rows = generation_rows(model, width=40, max_new_tokens=12, n_prompts=10_000, at_least=8)
    assert 8 <= rows <= 10_000
    assert generation_rows(model, width=40, max_new_tokens=12, n_prompts=5, at_least=8) == 5
    assert generation_rows(model, width=4000, max_new_tokens=12, n_prompts=10_000) <= rows


def _digest(path: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def test_merged_lora_generates_what_the_adapter_generates_and_the_adapter_is_untouched(sharp_llama_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    base, tok = load_model(sharp_llama_dir, "sft")
    torch.manual_seed(0)  # init_lora_weights=False: B is random, so the adapter changes the outputs
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    adapter = tmp_path / "adapter"
    peft.save_pretrained(str(adapter))
    before = _digest(adapter)

    merged, _ = load_tuned(adapter, sharp_llama_dir, "sft", merge=True)
    unmerged, _ = load_tuned(adapter, sharp_llama_dir, "sft")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert any("lora_" in n for n, _ in unmerged.named_parameters())
    examples = _examples()
    prompts, eos = _prompts(tok, examples), _eos_ids(merged, tok)
    expected = _plain(unmerged.eval(), prompts, 12, eos, tok.pad_token_id)
    plain_base = _plain(load_model(sharp_llama_dir, "sft")[0].eval(), prompts, 12, eos, tok.pad_token_id)
    assert expected != plain_base, "the adapter must change the outputs for this test to mean anything"
    batches = [list(range(len(prompts)))]
    assert _fast(merged.eval(), prompts, batches, 12, eos, tok.pad_token_id) == expected
    assert _fast(unmerged, prompts, batches, 12, eos, tok.pad_token_id) == expected
    assert _digest(adapter) == before
