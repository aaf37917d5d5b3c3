"""Splits, length-grouped batches and completion-only labels, on real tokenizers and records."""

from __future__ import annotations

import pytest

from tuneproof.data import Record, Schema
from tuneproof.testing import tiny_tokenizer
from tuneproof.train import length_grouped_batches, split_records
from tuneproof.train._batching import pad_batch, padding_stats
from tuneproof.train.sft import IGNORE, SftCollator, completion_loss, encode_sft


def pc(i, prompt, completion="yes", **extra):
    return Record(f"d.jsonl:{i}", Schema.PROMPT_COMPLETION, {"prompt": prompt, "completion": completion}, extra)


def test_split_is_deterministic_and_keeps_duplicates_together():
    records = [pc(i, f"question number {i % 40}") for i in range(200)]  # every prompt 5 times
    records += [pc(500, "Question number 3!!"), pc(501, "  question   NUMBER 3 ")]  # near-identical
    a = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=7)
    b = split_records(records, val_fraction=0.1, test_fraction=0.2, seed=7)
    assert a.ids() == b.ids()
    assert a.ids() != split_records(records, val_fraction=0.1, test_fraction=0.2, seed=8).ids()
    assert len(a.train) + len(a.val) + len(a.test) == len(records)
    where = {}
    for name in ("train", "val", "test"):
        for r in getattr(a, name):
            key = r.fields["prompt"].lower().strip(" !").split()
            where.setdefault(" ".join(key), set()).add(name)
    assert all(len(s) == 1 for s in where.values()), "a duplicated prompt straddles two splits"
    assert 35 <= len(a.test) <= 45 and 15 <= len(a.val) <= 25


def test_split_stratifies_labels_and_writes_ids(tmp_path):
    records = [Record(f"d:{i}", Schema.TEXT_LABEL, {"text": f"t{i}", "label": "a" if i < 80 else "b"}) for i in range(100)]
    s = split_records(records, val_fraction=0.2, test_fraction=0.2, seed=0, stratify=True)
    assert sorted(r.label for r in s.val).count("b") == 4  # 20% of the 20 'b' records
    path = s.write(tmp_path)
    import json

    ids = json.loads(path.read_text())
    assert set(ids["test"]) == {r.id for r in s.test}
    assert len((tmp_path / "test.jsonl").read_text().splitlines()) == len(s.test)


def test_length_grouped_batches_cover_everything_under_the_budget():
    lengths = [3, 50, 7, 7, 20, 1, 64, 2, 30, 9]
    batches = length_grouped_batches(lengths, batch_size=4, max_tokens=64)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 4
        assert max(lengths[i] for i in b) * len(b) <= 64 or len(b) == 1
    stats = padding_stats(lengths, batches)
    random_order = padding_stats(lengths, [list(range(0, 4)), list(range(4, 8)), list(range(8, 10))])
    assert stats["padded_tokens"] < random_order["padded_tokens"]


def test_completion_only_labels_mask_the_prompt():
    tok = tiny_tokenizer()
    record = pc(1, "What is the capital of France?", "Paris.")
    feats, truncated = encode_sft(record, tok, max_length=128)
    assert not truncated and len(feats["input_ids"]) == len(feats["labels"])
    trained = [t for t, lab in zip(feats["input_ids"], feats["labels"]) if lab != IGNORE]
    assert tok.decode(trained) == "Paris.<|im_end|>\n"
    prompt_part = tok.decode([t for t, lab in zip(feats["input_ids"], feats["labels"]) if lab == IGNORE])
    assert "What is the capital of France?" in prompt_part and "Paris" not in prompt_part
    # The prompt is exactly what generation would be given.
    prompt = tok.apply_chat_template([{"role": "user", "content": record.fields["prompt"]}], tokenize=False,
                                     add_generation_prompt=True)  # fmt: skip
    assert prompt_part == prompt


def test_chat_labels_every_assistant_turn_and_no_user_turn():
    tok = tiny_tokenizer()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there"},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome"},
    ]
    feats, _ = encode_sft(Record("c:1", Schema.CHAT, {"messages": messages}), tok, max_length=256)
    trained = tok.decode([t for t, lab in zip(feats["input_ids"], feats["labels"]) if lab != IGNORE])
    assert trained == "Hello there<|im_end|>\nRome<|im_end|>\n"


def test_alpaca_and_truncation_keeps_the_completion_whole():
    tok = tiny_tokenizer()
    r = Record("a:1", Schema.ALPACA, {"instruction": "Summarize", "input": "the market rose today", "output": "rose"})
    feats, cut = encode_sft(r, tok, max_length=8)
    assert cut and len(feats["input_ids"]) == 8
    trained = [t for t, lab in zip(feats["input_ids"], feats["labels"]) if lab != IGNORE]
    assert tok.decode(trained) == "rose<|im_end|>\n"


