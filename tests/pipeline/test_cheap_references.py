"""The preflight's class balance and measured MDE, and a decision that a constant answer can veto."""

from __future__ import annotations

import json

import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import decide, minimum_detectable_effect
from tuneproof.pipeline._preflight import preflight


def _split(tmp_path, train, test, val=None):
    split = tmp_path / "split"
    split.mkdir(parents=True)
    for name, rows in (("train", train), ("val", val or train[:5]), ("test", test)):
        (split / f"{name}.jsonl").write_text("".join(json.dumps({"id": f"{name}:{i}", **r}) + "\n" for i, r in enumerate(rows)))
    return split


def _cfg(tmp_path, task, metric):
    return load_config({"name": "c", "task": task, "data": {"path": "x.jsonl"}, "eval": {"metric": metric},
                        "model": {"name": str(tmp_path / "no-model"), "max_length": 64},
                        "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip


def test_preflight_reports_the_class_balance_and_takes_the_mde_from_the_constant(tmp_path):
    train = [{"text": f"note {i} about the case", "label": "pos" if i % 10 else "neg"} for i in range(100)]  # 90% pos
    test = [{"text": f"test {i} about the case", "label": "pos" if i % 10 else "neg"} for i in range(120)]
    cfg = _cfg(tmp_path, "classification", "accuracy")
    rep = preflight(cfg, _split(tmp_path, train, test), tmp_path / "pre", curate_dir=None, audit_dir=None)
    b = rep["class_balance"]
    assert b["train"] == {"pos": 90, "neg": 10} and b["test"] == {"pos": 108, "neg": 12}
    assert b["constant"] == "pos" and b["constant_score"] == pytest.approx(0.9)
    assert b["prior_score"] == pytest.approx(0.9 * 0.9 + 0.1 * 0.1)
    mde = rep["min_detectable_effect"]
    assert mde["variance_source"].startswith("measured: the constant answer 'pos' scores 0.900")
    # var(d) <= p(1-p) + q(1-q), q = p + MDE: a fixed point, well under the worst-case bound of 0.5
    q = 0.9 + mde["value"]
    assert mde["value"] == pytest.approx(minimum_detectable_effect(120, 0.9 * 0.1 * 120 / 119 + q * (1 - q)), abs=2e-4)
    assert mde["value"] < 0.75 * minimum_detectable_effect(120, 0.5)
    # still an upper bound (non-negative correlation assumed): the risk says "at most" and stays medium
    (risk,) = [r for r in rep["risks"] if r["code"] == "test_too_small"]
    assert risk["level"] == "medium" and "at most" in risk["evidence"] and "the constant answer 'pos'" in risk["evidence"]
    assert json.loads((tmp_path / "pre" / "preflight.json").read_text())["class_balance"]["constant"] == "pos"


def test_preflight_on_label_like_sft_and_on_summaries(tmp_path):
    rows = [{"prompt": f"Is claim {i} supported?", "completion": ["yes", "yes", "no", "maybe"][i % 4]} for i in range(40)]
    cfg = _cfg(tmp_path, "sft", "label_accuracy")
    b = preflight(cfg, _split(tmp_path, rows, rows[:20]), tmp_path / "pre", curate_dir=None, audit_dir=None)["class_balance"]
    assert b["train"] == {"yes": 20, "no": 10, "maybe": 10} and b["constant"] == "yes" and b["constant_score"] == 0.5

    extra = ["", "old ", "very old ", "red ", "large red "]
    docs = [f"Summarize: The {extra[i % 5]}item {i} was sold today. The buyer paid in cash. Nobody else bid." for i in range(12)]
    summ = [{"prompt": d, "completion": f"Item {i} sold for cash."} for i, d in enumerate(docs)]  # 5 words each
    cfg = _cfg(tmp_path / "s", "sft", "rouge_l")
    rep = preflight(cfg, _split(tmp_path / "s", summ, summ[:6]), tmp_path / "s" / "pre", curate_dir=None, audit_dir=None)
    lead = rep["class_balance"]["lead"]
    assert lead["words"] == 5 and 0 < lead["score"] < 1 and "constant" not in rep["class_balance"]
    assert "free text" in rep["class_balance"]["note"]
    assert rep["min_detectable_effect"]["variance_source"].startswith("measured: 2 x the lead baseline")


def _write_eval(run_dir, verdict, refs):
    (run_dir / "evaluate").mkdir(parents=True, exist_ok=True)
    (run_dir / "train/model").mkdir(parents=True, exist_ok=True)
    ev = {"metric": "label_accuracy", "reference": "base", "n_records": 150, "verdict": verdict, "verdict_reason": "r",
          "delta": {"reference": 0.3, "tuned": 0.55, "value": 0.25, "ci_low": 0.14, "ci_high": 0.36,
                    "confidence": 0.95, "higher_is_better": True}, "references": refs}  # fmt: skip
    (run_dir / "evaluate/eval.json").write_text(json.dumps(ev))


def _ref(score, tuned, verdict, gating=True, desc="a constant answer 'yes' (the training majority)"):
    d = {"metric": "label_accuracy", "reference": score, "tuned": tuned, "value": tuned - score, "ci_low": -0.05,
         "ci_high": 0.01, "confidence": 0.95, "higher_is_better": True}  # fmt: skip
    return {"description": desc, "score": score, "tuned": tuned, "delta": d, "verdict": verdict, "gating": gating}


def test_the_decision_never_ships_what_a_constant_matches(tmp_path):
    cfg = load_config({"name": "d", "task": "sft", "data": {"path": "x.jsonl"}, "tracking": {"runs_dir": str(tmp_path)}})
    rd = cfg.run_dir
    refs = {"base": _ref(0.3, 0.55, "improved", desc="the base model"), "prior": _ref(0.45, 0.55, "improved"),
            "majority": _ref(0.57, 0.55, "no_change")}  # fmt: skip
    # even an eval.json that says improved (written by a tool unaware of the gate) does not ship
    _write_eval(rd, "improved", refs)
    dec = decide(cfg)
    assert not dec["ship"] and not (rd / "model").exists()
    first = dec["causes"][0]
    assert first["code"] == "reference_constant"
    assert first["evidence"].startswith("a constant answer 'yes' (the training majority) scores label_accuracy 0.570")
    # beaten everywhere (an informative lead left behind): it ships
    refs["majority"] = _ref(0.50, 0.55, "improved")
    refs["lead"] = _ref(0.6, 0.55, "no_change", gating=False)
    _write_eval(rd, "improved", refs)
    assert decide(cfg)["ship"]
