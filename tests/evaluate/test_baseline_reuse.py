"""The base model scored before training (the baseline) and reused by the evaluation: same numbers as scoring again."""

from __future__ import annotations

import json

from tuneproof.config import EvalConfig
from tuneproof.evaluate import evaluate
from tuneproof.evaluate._baseline import score_baseline


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_reused_base_scores_equal_scoring_again(tiny_llama_dir, trained_llama_dir, pattern_data, general_text, tmp_path):
    cfg = EvalConfig(metric="token_f1", max_new_tokens=4, forgetting_text=str(general_text))
    info = score_baseline(tiny_llama_dir, pattern_data["test"], tmp_path / "baseline", config=cfg, max_length=64)
    rows = _rows(tmp_path / "baseline/records.jsonl")
    assert info["metric"] == "token_f1" and info["n"] == len(rows) > 1 and len(info["config_hash"]) == 64
    assert {"id", "base", "completion_tokens", "generation"} <= rows[0].keys()
    assert abs(info["mean"] - sum(r["base"]["token_f1"] for r in rows) / len(rows)) < 1e-12

    fresh = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path / "fresh", config=cfg, max_length=64)
    reused = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path / "reused", config=cfg,
                      max_length=64, reference_scores=tmp_path / "baseline/records.jsonl")  # fmt: skip
    a, b = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("fresh", "reused"))
    assert b["details"]["base_scores"].endswith("records.jsonl") and a["details"]["base_scores"] == "scored here"
    assert a["metrics"] == b["metrics"] and a["delta"] == b["delta"] and a["verdict"] == b["verdict"]
    assert a["references"] == b["references"]
    # the forgetting check still compares the base and the tuned model on general text
    assert a["forgetting"]["status"] == b["forgetting"]["status"] == "ok"
    assert a["forgetting"]["base_perplexity"] == b["forgetting"]["base_perplexity"]
    assert _rows(tmp_path / "fresh/records.jsonl") == _rows(tmp_path / "reused/records.jsonl")
    assert fresh.metrics == reused.metrics


def test_scores_from_other_settings_or_records_are_not_reused(tiny_llama_dir, trained_llama_dir, pattern_data, tmp_path, capsys):
    cfg = EvalConfig(metric="token_f1", max_new_tokens=4)
    score_baseline(tiny_llama_dir, pattern_data["test"], tmp_path / "baseline", config=cfg, max_length=64)
    path = tmp_path / "baseline/records.jsonl"
    # another generation budget: the base is scored again, and the console says why
    r = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path / "other", max_length=64,
                 config=cfg.model_copy(update={"max_new_tokens": 3}), reference_scores=path)  # fmt: skip
    err = capsys.readouterr().err
    assert "scored again" in err and "max_new_tokens 4 -> 3" in err
    assert r.details["base_scores"] == "scored here"
    # the same settings, but the scores' records in another order
    rows = path.read_text().splitlines()
    path.write_text("\n".join(rows[1:] + rows[:1]) + "\n")
    r = evaluate(tiny_llama_dir, trained_llama_dir, pattern_data["test"], tmp_path / "order", config=cfg, max_length=64,
                 reference_scores=path)  # fmt: skip
    assert "other records" in capsys.readouterr().err and r.details["base_scores"] == "scored here"
