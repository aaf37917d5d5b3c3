"""SFT evaluation end to end on tiny models trained in the test."""

from __future__ import annotations

import json

import pytest

from tuneproof.evaluate import evaluate

from eval_helpers import WORDS, damage, train_sft, train_text


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def test_trained_model_improves_on_its_base(tiny_llama_dir, trained_llama_dir, pattern_data, tmp_path):
    r = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path, metric="exact_match")
    assert r.verdict == "improved", r.verdict_reason
    assert r.delta.ci_low > 0
    assert r.metrics["tuned"]["exact_match"] > r.metrics["base"]["exact_match"]
    # NLL is always reported, and the fitted answer is far more likely under the tuned model.
    assert r.metrics["tuned"]["nll"] < r.metrics["base"]["nll"] - 1.0
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["verdict"] == "improved"
    assert saved["metrics"]["base"].keys() >= {"nll", "perplexity", "exact_match", "token_f1", "rouge_l"}
    assert saved["delta"]["ci_low"] <= saved["delta"]["value"] <= saved["delta"]["ci_high"]
    rows = _records(tmp_path)
    assert len(rows) == r.n_records == len(WORDS) - 24
    assert {"id", "base", "tuned", "delta", "gain", "generation"} <= rows[0].keys()
    assert sum(row["gain"] for row in rows) > 0


def test_nll_verdict_is_direction_aware(tiny_llama_dir, trained_llama_dir, pattern_data, tmp_path):
    r = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path)
    assert r.metric == "nll" and not r.delta.higher_is_better
    assert r.delta.value < 0 and r.delta.ci_high < 0
    assert r.verdict == "improved"
    # Swapped roles: the untrained model as "tuned" is a regression.
    back = evaluate(trained_llama_dir, tiny_llama_dir, pattern_data["test"], tmp_path / "swapped")
    assert back.verdict == "regressed"


def test_model_against_itself_is_no_change(trained_llama_dir, pattern_data, tmp_path):
    r = evaluate(trained_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path)
    assert r.verdict == "no_change"
    assert r.delta.ci_low <= 0 <= r.delta.ci_high
    assert r.metrics["base"] == r.metrics["tuned"]


def test_negligible_difference_is_no_change_under_min_effect(trained_llama_dir, pattern_data, tmp_path):
    from tuneproof.config import EvalConfig

    # A different model with practically the same behaviour. The paired bootstrap sees even
    # a 1e-6 NLL shift as consistent, so min_effect is what says it does not matter.
    nudged = damage(trained_llama_dir, tmp_path / "nudged", scale=1e-4)
    r = evaluate(trained_llama_dir, nudged, pattern_data["test"], tmp_path / "eval", config=EvalConfig(min_effect=0.01))
    assert r.delta.value != 0 and abs(r.delta.value) < 0.01
    assert r.verdict == "no_change", r.verdict_reason


def test_damaged_model_regresses(trained_llama_dir, pattern_data, tmp_path):
    # Noise of 3x each tensor's spread: the pattern is lost and the output is gibberish.
    damaged = damage(trained_llama_dir, tmp_path / "damaged", scale=3.0)
    r = evaluate(trained_llama_dir, damaged, pattern_data["test"], tmp_path / "eval", metric="exact_match")
    assert r.verdict == "regressed", r.verdict_reason
    assert r.delta.ci_high < 0
    assert r.metrics["tuned"]["nll"] > r.metrics["base"]["nll"]


def test_min_effect_blocks_a_small_improvement(tiny_llama_dir, trained_llama_dir, pattern_data, tmp_path):
    from tuneproof.config import EvalConfig

    r = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path,
                 config=EvalConfig(metric="exact_match", min_effect=1.5))  # fmt: skip
    assert r.delta.ci_low > 0
    assert r.verdict == "no_change" and "min_effect" in r.verdict_reason


def test_limit_scores_only_the_first_records(tiny_llama_dir, pattern_data, tmp_path):
    r = evaluate(tiny_llama_dir, tiny_llama_dir, pattern_data["test"], tmp_path, limit=5)
    assert r.n_records == 5
    assert len(_records(tmp_path)) == 5


def test_lora_adapter_is_loaded_on_the_base(tiny_llama_dir, pattern_data, tmp_path):
    rows = [json.loads(line) for line in pattern_data["train"].read_text().splitlines()]
    adapter = train_sft(tiny_llama_dir, rows, tmp_path / "adapter", steps=30, lr=1e-2, lora=True)
    assert (adapter / "adapter_config.json").is_file()
    r = evaluate(tiny_llama_dir, adapter, pattern_data["test"], tmp_path / "eval")
    assert r.verdict == "improved", r.verdict_reason


def test_forgetting_flags_a_model_that_lost_general_text(tiny_llama_dir, general_text, pattern_data, tmp_path):
    # A base that knows the general text, then fine-tuned hard on the pattern only.
    paragraphs = [p for p in general_text.read_text().split("\n\n") if p.strip()]
    general = train_text(tiny_llama_dir, paragraphs, tmp_path / "general", steps=30)
    rows = [json.loads(line) for line in pattern_data["train"].read_text().splitlines()]
    narrow = train_sft(general, rows, tmp_path / "narrow", steps=30)
    r = evaluate(general, narrow, pattern_data["test"], tmp_path / "eval", forgetting_text=str(general_text))
    f = r.forgetting
    assert f["status"] == "ok" and f["n_texts"] == 4
    assert f["relative_change"] > 0.1 and f["flagged"] is True
    assert f["tuned_perplexity"] > f["base_perplexity"]
    same = evaluate(general, general, pattern_data["test"], tmp_path / "same", forgetting_text=str(general_text))
    assert same.forgetting["relative_change"] == pytest.approx(0.0)
    assert same.forgetting["flagged"] is False


def test_forgetting_is_skipped_with_a_reason_when_no_text(tiny_llama_dir, pattern_data, tmp_path, capsys):
    r = evaluate(tiny_llama_dir, tiny_llama_dir, pattern_data["test"], tmp_path, limit=3)
    assert r.forgetting["status"] == "skipped"
    assert "forgetting_text" in r.forgetting["reason"]
    assert "forgetting check skipped" in capsys.readouterr().err
    assert json.loads((tmp_path / "eval.json").read_text())["forgetting"]["status"] == "skipped"


def test_same_prompt_format_for_both_models(tiny_llama_dir, pattern_data, tmp_path):
    r = evaluate(tiny_llama_dir, tiny_llama_dir, pattern_data["test"], tmp_path, limit=2)
    assert r.details["prompt_format"] == "chat template"
    assert r.details["example_prompt"].endswith("<|im_start|>assistant\n")
