"""A check over the removal budget is a high preflight risk, so strict mode stops before any training."""

from __future__ import annotations

import json
import random

import pytest

from tests.pipeline.conftest import qa_file
from tuneproof.errors import TuneproofError
from tuneproof.pipeline import run


def _with_garbled(path, n_garbled=20, seed=3):
    """The tiny pipeline's QA rows plus symbol-soup completions (low_quality removes them for SFT)."""
    rng = random.Random(seed)
    qa_file(path)
    rows = [{"prompt": f"item {i} of the list", "completion": " ".join(rng.choice("xqzkj") + "".join(rng.choices("#@%$!&*", k=4))
             for _ in range(8))} for i in range(n_garbled)]  # fmt: skip
    with path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return path


def test_a_check_over_the_budget_is_a_high_risk_and_strict_stops(pipeline_config, tmp_path):
    data = _with_garbled(tmp_path / "noisy.jsonl")  # 20 of 83 rows (24%) garbled: over the 20% per check
    cfg = pipeline_config(data={"path": str(data)}, pipeline={"strict": True})
    with pytest.raises(TuneproofError, match="strict mode") as err:
        run(cfg)
    assert "curation_budget: curation's low_quality check would remove 20 of 83 rows (24%" in str(err.value)
    run_dir = tmp_path / "runs/p"
    manifest = json.loads((run_dir / "curate/manifest.json").read_text())
    assert manifest["budget"]["suspended"] == ["low_quality"] and manifest["counts"]["kept"] == 80  # 3 exact copies go
    (risk,) = [r for r in json.loads((run_dir / "preflight/preflight.json").read_text())["risks"] if r["code"] == "curation_budget"]
    assert risk["level"] == "high" and "flagged and kept, e.g. noisy.jsonl:" in risk["evidence"]
    assert "audit.max_check_removed_share: 0.3" in risk["fix"] and "audit.max_removed_share" not in risk["fix"]
    assert not (run_dir / "train").exists()


def test_a_budget_raised_in_the_config_removes_them_and_raises_no_budget_risk(pipeline_config, tmp_path):
    data = _with_garbled(tmp_path / "noisy.jsonl")
    cfg = pipeline_config(data={"path": str(data)}, audit={"max_check_removed_share": 0.3}, pipeline={"strict": True})
    with pytest.raises(TuneproofError, match="strict mode") as err:  # the tiny data stays too small: strict still stops
        run(cfg)
    assert "too_few_examples" in str(err.value) and "curation_budget" not in str(err.value)
    manifest = json.loads((tmp_path / "runs/p/curate/manifest.json").read_text())
    assert manifest["counts"]["removed_by_check"]["low_quality"] == 20 and manifest["budget"]["suspended"] == []


def test_data_noise_counts_what_was_removed_and_points_to_what_the_budget_kept(tmp_path):
    from tuneproof.config import load_config
    from tuneproof.pipeline._preflight import _risks

    cfg = load_config({"name": "r", "task": "sft", "data": {"path": "x.jsonl"}, "tracking": {"runs_dir": str(tmp_path)}})
    budget = {"rows": 100, "max_check_removed_share": 0.2, "max_removed_share": 0.25, "suspended": ["off_domain"],
              "flagged_and_kept": 30, "total": {"share": 0.3, "expected_share": 0.0},
              "checks": {"off_domain": {"would_remove": 30, "share": 0.3, "expected_share": 0.0, "why": "w",
                                        "examples": [{"id": "d.jsonl:7", "text": "a record"}]},
                         "exact_duplicate": {"would_remove": 35, "share": 0.35, "expected_share": 0.0}}}  # fmt: skip
    manifest = {"counts": {"input_rows": 100, "kept": 65, "removed": 35, "removed_by_check": {"exact_duplicate": 35},
                           "removed_by_reason": {}}, "budget": budget}  # fmt: skip
    (tmp_path / "curate").mkdir()
    (tmp_path / "curate/manifest.json").write_text(json.dumps(manifest))
    mde = {"metric": "token_f1", "value": 0.01, "target_effect": 0.02, "n_test": 500, "variance_source": "measured"}
    risks = {r["code"]: r for r in _risks(cfg, [{}] * 300, [{}] * 50, [10], 1000, mde, tmp_path / "curate", None)}
    assert risks["data_noise"]["level"] == "medium" and risks["data_noise"]["evidence"].startswith("curation removed 35 of 100")
    assert "30 more were over the removal budget, flagged and kept" in risks["data_noise"]["evidence"]
    assert risks["curation_budget"]["level"] == "high" and 'd.jsonl:7 "a record"' in risks["curation_budget"]["evidence"]
    # The config lowered the total limit under the share too, so the fix raises both.
    assert risks["curation_budget"]["fix"].endswith("set audit.max_check_removed_share: 0.3 and audit.max_removed_share: 0.3")
