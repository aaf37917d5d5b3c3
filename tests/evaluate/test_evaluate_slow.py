"""Real model, real data: SmolLM2-135M zero-shot on NQ-open questions against itself."""

from __future__ import annotations

import json

import pytest

from tuneproof.evaluate import evaluate


@pytest.mark.slow
def test_smollm2_against_itself_on_nq_open_is_no_change(tmp_path):
    from tuneproof.corpora import nq_open

    rows = [{"prompt": q["question"], "completion": q["answers"][0], "answers": q["answers"]} for q in nq_open()[:8]]
    data = tmp_path / "nq.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = evaluate("smollm2-135m", "smollm2-135m", data, tmp_path / "eval", metric="exact_match",
                 forgetting_text="xsum", forgetting_n=8)  # fmt: skip
    assert r.verdict == "no_change"
    assert r.delta.ci_low <= 0 <= r.delta.ci_high
    # A correctly loaded SmolLM2 is far from a random init (perplexity ~55,000) on news text.
    assert r.forgetting["status"] == "ok" and r.forgetting["n_texts"] == 8
    assert r.forgetting["base_perplexity"] < 100
    assert r.forgetting["relative_change"] == pytest.approx(0.0)
    assert r.details["prompt_format"] == "chat template"
