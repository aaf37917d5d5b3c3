"""The decision and the minimum detectable effect, on eval/preflight/train files written here."""

from __future__ import annotations

import json
import math

import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import decide, minimum_detectable_effect


def _cfg(tmp_path):
    return load_config({"name": "d", "task": "classification", "data": {"path": "x.jsonl"},
                        "tracking": {"runs_dir": str(tmp_path)}})  # fmt: skip


def _write_eval(run_dir, verdict, ref, tuned, ci=(0.01, 0.05), n=400):
    (run_dir / "evaluate").mkdir(parents=True, exist_ok=True)
    ev = {"metric": "accuracy", "reference": "probe", "n_records": n, "verdict": verdict, "verdict_reason": "r",
          "delta": {"reference": ref, "tuned": tuned, "value": tuned - ref, "ci_low": ci[0], "ci_high": ci[1],
                    "confidence": 0.95, "higher_is_better": True}}  # fmt: skip
    (run_dir / "evaluate/eval.json").write_text(json.dumps(ev))


def test_improved_ships_a_copy_of_the_trained_model(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    (rd / "train/model").mkdir(parents=True)
    (rd / "train/model/adapter.bin").write_bytes(b"w")
    _write_eval(rd, "improved", 0.80, 0.85)
    dec = decide(cfg)
    assert dec["ship"] and dec["headline"] == f"improved: ship {rd / 'model'}"
    assert (rd / "model/adapter.bin").read_bytes() == b"w"
    assert json.loads((rd / "decision.json").read_text()) == dec
    # the same run later not proven: the old deliverable is withdrawn
    _write_eval(rd, "no_change", 0.80, 0.80, ci=(-0.01, 0.01))
    assert not decide(cfg)["ship"] and not (rd / "model").exists()


def test_a_strong_probe_is_the_first_cause(tmp_path):
    cfg = _cfg(tmp_path)
    _write_eval(cfg.run_dir, "no_change", 0.96, 0.965, ci=(-0.004, 0.014))
    dec = decide(cfg)
    assert dec["headline"] == "not proven: do not ship" and dec["causes"][0]["code"] == "reference_strong"
    assert "0.96" in dec["causes"][0]["evidence"]


def test_guard_and_mde_causes(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _write_eval(rd, "no_change", 0.70, 0.72, ci=(-0.02, 0.06), n=50)
    (rd / "train").mkdir(parents=True)
    (rd / "train/train.json").write_text(json.dumps({"guard": {"overfitting": True, "rule": "gap", "detected_step": 40},
                                                      "best_step": 20, "global_step": 60, "stopped_early": True}))  # fmt: skip
    (rd / "preflight").mkdir()
    (rd / "preflight/preflight.json").write_text(json.dumps({"min_detectable_effect": {"value": 0.198, "n_test": 50,
                                                             "alpha": 0.05, "power": 0.8}, "risks": []}))  # fmt: skip
    codes = [c["code"] for c in decide(cfg)["causes"]]
    assert codes == ["overfitting", "test_too_small"]


def test_the_evaluations_measured_variance_overrules_the_preflights_bound(tmp_path):
    """The preflight bounds var(d) by 0.5 for a metric in [0, 1] (MDE 0.162 for 150 records); a
    continuous metric's measured CI is far narrower, so a clear effect is not 'test too small'."""
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    (rd / "preflight").mkdir(parents=True)
    (rd / "preflight/preflight.json").write_text(json.dumps({"min_detectable_effect": {"value": 0.162, "n_test": 150,
                                                             "alpha": 0.05, "power": 0.8}, "risks": []}))  # fmt: skip
    _write_eval(rd, "no_change", 0.165, 0.190, ci=(0.012, 0.038), n=150)  # e.g. ROUGE-L, short of min_effect
    assert "test_too_small" not in [c["code"] for c in decide(cfg)["causes"]]
    _write_eval(rd, "no_change", 0.165, 0.170, ci=(-0.008, 0.018), n=150)  # a gain of 0.005 < measured MDE 0.019
    (cause,) = [c for c in decide(cfg)["causes"] if c["code"] == "test_too_small"]
    assert "0.0186" in cause["evidence"] and "paired-bootstrap CI" in cause["evidence"]


@pytest.mark.parametrize(("n", "var", "expected"), [(200, 0.5, 0.1401), (50, 0.5, 0.2802), (1000, 0.1, 0.0280)])
def test_minimum_detectable_effect(n, var, expected):
    # (1.95996 + 0.84162) * sqrt(var / n)
    assert minimum_detectable_effect(n, var) == pytest.approx(expected, abs=1e-4)
    assert minimum_detectable_effect(0, var) == math.inf


def _leak_rows(audit_dir, severities):
    audit_dir.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"train.jsonl:{i}", "check": "leakage", "severity": s, "code": "x"} for i, s in enumerate(severities)]
    rows.append({"id": "train.jsonl:99", "check": "low_quality", "severity": "severe", "code": "empty"})
    (audit_dir / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_leakage_risk_is_high_only_for_copies_left_in_training(tmp_path):
    from tuneproof.pipeline._preflight import _leakage_risk

    cfg = _cfg(tmp_path)
    audit = tmp_path / "audit"
    _leak_rows(audit, ["warning"] * 10)  # partial overlaps only, kept by design (XSum, seed 1: 10 of them)
    risk = _leakage_risk(cfg, audit, {"counts": {"removed_by_check": {}}})
    assert risk["level"] == "low" and risk["evidence"].startswith("10 training record(s)") and "partial" in risk["evidence"]
    _leak_rows(audit, ["severe", "severe", "warning"])
    assert _leakage_risk(cfg, audit, {"counts": {"removed_by_check": {"leakage": 2}}})["level"] == "low"
    high = _leakage_risk(cfg, audit, None)  # curation off: both copies are trained on
    assert high["level"] == "high" and high["evidence"].startswith("2 training record(s)")
    _leak_rows(audit, [])
    assert _leakage_risk(cfg, audit, None) is None


def test_a_low_risk_is_not_given_as_the_cause(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    _write_eval(rd, "no_change", 0.70, 0.705, ci=(-0.01, 0.02), n=1000)
    (rd / "preflight").mkdir(parents=True)
    low = {"code": "leakage", "level": "low", "evidence": "3 partial overlaps", "fix": "read them"}
    (rd / "preflight/preflight.json").write_text(json.dumps({"risks": [low]}))
    assert "data_problem" not in [c["code"] for c in decide(cfg)["causes"]]
    (rd / "preflight/preflight.json").write_text(json.dumps({"risks": [{**low, "level": "high"}]}))
    assert "data_problem" in [c["code"] for c in decide(cfg)["causes"]]


def test_truncation_is_medium_when_the_audit_found_only_prompts_cut(tmp_path):
    from tuneproof.pipeline._preflight import _truncation_risk

    cfg = load_config({"name": "t", "task": "sft", "data": {"path": "x.jsonl"}, "tracking": {"runs_dir": str(tmp_path)},
                       "model": {"name": str(tmp_path / "no-model"), "max_length": 64}})  # fmt: skip
    audit = tmp_path / "audit"
    audit.mkdir()

    def findings(*cuts):
        rows = [{"id": f"t.jsonl:{i}", "check": "too_long", "severity": "warning", "prompt_tokens_cut": 30,
                 "completion_tokens_cut": c} for i, c in enumerate(cuts)]  # fmt: skip
        (audit / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    lengths = [100] * 9 + [20]  # 90% over the limit
    findings(0, 0, 0)  # every over-long record keeps its completion (XSum articles with one-line summaries)
    risk = _truncation_risk(cfg, lengths, audit)
    assert risk["level"] == "medium" and "completion kept whole" in risk["evidence"] and "9 of 10" in risk["evidence"]
    findings(0, 5, 0)  # one completion loses tokens: what is learned is cut
    assert _truncation_risk(cfg, lengths, audit)["level"] == "high"
    assert _truncation_risk(cfg, lengths, None)["level"] == "high"  # no audit: the share decides
    assert _truncation_risk(cfg, [100] * 2 + [20] * 40, None) is None


def test_truncation_for_classification_says_the_end_is_cut(tmp_path):
    from tuneproof.pipeline._preflight import _truncation_risk

    cfg = load_config({"name": "t", "task": "classification", "data": {"path": "x.jsonl"},
                       "tracking": {"runs_dir": str(tmp_path)}, "model": {"name": "m", "max_length": 64}})  # fmt: skip
    audit = tmp_path / "audit"
    audit.mkdir()
    # Text records: the audit's too_long findings carry no completion to cut.
    (audit / "findings.jsonl").write_text(json.dumps({"id": "t.jsonl:0", "check": "too_long", "completion_tokens_cut": 0}) + "\n")
    for where in (audit, None):
        risk = _truncation_risk(cfg, [100] * 9 + [20], where)
        assert risk["level"] == "medium" and "9 of 10" in risk["evidence"]
        assert "first 64 tokens and cut its end" in risk["evidence"] and "middle" not in risk["evidence"]


def test_a_gain_below_zero_is_not_blamed_on_the_test_size(tmp_path):
    cfg = _cfg(tmp_path)
    rd = cfg.run_dir
    (rd / "preflight").mkdir(parents=True)
    (rd / "preflight/preflight.json").write_text(json.dumps({"min_detectable_effect": {"value": 0.2, "n_test": 50,
                                                             "alpha": 0.05, "power": 0.8}, "risks": []}))  # fmt: skip
    _write_eval(rd, "no_change", 0.757, 0.723, ci=(-0.08, 0.01), n=300)  # tuned below the probe, within noise
    codes = [c["code"] for c in decide(cfg)["causes"]]
    assert "test_too_small" not in codes and codes[0] == "not_better"
