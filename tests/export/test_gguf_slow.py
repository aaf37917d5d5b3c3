"""GGUF round trip on a real model: SmolLM2-135M (30 layers, 49k byte-level BPE vocabulary, Digits+ByteLevel)."""

from __future__ import annotations

import pytest

from tuneproof.evaluate._sft import prompt_text
from tuneproof.export._gguf import check_round_trip, write_gguf
from tuneproof.models import load_model


@pytest.mark.slow
@pytest.mark.parametrize("qtype", ["f16", "q8_0"])
def test_smollm2_round_trip_within_tolerance(tmp_path, qtype):
    # Measured on 2 CPU cores: f16 relative difference 1.0e-3 (tolerance 9.8e-3), q8_0 3.0e-2 (tolerance 7.8e-2);
    # ~90 s each, most of it transformers' GGUF loader.
    model, tok = load_model("smollm2-135m", "sft")
    prompts = [prompt_text(tok, [{"role": "user", "content": q}]) for q in
               ("What is the capital of France?", "Who wrote Hamlet?", "Is 12 more than 8?")]  # fmt: skip
    path = tmp_path / f"smol-{qtype}.gguf"
    write_gguf(model, tok, path, qtype, name="smollm2")
    check = check_round_trip(model, tok, path, qtype, prompts)
    assert check["passed"] and check["tokenizer_matches"], check
