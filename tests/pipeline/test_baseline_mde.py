"""The preflight's minimum detectable effect from the base model's scores on test, measured before training."""

from __future__ import annotations

import json

import pytest

from tuneproof.config import load_config
from tuneproof.pipeline import minimum_detectable_effect
from tuneproof.pipeline._preflight import mde_for


def _cfg(tmp_path, metric, **stages):
    return load_config({"name": "b", "task": "sft", "data": {"path": "x.jsonl"}, "eval": {"metric": metric},
                        "model": {"name": str(tmp_path / "no-model")}, "pipeline": {"stages": stages},
                        "tracking": {"runs_dir": str(tmp_path / "runs")}})  # fmt: skip


def _baseline(cfg, metric, scores):
    out = cfg.run_dir / "baseline"
    out.mkdir(parents=True)
    (out / "records.jsonl").write_text("".join(json.dumps({"id": f"t{i}", "base": {metric: s}}) + "\n"
                                               for i, s in enumerate(scores)))  # fmt: skip


def test_bounded_metric_takes_the_base_variance_plus_the_bound_for_the_tuned_model(tmp_path):
    cfg = _cfg(tmp_path, "exact_match")
    scores = [1.0] * 30 + [0.0] * 70  # the base model right on 30 of 100
    _baseline(cfg, "exact_match", scores)
    mde = mde_for(cfg, 100)
    assert mde["variance_source"].startswith("measured: the base model zero-shot (baseline/records.jsonl) scores 0.300")
    assert mde["upper_bound"] and "base model" in mde["bound_note"]
    # var(d) <= var(base) + q(1-q) with q = 0.3 + MDE: a fixed point, under the worst case of 0.5
    var = 0.3 * 0.7 * 100 / 99
    q = 0.3 + mde["value"]
    assert mde["value"] == pytest.approx(minimum_detectable_effect(100, var + q * (1 - q)), abs=1e-3)
    assert mde["value"] < minimum_detectable_effect(100, 0.5)


def test_a_base_that_scores_zero_everywhere_does_not_make_every_gain_detectable(tmp_path):
    cfg = _cfg(tmp_path, "token_f1")
    _baseline(cfg, "token_f1", [0.0] * 15)
    mde = mde_for(cfg, 15)
    q = mde["value"]  # the tuned model needs q; its variance is bounded by q(1-q)
    assert q > 0.2 and q == pytest.approx(minimum_detectable_effect(15, q * (1 - q)), abs=1e-3)


def test_nll_takes_twice_the_base_variance_and_a_switched_off_baseline_is_ignored(tmp_path):
    cfg = _cfg(tmp_path, "nll")
    scores = [2.0, 3.0, 4.0, 5.0] * 25
    _baseline(cfg, "nll", scores)
    var = sum((s - 3.5) ** 2 for s in scores) / 99
    mde = mde_for(cfg, 100)
    assert mde["variance_source"].startswith("measured: 2 x the base model zero-shot")
    assert mde["value"] == pytest.approx(minimum_detectable_effect(100, 2 * var), abs=1e-4)
    off = mde_for(_cfg(tmp_path, "nll", baseline=False), 100)  # the stale file from above stays unread
    assert off["variance_source"].startswith("in standard deviations")
