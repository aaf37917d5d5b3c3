"""The SFT prompt format: chat template, completion-only scoring, truncation from the left."""

from __future__ import annotations

import pytest

from tuneproof.data import Record, Schema
from tuneproof.evaluate import SftExample, encode_example, sft_examples
from tuneproof.testing import tiny_tokenizer


@pytest.fixture(scope="module")
def tok():
    return tiny_tokenizer()


def test_records_of_each_sft_schema_become_conversations():
    recs = [
        Record("a:1", Schema.PROMPT_COMPLETION, {"prompt": "Q?", "completion": "A"}, {"answers": ["A", "a2"]}),
        Record("a:2", Schema.ALPACA, {"instruction": "Do it", "input": "this", "output": "done"}),
        Record("a:3", Schema.CHAT, {"messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"}]}),
    ]  # fmt: skip
    ex = sft_examples(recs, "a")
    assert ex[0].messages == [{"role": "user", "content": "Q?"}] and ex[0].references == ["A", "a2"]
    assert ex[1].messages[0]["content"] == "Do it\n\nthis" and ex[1].completion == "done"
    assert ex[1].references == ["done"]
    assert [m["role"] for m in ex[2].messages] == ["system", "user"] and ex[2].completion == "hello"


def test_prompt_tokens_are_the_generation_prompt_and_the_rest_is_the_answer_turn(tok):
    ex = SftExample("x", [{"role": "user", "content": "Where is the apple?"}], "in Paris")
    ids, n_prompt, cut = encode_example(tok, ex, 512)
    assert not cut
    assert tok.decode(ids[:n_prompt]) == "<|im_start|>user\nWhere is the apple?<|im_end|>\n<|im_start|>assistant\n"
    assert tok.decode(ids[n_prompt:]) == "in Paris<|im_end|>\n"


def test_long_prompts_lose_their_middle_and_the_answer_is_kept(tok):
    ex = SftExample("x", [{"role": "user", "content": "word " * 200}], "in Paris")
    ids, n_prompt, cut = encode_example(tok, ex, 32)
    assert cut and len(ids) == 32
    assert tok.decode(ids[n_prompt:]) == "in Paris<|im_end|>\n"
    assert tok.decode(ids[:n_prompt]).startswith("<|im_start|>user\n")
    assert tok.decode(ids[:n_prompt]).endswith("<|im_start|>assistant\n")
