"""`tuneproof export`: merged folders, GGUF files checked by a round trip, Ollama Modelfiles."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tuneproof.cli import app
from tuneproof.errors import TuneproofError
from tuneproof.evaluate._sft import prompt_text
from tuneproof.export import export, open_run
from tuneproof.export._gguf import TOLERANCE_STEPS, check_round_trip, gguf_tokenizer
from tuneproof.models import load_model

PROMPT = [{"role": "user", "content": "Where is the lamp?"}]


def _last_logits(model, tok):
    ids = tok(prompt_text(tok, PROMPT), add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1]


def test_merged_sft_is_a_standalone_safetensors_folder_equal_to_base_plus_adapter(sft_run, tmp_path):
    res = export(sft_run, "merged", tmp_path / "m")
    names = {p.name for p in res.out.iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert {"export.json", "README.md", "tokenizer.json"} <= names and res.proven
    merged, tok = load_model(res.out, "sft")  # no PEFT, no base model needed
    adapter, _ = open_run(sft_run).load()
    assert torch.allclose(_last_logits(merged, tok), _last_logits(adapter, tok), atol=1e-4)
    info = json.loads((res.out / "export.json").read_text())
    assert info["proven"] is True and info["task"] == "sft" and "<|im_start|>user" in info["prompt_format"]


def test_merged_classifier_carries_its_label_map(classify_run, tmp_path):
    from tuneproof.evaluate._loading import read_labels

    from tuneproof.evaluate._classify import predict_proba

    assert (classify_run / "train" / "model" / "adapter_config.json").is_file()  # LoRA adapters plus the new head
    res = export(classify_run, "merged", tmp_path / "c")
    assert read_labels(res.out) == ["neg", "pos"] and json.loads((res.out / "labels.json").read_text()) == ["neg", "pos"]
    assert not (res.out / "adapter_config.json").exists()
    merged, tok = load_model(res.out, "classification", labels=["neg", "pos"])
    adapter, _ = open_run(classify_run).load()
    texts = ["this film was wonderful and funny", "this film was dull and slow"]
    same = predict_proba(merged, tok, texts, max_length=32, batch_size=2), predict_proba(adapter, tok, texts, max_length=32, batch_size=2)
    assert abs(same[0] - same[1]).max() < 1e-5  # the trained head and the merged adapters, not a fresh head
    assert res.proven == json.loads((classify_run / "decision.json").read_text())["ship"]


@pytest.mark.parametrize("fmt", ["gguf", "ollama"])
def test_gguf_does_not_apply_to_a_classifier(classify_run, tmp_path, fmt):
    with pytest.raises(TuneproofError, match="sequence classifier.*--format merged"):
        export(classify_run, fmt, tmp_path / "x")


@pytest.fixture(scope="module")
def gguf_export(sft_run, tmp_path_factory):
    return export(sft_run, "gguf", tmp_path_factory.mktemp("gguf") / "g")


def test_gguf_round_trip_within_tolerance_and_it_generates_what_the_merged_model_does(gguf_export):
    res = gguf_export
    assert [c["type"] for c in res.checks] == ["f16", "q8_0"]
    # Tolerance: 20 rounding steps of the format relative to the largest logit (f16 2^-11, q8_0 2^-8).
    # Measured here: f16 ~2e-4, q8_0 ~5e-3 of the largest logit.
    for c, step in zip(res.checks, (2.0**-11, 2.0**-8)):
        assert c["tolerance"] == TOLERANCE_STEPS * step and c["relative_diff"] <= c["tolerance"] and c["passed"]
        assert c["max_abs_diff"] > 0 and c["tokenizer_matches"] and c["prompts"] == 3
        assert (res.out / c["file"]).stat().st_size > 0
    assert json.loads((res.out / "export.json").read_text())["checks"] == res.checks
    from transformers import AutoModelForCausalLM, AutoTokenizer

    f16 = res.checks[0]["file"]
    model = AutoModelForCausalLM.from_pretrained(str(res.out), gguf_file=f16, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(res.out), gguf_file=f16)
    assert tok.chat_template and prompt_text(tok, PROMPT).startswith("<|im_start|>user")
    ids = tok(prompt_text(tok, PROMPT), add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, eos_token_id=tok.eos_token_id)
    assert "Paris" in tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def test_the_round_trip_check_fails_for_a_file_that_is_not_the_model(gguf_export, tiny_llama_dir):
    res = gguf_export
    base, tok = load_model(tiny_llama_dir, "sft")  # the untuned base against the tuned file
    check = check_round_trip(base, tok, res.out / res.checks[0]["file"], "f16", [prompt_text(tok, PROMPT)])
    assert not check["passed"] and check["relative_diff"] > check["tolerance"]


def test_ollama_modelfile_serves_the_trained_prompt_format(sft_run, tmp_path):
    res = export(sft_run, "ollama", tmp_path / "o")
    text = (res.out / "Modelfile").read_text()
    first = text.splitlines()[0]
    assert first.startswith("FROM ./") and (res.out / first.removeprefix("FROM ./")).is_file()
    assert 'PARAMETER stop "<|im_end|>"' in text and "PARAMETER temperature 0" in text
    template = text.split('TEMPLATE """', 1)[1].split('"""', 1)[0]
    user_only = template.split("{{ else }}", 1)[1].removesuffix("{{ end }}")
    tok = open_run(sft_run).load()[1]
    assert user_only.replace("{{ .Prompt }}", "Where is the lamp?") == prompt_text(tok, PROMPT)


def test_non_byte_level_tokenizer_and_busy_folder_errors_name_the_fix(sft_run, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    word = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    word.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(TuneproofError, match="WordLevel.*byte-level BPE.*--format merged"):
        gguf_tokenizer(PreTrainedTokenizerFast(tokenizer_object=word), 2)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(TuneproofError, match="not an earlier export"):
        export(sft_run, "merged", busy)
    with pytest.raises(TuneproofError, match="use one of merged, gguf, ollama"):
        export(sft_run, "onnx", tmp_path / "x")


def test_cli_export_replaces_an_earlier_export(sft_run, tmp_path):
    runner = CliRunner()
    for _ in range(2):
        res = runner.invoke(app, ["export", str(sft_run), "--format", "merged", "--out", str(tmp_path / "m")])
        assert res.exit_code == 0, res.output
    assert "merged export in" in res.output and (tmp_path / "m" / "model.safetensors").is_file()


def test_gguf_layout_of_an_untied_model_with_as_many_kv_heads_as_heads(tmp_path):
    # The other layout branches: a separate output layer (output.weight) and plain multi-head attention.
    from transformers import LlamaConfig, LlamaForCausalLM

    from tuneproof.export._gguf import write_gguf
    from tuneproof.testing import tiny_tokenizer

    tok = tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    for qtype in ("f16", "q8_0"):
        path = tmp_path / f"m-{qtype}.gguf"
        write_gguf(model, tok, path, qtype, name="untied")
        check = check_round_trip(model, tok, path, qtype, [prompt_text(tok, PROMPT), "One two three four"])
        assert check["passed"] and check["tokenizer_matches"], check