def test_a_long_prompt_loses_its_middle_as_evaluation_cuts_it():
    from tuneproof.evaluate import encode_example, sft_examples

    tok = tiny_tokenizer()
    article = "Opening line. " + "filler words here " * 80 + "Closing line."
    r = pc(1, "Summarize the article.\n\n" + article, "The market rose.")
    feats, cut = encode_sft(r, tok, max_length=48)
    assert cut and len(feats["input_ids"]) == 48
    ids, labels = feats["input_ids"], feats["labels"]
    n_prompt = sum(1 for lab in labels if lab == IGNORE)
    assert tok.decode(ids[n_prompt:]) == "The market rose.<|im_end|>\n"  # learned whole
    prompt = tok.decode(ids[:n_prompt])
    # the start (template header, instruction) and the end (the assistant header) survive
    assert prompt.startswith("<|im_start|>user\nSummarize") and prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "Closing line." in prompt and "filler words here " * 40 not in prompt
    # evaluation scores the same tokens the model was trained on
    (ex,) = sft_examples([r], "d.jsonl")
    assert encode_example(tok, ex, 48) == (ids, n_prompt, True)


def test_fit_prompt_cuts_the_completion_only_when_it_alone_is_too_long():
    from tuneproof.train.sft import fit_prompt

    assert fit_prompt([1, 2, 3], [4], 8) == ([1, 2, 3], [4], False)
    assert fit_prompt(list(range(10)), [20, 21], 7) == ([0, 1, 7, 8, 9], [20, 21], True)
    assert fit_prompt([1, 2, 3], list(range(20, 30)), 6) == ([3], [20, 21, 22, 23, 24], True)


def test_a_chat_with_several_assistant_turns_is_still_cut_from_the_right():
    tok = tiny_tokenizer()
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"},
                {"role": "user", "content": "word " * 100}, {"role": "assistant", "content": "Rome"}]  # fmt: skip
    feats, cut = encode_sft(Record("c:1", Schema.CHAT, {"messages": messages}), tok, max_length=24)
    assert cut and len(feats["input_ids"]) == 24
    trained = tok.decode([t for t, lab in zip(feats["input_ids"], feats["labels"]) if lab != IGNORE])
    assert trained.startswith("Hello there<|im_end|>") and "Rome" not in trained


def test_lm_head_on_completion_positions_gives_the_full_logits_loss(tiny_llama_dir):
    """The speed trick (logits only where labels exist) must not change the loss or gradients."""
    import torch

    from tuneproof.models import load_model

    model, tok = load_model(tiny_llama_dir, "sft")
    examples = [encode_sft(pc(i, p, c), tok, 64)[0] for i, (p, c) in enumerate(
        [("Who wrote the play?", "Shakespeare"), ("Water boils at?", "one hundred degrees"), ("Hi", "Hello")])]  # fmt: skip
    batch = SftCollator(tok.pad_token_id)([examples])
    labels = batch.pop("labels")
    keep = batch.pop("logits_to_keep")
    full = completion_loss(model(**batch), labels)
    full.backward()
    grad_full = model.model.layers[0].mlp.up_proj.weight.grad.clone()
    model.zero_grad()
    part_out = model(**batch, logits_to_keep=keep)
    assert part_out.logits.shape[0] == int((labels[:, 1:] != IGNORE).sum())
    part = completion_loss(part_out, labels)
    part.backward()
    assert part.item() == pytest.approx(full.item(), rel=1e-5)
    torch.testing.assert_close(model.model.layers[0].mlp.up_proj.weight.grad, grad_full, rtol=1e-4, atol=1e-6)


def test_pad_batch_pads_labels_with_ignore():
    out = pad_batch([{"input_ids": [5, 6, 7], "labels": [IGNORE, 6, 7]}, {"input_ids": [5], "labels": [IGNORE]}], 0)
    assert out["input_ids"].tolist() == [[5, 6, 7], [5, 0, 0]]
    assert out["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert out["labels"].tolist() == [[IGNORE, 6, 7], [IGNORE, IGNORE, IGNORE]]


def test_train_dropout_sets_attention_and_hidden_dropout(tiny_bert_dir, tiny_llama_dir):
    import torch

    from tuneproof.models import load_model
    from tuneproof.train._model import apply_dropout

    bert, _ = load_model(tiny_bert_dir, "classification", num_labels=2)
    apply_dropout(bert, 0.3)
    assert {m.p for m in bert.modules() if isinstance(m, torch.nn.Dropout)} == {0.3}
    assert bert.config.hidden_dropout_prob == 0.3 and bert.config.attention_probs_dropout_prob == 0.3
    llama, _ = load_model(tiny_llama_dir, "sft")
    apply_dropout(llama, 0.2)
    assert {m.attention_dropout for m in llama.modules() if hasattr(m, "attention_dropout")} == {0.2}
